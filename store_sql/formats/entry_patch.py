"""Patching a session entry's JSON text in place, without parsing the whole entry.

The store keeps every entry in JavaScript's 2-space layout at depth 1 (what
`JSON.stringify(store, null, 2)` writes for it: `sessions_json.entry_text`). In that layout
each top-level field starts a line of its own, indented by exactly four spaces, and the
fields are separated by `,\\n    "` — nested fields sit deeper, and a raw newline never
occurs inside a JSON string. So `{...entry, ...patch}` can be done on the text: replace or
drop the patched fields' lines and append new ones at the end, as object spread does.

That skips parsing the entry and writing all of it again, the bulk of a patch's cost for
the gateway's most frequent change (`updatedAt` and token counters after every turn).
Anything this cannot do exactly, it declines (returns None) and the caller takes the
parse-merge-serialise path, which the tests compare it with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from store_sql.formats.js_numbers import js_number_text
from store_sql.formats.jsjson import dumps, is_array_index

_START = '{\n    "'
_END = "\n  }"
_MEMBER = "\n    "  # a top-level member's line starts here, and nothing else does
_NEXT = ',\n    "'
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$.:@+-]*")
_SAFE_INT = 2**53


def patch_entry_text(text: str, patch: Mapping[str, Any]) -> str | None:
    """`text` with `patch` applied (`None` removes a field), or None when declined: text not
    in the 2-space layout, an array-index key added (JavaScript would move it first), a
    value JSON cannot hold (the full path names it)."""
    if not (text.startswith(_START) and text.endswith(_END)):
        return None
    for field, value in patch.items():
        if not isinstance(field, str):
            return None
        key = f'"{field}"' if _PLAIN_KEY.fullmatch(field) else dumps(field)
        start = text.find(f"{_MEMBER}{key}: ")
        if value is None:
            if start >= 0:
                text = _without(text, start)
            continue
        rendered = _value_text(value)
        if rendered is None:
            return None
        member = f"{_MEMBER}{key}: {rendered}"
        if start >= 0:
            end = _member_end(text, start)
            text = text[:start] + member + text[end:]
        elif is_array_index(field):
            return None
        elif text == "{}":
            text = "{" + member + _END
        else:
            text = text[: -len(_END)] + "," + member + _END
    return text


def _member_end(text: str, start: int) -> int:
    """Where the member starting at `start` ends: its comma, or the closing bracket."""
    end = text.find(_NEXT, start + 1)
    return end if end >= 0 else len(text) - len(_END)


def _without(text: str, start: int) -> str:
    end = _member_end(text, start)
    if text[end] == ",":  # not the last member: take its comma along
        return text[:start] + text[end + 1 :]
    if text[start - 1] == ",":  # the last of several: drop the comma before it
        return text[: start - 1] + text[end:]
    return "{}"  # the only member


def _value_text(value: Any) -> str | None:
    """JSON.stringify of a member value at depth 2; the common scalars without a detour."""
    cls = value.__class__
    if cls is bool:
        return "true" if value else "false"
    if cls is int and -_SAFE_INT < value < _SAFE_INT:
        return str(value)
    if cls is float and math.isfinite(value):
        return js_number_text(value)
    if cls is str:
        try:
            return orjson.dumps(value).decode()  # escapes as JavaScript does; refuses surrogates
        except orjson.JSONEncodeError:
            pass
    try:
        return dumps(value, indent=2, level=2)
    except (TypeError, ValueError):
        return None

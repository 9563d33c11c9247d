"""How library results look in the service's JSON (camelCase), and back: shared by the
routes and by the clients (the CLI) so both sides agree on every field."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Final

import msgspec

from store_sql.transcripts.appends import Appended
from store_sql.transcripts.rows import TranscriptInfo


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_INFO_FIELDS = [f.name for f in dataclasses.fields(TranscriptInfo)]


def info_dict(info: TranscriptInfo) -> dict[str, Any]:
    """A TranscriptInfo as JSON: every field, camelCase."""
    return {camel(name): getattr(info, name) for name in _INFO_FIELDS}


def info_fields(value: dict[str, Any]) -> dict[str, Any]:
    """`info_dict`'s JSON back to TranscriptInfo's field names and order."""
    return {name: value[camel(name)] for name in _INFO_FIELDS}


def appended_item(result: Appended) -> dict[str, Any]:
    """One appended entry: `{"id", "parentId", "existed", "pos"}` (pos: its 0-based line)."""
    return {
        "id": result.id,
        "parentId": result.parent_id,
        "existed": result.existed,
        "pos": result.pos,
    }


def snake(name: str) -> str:
    """`camel`'s inverse for the names it makes (`fullTextWaiting` -> `full_text_waiting`)."""
    return re.sub(r"(?<=.)([A-Z])", lambda m: "_" + m.group(1).lower(), name)


KEYED_BY_DATA: Final = frozenset({"transcripts_by_kind", "transcriptsByKind"})
"""Members whose keys are values of the store (transcript kinds), not field names."""


def camel_keys(value: Any) -> Any:
    """A library result (dataclasses, dicts of field names, lists) as the service's JSON:
    every field name camelCase, at every depth. Only for results, never for stored data
    (entries keep their own keys)."""
    return _rekey(msgspec.to_builtins(value), camel)


def snake_keys(value: Any) -> Any:
    """`camel_keys`' JSON back to the library's field names (what the CLI prints)."""
    return _rekey(value, snake)


def _rekey(value: Any, name: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {name(k): v if k in KEYED_BY_DATA else _rekey(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_rekey(v, name) for v in value]
    return value

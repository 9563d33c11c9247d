"""sessions.json, the per-agent session index: parse it keeping each entry's source text.

The gateway writes the index as ``JSON.stringify(store, null, 2)`` with no trailing newline
(docs/FORMATS.md §2). Import keeps every entry's exact source text so export can
splice the file back together byte for byte; anything the store writes itself goes through
`jsjson` so it is what JavaScript would have written. A 0-byte or unreadable file is an
error, never an empty index: reading it as empty is the bug that cost OpenClaw users theirs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from store_sql.formats import jsjson
from store_sql.formats.sqltext import storable

__all__ = [
    "IndexEntry",
    "IndexFileError",
    "ParsedIndex",
    "entry_text",
    "js_key_order",
    "parse_index",
    "render_index",
    "salvage_index",
    "validate_entry",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EMPTY_FILE = "file is empty (0 bytes): an empty index is the two bytes {}"
_BOM = b"\xef\xbb\xbf"
_WS_CHARS = " \t\n\r"  # JSON.parse whitespace, nothing more
_WS = re.compile(f"[{_WS_CHARS}]*")
# JSON.stringify(store, null, 2) framing: what surrounds the keys and values at depth 1.
_OPEN, _SEPARATOR, _COLON, _CLOSE = "{\n  ", ",\n  ", ": ", "\n}"
_OPEN_B, _SEPARATOR_B, _COLON_B, _CLOSE_B = (
    s.encode() for s in (_OPEN, _SEPARATOR, _COLON, _CLOSE)
)
# The stdlib scanner finds where each value ends (in C); jsjson then reads the value itself.
_SPAN_DECODER = json.JSONDecoder()
# A key in double quotes (escapes included) followed by ": ", matched on the raw bytes.
_KEY_AND_COLON = re.compile(rb'"(?:[^"\\]++|\\.)*+": ', re.DOTALL)


class IndexFileError(ValueError):
    """sessions.json cannot be read as an index. The message names no path: callers add it."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        where = f" (line {line}, column {column})" if line is not None else ""
        super().__init__(reason + where)
        self.reason = reason
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One session key of the index with its value's exact source text."""

    key: str
    position: int
    """0-based place in JavaScript property order (file order for any gateway-written file)."""
    text: str
    """The value's source text as in the file (for a JS-written file, indented at depth 1)."""
    value: Any
    """The value as `jsjson.loads` reads it."""
    problem: str | None
    """None, or why the entry is not a usable session entry (see `validate_entry`)."""


@dataclass(frozen=True, slots=True)
class ParsedIndex:
    """A parsed sessions.json."""

    entries: list[IndexEntry]
    """One per distinct key, in the order JSON.parse gives them (last duplicate value wins)."""
    warnings: list[str]
    canonical: bool
    """`render_index` of the entries reproduces the file bytes exactly."""


@dataclass(frozen=True, slots=True)
class _Member:
    """One ``"key": value`` of the top-level object, in file order."""

    key: str
    line: int  # 1-based line of the key, for warnings
    text: str  # the value's source text
    value: Any


@dataclass(frozen=True, slots=True)
class _Span:
    """Where a member sits in the decoded text (general scanner only)."""

    key: str
    key_start: int  # index of the key's opening quote
    value_start: int
    value_end: int


def parse_index(data: bytes) -> ParsedIndex:
    """Parse sessions.json bytes; raise IndexFileError for anything JSON.parse would refuse.

    Refused as well: a 0-byte file, a BOM (JSON.parse in the gateway fails on it), invalid
    UTF-8 and a top level that is not an object.
    """
    if not data:
        raise IndexFileError(_EMPTY_FILE)
    if data.startswith(_BOM):
        raise IndexFileError(
            "file starts with a UTF-8 byte order mark (EF BB BF), which JSON.parse in the "
            "gateway rejects: remove those three bytes",
            1,
            1,
        )
    # A gateway-written file is split at its layout; anything else (another layout, invalid
    # JSON) goes through the general scanner, which also produces the precise errors.
    members = _split_layout(data)
    laid_out_as_javascript = members is not None
    if members is None:
        members, laid_out_as_javascript = _scan_text(_decode(data))
    by_key: dict[str, list[_Member]] = {}
    for member in members:
        by_key.setdefault(member.key, []).append(member)
    warnings = [_duplicate_warning(key, seen) for key, seen in by_key.items() if len(seen) > 1]
    order = js_key_order(by_key)
    in_javascript_order = list(by_key) == order
    if not in_javascript_order:
        warnings.append(
            "integer-like keys are not first: JSON.parse lists them first, ascending, so an "
            "export writes them there"
        )
    if not laid_out_as_javascript:
        warnings.append(
            "file is not laid out as JSON.stringify(store, null, 2) writes it: an export "
            "rewrites the layout between entries (entry texts are kept)"
        )
    entries = []
    for position, key in enumerate(order):
        winner = by_key[key][-1]
        problem = validate_entry(winner.value)
        entries.append(IndexEntry(key, position, winner.text, winner.value, problem))
    canonical = laid_out_as_javascript and in_javascript_order and len(order) == len(members)
    return ParsedIndex(entries, warnings, canonical)


@dataclass(frozen=True, slots=True)
class SalvagedIndex:
    """What could be read from a sessions.json that `parse_index` refuses."""

    entries: list[IndexEntry]
    """The members read whole, in JavaScript property order (last duplicate wins)."""
    lost: list[str]
    """One line per part that could not be read: where it is and why."""


# In a file laid out by JSON.stringify(store, null, 2) every depth-1 key starts a line with
# exactly two spaces; deeper lines are indented further. Salvage resumes at the next one.
_NEXT_MEMBER = re.compile(r'\n  "')


def salvage_index(data: bytes) -> SalvagedIndex:
    """Every top-level member of `data` that reads whole as ``"key": value``.

    For a file `parse_index` refuses (torn, invalid UTF-8, an entry nested too deeply):
    each member is read on its own; after one that fails, reading
    resumes at the next depth-1 key of the gateway's layout, so one bad entry costs only
    itself, and a torn file gives every entry before the tear."""
    try:
        parsed = parse_index(data)
    except IndexFileError:
        pass
    else:
        return SalvagedIndex(parsed.entries, [])
    text = data.removeprefix(_BOM).decode("utf-8", "surrogateescape")
    start = _ws(text, 0)
    if not text.startswith("{", start):
        return SalvagedIndex([], ["the file holds no JSON object: nothing could be read"])
    members: dict[str, _Member] = {}
    lost: list[str] = []
    i = start + 1
    while True:
        i = _ws(text, i)
        if i < len(text) and text[i] == ",":
            i = _ws(text, i + 1)
        if i >= len(text):
            lost.append(f"line {_line_column(text, i)[0]}: the file ends early (truncated)")
            break
        if text[i] == "}":
            end = _ws(text, i + 1)
            if end != len(text):
                lost.append(f"line {_line_column(text, end)[0]}: data after the object")
            break
        member, reason, after = _salvage_member(text, i)
        if member is not None:
            members.pop(member.key, None)
            members[member.key] = member
            i = after
            continue
        line = _line_column(text, i)[0]
        resume = _NEXT_MEMBER.search(text, i + 1)
        if resume is None:
            lost.append(f"line {line} to the end: {reason}")
            break
        lost.append(f"lines {line}-{_line_column(text, resume.start())[0]}: {reason}")
        i = resume.start() + 1
    order = js_key_order(members)
    entries = []
    for position, key in enumerate(order):
        member = members[key]
        entries.append(
            IndexEntry(key, position, member.text, member.value, validate_entry(member.value))
        )
    return SalvagedIndex(entries, lost)


_INVALID_UTF8 = re.compile("[\udc80-\udcff]")  # bytes surrogateescape could not decode


def _salvage_member(text: str, i: int) -> tuple[_Member | None, str, int]:
    """The member at `i` (None and why when it cannot be read whole), and where it ends."""
    if text[i] != '"':
        return None, f"expected a session key in double quotes, found {text[i]!r}", i
    try:
        key, j = _read_key(text, i)
        j = _ws(text, j)
        if not text.startswith(":", j):
            return None, "no ':' after the key", i
        value_start = _ws(text, j + 1)
        _, end = _SPAN_DECODER.raw_decode(text, value_start)
        value_text = text[value_start:end]
        if _INVALID_UTF8.search(text, i, end):
            return None, "invalid UTF-8", i
        value = jsjson.loads(value_text)
    except json.JSONDecodeError as exc:
        return None, exc.msg, i
    except jsjson.JSONSyntaxError as exc:
        return None, exc.reason, i
    except RecursionError:
        return None, "entry nested too deeply to read", i
    return _Member(key, _line_column(text, i)[0], value_text, value), "", end


def render_index(entries: Iterable[tuple[str, str]]) -> bytes:
    """``JSON.stringify(store, null, 2)`` bytes from ``(key, value text at depth 1)`` pairs.

    The pairs must already be in output order (see `js_key_order`). An empty index is ``{}``.
    """
    # Encoding part by part avoids a whole-file str: one emoji makes CPython store every
    # character of a str in 4 bytes; at 324 MB that join took 5-7 s instead of 0.7 s.
    parts: list[bytes] = []
    for key, text in entries:
        # Only bytes are allocated here (no tuple per entry), so the garbage collector is not
        # triggered into walking the millions of parsed objects a caller may be holding.
        parts.append(_SEPARATOR_B if parts else _OPEN_B)
        parts.append(jsjson.dumps(key).encode())
        parts.append(_COLON_B)
        parts.append(text.encode("utf-8"))
    if not parts:
        return b"{}"
    parts.append(_CLOSE_B)
    return b"".join(parts)


def entry_text(value: Any) -> str:
    """An entry value as JSON.stringify writes it at depth 1 of the index."""
    return jsjson.dumps(value, indent=2, level=1)


def js_key_order(keys: Iterable[str]) -> list[str]:
    """Keys in JavaScript own-property order: array-index keys ascending, then the rest.

    A repeated key keeps its first place, as a property assigned twice does in JavaScript.
    """
    unique = dict.fromkeys(keys)
    indexes = sorted((k for k in unique if jsjson.is_array_index(k)), key=int)
    return indexes + [k for k in unique if not jsjson.is_array_index(k)]


def validate_entry(value: Any) -> str | None:
    """Why ``value`` is not a usable session entry, or None (docs/FORMATS.md §2)."""
    if not isinstance(value, dict):
        return "entry is not an object"
    problems = []
    session_id = value.get("sessionId")
    if "sessionId" not in value:
        problems.append("missing sessionId")
    elif not isinstance(session_id, str):
        problems.append("sessionId is not a string")
    elif not session_id:
        problems.append("sessionId is empty")
    elif session_id in (".", "..") or any(c in session_id for c in "/\\\0"):
        problems.append(
            "sessionId names a file: it must hold no '/', '\\' or NUL, nor be '.' or '..'"
        )
    elif not storable(session_id):
        problems.append("sessionId holds a lone surrogate")
    updated_at = value.get("updatedAt")
    if "updatedAt" not in value:
        problems.append("missing updatedAt")
    elif isinstance(updated_at, bool) or not isinstance(updated_at, int | float):
        problems.append("updatedAt is not a number")
    elif isinstance(updated_at, int) and not _INT64_MIN <= updated_at <= _INT64_MAX:
        problems.append("updatedAt is outside the 64-bit integers SQLite stores")
    elif not math.isfinite(updated_at):
        problems.append("updatedAt is not a finite number")
    return "; ".join(problems) or None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_column_of_byte(data, exc.start)
        raise IndexFileError(f"invalid UTF-8 at byte {exc.start}", line, column) from None


def _line_column_of_byte(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def _line_column(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _syntax_error(text: str, index: int, reason: str) -> IndexFileError:
    return IndexFileError(reason, *_line_column(text, index))


def _decode_error(text: str, exc: json.JSONDecodeError) -> IndexFileError:
    """The stdlib's complaint, plus the likely cause when it stopped at the end of the file."""
    reason = exc.msg.removesuffix(" at").removesuffix(" starting")  # "Unterminated string"
    if _ws(text, exc.pos) == len(text) or reason.startswith("Unterminated string"):
        reason += " (the file ends early: truncated write?)"
    return _syntax_error(text, exc.pos, reason)


def _ws(text: str, index: int) -> int:
    match = _WS.match(text, index)
    return match.end() if match else index


def _expect(text: str, index: int, char: str, what: str) -> int:
    """Index after ``char`` at ``index``, or a syntax error naming what was expected."""
    if index >= len(text):
        raise _syntax_error(text, index, f"file ends where {what} was expected (truncated?)")
    if text[index] != char:
        raise _syntax_error(text, index, f"expected {what}, found {text[index]!r}")
    return index + 1


def _scan_members(text: str) -> list[_Span]:
    """Find every member of the top-level object with the spans of its key and value."""
    start = _ws(text, 0)
    if start == len(text):
        raise IndexFileError("file holds only whitespace: an empty index is the two bytes {}")
    if text[start] != "{":
        _raise_not_an_object(text, start)
    members: list[_Span] = []
    i = _ws(text, start + 1)
    if i < len(text) and text[i] == "}":
        i += 1
    else:
        while True:
            key_start = i
            _expect(text, i, '"', "a session key in double quotes")
            try:
                key, i = _read_key(text, i)
                i = _ws(text, _expect(text, _ws(text, i), ":", "':' after the key"))
                value_start = i
                _, i = _SPAN_DECODER.raw_decode(text, i)
            except json.JSONDecodeError as exc:
                raise _decode_error(text, exc) from None
            except RecursionError:
                raise _syntax_error(
                    text, value_start, "entry nested too deeply for Python's JSON parser"
                ) from None
            members.append(_Span(key, key_start, value_start, i))
            i = _ws(text, i)
            if i < len(text) and text[i] == ",":
                i = _ws(text, i + 1)
                continue
            i = _expect(text, i, "}", "',' or '}' after the entry")
            break
    end = _ws(text, i)
    if end != len(text):
        raise _syntax_error(text, end, "unexpected data after the top-level object")
    return members


_TOP_LEVEL_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _raise_not_an_object(text: str, start: int) -> None:
    try:
        value, end = _SPAN_DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise _decode_error(text, exc) from None
    except RecursionError:
        raise _syntax_error(text, start, "nested too deeply for Python's JSON parser") from None
    if _ws(text, end) != len(text):
        raise _syntax_error(text, _ws(text, end), "unexpected data after the top-level value")
    kind = _TOP_LEVEL_KINDS.get(type(value), "a number")  # NumberLiteral is a float
    raise IndexFileError(f"top-level value is {kind}, not an object", *_line_column(text, start))


def _read_key(text: str, start: int) -> tuple[str, int]:
    """The key whose opening quote is at ``start`` and the index after its closing quote."""
    # A string is a JSON value: the C scanner reads it (typeshed does not expose scanstring).
    key, end = _SPAN_DECODER.raw_decode(text, start)
    assert isinstance(key, str)  # text[start] is '"', checked by the callers
    return key, end


def _split_layout(data: bytes) -> list[_Member] | None:
    """The members of a file laid out exactly as JSON.stringify(store, null, 2), or None.

    JSON strings cannot hold a raw newline and deeper lines are indented further, so in such
    a file every depth-1 member starts right after ``,\n  "``. Each value is then parsed on
    its own: a split in the wrong place leaves a value that does not parse, and None sends
    the file to the general scanner. Working on bytes skips the whole-file decode (a 1 GB
    index with one emoji is a 4 GB str) and the separate span scan.
    """
    if data == b"{}":
        return []
    if not (data.startswith(_OPEN_B + b'"') and data.endswith(_CLOSE_B)):
        return None
    members = []
    body_end = len(data) - len(_CLOSE_B)
    start, line = len(_OPEN_B), 2
    while True:
        found = data.find(_SEPARATOR_B + b'"', start, body_end)
        end = body_end if found < 0 else found
        key_match = _KEY_AND_COLON.match(data, start, end)
        if key_match is None:
            return None
        try:
            key_source = data[start : key_match.end() - len(_COLON_B)].decode("utf-8")
            value_text = data[key_match.end() : end].decode("utf-8")
            key = json.loads(key_source)
            value = jsjson.loads(value_text)
        except (UnicodeDecodeError, json.JSONDecodeError, jsjson.JSONSyntaxError):
            return None
        if (
            not value_text
            or value_text[0] in _WS_CHARS
            or value_text[-1] in _WS_CHARS
            or key_source != jsjson.dumps(key)
        ):
            return None  # valid, but spelled otherwise than JavaScript writes it
        members.append(_Member(key, line, value_text, value))
        if found < 0:
            return members
        line += data.count(b"\n", start, found) + 1
        start = found + len(_SEPARATOR_B)


def _scan_text(text: str) -> tuple[list[_Member], bool]:
    """Members found by the general scanner, and whether the layout is JavaScript's."""
    spans = _scan_members(text)
    members = []
    line, counted = 1, 0
    for span in spans:
        line += text.count("\n", counted, span.key_start)
        counted = span.key_start
        value_text = text[span.value_start : span.value_end]
        members.append(_Member(span.key, line, value_text, _load_value(text, span, value_text)))
    return members, _framing_is_canonical(text, spans)


def _load_value(text: str, span: _Span, value_text: str) -> Any:
    """Read one entry with jsjson semantics; errors point into the whole file."""
    try:
        return jsjson.loads(value_text)
    except jsjson.JSONSyntaxError as exc:
        # The stdlib accepted the span, jsjson did not (NaN, Infinity): report it in place.
        line, column = _line_column(text, span.value_start)
        column = exc.column + (column - 1 if exc.line == 1 else 0)
        raise IndexFileError(exc.reason, line + exc.line - 1, column) from None


def _duplicate_warning(key: str, seen: list[_Member]) -> str:
    lines = [str(m.line) for m in seen]
    return (
        f"duplicate key {jsjson.dumps(key)} at lines {', '.join(lines)}: the last value "
        f"(line {lines[-1]}) wins, as in JSON.parse"
    )


def _framing_is_canonical(text: str, members: list[_Span]) -> bool:
    """The text between keys and values is exactly what `render_index` writes around them."""
    if not members:
        return text == "{}"
    previous = 0
    for n, member in enumerate(members):
        key_text = jsjson.dumps(member.key)
        key_end = member.key_start + len(key_text)
        if (
            text[previous : member.key_start] != (_SEPARATOR if n else _OPEN)
            or text[member.key_start : key_end] != key_text
            or text[key_end : member.value_start] != _COLON
        ):
            return False
        previous = member.value_end
    return text[previous:] == _CLOSE

"""pi transcript JSONL: split files into lines, say what each line is, and join them back.

The store keeps every line's exact bytes and exports them unchanged (`../shared/FORMATS.md` §3
and §4), so nothing here re-serialises JSON. Parsing only extracts the few fields the store
indexes (ids, type, role, timestamp, idempotency key) and diagnoses damaged lines precisely
enough that a person can repair them: real files hold records glued together by concurrent
appends, torn last lines, blank lines, CRLF endings, BOMs and invalid UTF-8.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

import orjson

from store_sql.sqltext import text_or_none

__all__ = [
    "ByteSource",
    "LineKind",
    "TranscriptHeader",
    "TranscriptLine",
    "classify_line",
    "entry_fields",
    "header_of",
    "iter_raw_lines",
    "join_lines",
    "parse_line",
    "read_header",
    "split_lines",
]

_BOM = b"\xef\xbb\xbf"
# JSON.parse whitespace (ECMA-404): only these four; a line made of anything else is not blank.
_WS_RUN = re.compile(r"[ \t\n\r]*")
_BLANK_BYTES = b" \t\r"


class LineKind(StrEnum):
    """What one transcript line holds."""

    HEADER = "header"
    ENTRY = "entry"
    BLANK = "blank"
    DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One line of a transcript file: its exact bytes plus the fields the store indexes."""

    pos: int
    """0-based line index in the file."""
    raw: bytes
    """The bytes without the terminating ``\\n``; may end in ``\\r``, may start with a BOM."""
    kind: LineKind
    damage: str | None
    """Why a DAMAGED line is damaged. Byte offsets are 0-based into ``raw``; columns count
    characters of the decoded line from 1, after a BOM on line 0."""
    entry_id: str | None
    parent_id: str | None
    has_parent_key: bool
    """The object has a ``parentId`` that is null or a string: a v2/v3 entry (v1 has none)."""
    type: str | None
    role: str | None
    """``message.role`` of a ``type == "message"`` entry."""
    timestamp: str | None
    idempotency_key: str | None
    """``message.idempotencyKey`` of a ``type == "message"`` entry (OpenClaw, FORMATS.md §3)."""
    value: dict[str, Any] | None
    """The parsed object; None for BLANK and DAMAGED lines. Drop it once the fields are read."""


@dataclass(frozen=True, slots=True)
class TranscriptHeader:
    """The session header (line 1) of a transcript."""

    id: str | None
    version: int | None
    """1 when the header has no ``version`` (v1 files); None when it holds a non-integer."""
    timestamp: str | None
    cwd: str | None
    parent_session: str | None
    """``parentSession``, or the v1 name for it, ``branchedFrom``."""


class ByteSource(Protocol):
    """Anything with a binary ``read``: open files, sockets, zstd stream readers."""

    def read(self, size: int = ..., /) -> bytes:
        """Return up to ``size`` bytes; ``b""`` at end of stream."""
        ...


def split_lines(data: bytes) -> tuple[list[bytes], bool]:
    """Split a file into lines without their ``\\n`` and say whether it ended with one.

    ``b""`` gives ``([], False)`` and ``b"\\n"`` gives ``([b""], True)``: a final newline ends
    the last line rather than starting an empty one, so `join_lines` can restore either shape.
    """
    if not data:
        return [], False
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
        return lines, True
    return lines, False


def join_lines(lines: Iterable[bytes], ends_with_newline: bool) -> bytes:
    """Rebuild the exact file bytes that `split_lines` took apart.

    Raises ValueError for input `split_lines` never produces (a line holding ``\\n``, an empty
    unterminated last line, a final newline with no lines), because such input would not
    round-trip and silently exporting different bytes is the one thing export must not do.
    """
    parts = list(lines)
    if any(b"\n" in line for line in parts):
        raise ValueError("a transcript line must not contain a newline byte")
    if not parts:
        if ends_with_newline:
            raise ValueError("a file with a final newline has at least one line")
        return b""
    if not ends_with_newline and parts[-1] == b"":
        raise ValueError("an unterminated last line cannot be empty (the file would end in \\n)")
    body = b"\n".join(parts)
    return body + b"\n" if ends_with_newline else body


def iter_raw_lines(
    stream: ByteSource, *, chunk_size: int = 1 << 20
) -> Iterator[tuple[bytes, bool]]:
    """Yield ``(line, terminated)`` for each line of a binary stream, reading fixed-size chunks.

    Memory stays at one chunk plus the longest line, whatever the file size. The pairs match
    `split_lines`: every line but possibly the last is terminated, and no empty unterminated
    line is produced at the end.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    pending: list[bytes] = []  # pieces of a line that spans chunks, joined once it ends
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        pieces = chunk.split(b"\n")
        for piece in pieces[:-1]:
            if pending:
                pending.append(piece)
                yield b"".join(pending), True
                pending.clear()
            else:
                yield piece, True
        if pieces[-1]:
            pending.append(pieces[-1])
    if pending:
        yield b"".join(pending), False


def classify_line(raw: bytes, pos: int) -> TranscriptLine:
    """Say what one transcript line is. Never raises: anything unreadable is DAMAGED.

    Parsing uses orjson (fast) and falls back to the standard library for what orjson refuses
    but JSON.parse accepts (lone surrogate escapes, numbers beyond double range). A trailing
    ``\\r`` (CRLF file) and a BOM at the start of line 0 are skipped for parsing; ``raw`` keeps
    them. Lines nested deeper than both parsers allow (about 1000 levels) are DAMAGED.
    """
    kind, value, damage = parse_line(raw, pos)
    return _make(raw, pos, kind, damage=damage, value=value)


def parse_line(raw: bytes, pos: int) -> tuple[LineKind, dict[str, Any] | None, str | None]:
    """`classify_line` without the record: ``(kind, parsed object or None, damage)``.

    The import calls this once per line and reads the fields with `entry_fields`, building no
    object it would throw away (a frozen TranscriptLine cost 3-5 us of the ~16 us per line)."""
    if pos == 0 and raw.startswith(_BOM):
        end = len(raw) - 1 if raw.endswith(b"\r") and len(raw) > len(_BOM) else len(raw)
        body = raw[len(_BOM) : end]
        skip = len(_BOM)
    else:
        body = raw[:-1] if raw.endswith(b"\r") else raw
        skip = 0
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        # Blank lines land here too (orjson refuses an empty document), so the common case
        # never pays for the strip() copy of the whole line.
        if not body.strip(_BLANK_BYTES):
            return LineKind.BLANK, None, None
        value, damage = _parse_fallback(body, skip)
        if damage is not None:
            return LineKind.DAMAGED, None, damage
    if not isinstance(value, dict):
        kind_name = _JSON_TYPE_NAMES.get(type(value), "number")
        return LineKind.DAMAGED, None, f"not a JSON object ({kind_name})"
    if pos == 0 and value.get("type") == "session":
        return LineKind.HEADER, value, None
    return LineKind.ENTRY, value, None


EntryFields = tuple[str | None, str | None, bool, str | None, str | None, str | None, str | None]
"""``(entry_id, parent_id, has_parent_key, type, role, timestamp, idempotency_key)``."""


def entry_fields(value: dict[str, Any]) -> EntryFields:
    """The indexed fields of a parsed line (see TranscriptLine for each)."""
    get = value.get
    entry_type = _text(get("type"))
    message = get("message") if entry_type == "message" else None
    role = idempotency_key = None
    if isinstance(message, dict):
        role = _text(message.get("role"))
        idempotency_key = _text(message.get("idempotencyKey"))
    parent = get("parentId", ...)  # ... marks "no key": null parentId is a v2/v3 root
    return (
        _text(get("id")),
        _text(parent),
        parent is None or isinstance(parent, str),
        entry_type,
        role,
        _text(get("timestamp")),
        idempotency_key,
    )


def _text(value: object) -> str | None:
    # `sqltext.text_or_none` with its common case (ASCII) inlined: this runs 7 times a line.
    # A lone surrogate ("\ud800" is valid JSON) cannot be indexed as SQLite text: the line
    # is kept verbatim, the field is left out of the index (store_sql/sqltext.py).
    if isinstance(value, str):
        return value if value.isascii() else text_or_none(value)
    return None


def read_header(line: TranscriptLine) -> TranscriptHeader | None:
    """The session header carried by a HEADER line, or None for any other line."""
    if line.kind is not LineKind.HEADER:
        return None
    value = line.value
    if value is None:  # the caller dropped the parsed value: parse the kept bytes again
        value = classify_line(line.raw, 0).value
        if value is None:
            return None
    return header_of(value)


def header_of(value: dict[str, Any]) -> TranscriptHeader:
    """The session header held by the parsed object of a HEADER line."""
    version = value.get("version", 1)
    parent = _text(value.get("parentSession"))
    return TranscriptHeader(
        id=_text(value.get("id")),
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        timestamp=_text(value.get("timestamp")),
        cwd=_text(value.get("cwd")),
        parent_session=parent if parent is not None else _text(value.get("branchedFrom")),
    )


def _make(
    raw: bytes,
    pos: int,
    kind: LineKind,
    *,
    damage: str | None = None,
    value: dict[str, Any] | None = None,
) -> TranscriptLine:
    """Build a TranscriptLine, reading the indexed fields from ``value`` when there is one."""
    if value is None:
        return TranscriptLine(pos, raw, kind, damage, None, None, False, None, None, None, None,
                              None)  # fmt: skip
    return TranscriptLine(pos, raw, kind, None, *entry_fields(value), value)


_JSON_TYPE_NAMES = {list: "array", str: "string", bool: "boolean", type(None): "null"}


def _reject_constant(name: str) -> Any:
    # The stdlib accepts NaN/Infinity; JSON.parse does not, so neither may the fallback.
    raise ValueError(f"{name} is not JSON")


def _parse_long_int(digits: str) -> int | float:
    # Python refuses int(str) past 4300 digits; JSON.parse reads any integer as a double.
    return int(digits) if len(digits) < 4000 else float(digits)


_FALLBACK_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_long_int)


def _parse_fallback(body: bytes, skip: int) -> tuple[Any, str | None]:
    """Parse what orjson refused: ``(value, None)``, or ``(None, why it is damaged)``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 at byte {exc.start + skip}"
    try:
        value, end = _FALLBACK_DECODER.raw_decode(text, _skip_ws(text, 0))
    except (ValueError, RecursionError) as exc:
        return None, _diagnose(text, skip, exc)
    if _skip_ws(text, end) == len(text):
        return value, None
    return None, _diagnose(text, skip, None)


def _skip_ws(text: str, i: int) -> int:
    match = _WS_RUN.match(text, i)
    return match.end() if match else i


def _diagnose(text: str, skip: int, python_error: BaseException | None) -> str:
    """Explain why a line that neither parser accepts is not one JSON object."""
    start = _skip_ws(text, 0)
    scan = _scan_value(text, start)
    if scan.status == "eof":
        return "truncated JSON (torn line)"
    if scan.status == "error":
        return f"JSON syntax error at column {scan.pos + 1}: {scan.reason}"
    rest = _skip_ws(text, scan.pos)
    if rest == len(text):
        # Valid JSON (JSON.parse reads it) that Python's parsers refused: in practice nesting
        # deeper than their recursion limits (orjson 1024 levels, the stdlib about 1000).
        if isinstance(python_error, RecursionError):
            return (
                f"nested {scan.depth} levels deep: valid JSON, but deeper than Python's JSON "
                "parsers accept (about 1000 levels)"
            )
        return f"valid JSON that Python cannot read: {python_error}"
    if text[start] != "{" or text[rest] != "{":
        return f"JSON syntax error at column {rest + 1}: unexpected data after the JSON value"
    return _describe_glued(text, start, scan.pos, skip)


def _describe_glued(text: str, first: int, end: int, skip: int) -> str:
    """Name the records of a line holding several objects written without a newline between."""
    starts = [first]
    torn = False
    i = _skip_ws(text, end)
    while i < len(text):
        if text[i] != "{":
            return f"JSON syntax error at column {i + 1}: unexpected data after the JSON value"
        scan = _scan_value(text, i)
        if scan.status == "error":
            return f"JSON syntax error at column {scan.pos + 1}: {scan.reason}"
        starts.append(i)
        if scan.status == "eof":
            torn = True
            break
        i = _skip_ws(text, scan.pos)
    # Byte offsets into raw (BOM included) let a repair tool cut the line with raw[a:b].
    offsets = [len(text[:s].encode("utf-8")) + skip for s in starts]
    tail = "; the last one is truncated" if torn else ""
    if len(starts) == 2:
        return f"two JSON records glued together (second starts at byte {offsets[1]}){tail}"
    listed = ", ".join(str(o) for o in offsets)
    return f"{len(starts)} JSON records glued together (they start at bytes {listed}){tail}"


@dataclass(frozen=True, slots=True)
class _Scan:
    status: Literal["complete", "eof", "error"]  # eof: the input ended inside the value
    pos: int
    reason: str = ""
    depth: int = 0


# Valid string content (plain characters and well-formed escapes) in one match. Possessive
# quantifiers keep the regex engine from saving backtrack state per escape: a 12 MB torn tool
# result full of \n escapes scans in 0.15 s instead of 2 s.
_STRING_RUN = re.compile(r'(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_ESCAPES = frozenset('"\\/bfnrt')
_LITERALS = ("true", "false", "null")


def _scan_value(text: str, i: int) -> _Scan:
    """Check the JSON value at ``i`` without building it, iteratively (no depth limit).

    Only damaged lines come here, so clarity beats speed. The point is to tell a line torn
    mid-write (input ends while the value is incomplete) from a genuine syntax error.
    """
    n = len(text)
    stack: list[str] = []  # the closing bracket of each open container
    depth = 0
    expect = "value"  # value | value_or_close | key | key_or_close | colon | comma_or_close
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            return _Scan("eof", i, depth=depth)
        c = text[i]
        if expect == "colon":
            if c != ":":
                return _Scan("error", i, f"expected ':' after the property name, found {c!r}")
            i, expect = i + 1, "value"
            continue
        if expect == "comma_or_close":
            if c == ",":
                i, expect = i + 1, ("key" if stack[-1] == "}" else "value")
                continue
            if c != stack[-1]:
                return _Scan("error", i, f"expected ',' or {stack[-1]!r}, found {c!r}")
            stack.pop()
            i += 1
        elif expect in ("key", "key_or_close"):
            if c == "}" and expect == "key_or_close":
                stack.pop()
                i += 1
            elif c == '"':
                scan = _scan_string(text, i)
                if scan.status != "complete":
                    return scan
                i, expect = scan.pos, "colon"
                continue
            else:
                return _Scan("error", i, f"expected a property name in double quotes, found {c!r}")
        elif c == "]" and expect == "value_or_close":
            stack.pop()
            i += 1
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
            depth = max(depth, len(stack))
            i, expect = i + 1, ("key_or_close" if c == "{" else "value_or_close")
            continue
        else:
            scan = _scan_scalar(text, i)
            if scan.status != "complete":
                return scan
            i = scan.pos
        if not stack:
            return _Scan("complete", i, depth=depth)
        expect = "comma_or_close"


def _scan_scalar(text: str, i: int) -> _Scan:
    c = text[i]
    if c == '"':
        return _scan_string(text, i)
    if c in "-0123456789":
        return _scan_number(text, i)
    for word in _LITERALS:
        if text.startswith(word, i):
            return _Scan("complete", i + len(word))
        if word.startswith(text[i : i + len(word)]) and i + len(word) > len(text):
            return _Scan("eof", len(text))
    if c == "\ufeff":
        return _Scan("error", i, "unexpected byte order mark (U+FEFF)")
    return _Scan("error", i, f"unexpected character {c!r}")


def _scan_string(text: str, i: int) -> _Scan:
    n = len(text)
    i += 1
    while True:
        match = _STRING_RUN.match(text, i)
        i = match.end() if match else i
        if i >= n:
            return _Scan("eof", n)
        c = text[i]
        if c == '"':
            return _Scan("complete", i + 1)
        if c != "\\":
            return _Scan("error", i, f"control character U+{ord(c):04X} inside a string")
        if i + 1 >= n:
            return _Scan("eof", n)
        escape = text[i + 1]
        if escape == "u":
            hex_digits = text[i + 2 : i + 6]
            if not _HEX4.fullmatch(hex_digits):
                if len(hex_digits) < 4 and all(h in "0123456789abcdefABCDEF" for h in hex_digits):
                    return _Scan("eof", n)
                return _Scan("error", i, "invalid \\u escape (needs four hex digits)")
            i += 6
        elif escape in _ESCAPES:
            i += 2
        else:
            return _Scan("error", i, f"invalid escape \\{escape}")


def _scan_number(text: str, i: int) -> _Scan:
    n = len(text)
    match = _NUMBER.match(text, i)
    if match is None:  # "-" not followed by a digit
        if i + 1 >= n:
            return _Scan("eof", n)
        return _Scan("error", i, "invalid number")
    j = match.end()
    if j < n and text[j] == "." and match.group(1) is None and match.group(2) is None:
        return _Scan("eof", n) if j + 1 >= n else _Scan("error", j, "invalid number")
    if j < n and text[j] in "eE" and match.group(2) is None:
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        return _Scan("eof", n) if k >= n else _Scan("error", j, "invalid number")
    return _Scan("complete", j)

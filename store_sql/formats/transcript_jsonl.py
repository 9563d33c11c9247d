"""pi transcript JSONL: split files into lines, say what each line is, and join them back.

The store keeps every line's exact bytes and exports them unchanged (docs/FORMATS.md §3
and §4), so nothing here re-serialises JSON. Parsing only extracts the few fields the store
indexes (ids, type, role, timestamp, idempotency key) and diagnoses damaged lines precisely
enough that a person can repair them: real files hold records glued together by concurrent
appends, torn last lines, blank lines, CRLF endings, BOMs and invalid UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import orjson

from store_sql.formats.line_damage import parse_fallback
from store_sql.formats.sqltext import text_or_none

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
    """``message.idempotencyKey`` of a ``type == "message"`` entry (docs/FORMATS.md §3)."""
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
        value, damage = parse_fallback(body, skip)
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
    # is kept verbatim, the field is left out of the index (store_sql/formats/sqltext.py).
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

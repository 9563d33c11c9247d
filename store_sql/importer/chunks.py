"""Turning a transcript byte stream into chunks of lines, with flat memory. No SQL.

A chunk holds whole lines only (about `CHUNK_BYTES` of them), the source offset after its
last line and the sha256 of the source up to there, so that each chunk can be committed on
its own and an import interrupted between two chunks resumes as "the file grew".
Parent links follow docs/FORMATS.md section 3 and transcripts/reads.py: the nearest preceding
entry with the `parentId` (v2/v3), or the previous entry (v1: header without `version`).
Ids seen in the current and previous chunk are resolved here; older ones are marked for a
lookup in the database by the writer, so memory does not grow with the file.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import orjson

from store_sql.errors import ImportFailedError
from store_sql.formats.transcript_jsonl import (
    ByteSource,
    LineKind,
    TranscriptHeader,
    entry_fields,
    header_of,
    parse_line,
)
from store_sql.importer.spooled_line import SPOOL_LINE_BYTES, SpooledLine
from store_sql.schema.navigation_lines import SIDE_APPEND_MARK

CHUNK_BYTES = 1 << 20
"""Lines per commit, in bytes (one read of the source, extended to the end of its last
line). A commit holds the single writer for ~15-40 ms on a quiet 2-core machine (up to ~150
ms when it is busy); 256 KiB and 4 MiB chunks imported no faster."""

READ_BYTES = 1 << 20

MAX_LINE_BYTES = 1_000_000_000 - 2 * READ_BYTES
"""The longest line import stores: SQLite keeps at most 1,000,000,000 bytes (its default
SQLITE_MAX_LENGTH) in one value, or one row. A line is refused as soon as this many bytes
were read without a newline, rather than after holding several copies of it; the margin
covers the last read (a line ending in it may pass the bound by up to `READ_BYTES`) and
the row's other columns."""

_BOM = b"\xef\xbb\xbf"
_HEADER, _ENTRY, _DAMAGED = LineKind.HEADER, LineKind.ENTRY, LineKind.DAMAGED
_MISSING = object()
_loads, _JSONDecodeError = orjson.loads, orjson.JSONDecodeError
_clock = time.perf_counter

# The parsing thread never blocks, so it would keep the GIL for the whole switch interval
# (5 ms) every time; the event loop (and the writer, between statements) then waits that
# long, several times in a row when both want it. So it lets go on purpose every
# `_YIELD_AFTER_S`. time.sleep(0) is the release that works: the thread really sleeps
# (~75 us here, the kernel's timer slack), long enough for a waiting thread to take the GIL;
# os.sched_yield() takes 0.4 us and the releasing thread usually takes the GIL straight back.
# That sleep is why the release is timed, not counted: every 16 lines, as before, cost
# 0.25 s of a 0.55 s parse of 29.5 MB. Every 0.25 ms it costs ~25% of the parse, which is
# not the bottleneck (the writer is): measured on 50 MB, loop ticks p95 1.4-1.5 ms against
# 1.9 ms when releasing every 0.5 ms, with the same import time.
_YIELD_AFTER_S = 0.00025


def _yield_gil() -> None:
    time.sleep(0)


@dataclass(slots=True)
class LineStats:
    """What the lines read so far held (filled in as chunks are produced)."""

    lines: int = 0
    entries: int = 0
    bytes: int = 0
    damaged: list[tuple[int, str]] = field(default_factory=list)
    """(0-based position, reason), damaged and blank lines; capped by `limit`."""
    damaged_total: int = 0
    crlf_lines: int = 0
    bom: bool = False
    ends_with_newline: bool = True
    limit: int = 1000

    def damage(self, pos: int, reason: str) -> None:
        self.damaged_total += 1
        if len(self.damaged) < self.limit:
            self.damaged.append((pos, reason))


LineParams = tuple[Any, ...]
"""One line as the parameters of `importer.rows.insert_lines_sql` after the transcript_id:
``(pos, line, kind, entry_id, parent_id, parent_pos, type, role, timestamp,
idempotency_key, byte_size, damage, side_append)``; ``line`` is the line's exact bytes."""
PARENT_ID, PARENT_POS = 4, 5
ROW_PARAMS = 13

GROUP_ROWS = 64
"""Lines per INSERT statement (import_files). With one statement per line the writer takes
the GIL back after every row, and waits each time for the parsing thread to let go of it;
one statement for a whole chunk needs the fields as JSON in SQL, and on SQLite 3.40 each
extracted field costs ~1 us (every `->>` parses the row again). Measured, 35,715 lines
(29.5 MB) into an in-memory database while another thread runs Python releasing the GIL
every 0.5 ms (as the parser does), best of 3 on a busy 2-core machine: 1 line per statement
1.5 s, 16: 0.72 s, 64: 0.74 s, 256: 0.66 s, one JSON statement per chunk: 1.08 s; with no
other thread 0.54, 0.38, 0.37, 0.39 and 0.49 s."""


@dataclass(slots=True)
class LineChunk:
    """Consecutive whole lines of one source, ready for `importer.rows.write_chunk`.

    Rows are plain tuples of bytes, strings and numbers, not objects: the collector stops
    tracking such tuples the first time it sees them, so a chunk in flight adds almost
    nothing to the collections an import triggers (see importer/api.py on gc)."""

    rows: list[LineParams]
    lookups: list[int]
    """Indexes into `rows` whose `parent_pos` must be looked up in the database (a parent
    older than the ids kept in memory)."""
    groups: list[LineParams] = field(default_factory=list)
    """`rows` again, flattened into the parameters of one INSERT each: `GROUP_ROWS` rows,
    then halves for the rest (32, 16, ..., 1), so a chunk needs at most ~40 statements."""
    blobs: list[int] = field(default_factory=list)
    """Indexes into `rows` of lines that are not valid UTF-8 (stored as BLOB, not TEXT)."""
    end_offset: int = 0
    """Source bytes up to the end of the last line of this chunk."""
    sha256: str | None = None
    """sha256 of the source's first `end_offset` bytes (None when not hashing)."""
    ends_with_newline: bool = True
    header: TranscriptHeader | None = None
    """The header, when line 0 is in this chunk and is one."""
    final: bool = False
    entries: int = 0
    damaged: int = 0
    """Lines of kind 'damaged' (blank lines are not counted, as in transcripts.insert_lines)."""
    line_bytes: int = 0
    """Sum of the lines' sizes, newlines not included."""
    leaf: tuple[int, str | None] | None = None
    """(pos, entry_id) of the last entry in the chunk."""
    spooled: SpooledLine | None = None
    """The chunk's one line when it is spooled: then `rows[0][1]` is this object, not bytes
    (`SpooledLine.pieces` or `whole` give them), and `groups` is empty: `importer.rows`
    creates the row and copies the line into it in pieces."""

    @property
    def next_pos(self) -> int | None:
        """Position after the last line of the chunk (None for an empty chunk)."""
        return self.rows[-1][0] + 1 if self.rows else None


class LineChunker:
    """Reads lines from a binary stream positioned at `start_offset` of the source.

    `first_pos` is the position of the first line read (0 for a whole file, the stored line
    count when tailing). `hasher` already holds the source's first `start_offset` bytes (or
    is None to skip hashing, for compressed sources hashed elsewhere)."""

    def __init__(
        self,
        stream: ByteSource,
        *,
        first_pos: int = 0,
        start_offset: int = 0,
        hasher: Any = None,
        version: int | None = None,
        has_header: bool = False,
        prev_entry_pos: int | None = None,
        chunk_bytes: int | None = None,
        stats: LineStats | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        spool_line_bytes: int = SPOOL_LINE_BYTES,
    ) -> None:
        self._stream = stream
        self._max_line_bytes = max_line_bytes
        self._read_bytes = chunk_bytes if chunk_bytes is not None else CHUNK_BYTES
        self._spool_line_bytes = spool_line_bytes
        self._ahead: bytes | None = None
        self._carry: bytes | None = None
        self._spooled_terminated = True
        self._pending: list[bytes] = []
        self._pos = first_pos
        self._offset = start_offset
        self._hasher = hasher
        self._v1 = has_header and version == 1
        self._has_header = has_header
        self._prev_entry = prev_entry_pos
        self._ids: dict[str, int] = {}
        self._older_ids: dict[str, int] = {}
        # Entries may exist before the ids held in memory: when tailing, or once the maps
        # have been rotated. Only then does a miss need a database lookup.
        self._maybe_older = first_pos > 0
        self._done = False
        self.stats = stats if stats is not None else LineStats()

    def __iter__(self) -> Iterator[LineChunk]:
        while (chunk := self.next_chunk()) is not None:
            yield chunk

    def next_chunk(self) -> LineChunk | None:
        """The next chunk, or None once the final chunk was returned."""
        if self._done:
            return None
        data = self._whole_lines()
        if isinstance(data, SpooledLine):
            return self._spooled_chunk(data)
        chunk = LineChunk([], [])
        lines = data.split(b"\n") if data else []
        terminated = data.endswith(b"\n")
        if terminated:
            lines.pop()
        self._parse(chunk, lines)
        chunk.groups = _grouped(chunk.rows)
        if self._hasher is not None and data:
            self._hasher.update(data)
        size = len(data)
        self._offset += size
        crlf = data.count(b"\r\n") + (not terminated and data.endswith(b"\r"))
        stats = self.stats
        stats.bytes += size
        stats.lines += len(lines)
        stats.entries += chunk.entries
        stats.crlf_lines += crlf
        if lines:
            stats.ends_with_newline = terminated
        self._rotate_ids()
        chunk.end_offset = self._offset
        chunk.sha256 = self._hasher.hexdigest() if self._hasher is not None else None
        chunk.ends_with_newline = terminated or not lines
        chunk.final = self._done
        chunk.line_bytes = size - len(lines) + (not terminated and bool(lines))
        return chunk

    def _whole_lines(self) -> bytes | SpooledLine:
        """The next read's worth of whole lines (more when one line is longer): everything up
        to the last newline read, or the rest of the stream at its end (then `_done`). One
        block is read ahead so that the last chunk is known to be the last one. A line that
        grows past `spool_line_bytes` is returned alone, spooled (`_spool`)."""
        parts = self._pending
        held = sum(len(part) for part in parts)
        while True:
            block = self._next_block()
            if not self._ahead:
                self._done = True
                parts.append(block)
                if b"\n" not in block:
                    self._check_line(held + len(block))
                break
            cut = block.rfind(b"\n") + 1
            if cut:
                parts.append(block[:cut] if cut < len(block) else block)
                self._pending = [block[cut:]] if cut < len(block) else []
                break
            parts.append(block)
            held += len(block)
            self._check_line(held)
            if held > self._spool_line_bytes:
                return self._spool(parts)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _next_block(self) -> bytes:
        if self._carry is not None:  # what followed a spooled line in its last block
            block, self._carry = self._carry, None
            return block
        block = self._ahead if self._ahead is not None else self._stream.read(self._read_bytes)
        self._ahead = self._stream.read(self._read_bytes) if block else b""
        return block

    def _spool(self, parts: list[bytes]) -> SpooledLine:
        """Read the rest of the line `parts` begin into a temporary file, hashing it on the
        way; what follows its newline in the last block is read next."""
        line = SpooledLine(self._pos)
        hasher = self._hasher
        for part in parts:
            line.add(part)
            if hasher is not None:
                hasher.update(part)
        self._pending = []
        terminated = False
        while True:
            block = self._next_block()
            end = block.find(b"\n")
            if end < 0:
                line.add(block)
                if hasher is not None:
                    hasher.update(block)
                self._check_line(len(line))
                if not self._ahead:
                    break
                continue
            line.add(block[:end])
            self._check_line(len(line))
            if hasher is not None:
                hasher.update(block[: end + 1])
            terminated = True
            if end + 1 < len(block):
                self._carry = block[end + 1 :]
            break
        self._done = not self._ahead and self._carry is None
        self._spooled_terminated = terminated
        return line

    def _spooled_chunk(self, line: SpooledLine) -> LineChunk:
        """The chunk of one spooled line (`next_chunk` for a line read by `_spool`)."""
        line.finish()
        chunk = LineChunk([], [], spooled=line)
        self._parse(chunk, [line])
        terminated = self._spooled_terminated
        size = len(line) + terminated
        self._offset += size
        stats = self.stats
        stats.bytes += size
        stats.lines += 1
        stats.entries += chunk.entries
        stats.crlf_lines += line.ends_with_cr
        stats.ends_with_newline = terminated
        self._rotate_ids()
        chunk.end_offset = self._offset
        chunk.sha256 = self._hasher.hexdigest() if self._hasher is not None else None
        chunk.ends_with_newline = terminated
        chunk.final = self._done
        chunk.line_bytes = len(line)
        return chunk

    def _check_line(self, held: int) -> None:
        """Refuse the line being read once `held` bytes of it came without a newline."""
        if held > self._max_line_bytes:
            raise ImportFailedError(
                f"line {self._pos + 1} (from byte {self._offset}) is longer than "
                f"{self._max_line_bytes} bytes, more than SQLite stores in one value: the "
                "lines before it were imported, this one and the rest were not (the file is "
                "left as it is)"
            )

    def _parse(self, chunk: LineChunk, lines: Sequence[bytes | SpooledLine]) -> None:
        """Fill the chunk's rows: the hottest loop of an import.

        Every line is parsed once by orjson; an entry's fields are read straight from the
        parsed object into the row, with no call per line. Anything else (line 0, blank,
        damaged, what only the fallback parser reads) goes through `parse_line`, which
        decides exactly as it does for every other reader of transcripts."""
        rows, lookups = chunk.rows, chunk.lookups
        append = rows.append
        ids, older_ids, maybe_older = self._ids, self._older_ids, self._maybe_older
        v1, has_header = self._v1, self._has_header
        prev_entry = self._prev_entry
        leaf_pos: int | None = None
        leaf_id: str | None = None
        pos = self._pos
        entries = 0
        next_yield = _clock() + _YIELD_AFTER_S
        for raw in lines:
            if not pos & 7 and _clock() >= next_yield:
                _yield_gil()
                next_yield = _clock() + _YIELD_AFTER_S
            try:
                value = _loads(raw) if type(raw) is bytes else None  # spooled: read already
            except _JSONDecodeError:
                value = None
            if type(value) is dict and pos:
                get = value.get
                entry_id = get("id")
                if type(entry_id) is not str:
                    entry_id = None
                parent_id = get("parentId", _MISSING)  # null parentId: a v2/v3 root
                has_parent_key = parent_id is None or type(parent_id) is str
                if type(parent_id) is not str:
                    parent_id = None
                type_ = get("type")
                if type(type_) is not str:
                    type_ = None
                role = idem = None
                if type_ == "message":
                    message = get("message")
                    if type(message) is dict:
                        role = message.get("role")
                        if type(role) is not str:
                            role = None
                        idem = message.get("idempotencyKey")
                        if type(idem) is not str:
                            idem = None
                ts = get("timestamp")
                if type(ts) is not str:
                    ts = None
            else:
                if not pos and raw.startswith(_BOM):
                    self.stats.bom = True
                if isinstance(raw, SpooledLine):
                    kind, value, damage = _spooled_fields(raw)
                else:
                    kind, value, damage = parse_line(raw, pos)
                if kind is not _ENTRY:
                    append(self._other_row(chunk, pos, raw, kind, value, damage))
                    v1, has_header = self._v1, self._has_header
                    pos += 1
                    continue
                assert value is not None
                entry_id, parent_id, has_parent_key, type_, role, ts, idem = entry_fields(value)
            # The parent link (docs/FORMATS.md §3): the nearest preceding entry with that id
            # (v2/v3), the previous entry (v1, or a headerless line with neither key).
            parent_pos: int | None = None
            if v1 or (not has_header and not has_parent_key and not entry_id):
                parent_pos = prev_entry
            elif parent_id is not None:
                parent_pos = ids.get(parent_id)
                if parent_pos is None:
                    parent_pos = older_ids.get(parent_id)
                    if parent_pos is None and maybe_older:
                        lookups.append(len(rows))
            if entry_id is not None:
                ids[entry_id] = pos
            prev_entry = leaf_pos = pos
            leaf_id = entry_id
            entries += 1
            append((pos, raw, "entry", entry_id, parent_id, parent_pos, type_, role, ts, idem,
                    len(raw), None, _side_append(raw)))  # fmt: skip
            pos += 1
        self._pos, self._prev_entry = pos, prev_entry
        chunk.entries += entries
        if leaf_pos is not None:
            chunk.leaf = (leaf_pos, leaf_id)

    def _other_row(
        self,
        chunk: LineChunk,
        pos: int,
        raw: bytes | SpooledLine,
        kind: LineKind,
        value: dict[str, Any] | None,
        damage: str | None,
    ) -> LineParams:
        """The row of a header, blank or damaged line (rare: kept off the entry path)."""
        if kind is _HEADER:
            assert value is not None
            chunk.header = header_of(value)
            self._has_header = True
            self._v1 = chunk.header.version == 1
            entry_id, _, _, type_, role, ts, _ = entry_fields(value)
            return (pos, raw, "header", entry_id, None, None, type_, role, ts, None, len(raw),
                    None, _side_append(raw))  # fmt: skip
        if kind is _DAMAGED:
            chunk.damaged += 1
            self.stats.damage(pos, damage or "damaged")
        else:
            self.stats.damage(pos, "blank line (kept)")
        # Only a damaged line can be invalid UTF-8: a line either parser read was valid
        # (orjson refuses invalid UTF-8 as Python's decoder does: surrogates, overlongs).
        if kind is _DAMAGED and not _is_utf8(raw):  # a spooled line knows (`_is_utf8`)
            chunk.blobs.append(len(chunk.rows))
        return (pos, raw, kind.value, None, None, None, None, None, None, None, len(raw), damage,
                _side_append(raw))  # fmt: skip

    def _rotate_ids(self) -> None:
        if self._older_ids:
            self._maybe_older = True
        self._older_ids = self._ids
        self._ids = {}


def _side_append(raw: bytes | SpooledLine) -> int:
    """`tables.side_append` of a line read whole or spooled (which tested its pieces)."""
    if type(raw) is bytes:
        return int(SIDE_APPEND_MARK in raw)
    assert isinstance(raw, SpooledLine)
    return int(raw.has_side_mark)


def _grouped(rows: list[LineParams]) -> list[LineParams]:
    groups: list[LineParams] = []
    size, i, n = GROUP_ROWS, 0, len(rows)
    while i < n:
        while size > n - i:
            size //= 2
        groups.append(tuple(chain.from_iterable(rows[i : i + size])))
        i += size
    return groups


_SPOOLED_FIELDS = ("id", "parentId", "type", "timestamp", "version", "cwd", "parentSession",
                   "branchedFrom")  # fmt: skip
_SPOOLED_MESSAGE_FIELDS = ("role", "idempotencyKey")


def _spooled_fields(line: SpooledLine) -> tuple[LineKind, dict[str, Any] | None, str | None]:
    """`parse_line` for a spooled line, with the fields `entry_fields` and `header_of` read
    holding their strings (not the stand-ins of long strings)."""
    read = line.read
    assert read is not None
    value = read.value
    if value is not None:
        value = {**value, **{k: line.resolve(value[k]) for k in _SPOOLED_FIELDS if k in value}}
        message = value.get("message")
        if type(message) is dict:
            value["message"] = {
                **message,
                **{k: line.resolve(message[k]) for k in _SPOOLED_MESSAGE_FIELDS if k in message},
            }
    return read.kind, value, read.damage


def _is_utf8(data: bytes | SpooledLine) -> bool:
    if isinstance(data, SpooledLine):
        return data.read is not None and data.read.utf8
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def sha256_prefix(stream: ByteSource, size: int) -> Any:
    """A sha256 object fed the first `size` bytes of `stream`, or None when it is shorter."""
    hasher = hashlib.sha256()
    left = size
    while left > 0:
        block = stream.read(min(left, READ_BYTES))
        if not block:
            return None
        hasher.update(block)
        left -= len(block)
    return hasher

"""Turning a transcript byte stream into chunks of `LineRow`s, with flat memory. No SQL.

A chunk holds whole lines only (about `CHUNK_BYTES` of them), the source offset after its
last line and the sha256 of the source up to there, so that each chunk can be committed on
its own and an import interrupted between two chunks resumes as "the file grew"
(issue 4). Parent links follow FORMATS.md §3 and transcript_reads: the nearest preceding
entry with the `parentId` (v2/v3), or the previous entry (v1: header without `version`).
Ids seen in the current and previous chunk are resolved here; older ones are marked for a
lookup in the database by the writer, so memory does not grow with the file.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from store_sql.formats.transcript_jsonl import (
    ByteSource,
    LineKind,
    TranscriptHeader,
    TranscriptLine,
    classify_line,
    iter_raw_lines,
    read_header,
)
from store_sql.search_text import entry_search_text
from store_sql.transcripts import LineRow, stored_line

CHUNK_BYTES = 1 << 20
"""Lines per commit, in bytes. Each commit holds the single writer for ~20-90 ms without the
full-text index and ~100-250 ms with it (trigram FTS5 dominates), measured on a busy 2-core
machine; 4 MiB chunks were no faster and held other writers up to ~0.5 s."""

READ_BYTES = 1 << 20

_BOM = b"\xef\xbb\xbf"
# JSON may escape lone surrogates ("\\ud800"); SQLite cannot take them as TEXT, so the
# full-text copy gets U+FFFD instead (the stored line keeps its exact bytes).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_YIELD_EVERY = 63  # lines between voluntary GIL releases (a mask: every 64th line)
_HEADER, _ENTRY, _BLANK, _DAMAGED = (
    LineKind.HEADER,
    LineKind.ENTRY,
    LineKind.BLANK,
    LineKind.DAMAGED,
)
_KIND_TEXT = {kind: kind.value for kind in LineKind}


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


RowFields = tuple[Any, ...]
"""The fields of a `transcripts.LineRow`, in its field order.

Chunks carry plain tuples, not LineRows: a tuple of str/int/None is untracked by the cycle
collector the first time it survives a collection, whereas a slotted dataclass stays
tracked. Rows waiting in the parse -> write pipeline would otherwise pile up in the oldest
generation and trigger full collections, each one a stall of the event loop (measured:
~80 ms on a busy 2-core machine, about one per 40 MB imported)."""


@dataclass(slots=True)
class LineChunk:
    """Consecutive whole lines of one source, ready for `transcripts.insert_lines`."""

    rows: list[RowFields]
    """`LineRow` fields per line (see `RowFields`; `line_rows` builds the LineRows)."""
    lookups: list[int]
    """Indexes into `rows` whose `parent_pos` must be looked up in the database (a parent
    older than the ids kept in memory)."""
    end_offset: int
    """Source bytes up to the end of the last line of this chunk."""
    sha256: str | None
    """sha256 of the source's first `end_offset` bytes (None when not hashing)."""
    ends_with_newline: bool
    header: TranscriptHeader | None
    """The header, when line 0 is in this chunk and is one."""
    final: bool

    def line_rows(self) -> list[LineRow]:
        return [LineRow(*fields) for fields in self.rows]

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
        full_text: bool = True,
        chunk_bytes: int | None = None,
        stats: LineStats | None = None,
    ) -> None:
        self._lines: Iterator[tuple[bytes, bool]] = iter_raw_lines(stream, chunk_size=READ_BYTES)
        self._pos = first_pos
        self._offset = start_offset
        self._hasher = hasher
        self._v1 = has_header and version == 1
        self._has_header = has_header
        self._prev_entry = prev_entry_pos
        self._full_text = full_text
        self._chunk_bytes = chunk_bytes if chunk_bytes is not None else CHUNK_BYTES
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
        rows: list[RowFields] = []
        lookups: list[int] = []
        header: TranscriptHeader | None = None
        size = 0
        terminated = True
        hasher = self._hasher
        limit = self._chunk_bytes
        for raw, terminated in self._lines:
            line = classify_line(raw, self._pos)
            if line.kind is _HEADER:
                header = read_header(line)
                self._has_header = True
                self._v1 = header is not None and header.version == 1
            if self._add(line, raw, rows):
                lookups.append(len(rows) - 1)
            if hasher is not None:
                hasher.update(raw)
                if terminated:
                    hasher.update(b"\n")
            size += len(raw) + terminated
            if size >= limit and terminated:
                break
            if not self._pos & _YIELD_EVERY:
                # Hand the GIL over on purpose: a thread that never blocks keeps it for the
                # whole switch interval (5 ms), and the event loop may lose it several times
                # in a row. Measured on 2 busy cores: worst loop stall 60-90 ms -> 12-30 ms.
                time.sleep(0)
        else:
            self._done = True
        self._offset += size
        self.stats.bytes += size
        if rows:
            self.stats.ends_with_newline = terminated
        self._rotate_ids()
        return LineChunk(
            rows=rows,
            lookups=lookups,
            end_offset=self._offset,
            sha256=hasher.hexdigest() if hasher is not None else None,
            ends_with_newline=terminated if rows else True,
            header=header,
            final=self._done,
        )

    def _add(self, line: TranscriptLine, raw: bytes, rows: list[RowFields]) -> bool:
        """Append the row of one line; True when its parent must be looked up in the db.

        The hottest loop of an import: enum members are module constants, fields a tuple."""
        kind = line.kind
        pos = self._pos
        self._pos = pos + 1
        stats = self.stats
        stats.lines += 1
        if raw and raw[-1] == 13:  # b"\r": a CRLF file
            stats.crlf_lines += 1
        if pos == 0 and raw.startswith(_BOM):
            stats.bom = True
        if kind is not _ENTRY:
            if kind is _DAMAGED:
                stats.damage(pos, line.damage or "damaged")
            elif kind is _BLANK:
                stats.damage(pos, "blank line (kept)")
            rows.append(
                (pos, stored_line(raw), _KIND_TEXT[kind], line.entry_id, None, None,
                 line.type, line.role, line.timestamp, None, len(raw), line.damage, None)
            )  # fmt: skip
            return False
        stats.entries += 1
        parent_id = line.parent_id
        parent_pos: int | None = None
        needs_lookup = False
        if self._v1 or (not self._has_header and not line.has_parent_key and not line.entry_id):
            parent_pos = self._prev_entry
        elif parent_id is not None:
            parent_pos = self._ids.get(parent_id)
            if parent_pos is None:
                parent_pos = self._older_ids.get(parent_id)
                needs_lookup = parent_pos is None and self._maybe_older
        self._prev_entry = pos
        if line.entry_id is not None:
            self._ids[line.entry_id] = pos
        search_text = entry_search_text(line.value) if self._full_text else None
        if search_text and not search_text.isascii():
            search_text = _LONE_SURROGATE.sub("\ufffd", search_text)
        rows.append(
            (pos, stored_line(raw), "entry", line.entry_id, parent_id, parent_pos,
             line.type, line.role, line.timestamp, line.idempotency_key, len(raw), None,
             search_text)
        )  # fmt: skip
        return needs_lookup

    def _rotate_ids(self) -> None:
        if self._older_ids:
            self._maybe_older = True
        self._older_ids = self._ids
        self._ids = {}


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

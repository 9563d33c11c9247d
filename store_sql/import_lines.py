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
from typing import Any, BinaryIO

from store_sql.errors import ImportFailedError
from store_sql.formats.transcript_jsonl import (
    ByteSource,
    LineKind,
    TranscriptHeader,
    entry_fields,
    header_of,
    iter_raw_lines,
    parse_line,
)
from store_sql.search_text import entry_search_text
from store_sql.sqltext import storable

CHUNK_BYTES = 1 << 20
"""Lines per commit, in bytes. Each commit holds the single writer for ~20-90 ms without the
full-text index and ~100-250 ms with it (trigram FTS5 dominates), measured on a busy 2-core
machine; 4 MiB chunks were no faster and held other writers up to ~0.5 s."""

READ_BYTES = 1 << 20

_BOM = b"\xef\xbb\xbf"
# JSON may escape lone surrogates ("\\ud800"); SQLite cannot take them as TEXT, so the
# full-text copy gets U+FFFD instead (the stored line keeps its exact bytes).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_YIELD_EVERY = 15
_HEADER, _ENTRY, _DAMAGED = LineKind.HEADER, LineKind.ENTRY, LineKind.DAMAGED


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
"""One line as the parameters of `import_files.INSERT_LINE` after its line_pk and
transcript_id: ``(pos, line, kind, entry_id, parent_id, parent_pos, type, role, timestamp,
idempotency_key, byte_size, damage)``."""
PARENT_ID, PARENT_POS = 4, 5


@dataclass(slots=True)
class LineChunk:
    """Consecutive whole lines of one source, ready for `import_files.write_chunk`.

    Rows are plain tuples of strings and numbers, not objects: the collector stops tracking
    such tuples the first time it sees them, so a chunk in flight adds almost nothing to the
    full collections an import triggers (see importer.py on gc)."""

    rows: list[LineParams]
    texts: list[tuple[int, str]]
    """(index into `rows`, full-text copy) of the entries that have searchable text."""
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
    entries: int = 0
    damaged: int = 0
    """Lines of kind 'damaged' (blank lines are not counted, as in transcripts.insert_lines)."""
    line_bytes: int = 0
    """Sum of the lines' sizes, newlines not included."""
    leaf: tuple[int, str | None] | None = None
    """(pos, entry_id) of the last entry in the chunk."""

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
        """The next chunk, or None once the final chunk was returned.

        The hottest loop of an import (~2,000 lines per chunk): each line is parsed once, its
        fields read straight from the parsed object into the row tuple, and the chunk's
        bytes hashed in one call at the end rather than twice per line."""
        if self._done:
            return None
        chunk = LineChunk([], [], [], 0, None, True, None, False)
        rows, texts, lookups = chunk.rows, chunk.texts, chunk.lookups
        raws: list[bytes] = []
        stats = self.stats
        ids, older_ids, maybe_older = self._ids, self._older_ids, self._maybe_older
        full_text = self._full_text
        pos = self._pos
        prev_entry = self._prev_entry
        size = line_bytes = entries = crlf = 0
        terminated = True
        limit = self._chunk_bytes
        for raw, terminated in self._lines:
            raws.append(raw)
            n = len(raw)
            size += n + terminated
            line_bytes += n
            if raw.endswith(b"\r"):
                crlf += 1
            if not pos and raw.startswith(_BOM):
                stats.bom = True
            kind, value, damage = parse_line(raw, pos)
            try:
                line: str | bytes = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw  # kept as the BLOB of exact bytes (transcripts.stored_line)
            if kind is _ENTRY:
                assert value is not None
                entry_id, parent_id, has_parent_key, type_, role, ts, idem = entry_fields(value)
                parent_pos: int | None = None
                if self._v1 or (not self._has_header and not has_parent_key and not entry_id):
                    parent_pos = prev_entry
                elif parent_id is not None:
                    parent_pos = ids.get(parent_id)
                    if parent_pos is None:
                        parent_pos = older_ids.get(parent_id)
                        if parent_pos is None and maybe_older:
                            lookups.append(len(rows))
                if entry_id is not None:
                    ids[entry_id] = pos
                prev_entry = pos
                entries += 1
                chunk.leaf = (pos, entry_id)
                if full_text and (text := entry_search_text(value)):
                    texts.append((len(rows), searchable(text)))
                rows.append((pos, line, "entry", entry_id, parent_id, parent_pos, type_, role,
                             ts, idem, n, None))  # fmt: skip
            else:
                rows.append(self._other_row(chunk, pos, raw, line, kind, value, damage))
            pos += 1
            if size >= limit and terminated:
                break
            if not pos & _YIELD_EVERY:
                # Hand the GIL over on purpose: a thread that never blocks keeps it for the
                # whole switch interval (5 ms), and the event loop may lose it several times
                # in a row. Measured on 2 busy cores: worst loop stall 60-90 ms -> 12-30 ms;
                # every 16th line rather than every 64th: p99 4.7 -> 4.1 ms, same throughput.
                time.sleep(0)
        else:
            self._done = True
        self._pos, self._prev_entry = pos, prev_entry
        if self._hasher is not None and raws:
            self._hasher.update(b"\n".join(raws))
            if terminated:
                self._hasher.update(b"\n")
        self._offset += size
        stats.bytes += size
        stats.lines += len(rows)
        stats.entries += entries
        stats.crlf_lines += crlf
        if rows:
            stats.ends_with_newline = terminated
        self._rotate_ids()
        chunk.end_offset = self._offset
        chunk.sha256 = self._hasher.hexdigest() if self._hasher is not None else None
        chunk.ends_with_newline = terminated if rows else True
        chunk.final = self._done
        chunk.entries, chunk.line_bytes = entries, line_bytes
        return chunk

    def _other_row(
        self,
        chunk: LineChunk,
        pos: int,
        raw: bytes,
        line: str | bytes,
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
            return (pos, line, "header", entry_id, None, None, type_, role, ts, None, len(raw),
                    None)  # fmt: skip
        if kind is _DAMAGED:
            chunk.damaged += 1
            self.stats.damage(pos, damage or "damaged")
        else:
            self.stats.damage(pos, "blank line (kept)")
        return (pos, line, kind.value, None, None, None, None, None, None, None, len(raw), damage)

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


def searchable(text: str) -> str:
    """The full-text copy of an entry's text with lone surrogates (legal in JSON, refused by
    SQLite as TEXT) replaced by U+FFFD, so the rest of the message stays searchable; indexed
    columns leave such values out instead (store_sql/sqltext.py), the line keeps them."""
    return text if storable(text) else _LONE_SURROGATE.sub("\ufffd", text)


# --- zstd-compressed archives -----------------------------------------------------------------


class UnreadableArchiveError(ImportFailedError):
    """A .zst archive that does not decompress (or ends inside a frame): kept as bytes only."""


_ZSTD_READ = 64 << 10  # compressed bytes per step: bounds the output of one step (~ratio x)


class ZstdStream:
    """The decompressed bytes of every frame of a zstd file, read like a file.

    python-zstandard's stream_reader returns b"" for a frame cut short instead of failing,
    so a truncated archive would import as an empty transcript; here a stream that ends
    inside a frame (or holds no frame at all) raises UnreadableArchiveError."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._name = name
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._pending = b""
        self._ended = False

    def read(self, size: int = -1, /) -> bytes:
        while not self._pending and not self._ended:
            block = self._raw.read(_ZSTD_READ)
            if not block:
                self._ended = True
                if not self._obj.eof:
                    raise UnreadableArchiveError(
                        f"{self._name}: the zstd data ends inside a frame (truncated archive)"
                    )
                break
            self._pending = self._feed(block)
        if size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def _feed(self, block: bytes) -> bytes:
        out: list[bytes] = []
        try:
            while block:
                if self._obj.eof:  # the previous frame ended: the next one starts here
                    self._obj = self._dctx.decompressobj()
                out.append(self._obj.decompress(block))
                block = self._obj.unused_data if self._obj.eof else b""
        except self._zstd.ZstdError as exc:
            raise UnreadableArchiveError(f"{self._name}: cannot decompress: {exc}") from exc
        return b"".join(out)

    def close(self) -> None:
        self._raw.close()

"""The database side of an import: plain functions run by the writer (or a reader).

Each function that changes the database is one mutation for `Store.write`, so it commits as
one transaction. Writes of a transcript after its first chunk first check that the row is
still exactly where the import left it (optimistic concurrency): a transcript changed by
the API or another import in between makes that file's import fail instead of mixing lines.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from store_sql.errors import ImportFailedError
from store_sql.formats.zstd_stream import ZstdStream
from store_sql.importer.chunks import (
    PARENT_ID,
    READ_BYTES,
    ROW_PARAMS,
    LineChunk,
    LineChunker,
    LineParams,
    LineStats,
)
from store_sql.importer.spooled_line import SpooledLine
from store_sql.transcripts.rows import insert_transcript, now_iso

# --- transcripts: what the store holds for a source file -------------------------------------


@dataclass(frozen=True, slots=True)
class StoredSource:
    """The current (not superseded) transcript stored for one source file."""

    transcript_id: int
    line_count: int
    byte_size: int
    source_size: int | None
    source_sha256: str | None
    ends_with_newline: bool
    version: int | None
    compressed: bool
    last_line_bytes: int
    """Size of the last stored line (0 when there is none)."""
    entry_before_last: int | None
    """Position of the last entry before the last line (v1 chains when that line is redone)."""
    leaf_pos: int | None

    @property
    def api_appended(self) -> bool:
        """Lines were added through the API after the import (the store is ahead)."""
        return not self.compressed and self.byte_size != self.source_size


def current_transcript(
    conn: sqlite3.Connection, agent_id: str, rel_dir: str, file_name: str
) -> StoredSource | None:
    row = conn.execute(
        "SELECT transcript_id, line_count, byte_size, source_size, source_sha256, "
        "ends_with_newline, version, compressed_bytes IS NOT NULL, leaf_pos FROM transcripts "
        "WHERE agent_id = ? AND rel_dir = ? AND file_name = ? AND superseded_by IS NULL "
        "ORDER BY transcript_id DESC LIMIT 1",
        (agent_id, rel_dir, file_name),
    ).fetchone()
    if row is None:
        return None
    tid, line_count = row[0], row[1]
    last = conn.execute(
        "SELECT byte_size FROM transcript_lines WHERE transcript_id = ? AND pos = ?",
        (tid, line_count - 1),
    ).fetchone()
    before = conn.execute(
        "SELECT pos FROM transcript_lines WHERE transcript_id = ? AND kind = 'entry' "
        "AND pos < ? ORDER BY pos DESC LIMIT 1",
        (tid, line_count - 1),
    ).fetchone()
    return StoredSource(
        transcript_id=tid,
        line_count=line_count,
        byte_size=row[2],
        source_size=row[3],
        source_sha256=row[4],
        ends_with_newline=bool(row[5]),
        version=row[6],
        compressed=bool(row[7]),
        last_line_bytes=0 if last is None else int(last[0]),
        entry_before_last=None if before is None else int(before[0]),
        leaf_pos=row[8],
    )


# --- transcripts: writing chunks -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewTranscript:
    """A transcript row to create with the first chunk of a source."""

    agent_id: str
    rel_dir: str
    kind: str
    file_name: str
    session_id: str | None
    """From the file name; the header's id wins when there is one."""
    topic: str | None
    archived_at: str | None
    supersedes: int | None
    """The current version of the same file, superseded in the same transaction."""


@dataclass(frozen=True, slots=True)
class Continuation:
    """Where the previous chunk (or import) left a transcript."""

    transcript_id: int
    line_count: int
    source_size: int
    file_name: str
    redo_last_line: bool = False
    """The stored last line had no newline: drop it, the chunk reads it again in full."""


def _create(conn: sqlite3.Connection, new: NewTranscript, chunk: LineChunk | None) -> int:
    header = chunk.header if chunk is not None else None
    if new.supersedes is not None:
        still = conn.execute(
            "SELECT superseded_by FROM transcripts WHERE transcript_id = ?", (new.supersedes,)
        ).fetchone()
        if still is None or still[0] is not None:
            raise ImportFailedError(
                f"{new.file_name}: the stored version changed during the import; run it again"
            )
    tid = insert_transcript(
        conn,
        agent_id=new.agent_id,
        rel_dir=new.rel_dir,
        session_id=(header.id if header and header.id else None) or new.session_id,
        kind=new.kind,
        file_name=new.file_name,
        version=header.version if header is not None else None,
        parent_session=header.parent_session if header is not None else None,
        topic=new.topic,
        archived_at=new.archived_at,
    )
    if new.supersedes is not None:
        conn.execute(
            "UPDATE transcripts SET superseded_by = ? WHERE transcript_id = ?",
            (tid, new.supersedes),
        )
    return tid


def _check(conn: sqlite3.Connection, where: Continuation) -> None:
    row = conn.execute(
        "SELECT line_count, source_size, byte_size, superseded_by FROM transcripts "
        "WHERE transcript_id = ?",
        (where.transcript_id,),
    ).fetchone()
    if (
        row is None
        or row[3] is not None
        or (row[0], row[1], row[2])
        != (
            where.line_count,
            where.source_size,
            where.source_size,
        )
    ):
        raise ImportFailedError(
            f"{where.file_name}: the stored transcript changed while it was being imported "
            "(an API append or another import); run the import again"
        )


def _drop_last_line(conn: sqlite3.Connection, transcript_id: int) -> None:
    """Forget an unterminated last line (read again whole from the grown file) and bump the
    generation: that line's content is replaced, so change cursors must start over."""
    pos, kind, size = conn.execute(
        "SELECT pos, kind, byte_size FROM transcript_lines WHERE transcript_id = ? "
        "ORDER BY pos DESC LIMIT 1",
        (transcript_id,),
    ).fetchone()
    conn.execute(
        "DELETE FROM transcript_lines WHERE transcript_id = ? AND pos = ?", (transcript_id, pos)
    )
    leaf = conn.execute(
        "SELECT pos, entry_id FROM transcript_lines WHERE transcript_id = ? AND kind = 'entry' "
        "ORDER BY pos DESC LIMIT 1",
        (transcript_id,),
    ).fetchone()
    # Every remaining line is now terminated: the size loses the line itself only.
    conn.execute(
        "UPDATE transcripts SET line_count = line_count - 1, "
        "entry_count = entry_count - ?, damaged_count = damaged_count - ?, "
        "byte_size = byte_size - ?, source_size = source_size - ?, ends_with_newline = 1, "
        "leaf_pos = ?, leaf_id = ?, generation = generation + 1 WHERE transcript_id = ?",
        (
            int(kind == "entry"),
            int(kind == "damaged"),
            size,
            size,
            None if leaf is None else leaf[0],
            None if leaf is None else leaf[1],
            transcript_id,
        ),
    )


# ?1 in every row is the transcript_id; each plain ? takes the next number after the
# largest used so far (SQLite's rule), so the rows' own parameters follow it in order.
_LINE_VALUES = "(?1, ?, CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


@functools.cache
def insert_lines_sql(rows: int) -> str:
    """An INSERT of `rows` lines: the transcript_id, then `chunks.LineParams` per
    line. SQLite gives them the line_pks after the largest one, as for any insert, which is
    all the full-text indexer needs (it indexes every line above its mark).

    The line is bound as its bytes and CAST to TEXT, which keeps exactly those bytes, so no
    line is decoded in Python; a line that is not valid UTF-8 is set to its BLOB afterwards
    (`_BLOB_LINE`), as `transcripts.stored_line` stores it."""
    return (
        "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
        "parent_pos, type, role, timestamp, idempotency_key, byte_size, damage, side_append) "
        "VALUES " + ", ".join([_LINE_VALUES] * rows)
    )


_BLOB_LINE = "UPDATE transcript_lines SET line = ? WHERE transcript_id = ? AND pos = ?"
_SET_PARENT = (
    "UPDATE transcript_lines SET parent_pos = (SELECT max(pos) FROM transcript_lines "
    "WHERE transcript_id = ?1 AND entry_id = ?2 AND kind = 'entry' AND pos < ?3) "
    "WHERE transcript_id = ?1 AND pos = ?3"
)
"""`transcripts.resolve_parent_pos` for a line already inserted: lines of its own chunk
cannot match, the chunker looked there first."""


def _insert_chunk(conn: sqlite3.Connection, transcript_id: int, chunk: LineChunk) -> None:
    """`transcripts.insert_lines` for a whole chunk: a few dozen multi-row INSERTs
    (`chunks.GROUP_ROWS`) built by the chunker, rather than a statement per line."""
    rows = chunk.rows
    if rows:
        if chunk.spooled is not None:
            _insert_spooled(conn, transcript_id, rows[0], chunk.spooled)
        for group in chunk.groups:
            conn.execute(insert_lines_sql(len(group) // ROW_PARAMS), (transcript_id, *group))
        if chunk.blobs and chunk.spooled is None:  # a spooled line's row is made BLOB
            conn.executemany(
                _BLOB_LINE, [(rows[i][1], transcript_id, rows[i][0]) for i in chunk.blobs]
            )
        if chunk.lookups:
            lookups = [(transcript_id, rows[i][PARENT_ID], rows[i][0]) for i in chunk.lookups]
            conn.executemany(_SET_PARENT, lookups)
        _count_lines(conn, transcript_id, chunk)
    if chunk.sha256 is not None:
        conn.execute(
            "UPDATE transcripts SET source_size = ?, source_sha256 = ? WHERE transcript_id = ?",
            (chunk.end_offset, chunk.sha256, transcript_id),
        )


# A spooled line's row is created holding a stand-in of the line's length, spaces (TEXT) or
# zeros (BLOB, a line that is not UTF-8), then the line is copied over it in pieces. Binding
# the line instead costs SQLite another copy of it. The row's extracted columns, side_append
# among them, come from the line as read, so every index is right before the copy.
_SPOOLED_TEXT = "printf('%.*c', ?, ' ')"
_SPOOLED_BLOB = "zeroblob(?)"


def _insert_spooled(
    conn: sqlite3.Connection, transcript_id: int, row: LineParams, line: SpooledLine
) -> None:
    """Store the row of a spooled line (`chunks.LineChunk.spooled`) and copy the line in."""
    assert line.read is not None
    stand_in = _SPOOLED_TEXT if line.read.utf8 else _SPOOLED_BLOB
    sql = (
        "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
        "parent_pos, type, role, timestamp, idempotency_key, byte_size, damage, side_append) "
        f"VALUES (?, ?, {stand_in}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    params = (transcript_id, row[0], len(line), *row[2:])
    (line_pk,) = conn.execute(sql + " RETURNING line_pk", params).fetchone()
    with conn.blobopen("transcript_lines", "line", line_pk) as blob:
        for piece in line.pieces():
            blob.write(piece)
    line.close()


def _count_lines(conn: sqlite3.Connection, transcript_id: int, chunk: LineChunk) -> None:
    """Move the transcript's counters and leaf past the chunk's lines, exactly as
    `transcripts.insert_lines` does: byte_size counts a newline after every line, a file
    without a final newline is one byte shorter, and a line added after such a line first
    terminates it."""
    leaf_pos, leaf_id = chunk.leaf if chunk.leaf is not None else (None, None)
    lines = len(chunk.rows)
    conn.execute(
        "UPDATE transcripts SET line_count = line_count + ?, entry_count = entry_count + ?, "
        "damaged_count = damaged_count + ?, "
        "byte_size = byte_size + ? + (CASE WHEN ends_with_newline OR line_count = 0 "
        "THEN 0 ELSE 1 END) - ?, ends_with_newline = ?, "
        "leaf_pos = coalesce(?, leaf_pos), leaf_id = CASE WHEN ? IS NULL THEN leaf_id ELSE ? END "
        "WHERE transcript_id = ?",
        (
            lines,
            chunk.entries,
            chunk.damaged,
            chunk.line_bytes + lines,
            0 if chunk.ends_with_newline else 1,
            int(chunk.ends_with_newline),
            leaf_pos,
            leaf_pos,
            leaf_id,
            transcript_id,
        ),
    )


def write_chunk(
    conn: sqlite3.Connection,
    target: NewTranscript | Continuation,
    chunk: LineChunk,
) -> int:
    """Store one chunk: create the transcript (first chunk of a new file or version) or
    continue it; returns the transcript id. One mutation, so one transaction."""
    if isinstance(target, NewTranscript):
        tid = _create(conn, target, chunk)
    else:
        tid = target.transcript_id
        _check(conn, target)
        if target.redo_last_line:
            _drop_last_line(conn, tid)
        if chunk.header is not None:  # the header itself was the line read again
            h = chunk.header
            conn.execute(
                "UPDATE transcripts SET session_id = coalesce(?, session_id), version = ?, "
                "parent_session = ? WHERE transcript_id = ?",
                (h.id, h.version, h.parent_session, tid),
            )
    _insert_chunk(conn, tid, chunk)
    return tid


# --- compressed archives: one streamed mutation ---------------------------------------------


def copy_into_blob(
    conn: sqlite3.Connection, table: str, column: str, rowid: int, src: BinaryIO, size: int
) -> str:
    """Stream `size` bytes of `src` into a zeroblob cell; returns their sha256."""
    hasher = hashlib.sha256()
    left = size
    with conn.blobopen(table, column, rowid) as blob:
        while left > 0:
            block = src.read(min(left, READ_BYTES))
            if not block:
                raise ImportFailedError("the file shrank while it was being read")
            blob.write(block)
            hasher.update(block)
            left -= len(block)
    return hasher.hexdigest()


def import_compressed(
    conn: sqlite3.Connection,
    new: NewTranscript,
    reopen: Callable[[], BinaryIO],
    *,
    stats: LineStats,
) -> int:
    """A .zst archive in one mutation: the original bytes (exported as they are) plus the
    decompressed lines (for queries), both streamed so memory stays flat. `reopen` opens
    the file (`SourceFile.open`: never through a symlink)."""
    with reopen() as raw:
        return _import_compressed(conn, new, raw, _fstat_size(raw), reopen, new.file_name, stats)


def import_compressed_bytes(
    conn: sqlite3.Connection, new: NewTranscript, data: bytes, *, stats: LineStats
) -> int:
    """`import_compressed` for an archive held in memory (read from another database)."""
    return _import_compressed(
        conn, new, io.BytesIO(data), len(data), lambda: io.BytesIO(data), new.file_name, stats
    )


def _import_compressed(
    conn: sqlite3.Connection,
    new: NewTranscript,
    raw: BinaryIO,
    size: int,
    reopen: Callable[[], BinaryIO],
    name: str,
    stats: LineStats,
) -> int:
    lines = ZstdStream(reopen(), name)
    try:
        chunker = LineChunker(lines, stats=stats)
        first = chunker.next_chunk()
        tid = _create(conn, new, first)
        chunk = first
        while chunk is not None:
            _insert_chunk(conn, tid, chunk)
            chunk = chunker.next_chunk()
    finally:
        lines.close()
    conn.execute(
        "UPDATE transcripts SET compressed_bytes = zeroblob(?) WHERE transcript_id = ?",
        (size, tid),
    )
    sha = copy_into_blob(conn, "transcripts", "compressed_bytes", tid, raw, size)
    conn.execute(
        "UPDATE transcripts SET source_size = ?, source_sha256 = ? WHERE transcript_id = ?",
        (size, sha, tid),
    )
    return tid


def import_whole(
    conn: sqlite3.Connection, new: NewTranscript, data: bytes, stats: LineStats
) -> int:
    """A whole transcript file held in memory (an archive read from another database), in
    one mutation, hashed as the file it is published as."""
    chunker = LineChunker(io.BytesIO(data), hasher=hashlib.sha256(), stats=stats)
    target: NewTranscript | Continuation = new
    tid = 0
    for chunk in chunker:
        tid = write_chunk(conn, target, chunk)
        next_pos = chunk.next_pos if chunk.next_pos is not None else 0
        target = Continuation(tid, next_pos, chunk.end_offset, new.file_name)
    return tid


def _fstat_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


# --- opaque files ----------------------------------------------------------------------------


def opaque_sha256(conn: sqlite3.Connection, agent_id: str, rel_dir: str, name: str) -> str | None:
    row = conn.execute(
        "SELECT sha256 FROM opaque_files WHERE agent_id = ? AND rel_dir = ? AND file_name = ?",
        (agent_id, rel_dir, name),
    ).fetchone()
    return None if row is None else str(row[0])


def store_opaque(
    conn: sqlite3.Connection,
    agent_id: str,
    rel_dir: str,
    name: str,
    kind: str,
    source: bytes | Callable[[], BinaryIO],
) -> tuple[int, str]:
    """Keep a file's exact bytes (inserted or replaced), streamed; returns (size, sha256).
    `source` is the bytes already read, or a function opening the file (`SourceFile.open`,
    `TreeFile.open`: never through a symlink)."""
    opened = (lambda: io.BytesIO(source)) if isinstance(source, bytes) else source
    with opened() as src:
        size = len(source) if isinstance(source, bytes) else _fstat_size(src)
        file_pk = conn.execute(
            "INSERT INTO opaque_files (agent_id, rel_dir, file_name, kind, content, sha256, "
            "imported_at) VALUES (?, ?, ?, ?, zeroblob(?), '', ?) "
            "ON CONFLICT (agent_id, rel_dir, file_name) DO UPDATE SET kind = excluded.kind, "
            "content = excluded.content, imported_at = excluded.imported_at RETURNING file_pk",
            (agent_id, rel_dir, name, kind, size, now_iso()),
        ).fetchone()[0]
        sha = copy_into_blob(conn, "opaque_files", "content", file_pk, src, size)
    conn.execute("UPDATE opaque_files SET sha256 = ? WHERE file_pk = ?", (sha, file_pk))
    return size, sha


def reader_of(fn: Callable[..., Any], *args: Any) -> Callable[[sqlite3.Connection], Any]:
    """`fn(conn, *args)` as a one-argument function for `Store.read` / `Store.write`."""
    return lambda conn: fn(conn, *args)

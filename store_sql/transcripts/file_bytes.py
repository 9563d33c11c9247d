"""A transcript's file bytes in large blocks joined by SQLite: the export hot path.

The one renderer of a transcript's bytes: export, snapshots
(`snapshots.snapshot_bytes`) and `store.transcripts.file_bytes` all use it.
Fetching one Python object per line and joining them in Python
(tests/test_transcript_dump.py keeps that as the reference) is slower; here SQLite's
`group_concat` joins a run of lines with ``\\n`` in C and Python receives one bytes object
per block of ~512 KB. On the benchmark's 30 MB transcript (825-byte lines) that reads in ~25
ms instead of ~50 ms: SQLite still copies each line twice (`Column`, then `group_concat`),
but no per-line tuple, bytes object or Python join is left.

Why the bytes are exact:
- `group_concat` appends `sqlite3_value_text` / `sqlite3_value_bytes` of each value; in a
  UTF-8 database that is the stored bytes of a TEXT or BLOB line (no transcoding; NULs,
  invalid UTF-8 and surrogate-escape lines stored as BLOB pass through as they are), and
  `CAST(... AS BLOB)` hands the result to Python as bytes without decoding.
- Order: an aggregate without GROUP BY consumes rows in the order its scan visits them.
  `INDEXED BY` pins the scan to the UNIQUE(transcript_id, pos) index with `transcript_id`
  fixed, so rows come in `pos` order; if that index ever changed name the statement fails
  (an error, never a silently reordered file). An ORDER BY subquery would state the order
  too, but SQLite then copies every line once more through a co-routine (+40% time).

Memory: a block's line count follows the previous block's bytes per line (~`_BLOCK_BYTES`),
at most doubling, and SQLite's length limit, lowered to `_BLOCK_LIMIT` for the block query
alone, stops a block that would outgrow it (short lines followed by long ones): the run is
read again in halves, and a single line above the limit is read by itself. A 1 GB transcript
streams in flat memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

__all__ = ["transcript_blocks"]

_BLOCK_BYTES = 512 * 1024
"""Measured: 256 KB-1 MB blocks are fastest (caches); 2 MB+ blocks are 20-40% slower."""
_BLOCK_LIMIT = 8 << 20
_FIRST_LINES = 128
_MAX_LINES = 4096

_POS_INDEX = "sqlite_autoindex_transcript_lines_1"
"""SQLite's name for the index of UNIQUE(transcript_id, pos), the table's first UNIQUE
constraint (schema.transcript_lines); tests/test_transcript_dump.py checks it is that one."""

_BLOCK_SQL = (
    "SELECT CAST(group_concat(line, x'0a') AS BLOB), count(*) "
    f"FROM transcript_lines INDEXED BY {_POS_INDEX} "
    "WHERE transcript_id = ? AND pos BETWEEN ? AND ?"
)
_LINE_SQL = "SELECT CAST(line AS BLOB), 1 FROM transcript_lines WHERE transcript_id = ? AND pos = ?"
# Two scalar subqueries: min() and max() in one SELECT would scan the whole index range.
_BOUNDS_SQL = (
    "SELECT (SELECT min(pos) FROM transcript_lines WHERE transcript_id = ?1), "
    "(SELECT max(pos) FROM transcript_lines WHERE transcript_id = ?1)"
)
_NEXT_SQL = "SELECT min(pos) FROM transcript_lines WHERE transcript_id = ? AND pos > ?"


def transcript_blocks(
    conn: sqlite3.Connection,
    transcript_id: int,
    *,
    from_pos: int | None = None,
    upto_pos: int | None = None,
    newline: bool | None = None,
) -> Iterator[bytes]:
    """A transcript's file bytes: lines `from_pos`(0)..`upto_pos`, each
    followed by ``\\n`` except the last when the file had no final newline (`newline`,
    default: as stored). Separators between blocks come as their own one-byte chunks, so a
    block is never copied to prepend one."""
    if newline is None:
        row = conn.execute(
            "SELECT ends_with_newline FROM transcripts WHERE transcript_id = ?",
            (transcript_id,),
        ).fetchone()
        newline = bool(row[0]) if row is not None else True
    first, last = conn.execute(_BOUNDS_SQL, (transcript_id,)).fetchone()
    if first is None:
        return
    if from_pos is not None:
        first = max(first, from_pos)
    if upto_pos is not None:
        last = min(last, upto_pos)
    lines = _FIRST_LINES
    wrote = False
    low = first
    while low <= last:
        high = min(low + lines - 1, last)
        found = _block(conn, transcript_id, low, high)
        if found is None:
            if high > low:
                lines = (high - low + 1) // 2
                continue
            found = conn.execute(_LINE_SQL, (transcript_id, low)).fetchone() or (None, 0)
        block, count = found
        if not count:
            # A gap in pos (nothing stored there): go on from the next stored line.
            low = conn.execute(_NEXT_SQL, (transcript_id, high)).fetchone()[0]
            if low is None:
                break
            continue
        low = high + 1
        if wrote:
            yield b"\n"
        block = block or b""
        if block:
            yield block
        wrote = True
        # At most doubling: a run that outgrows the limit is then found in a few halvings.
        lines = max(1, min(_MAX_LINES, 2 * count, _BLOCK_BYTES * count // max(len(block), 1)))
    if wrote and newline:
        yield b"\n"


def _block(
    conn: sqlite3.Connection, transcript_id: int, low: int, high: int
) -> tuple[bytes | None, int] | None:
    """Lines `low`..`high` joined with ``\\n`` and how many there were; None when they
    would exceed `_BLOCK_LIMIT` bytes. The limit is the connection's, so it is put back
    before anything else can run on this (pooled) connection."""
    previous = conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, min(previous, _BLOCK_LIMIT))
    try:
        row: tuple[bytes | None, int] = conn.execute(
            _BLOCK_SQL, (transcript_id, low, high)
        ).fetchone()
        return row
    except sqlite3.DataError:  # "string or blob too big"
        return None
    finally:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, previous)

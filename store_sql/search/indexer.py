"""Keeping the full-text index up to date behind the writes.

Appends and imports store lines only. The index (`entry_text_fts`) covers every line up to
`search_index_state.indexed_upto`; `index_pending` (a writer mutation) indexes the next
lines above that mark and moves it, and `BackgroundIndexer` runs it in the writer's idle
time. A search reads the index and scans the lines above the mark itself (search/query.py), so an
entry is findable from the moment its append commits.

Why not index inside each append: a single-row FTS5 trigram insert costs 200-400 µs at
commit, more than all the rest of an append, and it was ~75% of an import's time; indexed
in batches of a few hundred lines it costs a fraction of that per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from store_sql.formats.sqltext import storable_text
from store_sql.search.entry_text import entry_search_text
from store_sql.transcripts.rows import parse_stored

INDEX_BATCH = 256
"""Lines per indexing step: ~5-15 ms of the writer, so a write that arrives meanwhile
waits about as long as behind one ordinary group commit."""

BACKLOG_LIMIT = 10_000
"""Lines above the mark that a search still scans itself (search/query.py). A scan holds a read
snapshot, and long snapshots keep the WAL from being checkpointed: kept short."""

QUIET_S = 0.02
"""How long the writer must have had nothing to do before the indexer takes a step: appends
that come one after another (a chat turn, a tool loop) then never wait behind one."""

BUSY_STEP_S = 0.05
"""Under writes that never leave the writer quiet, one step per this many seconds: up to
~5,000 lines a second indexed, so the index keeps up with a busy gateway (a 60 s soak of 100
tasks appends ~2,000 lines a second) while appends still get most of the writer."""

_IDLE_POLL_S = 0.005


@dataclass(frozen=True, slots=True)
class IndexStep:
    """What one `index_pending` call did."""

    lines_read: int
    rows_indexed: int
    unreadable: int
    """Entry lines that could not be parsed (kept out of the index, as damaged lines are)."""
    upto: int
    """The mark after this step."""


def indexed_upto(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT indexed_upto FROM search_index_state WHERE id = 1").fetchone()
    return 0 if row is None else int(row[0])


def backlog(conn: sqlite3.Connection) -> int:
    """Lines above the mark: not in the index yet (counted on the rowid range, no payload)."""
    row = conn.execute(
        "SELECT count(*) FROM transcript_lines WHERE line_pk > "
        "(SELECT indexed_upto FROM search_index_state WHERE id = 1)"
    ).fetchone()
    return int(row[0])


def index_pending(conn: sqlite3.Connection, batch_size: int = INDEX_BATCH) -> IndexStep:
    """Index the next `batch_size` lines above the mark and move the mark past them."""
    upto = indexed_upto(conn)
    # Only entry lines stored as TEXT have searchable text; the others are read for their
    # line_pk alone, so the mark can move past them.
    rows = conn.execute(
        "SELECT line_pk, CASE WHEN kind = 'entry' AND typeof(line) = 'text' THEN line END "
        "FROM transcript_lines WHERE line_pk > ? ORDER BY line_pk LIMIT ?",
        (upto, batch_size),
    ).fetchall()
    if not rows:
        return IndexStep(0, 0, 0, upto)
    texts, unreadable = searchable_texts(rows)
    # OR REPLACE: harmless insurance should a row above the mark already be indexed.
    conn.executemany("INSERT OR REPLACE INTO entry_text_fts (rowid, text) VALUES (?, ?)", texts)
    upto = int(rows[-1][0])
    conn.execute("UPDATE search_index_state SET indexed_upto = ? WHERE id = 1", (upto,))
    return IndexStep(len(rows), len(texts), unreadable, upto)


def searchable_texts(rows: list[tuple[int, str | None]]) -> tuple[list[tuple[int, str]], int]:
    """(line_pk, text) for each row whose line has searchable text, and how many lines could
    not be parsed. Rows are (line_pk, line or None for lines without text)."""
    texts: list[tuple[int, str]] = []
    unreadable = 0
    for line_pk, line in rows:
        if line is None:
            continue
        try:
            text = entry_search_text(parse_stored(line))
        except ValueError:
            unreadable += 1
            continue
        if text:
            texts.append((line_pk, storable_text(text)))
    return texts, unreadable


def clear_index(conn: sqlite3.Connection) -> None:
    """Empty the index and set the mark to 0: everything is indexed again from the start."""
    conn.execute("DELETE FROM entry_text_fts")
    conn.execute("UPDATE search_index_state SET indexed_upto = 0 WHERE id = 1")


Write = Callable[[Callable[[sqlite3.Connection], IndexStep]], Awaitable[IndexStep]]


class BackgroundIndexer:
    """Runs `index_pending` through the writer whenever lines may have been added.

    It waits for idle time: no write queued or running for QUIET_S, so appends are rarely
    delayed, and then by one indexing step at most. Under writes that never pause it takes
    one step every BUSY_STEP_S (each joins a group commit of the other writes), so the
    backlog a search must scan stays bounded at ordinary rates. A bulk import pauses it
    (`paused`) and leaves the indexing for afterwards."""

    def __init__(
        self, write: Write, idle_for: Callable[[], float], *, batch_size: int = INDEX_BATCH
    ) -> None:
        self._write = write
        self._idle_for = idle_for
        self._batch_size = batch_size
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.steps = 0
        self.lines_indexed = 0
        self.failures = 0
        self.last_error: str | None = None
        # Held for each step, and by `paused` for as long as a rebuild runs.
        self._stepping = asyncio.Lock()

    def start(self) -> None:
        self._wanted.set()  # lines may be waiting from an earlier run or another process
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="store_sql.search_indexer"
        )

    def poke(self) -> None:
        """Lines may have been added: index them when the writer is next idle."""
        self._wanted.set()

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        step = partial(index_pending, batch_size=self._batch_size)
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            while True:
                await self._idle()
                try:
                    async with self._stepping:
                        done = await self._write(step)
                except Exception as exc:
                    # Another process holding the write lock, a full disk, a bug: the lines
                    # stay above the mark (searches scan them), the next write tries again,
                    # and store.metrics() shows the error. The indexer itself never dies.
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    break
                self.steps += 1
                self.lines_indexed += done.lines_read
                if done.lines_read < self._batch_size:
                    break

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No indexing step runs inside: a rebuild does its own steps (and counts them), an
        import leaves the indexing for afterwards."""
        async with self._stepping:
            yield
        self._wanted.set()

    async def _idle(self) -> None:
        """Wait until the writer has been quiet for QUIET_S, or BUSY_STEP_S at most."""
        waited_since = time.monotonic()
        while (quiet := self._idle_for()) < QUIET_S:
            if time.monotonic() - waited_since > BUSY_STEP_S:
                return
            await asyncio.sleep(max(_IDLE_POLL_S, QUIET_S - quiet))


async def catch_up(write: Write, batch_size: int = INDEX_BATCH) -> int:
    """Index every line above the mark now, one writer step at a time; returns the lines
    read. Writes of other callers go on in between."""
    total = 0
    while True:
        done = await write(partial(index_pending, batch_size=batch_size))
        total += done.lines_read
        if done.lines_read < batch_size:
            return total

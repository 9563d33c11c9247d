"""Keeping the full-text index up to date behind the writes.

Appends and imports store lines only. The index (`entry_text_fts`) covers every line up to
`search_index_state.indexed_upto`; `index_pending` (a writer mutation) indexes the next
lines above that mark and moves it, and `BackgroundIndexer` runs it in the writer's idle
time. A search reads the index and scans the lines above the mark itself (search/query.py), so an
entry is findable from the moment its append commits.

Why not index inside each append: a single-row FTS5 trigram insert costs more at commit than
all the rest of an append; indexed in batches it costs a fraction of that per line.

Why an indexing step never delays a write: steps run only once the writer has been quiet
for QUIET_S, and such a step is preemptible (engine/writer.py): the moment a caller's write
is queued, SQLite aborts the step wherever it is (tokenizing, flushing, merging the index's
segments) and rolls it back; the write starts at once and the step is tried again in the
next quiet period. Only when writes never pause and more than CATCH_UP_LINES lines wait do
steps run between writes, bounded by CATCH_UP_BUDGET_S: indexing must keep up somewhere,
and that is the one case where a write may wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from store_sql.engine.writer import UpkeepPreemptedError
from store_sql.schema.extra_sql import INDEX_RANGE

INDEX_BATCH = 256
"""Most lines one indexing step reads (catch-up and rebuild take steps of this size)."""

CHUNK_LINES = 8
"""Lines indexed between two looks at the clock in a background step."""

STEP_BUDGET_S = 0.005
"""Time a quiet-period step may spend indexing before it commits. A caller's write that
arrives meanwhile preempts it, so this bounds only the work a preemption throws away."""

BACKLOG_LIMIT = 10_000
"""Lines above the mark that a search still scans itself (search/query.py). A scan holds a read
snapshot, and long snapshots keep the WAL from being checkpointed: kept short."""

QUIET_S = 0.05
"""How long the writer must have had nothing to do before the indexer takes a step: appends
that come one after another (a chat turn, a tool loop) then never meet one."""

BUSY_STEP_S = 0.2
"""Under writes that never leave the writer quiet, the indexer looks at the backlog once per
this many seconds, and then takes at most one catch-up step."""

CATCH_UP_LINES = BACKLOG_LIMIT // 2
"""Past this many lines waiting under writes that never pause, steps run between writes."""

CATCH_UP_BUDGET_S = 0.02
"""The budget of such a step: with one step per BUSY_STEP_S, a tenth of the writer's time
goes to the index, enough to keep up with the busiest gateways measured. These are the
only steps a write may wait for."""

_IDLE_POLL_S = 0.005

# The searchable text comes from the view's definition (schema/extra_sql.py), the same one
# the delete trigger uses, so the index forgets exactly what it was given.
_INDEX_RANGE = INDEX_RANGE
_UNREADABLE_IN_RANGE = (
    "SELECT count(*) FROM transcript_lines WHERE line_pk > ? AND line_pk <= ? "
    "AND kind = 'entry' AND typeof(line) = 'text' AND NOT json_valid(line)"
)


@dataclass(frozen=True, slots=True)
class IndexStep:
    """What one `index_pending` call did."""

    lines_read: int
    rows_indexed: int
    unreadable: int
    """Entry lines whose JSON SQLite cannot read (kept out of the index, as damaged lines
    are); counted only when `index_pending` is asked to (a rebuild)."""
    upto: int
    """The mark after this step."""
    top: int = 0
    """The largest line_pk when the step ended: `top - upto` estimates the lines waiting."""


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


def lines_above_mark(conn: sqlite3.Connection, limit: int) -> int:
    """Lines above the mark, counted up to `limit` (a bounded probe of the rowid range)."""
    row = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM transcript_lines WHERE line_pk > "
        "(SELECT indexed_upto FROM search_index_state WHERE id = 1) LIMIT ?)",
        (limit,),
    ).fetchone()
    return int(row[0])


def lines_waiting(conn: sqlite3.Connection) -> bool:
    """Whether any line is above the mark (one probe of the rowid range)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM transcript_lines WHERE line_pk > "
        "(SELECT indexed_upto FROM search_index_state WHERE id = 1))"
    ).fetchone()
    return bool(row[0])


def index_pending(
    conn: sqlite3.Connection,
    batch_size: int = INDEX_BATCH,
    *,
    stop: Callable[[], bool] | None = None,
    count_unreadable: bool = False,
) -> IndexStep:
    """Index up to `batch_size` lines above the mark and move the mark past them.

    With `stop`, the lines go in chunks of CHUNK_LINES and the step ends after the first
    chunk at which `stop()` is true (a background step yields to waiting writes)."""
    start = upto = indexed_upto(conn)
    read = indexed = unreadable = 0
    chunk = batch_size if stop is None else min(CHUNK_LINES, batch_size)
    while read < batch_size:
        bounds = conn.execute(
            "SELECT count(*), max(line_pk) FROM (SELECT line_pk FROM transcript_lines "
            "WHERE line_pk > ? ORDER BY line_pk LIMIT ?)",
            (upto, min(chunk, batch_size - read)),
        ).fetchone()
        if not bounds[0]:
            break
        top = int(bounds[1])
        indexed += conn.execute(_INDEX_RANGE, (upto, top)).rowcount
        if count_unreadable:
            unreadable += conn.execute(_UNREADABLE_IN_RANGE, (upto, top)).fetchone()[0]
        read += int(bounds[0])
        upto = top
        if stop is not None and stop():
            break
    if upto != start:
        conn.execute("UPDATE search_index_state SET indexed_upto = ? WHERE id = 1", (upto,))
    top = conn.execute("SELECT coalesce(max(line_pk), 0) FROM transcript_lines").fetchone()[0]
    return IndexStep(read, indexed, unreadable, upto, int(top))


def clear_index(conn: sqlite3.Connection) -> None:
    """Empty the index and set the mark to 0: everything is indexed again from the start."""
    conn.execute("INSERT INTO entry_text_fts (entry_text_fts) VALUES ('delete-all')")
    conn.execute("UPDATE search_index_state SET indexed_upto = 0 WHERE id = 1")


Write = Callable[[Callable[[sqlite3.Connection], IndexStep]], Awaitable[IndexStep]]
Read = Callable[[Callable[[sqlite3.Connection], int]], Awaitable[int]]


class UpkeepWrite(Protocol):
    """The writer's `submit` for upkeep (engine/writer.py)."""

    def __call__(
        self, fn: Callable[[sqlite3.Connection], IndexStep], *, preemptible: bool
    ) -> Awaitable[IndexStep]: ...


class BackgroundIndexer:
    """Runs `index_pending` through the writer whenever lines may have been added.

    A step starts once no caller's write has been queued or running for QUIET_S, and then
    steps follow one another until the index is current; each is preempted by any write
    that arrives (rolled back at once, tried again in the next quiet period). Under writes
    that never pause, it looks at the backlog every BUSY_STEP_S and leaves it to the next
    quiet period while at most CATCH_UP_LINES wait (a search scans them); past that it takes
    one step of CATCH_UP_BUDGET_S per look, which writes do wait for, so the backlog stays
    bounded under any load. A bulk import pauses it (`paused`) and leaves the indexing for
    afterwards."""

    def __init__(
        self,
        write: UpkeepWrite,
        read: Read,
        idle_for: Callable[[], float],
        *,
        batch_size: int = INDEX_BATCH,
    ) -> None:
        self._write = write
        self._read = read
        self._idle_for = idle_for
        self._batch_size = batch_size
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.steps = 0
        self.lines_indexed = 0
        self.preempted = 0
        self.failures = 0
        self.last_error: str | None = None
        # Held for each step, and by `paused` for as long as a rebuild runs.
        self._stepping = asyncio.Lock()

    def start(self, *, lines_waiting: bool = True) -> None:
        """Begin; a first step runs only when lines wait from an earlier run or another
        process (a step needs the write lock, which another process may hold)."""
        if lines_waiting:
            self._wanted.set()
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

    def _step(self, conn: sqlite3.Connection, budget: float) -> IndexStep:
        """One background step on the writer's thread: ends at the first chunk boundary
        after `budget` seconds."""
        began = time.perf_counter()

        def stop() -> bool:
            return time.perf_counter() - began > budget

        return index_pending(conn, self._batch_size, stop=stop)

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            while True:
                quiet = await self._idle()
                if not quiet:
                    try:
                        waiting = await self._read(
                            partial(lines_above_mark, limit=CATCH_UP_LINES + 1)
                        )
                    except Exception:  # noqa: S112 - looked at again after BUSY_STEP_S
                        continue
                    if waiting <= CATCH_UP_LINES:
                        continue
                budget = STEP_BUDGET_S if quiet else CATCH_UP_BUDGET_S
                try:
                    async with self._stepping:
                        done = await self._write(
                            partial(self._step, budget=budget), preemptible=quiet
                        )
                except UpkeepPreemptedError:
                    self.preempted += 1
                    continue
                except Exception as exc:
                    # Another process holding the write lock, a full disk, a bug: the lines
                    # stay above the mark (searches scan them), the next write tries again,
                    # and store.metrics() shows the error. The indexer itself never dies.
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    break
                self.steps += 1
                self.lines_indexed += done.lines_read
                if done.lines_read == 0 or done.upto >= done.top:
                    break

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No indexing step runs inside: a rebuild does its own steps (and counts them), an
        import leaves the indexing for afterwards."""
        async with self._stepping:
            yield
        self._wanted.set()

    async def _idle(self) -> bool:
        """Wait until no caller has written for QUIET_S (True), or BUSY_STEP_S at most
        (False: the writer is busy)."""
        waited_since = time.monotonic()
        while (quiet := self._idle_for()) < QUIET_S:
            if time.monotonic() - waited_since > BUSY_STEP_S:
                return False
            await asyncio.sleep(max(_IDLE_POLL_S, QUIET_S - quiet))
        return True


async def catch_up(write: Write, batch_size: int = INDEX_BATCH) -> int:
    """Index every line above the mark now, one writer step at a time; returns the lines
    read. Writes of other callers go on in between."""
    total = 0
    while True:
        done = await write(partial(index_pending, batch_size=batch_size))
        total += done.lines_read
        if done.lines_read < batch_size:
            return total

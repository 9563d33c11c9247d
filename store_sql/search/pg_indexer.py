"""Keeping the full-text index up to date behind the writes, on PostgreSQL.

An insert into `transcript_lines` queues its entry lines in `search_pending` (a statement
trigger, schema/pg_views.py); `index_step` claims the oldest queued lines with
`FOR UPDATE SKIP LOCKED`, deletes them from the queue and puts their searchable text into
`search_text`, whose trigram index searches read, all in one statement. Several store
processes run steps at once without taking the same lines twice, and a process that dies
between an append and its indexing leaves the lines queued for any other process (or its
own next start). A search reads the index and computes the text of the queued lines itself
(search/pg_query.py), so an entry is findable from the moment its append commits.

Why not index inside each append: computing an entry's text and inserting its trigrams
costs an append several times what storing the line does, on the server every writer
process shares; queued, an append pays one b-tree insert per line.

`PgSearchIndexer` takes steps on its own connection when its process's writer has been
quiet for QUIET_S, as SQLite's indexer does (search/indexer.py, with the same constants):
appends never wait for a step (it holds no lock they take), and a busy server is not given
indexing work while writes keep coming. Under writes that never pause it looks at the queue
every BUSY_STEP_S and takes one catch-up step when more than CATCH_UP_LINES wait, so the
queue stays bounded under any load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from store_sql.schema.pg_views import LINE_INDEX_NAME
from store_sql.search.indexer import (
    BACKLOG_LIMIT,
    BUSY_STEP_S,
    CATCH_UP_LINES,
    INDEX_BATCH,
    QUIET_S,
)

if TYPE_CHECKING:
    import asyncpg

QUIET_BATCH = 64
"""Lines one step takes while the writer is quiet: a step cannot be preempted on the
server, so it is kept short (a few milliseconds of server time)."""

CATCH_UP_BATCH = INDEX_BATCH
"""Lines one catch-up step takes under writes that never pause."""

LOOK_S = 1.0
"""How often an idle indexer looks for lines other processes queued (or left behind)."""

_IDLE_POLL_S = 0.005

# One statement: the claimed keys leave the queue and their text enters search_text in the
# same transaction. `ARRAY(...)` runs the claim once; a claimed line already deleted has no
# row to join and simply leaves the queue.
_STEP = (
    "WITH claimed AS (DELETE FROM search_pending WHERE line_pk = ANY(ARRAY("
    "SELECT line_pk FROM search_pending ORDER BY line_pk LIMIT $1 FOR UPDATE SKIP LOCKED)) "
    "RETURNING line_pk), "
    "texts AS (SELECT l.line_pk, entry_search_text(l.line) AS text FROM claimed AS c "
    "JOIN transcript_lines AS l ON l.line_pk = c.line_pk), "
    "indexed AS (INSERT INTO search_text (line_pk, text) "
    "SELECT line_pk, text FROM texts WHERE text IS NOT NULL RETURNING 1) "
    "SELECT (SELECT count(*) FROM claimed) AS claimed, (SELECT count(*) FROM indexed) AS indexed"
)


@dataclass(frozen=True, slots=True)
class PgIndexStep:
    """What one `index_step` did."""

    lines_read: int
    """Queued lines taken off the queue."""
    rows_indexed: int
    """Those with searchable text, now in search_text."""


async def index_step(conn: asyncpg.Connection[Any], batch_size: int = INDEX_BATCH) -> PgIndexStep:
    """Index up to `batch_size` queued lines that no other transaction has claimed."""
    row = await conn.fetchrow(_STEP, batch_size)
    assert row is not None
    return PgIndexStep(int(row["claimed"]), int(row["indexed"]))


async def queued(conn: asyncpg.Connection[Any], limit: int | None = None) -> int:
    """Lines waiting in the queue (counted up to `limit`, a bounded probe)."""
    if limit is None:
        return int(await conn.fetchval("SELECT count(*) FROM search_pending"))
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM search_pending LIMIT $1) AS q", limit
        )
    )


async def line_index_ready(conn: asyncpg.Connection[Any]) -> bool:
    """Whether revision 0006's trigram index over the lines' text still stands (valid): it
    is kept while the lines an upgrade to 0008 queued are being indexed."""
    return bool(
        await conn.fetchval(
            "SELECT i.indisvalid FROM pg_index AS i WHERE i.indexrelid = to_regclass($1)",
            LINE_INDEX_NAME,
        )
    )


async def retire_line_index(conn: asyncpg.Connection[Any]) -> bool:
    """Drop revision 0006's index over the lines once searches no longer need it: at most
    BACKLOG_LIMIT lines queued, which a search reads itself. On a connection outside any
    transaction (DROP INDEX CONCURRENTLY waits for the transactions using it and blocks
    no append). Returns whether the index is gone."""
    if await conn.fetchval("SELECT to_regclass($1)", LINE_INDEX_NAME) is None:
        return True
    if await queued(conn, BACKLOG_LIMIT + 1) > BACKLOG_LIMIT:
        return False
    await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {LINE_INDEX_NAME}")
    return True


async def queue_every_line(conn: asyncpg.Connection[Any]) -> None:
    """Empty the index and queue every entry line again (the start of a rebuild)."""
    await conn.execute("DELETE FROM search_text")
    await conn.execute(
        "INSERT INTO search_pending (line_pk) SELECT line_pk FROM transcript_lines "
        "WHERE kind = 'entry' ON CONFLICT DO NOTHING"
    )


Write = Callable[
    [Callable[["asyncpg.Connection[Any]"], Awaitable[PgIndexStep]]], Awaitable[PgIndexStep]
]


async def catch_up(write: Write, batch_size: int = INDEX_BATCH) -> int:
    """Index every queued line now, one writer step at a time; returns the lines read.
    Writes of other callers go on in between."""
    total = 0
    while True:
        done: PgIndexStep = await write(lambda conn: index_step(conn, batch_size))
        total += done.lines_read
        if done.lines_read < batch_size:
            return total


class PgSearchIndexer:
    """Runs `index_step` on its own connection whenever lines may be queued.

    `poke` (after each write of this process) or LOOK_S without one (lines of other
    processes) starts a round: steps follow one another once the writer has been quiet for
    QUIET_S, until the queue is empty. Under writes that never leave the writer quiet, it
    counts the queue every BUSY_STEP_S and takes one CATCH_UP_BATCH step while more than
    CATCH_UP_LINES wait. A failing step (a lost connection, a server restarting) is
    counted and tried again in the next round; the indexer itself never dies."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection[Any]]],
        idle_for: Callable[[], float],
    ) -> None:
        self._connect = connect
        self._idle_for = idle_for
        self._conn: asyncpg.Connection[Any] | None = None
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stepping = asyncio.Lock()
        self._closing = False
        self.steps = 0
        self.lines_indexed = 0
        self.preempted = 0
        """Always 0 here: a step on its own connection never stands in a write's way."""
        self.failures = 0
        self.last_error: str | None = None
        self._line_index: bool | None = None
        """False once revision 0006's index over the lines is gone (or cannot be dropped
        by this process)."""

    def start(self) -> None:
        """Begin with a round: lines may wait from an earlier run or another process."""
        self._wanted.set()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="store_sql.pg_search_indexer"
        )

    def poke(self) -> None:
        """Lines may have been queued: index them when the writer is next quiet."""
        self._wanted.set()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No step of this indexer runs inside (a rebuild or a catch-up takes its own)."""
        async with self._stepping:
            yield
        self._wanted.set()

    async def _connection(self) -> asyncpg.Connection[Any]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        return self._conn

    async def _run(self) -> None:
        while not self._closing:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the
            # cancellation `close` sends when the event is set at the same moment.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOOK_S):
                    await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._round()
            except Exception as exc:
                # A lost connection, a server shutting down, a bug: the lines stay queued
                # (searches compute their text), the next round tries again, and
                # store.metrics() shows the error.
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None

    async def _round(self) -> None:
        while True:
            quiet = await self._idle()
            conn = await self._connection()
            if not quiet and await queued(conn, CATCH_UP_LINES + 1) <= CATCH_UP_LINES:
                continue
            batch = QUIET_BATCH if quiet else CATCH_UP_BATCH
            async with self._stepping:
                done = await index_step(conn, batch)
            self.steps += 1
            self.lines_indexed += done.lines_read
            if done.lines_read < batch:
                if self._line_index is not False:
                    await self._retire_line_index(conn)
                return

    async def _retire_line_index(self, conn: asyncpg.Connection[Any]) -> None:
        """Drop the upgrade's interim index once caught up (`retire_line_index`); a refusal
        (a role that does not own the table) is reported once and not tried again here."""
        import asyncpg  # loaded already: this store is on PostgreSQL

        try:
            async with self._stepping:
                if await retire_line_index(conn):
                    self._line_index = False
        except asyncpg.PostgresError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._line_index = False

    async def _idle(self) -> bool:
        """Wait until the writer has been quiet for QUIET_S (True), or BUSY_STEP_S at most
        (False: the writer is busy)."""
        waited_since = time.monotonic()
        while (quiet := self._idle_for()) < QUIET_S:
            if time.monotonic() - waited_since > BUSY_STEP_S:
                return False
            await asyncio.sleep(max(_IDLE_POLL_S, QUIET_S - quiet))
        return True

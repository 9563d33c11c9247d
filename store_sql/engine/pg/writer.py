"""The process's writer on PostgreSQL: one connection, one queue, group commit.

Every mutation is an `async fn(connection) -> result`. One asyncio task drains the queue;
everything queued at that moment runs as ONE transaction, so a group pays one commit and a
few round trips instead of a commit per mutation (docs/POSTGRES.md measured why). A group
first runs without savepoints; when a mutation fails, the transaction is rolled back and the
group runs again with a savepoint per mutation, so only the failing one is undone and its
caller alone gets the error (mutations must be pure functions of the database, as on SQLite).

Consecutive `CombinablePgMutation`s of one class run as one set-based call (`combine`), the
shape that lets a group of appends run as a few statements.

Several processes write one database: a group that PostgreSQL aborts for a deadlock (40P01)
or a serialization failure (40001) runs again from the start, up to `RETRIES` times; row
locks taken in id order keep those rare.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from store_sql.engine.group_commit import GroupCommitMetrics, Outcome, settle
from store_sql.engine.lookups import unstorable_lookup
from store_sql.engine.pg.connection import CombinablePgMutation, PgConnection
from store_sql.errors import StoreClosedError, StoreError, WriteFailedError

T = TypeVar("T")
PgMutation = Callable[["asyncpg.Connection[asyncpg.Record]"], Awaitable[Any]]

RETRIES = 20
"""How often a group aborted by a deadlock or serialization failure runs again."""

MAX_GROUP = 1000
"""At most this many mutations per group transaction."""

_RETRYABLE = ("40P01", "40001")

BROKEN = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,
)
"""What a connection that broke under an operation raises (with `connection_lost`)."""


@dataclass(slots=True)
class _Job:
    fn: PgMutation
    future: asyncio.Future[Any]


@dataclass(slots=True)
class PgWriterMetrics(GroupCommitMetrics):
    """The group counters, and how often the writer opened a new connection."""

    reconnects: int = 0


class _GroupAborted(Exception):
    """PostgreSQL aborted the group's transaction (deadlock, serialization failure)."""


class PgWriter:
    """Owns the process's write connection; `submit` is the only way to change the database."""

    def __init__(
        self,
        conn: PgConnection,
        connect: Callable[[], Awaitable[PgConnection]],
        *,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._conn: PgConnection | None = conn
        self._connect = connect
        self._max_group = max_group
        self._queue: list[_Job] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._running = False
        self._last_done = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self.metrics = PgWriterMetrics()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._drain(), name="store_sql.pg_writer"
        )

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def idle_for(self) -> float:
        """Seconds since the last group finished, or 0.0 while a write is queued or running."""
        if self._queue or self._running:
            return 0.0
        return time.monotonic() - self._last_done

    async def submit(self, fn: PgMutation) -> Any:
        """Run `fn(connection)` inside the next group transaction and return its result.

        A caller cancelled before its group starts is skipped; once the group started, its
        mutation commits or rolls back with it, never half-applied."""
        if self._closing:
            raise StoreClosedError("the store is closed; writes are no longer accepted")
        job = _Job(fn, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._wake.set()
        return await job.future

    async def close(self) -> None:
        """Stop accepting writes, commit everything already queued, close the connection."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def _drain(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue[: self._max_group]
            del self._queue[: len(batch)]
            batch = [job for job in batch if not job.future.done()]  # callers that gave up
            if not batch:
                continue
            self._running = True
            started = time.perf_counter()
            try:
                outcomes = await self._apply(batch)
            except BaseException as exc:
                for job in batch:
                    settle(job.future, Outcome(ok=False, value=_as_write_error(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            finally:
                self._running = False
                self._last_done = time.monotonic()
            self._record(batch, outcomes, time.perf_counter() - started)
            for job, outcome in zip(batch, outcomes, strict=True):
                settle(job.future, outcome)

    async def _connection(self) -> PgConnection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
            self.metrics.reconnects += 1
        return self._conn

    async def _apply(self, batch: list[_Job]) -> list[Outcome]:
        for attempt in range(RETRIES + 1):
            try:
                conn = await self._connection()
                optimistic = await self._run_optimistically(conn, batch)
                if optimistic is not None:
                    return optimistic
                self.metrics.savepoint_reruns += 1
                return await self._run_with_savepoints(conn, batch)
            except _GroupAborted:
                self.metrics.batch_retries += 1
                # A short, growing pause lets the other process's group finish first.
                await asyncio.sleep(min(0.001 * 2**attempt, 0.1))
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                # The connection broke: whether the group committed is unknown, so it is not
                # run again; its callers learn it, and the next group reconnects.
                if self._conn is not None and not self._conn.is_closed():
                    self._conn.terminate()
                self._conn = None
                return [Outcome(ok=False, value=_as_write_error(exc)) for _ in batch]
        err = WriteFailedError(
            f"PostgreSQL aborted this write {RETRIES + 1} times (deadlock or serialization "
            "failure with other writers); it was not stored"
        )
        return [Outcome(ok=False, value=err) for _ in batch]

    async def _run_optimistically(
        self, conn: PgConnection, batch: list[_Job]
    ) -> list[Outcome] | None:
        """The group in one transaction without savepoints; None when a mutation failed
        (everything rolled back)."""
        outcomes: list[Outcome] = []
        tx = conn.transaction()
        await tx.start()
        try:
            start = 0
            while start < len(batch):
                first = batch[start].fn
                kind = type(first) if isinstance(first, CombinablePgMutation) else None
                end = start + 1
                if kind is not None:
                    while end < len(batch) and type(batch[end].fn) is kind:
                        end += 1
                run = batch[start:end]
                values: Sequence[Any]
                if kind is None or len(run) < 2:
                    values = [await job.fn(conn) for job in run]
                else:
                    values = await kind.combine(conn, [job.fn for job in run])
                outcomes.extend(Outcome(ok=True, value=v) for v in values)
                start = end
            await tx.commit()
        except BaseException as exc:
            await _rollback(conn, tx)
            if _retryable(exc):
                raise _GroupAborted from exc
            if connection_lost(exc) or not isinstance(exc, Exception):
                raise
            if len(batch) == 1:  # alone in its transaction: nothing to run again
                return [Outcome(ok=False, value=_as_write_error(exc))]
            return None
        return outcomes

    async def _run_with_savepoints(self, conn: PgConnection, batch: list[_Job]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        tx = conn.transaction()
        await tx.start()
        try:
            for job in batch:
                savepoint = conn.transaction()  # nested: a SAVEPOINT
                await savepoint.start()
                try:
                    value = await job.fn(conn)
                except Exception as exc:
                    if _retryable(exc) or connection_lost(exc):
                        raise
                    await savepoint.rollback()
                    outcomes.append(Outcome(ok=False, value=_as_write_error(exc)))
                else:
                    await savepoint.commit()
                    outcomes.append(Outcome(ok=True, value=value))
            await tx.commit()
        except BaseException as exc:
            await _rollback(conn, tx)
            if _retryable(exc):
                raise _GroupAborted from exc
            raise
        return outcomes

    def _record(self, batch: list[_Job], outcomes: list[Outcome], elapsed: float) -> None:
        failed = sum(1 for o in outcomes if not o.ok and not o.skipped)
        self.metrics.record(len(batch), failed, elapsed)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _RETRYABLE


def connection_lost(exc: BaseException) -> bool:
    """The connection broke: a client-side failure, or the server ending the session
    (SQLSTATE class 08, connection exception; 57P, the server shutting down or an
    administrator terminating it)."""
    if isinstance(exc, BROKEN):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state.startswith(("08", "57P"))


async def _rollback(conn: PgConnection, tx: Any) -> None:
    """Roll the transaction back; a connection that cannot is dropped (the next group
    opens a new one)."""
    try:
        await tx.rollback()
    except Exception:
        conn.terminate()


def _as_write_error(exc: BaseException) -> BaseException:
    """PostgreSQL's own failures become WriteFailedError; the mutation's errors pass through."""
    if isinstance(exc, StoreError):
        return exc
    if (not_found := unstorable_lookup(exc)) is not None:
        return not_found
    if isinstance(exc, asyncpg.PostgresError) or connection_lost(exc):
        state = getattr(exc, "sqlstate", None)
        where = f" (SQLSTATE {state})" if state else ""
        err = WriteFailedError(
            f"PostgreSQL refused the write{where}: {exc}; this write was not stored, "
            "earlier ones are intact"
        )
        err.__cause__ = exc
        return err
    return exc

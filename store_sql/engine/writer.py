"""The single writer: one connection, one queue, group commit.

Every mutation in store_sql is a plain function `fn(connection) -> result` submitted here.
One asyncio task drains the queue; everything queued at that moment runs on the writer's
thread as ONE `BEGIN IMMEDIATE ... COMMIT`, each mutation inside its own SAVEPOINT so a
failing one is rolled back alone and reports its own exception. One thread hop per batch,
not per statement, is what makes 100 concurrent producers cheap (docs/GUARANTEES.md).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from store_sql.engine.group_commit import GroupCommitMetrics, Outcome, settle
from store_sql.engine.lookups import lone_surrogate_lookup
from store_sql.engine.pragmas import EngineSettings
from store_sql.engine.thread_conn import ThreadConnection
from store_sql.engine.wal import WalPacer, WalUpkeep, checkpoint_truncate, wal_path
from store_sql.errors import StoreClosedError, WriteFailedError

T = TypeVar("T")
Mutation = Callable[[sqlite3.Connection], Any]

PREEMPT_CHECK_OPS = 100
"""SQLite virtual-machine steps between two looks at the queue while a preemptible upkeep
job runs: a caller's write then waits for at most this many steps of it, and a rollback."""


class UpkeepPreemptedError(Exception):
    """A preemptible upkeep job gave way to a caller's write: it was rolled back whole, and
    its owner tries again later."""


class CombinableMutation(abc.ABC):
    """A mutation whose consecutive neighbours of the same class can run as one.

    `combine(conn, mutations)` must have the same effect and results as calling the
    mutations one after another, only cheaper (transcript appends look their transcripts up
    in bulk). Any error makes the writer rerun them one by one in savepoints, so each caller
    still gets its own outcome; like every mutation, they must be pure functions of the
    database."""

    __slots__ = ()

    @abc.abstractmethod
    def __call__(self, conn: sqlite3.Connection) -> Any: ...

    @classmethod
    @abc.abstractmethod
    def combine(cls, conn: sqlite3.Connection, mutations: Sequence[Any]) -> Sequence[Any]: ...


@dataclass(slots=True)
class _Job:
    fn: Mutation
    future: asyncio.Future[Any]
    background: bool = False
    preemptible: bool = False
    # Set from the loop when the caller gives up; read by the writer thread before it starts
    # the job. A plain attribute rather than future.cancelled(), which is not thread-safe:
    # one store of a bool is atomic under the GIL, and a threading.Event per job cost more
    # than the rest of queueing it (tools/bench concurrent appends).
    abandoned: bool = False


@dataclass(slots=True)
class WriterMetrics(GroupCommitMetrics):
    """The group counters, and SQLite's own: the store's upkeep writes, the WAL's size,
    syncs and checkpoints, and upkeep that gave way to a caller."""

    background_mutations: int = 0
    checkpoints: int = 0
    wal_bytes: int = 0
    max_wal_bytes: int = 0
    wal_syncs: int = 0
    background_checkpoints: int = 0
    preempted_upkeep: int = 0


class Writer:
    """Owns the only write connection; `submit` is the only way to change the database."""

    def __init__(
        self, conn: ThreadConnection, db_path: str | os.PathLike[str], settings: EngineSettings
    ) -> None:
        self._conn = conn
        self._settings = settings
        self._queue: list[_Job] = []
        self._running = False
        self._last_done = time.monotonic()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._wal = WalPacer(wal_path(db_path), settings)
        self._upkeep = WalUpkeep(db_path, settings)
        # One thread for the WAL's fsyncs and checkpoints, never the writer's: a write
        # queued meanwhile starts at once.
        self._upkeep_thread = ThreadPoolExecutor(1, thread_name_prefix="store_sql.wal")
        self._upkeep_running: asyncio.Future[None] | None = None
        self._upkeep_timer: asyncio.TimerHandle | None = None
        self.metrics = WriterMetrics()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="store_sql.writer")

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def idle_for(self) -> float:
        """Seconds since the last group with a caller's write finished (the store's own
        upkeep does not count), or 0.0 while a write is queued or running."""
        if self._queue or self._running:
            return 0.0
        return time.monotonic() - self._last_done

    def callers_waiting(self) -> bool:
        """Whether a write is queued behind the running group. Safe to call from the
        writer's thread: reading a list's length is atomic. Upkeep (the indexer) queues one
        job at a time and is running when it asks, so a queued job is a caller's."""
        return bool(self._queue)

    async def submit(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        background: bool = False,
        preemptible: bool = False,
    ) -> T:
        """Run `fn` inside the next group transaction and return its result.

        `background` marks the store's own upkeep (the full-text indexer): counted apart in
        the metrics, so `mutations` counts callers' writes only. `preemptible` upkeep
        running alone is aborted and rolled back as soon as a caller's write is queued,
        and raises UpkeepPreemptedError: no caller ever waits for it.

        If the caller is cancelled before the batch starts, the mutation is skipped; once it
        started it completes or rolls back as a whole (its savepoint), never half-applied."""
        if self._closing:
            raise StoreClosedError("the store is closed; writes are no longer accepted")
        job = _Job(fn, asyncio.get_running_loop().create_future(), background or preemptible)
        job.preemptible = preemptible
        self._queue.append(job)
        self._wake.set()
        try:
            # Cancelling the caller cancels job.future; the writer then skips the job if it
            # has not started, and drops the outcome if it has (the savepoint made it whole).
            return await job.future  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            job.abandoned = True
            raise

    async def close(self) -> None:
        """Stop accepting writes, commit everything already queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._upkeep_timer is not None:
            self._upkeep_timer.cancel()
        if self._upkeep_running is not None:
            with contextlib.suppress(Exception):
                await self._upkeep_running
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._upkeep_thread, self._upkeep.close)
        self._upkeep_thread.shutdown()
        # Waiting at most checkpoint_wait_ms: another process holding the lock must not
        # cost a closing store one more busy_timeout (a WAL left behind is replayed later).
        with contextlib.suppress(sqlite3.Error):
            await self._conn.run(lambda c: checkpoint_truncate(c, self._settings))
        await self._conn.close()

    async def _drain(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                self._start_upkeep()
                await self._wake.wait()
                continue
            batch = self._queue[: self._settings.max_batch]
            del self._queue[: len(batch)]
            self._running = True
            loop = asyncio.get_running_loop()
            try:
                outcomes = await self._conn.run(
                    functools.partial(self._apply_and_tell, batch=batch, loop=loop)
                )
            except BaseException as exc:  # the thread itself failed: every job learns it
                for job in batch:
                    settle(job.future, Outcome(ok=False, value=_as_write_error(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            finally:
                self._running = False
                now = time.monotonic()
                self._upkeep.committed(now)
                if not all(job.background for job in batch):
                    self._last_done = now
            _settle_all(batch, outcomes)  # those the thread could not tell already
            self._start_upkeep()

    def _start_upkeep(self) -> None:
        """Hand a due fsync or checkpoint to the upkeep thread, or set a timer for the next
        one. Never waits: the writer goes on while the thread works."""
        if self._upkeep_running is not None:
            return  # its end wakes the writer, which looks again
        now = time.monotonic()
        due = self._upkeep.due_in(now)
        if due is None:
            return
        loop = asyncio.get_running_loop()
        if due > 0:
            if self._upkeep_timer is None:
                # One timer per stretch of commits, not one per group: it wakes the writer
                # when the oldest commit waiting for upkeep is due.
                self._upkeep_timer = loop.call_later(due, self._upkeep_timer_fired)
            return
        sync, checkpoint = self._upkeep.take_due(now)
        running = loop.run_in_executor(self._upkeep_thread, self._upkeep.run, sync, checkpoint)
        self._upkeep_running = running
        running.add_done_callback(self._upkeep_done)

    def _upkeep_timer_fired(self) -> None:
        self._upkeep_timer = None
        self._wake.set()

    def _upkeep_done(self, running: asyncio.Future[None]) -> None:
        self._upkeep_running = None
        if not running.cancelled() and running.exception() is None:
            self.metrics.wal_syncs = self._upkeep.syncs
            self.metrics.background_checkpoints = self._upkeep.checkpoints
        self._wake.set()

    # --- everything below runs on the writer's thread -------------------------------------

    def _apply_and_tell(
        self, conn: sqlite3.Connection, *, batch: list[_Job], loop: asyncio.AbstractEventLoop
    ) -> list[Outcome]:
        outcomes = self._apply(conn, batch=batch)
        # The callers learn their outcomes in the loop's next turn, straight from here, not
        # a turn later through the writer's task; a caller that writes again at once finds
        # the writer still marked running, queues, and the writer's task (resuming in that
        # same turn) takes its write without waiting to be woken.
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
            loop.call_soon_threadsafe(_settle_all, batch, outcomes)
        return outcomes

    def _apply(self, conn: sqlite3.Connection, *, batch: list[_Job]) -> list[Outcome]:
        # The store's own upkeep (indexing steps) waits at most checkpoint_wait_ms for
        # another process's write lock, not busy_timeout: a caller's write queued behind it
        # would otherwise wait one busy_timeout for the step and another for itself. The
        # step is simply tried again after the next write.
        upkeep_only = all(job.background for job in batch)
        if upkeep_only:
            wait = min(self._settings.checkpoint_wait_ms, self._settings.busy_timeout_ms)
            conn.execute(f"PRAGMA busy_timeout = {int(wait)}")
        try:
            return self._apply_batch(conn, batch)
        finally:
            if upkeep_only:
                conn.execute(f"PRAGMA busy_timeout = {int(self._settings.busy_timeout_ms)}")

    def _apply_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        started = time.perf_counter()
        try:
            if len(batch) == 1:
                # Alone in its transaction, a mutation needs no savepoint of its own.
                outcomes = [self._apply_alone(conn, batch[0])]
            else:
                outcomes = self._apply_together(conn, batch)
        except sqlite3.Error:
            # BEGIN or COMMIT failed (disk full, I/O error, lock wait): nothing of the batch is
            # in the database. Retry each mutation alone so only the ones that cannot be
            # written report an error, to their own callers.
            _rollback_quietly(conn)
            self.metrics.batch_retries += 1
            outcomes = [self._apply_alone(conn, job) for job in batch]
        elapsed = time.perf_counter() - started
        self._record(batch, outcomes, elapsed)
        # The batch is committed (or rolled back) by now: a checkpoint that fails here (disk
        # full while the database file grows, an I/O error) must not turn the outcomes of an
        # already committed batch into failures.
        with contextlib.suppress(sqlite3.Error):
            self._wal.pace(conn, self.metrics)
        return outcomes

    def _apply_together(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            # BEGIN failing means nothing ran, usually because another process held the
            # write lock past busy_timeout. Every job of the batch gets this error: retrying
            # each alone would wait busy_timeout once more per job.
            return [
                Outcome(ok=False, value=_as_write_error(exc), skipped=j.abandoned) for j in batch
            ]
        optimistic = self._run_optimistically(conn, batch)
        if optimistic is not None:
            conn.execute("COMMIT")
            return optimistic
        # A mutation failed: the whole group was rolled back; run it again, each mutation in
        # its own savepoint, so only the failing one is undone.
        self.metrics.savepoint_reruns += 1
        conn.execute("BEGIN IMMEDIATE")
        outcomes: list[Outcome] = []
        for job in batch:
            if job.abandoned:
                outcomes.append(Outcome(ok=False, skipped=True))
                continue
            conn.execute("SAVEPOINT job")
            try:
                value = job.fn(conn)
            # BaseException, not Exception: a mutation raising e.g. SystemExit or a custom
            # BaseException escaped with the transaction open, killed the writer task, and
            # every later write waited forever. Now it is rolled back and its caller alone
            # gets it (tests/test_engine.py).
            except BaseException as exc:
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (some I/O errors do): the
                    # earlier jobs of this batch are gone too, so start over one by one.
                    raise sqlite3.OperationalError(f"transaction lost: {exc}") from exc
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append(Outcome(ok=False, value=_as_write_error(exc)))
            else:
                conn.execute("RELEASE job")
                outcomes.append(Outcome(ok=True, value=value))
        conn.execute("COMMIT")
        return outcomes

    def _run_optimistically(
        self, conn: sqlite3.Connection, batch: list[_Job]
    ) -> list[Outcome] | None:
        """Run the group with no savepoints; None (transaction rolled back) if one failed.

        A savepoint per mutation costs two statements and makes SQLite journal every page the
        mutation touches a second time: measured, it was 40% of an append's writer time.
        Mutations rarely fail (arguments are checked before they are queued), so the group
        first runs without them; a failure costs a rerun of the group with savepoints, which
        is why mutations must be pure functions of the database (docs/GUARANTEES.md).

        Consecutive `CombinableMutation`s of one class run through their `combine`. A
        failure reruns them one by one like any other, so each caller still gets its own
        outcome."""
        outcomes: list[Outcome] = []
        start = 0
        while start < len(batch):
            first = batch[start].fn
            kind = type(first) if isinstance(first, CombinableMutation) else None
            end = start + 1
            if kind is not None:
                while end < len(batch) and type(batch[end].fn) is kind:
                    end += 1
            run = [job for job in batch[start:end] if not job.abandoned]
            try:
                values: Sequence[Any]
                if kind is None or len(run) < 2:
                    values = [job.fn(conn) for job in run]
                else:
                    values = kind.combine(conn, [job.fn for job in run])
            except BaseException:
                _rollback_quietly(conn)
                return None
            done = iter(values)
            for job in batch[start:end]:
                if job.abandoned:
                    outcomes.append(Outcome(ok=False, skipped=True))
                else:
                    outcomes.append(Outcome(ok=True, value=next(done)))
            start = end
        return outcomes

    def _apply_alone(self, conn: sqlite3.Connection, job: _Job) -> Outcome:
        if job.abandoned:
            return Outcome(ok=False, skipped=True)
        if job.preemptible:
            # SQLite calls this every PREEMPT_CHECK_OPS steps of any statement, COMMIT's
            # index flush and merges included; a true return aborts the statement and the
            # job is rolled back below. Reading the list's length is atomic.
            conn.set_progress_handler(self.callers_waiting, PREEMPT_CHECK_OPS)
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
                value = job.fn(conn)
                conn.execute("COMMIT")
            finally:
                if job.preemptible:
                    conn.set_progress_handler(None, 0)
        except BaseException as exc:  # as in _apply_together: never leave the writer dead
            _rollback_quietly(conn)
            if job.preemptible and getattr(exc, "sqlite_errorname", None) == "SQLITE_INTERRUPT":
                self.metrics.preempted_upkeep += 1
                return Outcome(ok=False, value=UpkeepPreemptedError("a caller's write came first"))
            return Outcome(ok=False, value=_as_write_error(exc))
        return Outcome(ok=True, value=value)

    def _record(self, batch: list[_Job], outcomes: list[Outcome], elapsed: float) -> None:
        upkeep = sum(1 for job in batch if job.background)
        failed = sum(1 for o in outcomes if not o.ok and not o.skipped)
        self.metrics.record(len(batch), failed, elapsed, background=upkeep)
        self.metrics.background_mutations += upkeep


def _settle_all(batch: list[_Job], outcomes: list[Outcome]) -> None:
    for job, outcome in zip(batch, outcomes, strict=True):
        settle(job.future, outcome)


# What to tell a caller, by SQLite's primary result code (sqlite3.Error.sqlite_errorname).
# The Python messages alone ("disk I/O error", "database is locked") do not say what to do.
_ADVICE = {
    "SQLITE_BUSY": (
        "another connection held the write lock longer than busy_timeout; store_sql supports "
        "one writing process per database (docs/GUARANTEES.md)"
    ),
    "SQLITE_FULL": "the disk is full; free space and retry",
    "SQLITE_IOERR": (
        "writing the database files failed (disk full, a file-size limit, or failing storage)"
    ),
    "SQLITE_READONLY": "the database file or its directory is not writable",
}


def _as_write_error(exc: BaseException) -> BaseException:
    """SQLite's own failures become WriteFailedError; the mutation's errors pass through."""
    if (not_found := lone_surrogate_lookup(exc)) is not None:
        return not_found
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None) or ""
        advice = _ADVICE.get("_".join(name.split("_")[:2]))  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
        detail = f"SQLite refused the write: {exc}"
        if advice is not None:
            detail += f" ({name}: {advice}; this write was not stored, earlier ones are intact)"
        err = WriteFailedError(detail)
        err.__cause__ = exc
        return err
    return exc


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")

"""The engine: one writer with group commit and savepoints, a read-only reader pool.

Every test runs against a real database file; mutations are plain functions run on the
writer thread, exactly as the store's own modules submit them."""

from __future__ import annotations

import asyncio
import inspect
import os
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from store_sql import Store
from store_sql.engine.pragmas import EngineSettings
from store_sql.errors import StoreClosedError, WriteFailedError


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Store]:
    """A store with a scratch table `t(k PRIMARY KEY, v)` for the engine's own tests."""
    store = await Store.open(tmp_path / "engine.sqlite")
    await store.write(lambda c: c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
    try:
        yield store
    finally:
        await store.close()


def insert(k: int, v: str = "x") -> Callable[[sqlite3.Connection], int]:
    def fn(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, v))
        return k

    return fn


async def keys(store: Store) -> list[int]:
    return await store.read(lambda c: [r[0] for r in c.execute("SELECT k FROM t ORDER BY k")])


class WriterGate:
    """Holds the writer thread inside a mutation until released, to line jobs up behind it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entered = threading.Event()
        self.release = threading.Event()
        self.task: asyncio.Task[Any] | None = None

    def _hold(self, conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (k, v) VALUES (-1, 'gate')")
        self.entered.set()
        if not self.release.wait(10):
            raise TimeoutError("the test never released the writer")
        return "gate"

    async def __aenter__(self) -> WriterGate:
        self.task = asyncio.create_task(self.store.write(self._hold))
        assert await asyncio.to_thread(self.entered.wait, 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self.task is not None
        await self.task


async def wait_queued(store: Store, depth: int) -> None:
    for _ in range(1000):
        if store.metrics()["queue_depth"] >= depth:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"queue never reached depth {depth}: {store.metrics()}")


# --- group commit ----------------------------------------------------------------------------


async def test_concurrent_writes_are_committed_in_few_batches(db: Store) -> None:
    before = db.metrics()
    results = await asyncio.gather(*(db.write(insert(k)) for k in range(500)))
    after = db.metrics()
    assert results == list(range(500))
    assert await keys(db) == list(range(500))
    mutations = after["mutations"] - before["mutations"]
    batches = after["batches"] - before["batches"]
    assert mutations == 500
    assert batches <= 10, f"500 concurrent writes took {batches} transactions"
    assert after["largest_batch"] >= 50


async def test_a_failing_mutation_is_rolled_back_alone_and_only_its_caller_sees_it(
    db: Store,
) -> None:
    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k, v) VALUES (2, 'half')")
        raise ValueError("mutation 2 changed its mind")

    async with WriterGate(db):
        first = asyncio.create_task(db.write(insert(1)))
        failing = asyncio.create_task(db.write(insert_then_fail))
        duplicate = asyncio.create_task(db.write(insert(1, "again")))  # IntegrityError
        third = asyncio.create_task(db.write(insert(3)))
        await wait_queued(db, 4)
    done = await asyncio.gather(first, failing, duplicate, third, return_exceptions=True)
    assert db.metrics()["last_batch_size"] == 4, "the four jobs were meant to share a batch"
    assert done[0] == 1
    assert isinstance(done[1], ValueError)
    assert str(done[1]) == "mutation 2 changed its mind"
    assert isinstance(done[2], WriteFailedError)
    assert isinstance(done[2].__cause__, sqlite3.IntegrityError)
    assert done[3] == 3
    rows = await db.read(lambda c: c.execute("SELECT k, v FROM t ORDER BY k").fetchall())
    assert rows == [(-1, "gate"), (1, "x"), (3, "x")]
    assert db.metrics()["failed_mutations"] == 2


class Abort(BaseException):
    """Not an Exception: the writer must survive it all the same."""


async def test_a_mutation_raising_a_base_exception_fails_alone_and_the_writer_goes_on(
    db: Store,
) -> None:
    def abort(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k, v) VALUES (5, 'aborted')")
        raise Abort("stop here")

    with pytest.raises(Abort):
        await db.write(abort)  # alone in its transaction
    async with WriterGate(db):  # and inside a batch
        jobs = [asyncio.create_task(db.write(fn)) for fn in (insert(1), abort, insert(2))]
        await wait_queued(db, 3)
    done = await asyncio.gather(*jobs, return_exceptions=True)
    assert done[0] == 1
    assert isinstance(done[1], Abort)
    assert done[2] == 2
    assert await asyncio.wait_for(db.write(insert(3)), timeout=10) == 3
    assert await keys(db) == [-1, 1, 2, 3]


async def test_a_caller_cancelled_before_its_batch_starts_leaves_nothing(db: Store) -> None:
    ran = threading.Event()

    def never(conn: sqlite3.Connection) -> None:
        ran.set()
        conn.execute("INSERT INTO t (k, v) VALUES (7, 'cancelled')")

    async with WriterGate(db):
        doomed = asyncio.create_task(db.write(never))
        kept = asyncio.create_task(db.write(insert(8)))
        await wait_queued(db, 2)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
    assert await kept == 8
    assert not ran.is_set()
    assert await keys(db) == [-1, 8]


@pytest.mark.parametrize("fails_at_the_end", [False, True])
async def test_a_caller_cancelled_mid_flight_leaves_all_or_nothing(
    db: Store, fails_at_the_end: bool
) -> None:
    inside = threading.Event()
    go_on = threading.Event()

    def two_rows(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k, v) VALUES (10, 'first half')")
        inside.set()
        assert go_on.wait(10)
        conn.execute("INSERT INTO t (k, v) VALUES (11, 'second half')")
        if fails_at_the_end:
            raise RuntimeError("failed after both inserts")

    task = asyncio.create_task(db.write(two_rows))
    assert await asyncio.to_thread(inside.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    go_on.set()
    await db.write(insert(12))  # the writer has finished the cancelled job by now
    assert await keys(db) == ([12] if fails_at_the_end else [10, 11, 12])


# --- readers -----------------------------------------------------------------------------------


async def test_reads_run_on_a_snapshot_while_a_long_write_is_open(db: Store) -> None:
    await db.write(insert(1))
    async with WriterGate(db) as gate:
        # The writer holds an open transaction with row -1 in it; reads are not blocked
        # and see the last committed state.
        assert await asyncio.wait_for(keys(db), timeout=5) == [1]
        assert not gate.release.is_set()
    assert await keys(db) == [-1, 1]


async def test_readers_cannot_write(db: Store) -> None:
    assert await db.read(lambda c: c.execute("PRAGMA query_only").fetchone()[0]) == 1
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|query_only"):
        await db.read(lambda c: c.execute("INSERT INTO t (k, v) VALUES (1, 'no')"))
    with pytest.raises(sqlite3.OperationalError):
        await db.read(lambda c: c.execute("CREATE TABLE nope (x)"))
    assert await keys(db) == []


async def test_reads_run_concurrently_on_the_pool(db: Store) -> None:
    inside = 0
    most = 0
    lock = threading.Lock()

    def slow_read(conn: sqlite3.Connection) -> int:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        with lock:
            inside -= 1
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

    assert await asyncio.gather(*(db.read(slow_read) for _ in range(8))) == [0] * 8
    assert most >= 2, "reads were serialised"


# --- life cycle ------------------------------------------------------------------------------


async def test_close_commits_every_queued_write(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "drain.sqlite")
    await store.write(lambda c: c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
    pending = [asyncio.create_task(store.write(insert(k))) for k in range(200)]
    await asyncio.sleep(0)  # the tasks have submitted; none is committed yet
    await store.close()
    assert [task.result() for task in pending] == list(range(200))
    reopened = await Store.open(tmp_path / "drain.sqlite")
    try:
        assert await keys(reopened) == list(range(200))
    finally:
        await reopened.close()


async def test_writes_and_reads_after_close_raise_store_closed(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "closed.sqlite")
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreClosedError):
        await store.write(lambda c: None)
    with pytest.raises(StoreClosedError):
        await store.read(lambda c: None)
    with pytest.raises(StoreClosedError):
        await store.sessions.patch("main", "k", {"sessionId": "s", "updatedAt": 1})


async def test_sqlite_work_never_runs_on_the_event_loop_thread(db: Store) -> None:
    loop_thread = threading.get_ident()

    def where(conn: sqlite3.Connection) -> int:
        conn.execute("SELECT count(*) FROM t").fetchone()
        return threading.get_ident()

    threads = await asyncio.gather(*(db.write(where) for _ in range(20)))
    threads += await asyncio.gather(*(db.read(where) for _ in range(20)))
    assert loop_thread not in threads


async def loop_lag_during_writes(db: Store, first_key: int, count: int) -> float:
    """The longest the loop was late for a 2 ms tick while `count` writes were in flight."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.002)
            lags.append(time.perf_counter() - start - 0.002)

    def heavier(k: int) -> Callable[[sqlite3.Connection], int]:
        def fn(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, "v" * 2000))
            conn.execute("SELECT count(*) FROM t").fetchone()
            return k

        return fn

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    # All writes in flight together, submitted 100 per loop turn: creating 2,000 tasks in
    # one turn would itself stall the loop, which measures the test, not the engine.
    keys_ = range(first_key, first_key + count)
    writes: list[asyncio.Task[int]] = []
    for start in range(0, count, 100):
        writes += [asyncio.create_task(db.write(heavier(k))) for k in keys_[start : start + 100]]
        await asyncio.sleep(0)
    reads = [
        asyncio.create_task(db.read(lambda c: c.execute("SELECT sum(k) FROM t").fetchone()))
        for _ in range(200)
    ]
    assert await asyncio.gather(*writes) == list(keys_)
    await asyncio.gather(*reads)
    stop.set()
    await tick
    assert lags, "the ticker never ran"
    return max(lags)


async def test_the_event_loop_is_never_blocked(db: Store) -> None:
    # Generous: a behaviour test, not a benchmark (a few ms on an idle machine; SQLite work
    # on the loop would stall it for whole transactions). Best of three runs, so a machine
    # busy with other work (the OS parking the process) does not fail it.
    lags = []
    for attempt in range(3):
        lags.append(await loop_lag_during_writes(db, attempt * 2000, 2000))
        if lags[-1] < 0.2:
            break
    assert min(lags) < 0.2, f"the loop stalled for {[round(lag * 1000) for lag in lags]} ms"
    assert len(await keys(db)) == 2000 * len(lags)


async def test_the_wal_is_truncated_once_past_its_bound(tmp_path: Path) -> None:
    settings = EngineSettings(wal_truncate_bytes=256 * 1024)
    store = await Store.open(tmp_path / "wal.sqlite", settings=settings)
    try:
        await store.write(lambda c: c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
        for start in range(0, 400, 20):
            await asyncio.gather(
                *(store.write(insert(k, "w" * 4000)) for k in range(start, start + 20))
            )
        metrics = store.metrics()
        assert metrics["checkpoints"] >= 1
        assert metrics["max_wal_bytes"] >= 256 * 1024
        assert metrics["wal_bytes"] < 2 * 256 * 1024
    finally:
        await store.close()


# --- guards ----------------------------------------------------------------------------------


async def test_aiosqlite_private_api_the_engine_relies_on_is_there(tmp_path: Path) -> None:
    # thread_conn.ThreadConnection runs whole functions on aiosqlite's thread through
    # Connection._execute(fn, *args) and hands them Connection._conn: pinned, so guarded.
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)
    params = list(inspect.signature(aiosqlite.Connection._execute).parameters)
    assert params[:2] == ["self", "fn"]
    conn = await aiosqlite.connect(str(tmp_path / "guard.sqlite"))
    try:
        raw = conn._conn
        assert isinstance(raw, sqlite3.Connection)
        thread_of_call = await conn._execute(lambda c: (c is raw, threading.get_ident()), raw)
        assert thread_of_call[0] is True
        assert thread_of_call[1] != threading.get_ident()
    finally:
        await conn.close()


async def test_database_and_sidecar_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "private.sqlite"
    old_umask = os.umask(0o022)  # a permissive umask must not widen the files
    try:
        store = await Store.open(path)
    finally:
        os.umask(old_umask)
    try:
        await store.sessions.patch("main", "k", {"sessionId": "s", "updatedAt": 1})
        await store.sessions.get("main", "k")
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert name.exists(), name
            assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    finally:
        await store.close()


async def test_metrics_report_queue_batches_times_wal_and_readers(db: Store) -> None:
    await db.write(insert(1))
    await keys(db)
    metrics = db.metrics()
    expected = {
        "queue_depth",
        "batches",
        "mutations",
        "failed_mutations",
        "mean_batch_size",
        "largest_batch",
        "last_batch_size",
        "mean_txn_ms",
        "max_txn_ms",
        "checkpoints",
        "wal_bytes",
        "max_wal_bytes",
        "batch_retries",
        "readers",
        "readers_busy",
        "reads",
    }
    assert expected <= set(metrics)
    assert metrics["queue_depth"] == 0
    assert metrics["batches"] >= 2
    assert metrics["mutations"] >= 2
    assert metrics["readers"] == 4
    assert metrics["readers_busy"] == 0
    assert metrics["reads"] >= 1
    assert metrics["mean_txn_ms"] > 0
    assert metrics["max_txn_ms"] >= metrics["mean_txn_ms"]
    assert metrics["wal_bytes"] > 0


async def test_a_preemptible_upkeep_job_gives_way_to_a_callers_write(db: Store) -> None:
    # The full-text indexer's quiet-period steps are preemptible: a caller's write queued
    # while one runs aborts it mid-statement, the step is rolled back whole, and the write
    # runs next (search/indexer.py).
    from store_sql.engine.writer import UpkeepPreemptedError

    started = threading.Event()

    def long_upkeep(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (k, v) VALUES (-2, 'upkeep')")
        started.set()
        # Far longer than any test: only the preemption can end it.
        return int(
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                "WHERE i < 10000000000) SELECT count(*) FROM n"
            ).fetchone()[0]
        )

    upkeep = asyncio.create_task(db._writer.submit(long_upkeep, preemptible=True))
    assert await asyncio.to_thread(started.wait, 10)
    assert await db.write(insert(1)) == 1
    with pytest.raises(UpkeepPreemptedError):
        await upkeep
    assert await keys(db) == [1]  # nothing of the preempted job, all of the write
    assert db.metrics()["preempted_upkeep"] == 1
    # The same job not marked preemptible is a plain mutation: it commits.
    assert await db._writer.submit(insert(2), background=True) == 2
    assert await keys(db) == [1, 2]


async def test_commits_reach_the_database_file_through_background_checkpoints(
    tmp_path: Path,
) -> None:
    # The upkeep thread checkpoints checkpoint_interval_s after a commit, without a write
    # waiting for it: the database file alone (no WAL) then holds every committed row.
    settings = EngineSettings(checkpoint_interval_s=0.05, wal_autocheckpoint_pages=100_000)
    db = tmp_path / "ckpt.sqlite"
    async with await Store.open(db, settings=settings, full_text=False) as store:
        await store.write(lambda c: c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
        await asyncio.gather(*(store.write(insert(k, "v" * 2000)) for k in range(200)))
        for _ in range(200):
            if store.metrics()["background_checkpoints"] >= 1:
                break
            await asyncio.sleep(0.05)
        assert store.metrics()["background_checkpoints"] >= 1
        await asyncio.sleep(0.2)  # a later commit's checkpoint, if the first raced a write
        alone = tmp_path / "alone.sqlite"
        alone.write_bytes(db.read_bytes())  # the main file only, as if the WAL were lost
        copy = sqlite3.connect(alone)
        try:
            assert copy.execute("SELECT count(*) FROM t").fetchone()[0] == 200
        finally:
            copy.close()

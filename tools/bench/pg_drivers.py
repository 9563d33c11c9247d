#!/usr/bin/env python3
"""Which PostgreSQL driver for store_sql: one append's round trip and 100 concurrent appenders.

    .venv/bin/pip install -e '.[dev,pg-drivers]'
    .venv/bin/python tools/bench/pg_drivers.py [--quick] [--json]

Each driver runs the same append, the statements a transcript append needs on PostgreSQL
when several processes may write one transcript:

    SELECT next_pos, leaf_id FROM bench_transcripts WHERE id = $1 FOR UPDATE  -- the chain lock
    INSERT INTO bench_lines ... ON CONFLICT (transcript_id, idem) DO NOTHING  -- idempotency
    UPDATE bench_transcripts SET next_pos = ..., leaf_id = ... WHERE id = $3

through store_sql's writer pattern: callers queue appends, one writer runs everything queued
as one transaction (group commit). Drivers:

- `asyncpg`: asyncpg 0.32 on the event loop, one writer task, one connection.
- `psycopg-thread`: psycopg 3 (sync) on one worker thread, one thread hop per group, the
  way the SQLite engine runs sqlite3 (engine/thread_conn.py).
- `sqlalchemy-async`: SQLAlchemy 2.1's async engine over asyncpg, `text()` statements.
- `asyncpg-combined`, `psycopg-thread-combined`: the same, but a group runs three statements
  in all (lock every transcript of the group in id order, one INSERT of unnest()ed arrays,
  one UPDATE), as the SQLite path combines a group's appends; `-binary`: psycopg sends and
  receives the values in PostgreSQL's binary format, as asyncpg always does.
- `asyncpg-pool`: no group commit: each append its own transaction on a pool of 10
  connections, as independent processes would write (the row lock orders them).

Rows: `single` = median µs of one append awaited alone (one transaction); `shared` /
`own` = appends/s with 100 concurrent appenders on one transcript / one each; `group` =
the mean number of appends per transaction in those two. The server is
a throwaway one on a unix socket with fsync on, measured with synchronous_commit on (every
commit flushed, like SQLite's synchronous=FULL) and off (like the store's default NORMAL:
a crash of the server loses nothing, a power cut may lose the last commits). The store on
SQLite (`store_sql`, its real `transcripts.append_message`) is measured in the same run as
the baseline; ratios are store_sql-on-SQLite time / driver time (below 1: slower).
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import pg_server  # noqa: E402

SCHEMA = [
    "DROP TABLE IF EXISTS bench_lines",
    "DROP TABLE IF EXISTS bench_transcripts",
    "CREATE TABLE bench_transcripts (id bigint PRIMARY KEY, next_pos bigint NOT NULL, "
    "leaf_id text)",
    "CREATE TABLE bench_lines (transcript_id bigint NOT NULL REFERENCES bench_transcripts, "
    "pos bigint NOT NULL, entry_id text NOT NULL, line text NOT NULL, idem text, "
    "PRIMARY KEY (transcript_id, pos), UNIQUE (transcript_id, idem))",
]
LOCK = "SELECT next_pos, leaf_id FROM bench_transcripts WHERE id = $1 FOR UPDATE"
INSERT = (
    "INSERT INTO bench_lines VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (transcript_id, idem) DO NOTHING"
)
ADVANCE = "UPDATE bench_transcripts SET next_pos = $1, leaf_id = $2 WHERE id = $3"
LOCK_ALL = (
    "SELECT id, next_pos FROM bench_transcripts WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"
)
INSERT_ALL = (
    "INSERT INTO bench_lines SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], "
    "$4::text[], $5::text[]) ON CONFLICT (transcript_id, idem) DO NOTHING"
)
ADVANCE_ALL = (
    "UPDATE bench_transcripts t SET next_pos = u.pos, leaf_id = u.leaf "
    "FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS u(pos, leaf, id) WHERE t.id = u.id"
)
TASKS = 100
LINE = json.dumps({"type": "message", "message": {"role": "user", "content": "x" * 200}})

Append = tuple[int, str]  # transcript id, idempotency key


def _psql(sql: str) -> str:
    """asyncpg's $n placeholders as psycopg's %s."""
    for n in range(5, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


def _sa(sql: str) -> str:
    for n in range(5, 0, -1):
        sql = sql.replace(f"${n}", f":p{n}")
    return sql


def _columns(
    items: list[Append], next_pos: dict[int, int]
) -> tuple[list[list[Any]], list[list[Any]]]:
    """The group's lines as columns (for unnest) and each transcript's new leaf."""
    lines: list[list[Any]] = [[], [], [], [], []]
    leaves: dict[int, tuple[int, str]] = {}
    for transcript, key in items:
        pos = next_pos[transcript]
        next_pos[transcript] = pos + 1
        for column, value in zip(lines, (transcript, pos, key[-8:], LINE, key), strict=True):
            column.append(value)
        leaves[transcript] = (pos + 1, key[-8:])
    advance = [[p for p, _ in leaves.values()], [e for _, e in leaves.values()], list(leaves)]
    return lines, advance


class GroupWriter:
    """Callers queue appends; one task runs all that are queued as one transaction."""

    def __init__(self, run_group: Callable[[list[Append]], Awaitable[None]]) -> None:
        self._run_group = run_group
        self._queue: list[tuple[Append, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._drain())
        self.groups = 0
        self.appends = 0

    async def append(self, item: Append) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wake.set()
        await future

    async def _drain(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._queue = self._queue[:512], self._queue[512:]
            try:
                await self._run_group([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.groups += 1
            self.appends += len(batch)
            for _, future in batch:
                future.set_result(None)

    async def close(self) -> None:
        self._task.cancel()


async def asyncpg_writer(url: str, sync_commit: str) -> tuple[GroupWriter, Callable[[], Any]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute(f"SET synchronous_commit = {sync_commit}")

    async def run_group(items: list[Append]) -> None:
        async with conn.transaction():
            for transcript, key in items:
                pos, _leaf = await conn.fetchrow(LOCK, transcript)
                entry = key[-8:]
                await conn.execute(INSERT, transcript, pos, entry, LINE, key)
                await conn.execute(ADVANCE, pos + 1, entry, transcript)

    return GroupWriter(run_group), conn.close


async def asyncpg_combined_writer(
    url: str, sync_commit: str
) -> tuple[GroupWriter, Callable[[], Any]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute(f"SET synchronous_commit = {sync_commit}")

    async def run_group(items: list[Append]) -> None:
        async with conn.transaction():
            ids = sorted({t for t, _ in items})
            next_pos = {r[0]: r[1] for r in await conn.fetch(LOCK_ALL, ids)}
            lines, advance = _columns(items, next_pos)
            await conn.execute(INSERT_ALL, *lines)
            await conn.execute(ADVANCE_ALL, *advance)

    return GroupWriter(run_group), conn.close


async def _psycopg_thread_writer(
    url: str, sync_commit: str, apply: Callable[[Any, list[Append]], None]
) -> tuple[GroupWriter, Callable[[], Any]]:
    """psycopg 3 (sync) on one worker thread: `apply(conn, group)` runs there, one thread hop
    per group."""
    import psycopg

    pool = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    conn = await loop.run_in_executor(pool, lambda: psycopg.connect(url, autocommit=True))
    await loop.run_in_executor(pool, conn.execute, f"SET synchronous_commit = {sync_commit}")

    async def run_group(items: list[Append]) -> None:
        await loop.run_in_executor(pool, apply, conn, items)

    async def close() -> None:
        await loop.run_in_executor(pool, conn.close)
        pool.shutdown()

    return GroupWriter(run_group), close


async def psycopg_combined_writer(
    url: str, sync_commit: str, *, binary: bool = False
) -> tuple[GroupWriter, Callable[[], Any]]:
    lock, insert, advance_sql = _psql(LOCK_ALL), _psql(INSERT_ALL), _psql(ADVANCE_ALL)

    def apply(conn: Any, items: list[Append]) -> None:
        with conn.transaction():
            ids = sorted({t for t, _ in items})
            rows = conn.execute(lock, (ids,), binary=binary).fetchall()
            next_pos = {r[0]: r[1] for r in rows}
            lines, advance = _columns(items, next_pos)
            conn.execute(insert, lines, binary=binary)
            conn.execute(advance_sql, advance, binary=binary)

    return await _psycopg_thread_writer(url, sync_commit, apply)


async def psycopg_writer(url: str, sync_commit: str) -> tuple[GroupWriter, Callable[[], Any]]:
    lock, insert, advance = _psql(LOCK), _psql(INSERT), _psql(ADVANCE)

    def apply(conn: Any, items: list[Append]) -> None:
        with conn.transaction():
            for transcript, key in items:
                row = conn.execute(lock, (transcript,)).fetchone()
                assert row is not None
                pos = row[0]
                entry = key[-8:]
                conn.execute(insert, (transcript, pos, entry, LINE, key))
                conn.execute(advance, (pos + 1, entry, transcript))

    return await _psycopg_thread_writer(url, sync_commit, apply)


async def sqlalchemy_writer(url: str, sync_commit: str) -> tuple[GroupWriter, Callable[[], Any]]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    conn = await engine.connect()
    await conn.execute(text(f"SET synchronous_commit = {sync_commit}"))
    await conn.commit()
    lock, insert, advance = text(_sa(LOCK)), text(_sa(INSERT)), text(_sa(ADVANCE))

    async def run_group(items: list[Append]) -> None:
        async with conn.begin():
            for transcript, key in items:
                row = (await conn.execute(lock, {"p1": transcript})).one()
                pos = row[0]
                entry = key[-8:]
                await conn.execute(
                    insert, {"p1": transcript, "p2": pos, "p3": entry, "p4": LINE, "p5": key}
                )
                await conn.execute(advance, {"p1": pos + 1, "p2": entry, "p3": transcript})

    async def close() -> None:
        await conn.close()
        await engine.dispose()

    return GroupWriter(run_group), close


class PoolWriter:
    """No group commit: each append is its own transaction on a pooled connection."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.groups = 0
        self.appends = 0

    async def append(self, item: Append) -> None:
        transcript, key = item
        async with self._pool.acquire() as conn, conn.transaction():
            pos, _leaf = await conn.fetchrow(LOCK, transcript)
            entry = key[-8:]
            await conn.execute(INSERT, transcript, pos, entry, LINE, key)
            await conn.execute(ADVANCE, pos + 1, entry, transcript)
        self.groups += 1
        self.appends += 1

    async def close(self) -> None:
        pass


async def asyncpg_pool_writer(url: str, sync_commit: str) -> tuple[Any, Callable[[], Any]]:
    import asyncpg

    pool = await asyncpg.create_pool(
        url, min_size=10, max_size=10, server_settings={"synchronous_commit": sync_commit}
    )
    return PoolWriter(pool), pool.close


DRIVERS = {
    "asyncpg": asyncpg_writer,
    "asyncpg-combined": asyncpg_combined_writer,
    "psycopg-thread": psycopg_writer,
    "psycopg-thread-combined": psycopg_combined_writer,
    "psycopg-thread-combined-binary": functools.partial(psycopg_combined_writer, binary=True),
    "sqlalchemy-async": sqlalchemy_writer,
    "asyncpg-pool": asyncpg_pool_writer,
}


async def reset(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for sql in SCHEMA:
            await conn.execute(sql)
        await conn.executemany(
            "INSERT INTO bench_transcripts VALUES ($1, 0, NULL)", [(t,) for t in range(TASKS)]
        )
    finally:
        await conn.close()


async def check_chains(url: str, expected: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        lines = await conn.fetchval("SELECT count(*) FROM bench_lines")
        holes = await conn.fetchval(
            "SELECT count(*) FROM bench_transcripts t WHERE next_pos <> "
            "(SELECT count(*) FROM bench_lines l WHERE l.transcript_id = t.id)"
        )
    finally:
        await conn.close()
    if lines != expected or holes:
        raise AssertionError(f"lost or duplicated appends: {lines} of {expected}, {holes} holes")


async def single(writer: Any, reps: int) -> float:
    times = []
    for i in range(reps):
        started = time.perf_counter()
        await writer.append((0, f"single-{i:08d}"))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


async def concurrent(writer: Any, per_task: int, shared: bool) -> float:
    async def task(t: int) -> None:
        for i in range(per_task):
            await writer.append((0 if shared else t, f"c{t:03d}-{i:06d}-{shared}"))

    started = time.perf_counter()
    await asyncio.gather(*(task(t) for t in range(TASKS)))
    return TASKS * per_task / (time.perf_counter() - started)


async def sqlite_baseline(reps: int, per_task: int) -> dict[str, float]:
    from store_sql import Store

    message = json.loads(LINE)["message"]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with await Store.open(Path(tmp) / "store.sqlite") as store:
            for t in range(TASKS):
                await store.transcripts.create("main", f"s{t:03d}", cwd="/w")
            times = []
            for _ in range(reps):
                started = time.perf_counter()
                await store.transcripts.append_message("main", "s000", message)
                times.append(time.perf_counter() - started)
            out["single"] = statistics.median(times) * 1e6
            for shared in (True, False):

                async def task(t: int, shared: bool = shared) -> None:
                    for _ in range(per_task):
                        sid = "s000" if shared else f"s{t:03d}"
                        await store.transcripts.append_message("main", sid, message)

                started = time.perf_counter()
                await asyncio.gather(*(task(t) for t in range(TASKS)))
                rate = TASKS * per_task / (time.perf_counter() - started)
                out["shared" if shared else "own"] = rate
    return out


async def main(quick: bool) -> list[dict[str, Any]]:
    reps, per_task = (100, 10) if quick else (400, 30)
    rows: list[dict[str, Any]] = []
    base = await sqlite_baseline(reps, per_task)
    rows.append({"driver": "store_sql on SQLite (NORMAL)", **base, "mean_group": None})
    with pg_server.ThrowawayPostgres(durable=True) as server:
        for sync_commit in ("on", "off"):
            for name, make in DRIVERS.items():
                await reset(server.url)
                writer, close = await make(server.url, sync_commit)
                try:
                    result: dict[str, Any] = {"driver": f"{name} (sync_commit={sync_commit})"}
                    result["single"] = await single(writer, reps)
                    writer.groups = writer.appends = 0
                    result["shared"] = await concurrent(writer, per_task, shared=True)
                    result["own"] = await concurrent(writer, per_task, shared=False)
                    result["mean_group"] = writer.appends / max(writer.groups, 1)
                finally:
                    await writer.close()
                    await close()
                await check_chains(server.url, reps + 2 * TASKS * per_task)
                result["single_ratio"] = base["single"] / result["single"]
                result["shared_ratio"] = result["shared"] / base["shared"]
                result["own_ratio"] = result["own"] / base["own"]
                rows.append(result)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'driver':46} {'single µs':>10} {'x':>6} {'shared/s':>9} {'x':>6} "
        f"{'own/s':>9} {'x':>6} {'group':>6}"
    )
    lines = [head]
    for r in rows:
        group = "" if r["mean_group"] is None else f"{r['mean_group']:.1f}"
        lines.append(
            f"{r['driver']:46} {r['single']:10.0f} {r.get('single_ratio', 1):6.2f} "
            f"{r['shared']:9.0f} {r.get('shared_ratio', 1):6.2f} {r['own']:9.0f} "
            f"{r.get('own_ratio', 1):6.2f} {group:>6}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    result = asyncio.run(main(quick="--quick" in sys.argv))
    print(json.dumps(result, indent=1) if "--json" in sys.argv else _table(result))

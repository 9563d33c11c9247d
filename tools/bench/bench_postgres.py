"""The store on PostgreSQL against the same store on SQLite, in the same run.

Metrics (ratio orientation in harness.py: > 1 means PostgreSQL did better; expect < 1: a
statement round trip to a server costs 10-100x a SQLite statement, docs/POSTGRES.md):
- `postgres.sessions_patch`: median µs of one awaited `store.sessions.patch` (the gateway's
  after-turn patch: updatedAt and token counters) of one of 1,000 entries, on PostgreSQL
  over a unix socket vs on a SQLite file, rounds taken in turns. Both at the store's
  default `synchronous="NORMAL"` (`synchronous_commit=off` on PostgreSQL).

The server is `STORE_SQL_TEST_PG` when set, else a throwaway one (tools/pg_server.py) with
fsync on, stopped at the end. Each metric lives in a function of its own, so metrics of
other namespaces join this module as functions beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import Row, bench_dir, error_row, gc_paused, row, run_async

from store_sql import Store

REPO = Path(__file__).resolve().parent.parent.parent
ENTRIES = 1_000


def _pg_server_module() -> Any:
    spec = importlib.util.spec_from_file_location("pg_server", REPO / "tools" / "pg_server.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[str]:
    pg_server = _pg_server_module()
    given = os.environ.get(pg_server.URL_ENV)
    if given:
        yield given
        return
    server = pg_server.ThrowawayPostgres(durable=True)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def _fresh_database(server_url: str) -> str:
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")
    finally:
        await admin.close()
    head, _, query = server_url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def _drop_database(server_url: str, url: str) -> None:
    import asyncpg

    name = url.partition("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


def _entry(i: int) -> dict[str, Any]:
    return {
        "sessionId": f"{uuid.UUID(int=i)}",
        "updatedAt": 1_770_000_000_000 + i,
        "chatType": "direct",
        "deliveryContext": {"channel": "telegram", "to": f"user{i}", "accountId": "default"},
        "origin": {"provider": "telegram", "surface": "telegram", "chatType": "direct"},
        "model": "gpt-5",
        "inputTokens": i,
        "outputTokens": 2 * i,
        "totalTokens": 3 * i,
        "label": f"session {i}",
    }


async def _seed(store: Store) -> None:
    await asyncio.gather(
        *(store.sessions.put("main", f"agent:main:s{i}", _entry(i)) for i in range(ENTRIES))
    )


async def _rounds(
    fns: dict[str, Callable[[int], Awaitable[object]]], calls: int
) -> dict[str, list[float]]:
    """Per-call seconds of each function, the backends taking turns call by call."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(calls):
        for name, fn in fns.items():
            with gc_paused():
                start = time.perf_counter()
                await fn(i)
                times[name].append(time.perf_counter() - start)
    return times


async def sessions_patch_row(server_url: str, quick: bool) -> Row:
    """`postgres.sessions_patch`: median µs per awaited patch, PostgreSQL vs SQLite."""
    url = await _fresh_database(server_url)
    folder = bench_dir() / f"postgres-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        async with (
            await Store.open(url) as on_pg,
            await Store.open(folder / "store.sqlite") as on_sqlite,
        ):
            await _seed(on_pg)
            await _seed(on_sqlite)

            def patcher(store: Store) -> Callable[[int], Awaitable[object]]:
                def patch(i: int) -> Awaitable[object]:
                    key = f"agent:main:s{(i * 7919) % ENTRIES}"
                    fields = {"updatedAt": 1_780_000_000_000 + i, "inputTokens": i,
                              "totalTokens": 3 * i}  # fmt: skip
                    return store.sessions.patch("main", key, fields)

                return patch

            fns = {"postgresql": patcher(on_pg), "sqlite": patcher(on_sqlite)}
            await _rounds(fns, 50)  # warm both: caches, prepared statements
            times = await _rounds(fns, 300 if quick else 2_000)
        pg_us = statistics.median(times["postgresql"]) * 1e6
        sqlite_us = statistics.median(times["sqlite"]) * 1e6
        return row("postgres.sessions_patch", pg_us, sqlite_us, "us/op", False)
    finally:
        await _drop_database(server_url, url)


def run(quick: bool) -> list[Row]:
    async def main() -> list[Row]:
        rows: list[Row] = []
        try:
            async with _server() as server_url:
                for metric in (sessions_patch_row,):
                    try:
                        rows.append(await metric(server_url, quick))
                    except Exception as exc:
                        rows.append(error_row(f"postgres.{metric.__name__}", exc))
        except Exception as exc:  # no server can be started here
            rows.append(error_row("postgres", exc))
        return rows

    return run_async(main)

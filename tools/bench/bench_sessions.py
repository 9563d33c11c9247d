"""Session index speed (issue 2): patching one entry of a 10,000-session index.

Metrics (ratio orientation in harness.py: > 1 means the store did better):
- `sessions.patch_vs_sessions_json`: one `store.sessions.patch` (await, one group commit) vs
  the gateway's file design: read sessions.json, orjson parse, merge the patch into the
  entry, write it back as `JSON.stringify(store, null, 2)` (jsjson.dumps(indent=2), which
  takes orjson's OPT_INDENT_2 fast path when it is exact), temp file, rename; no fsync, as
  the issue states the baseline. ratio = speedup, target >= 500.
- `sessions.patch_vs_sessions_json_fsync`: the same baseline with the fsync FORMATS.md §2
  says the gateway does before the rename (informational; no target).
- `sessions.patch_vs_sqlite`: the same patch vs a plain sqlite3 connection (WAL,
  synchronous=NORMAL like the store) upserting the same row (same table, same column values,
  computed beforehand) in autocommit, one thread. ratio = speedup, target >= 0.1.
- `sessions.concurrent_patch`: 100 tasks patching entries concurrently vs plain sqlite3
  doing the same upserts (one execute each) 100 per transaction. ratio = fraction of the
  baseline's patches/s, target >= 0.5.
- `sessions.patch_vs_sqlite_minimal`, `sessions.concurrent_patch_vs_minimal`: the same two
  baselines on a minimal table (key, entry text, updatedAt; primary key only), the kind of
  "plain upsert" the issue's ~18 us figure describes. Informational: the gap between these
  and the rows above is the cost of the store's schema (20 extracted columns, 7 indexes).

The patch is what the gateway writes after a turn: `updatedAt` and the token counters.
Entries are ~1.4 KB of 2-space JSON (deliveryContext, origin, skillsSnapshot, ...).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fixtures
import orjson
from fixtures import AGENT
from harness import (
    Fastest,
    Row,
    abest_of,
    bench_dir,
    best_of,
    gc_paused,
    row,
    run_async,
    timed,
)

from store_sql import Store
from store_sql.formats import jsjson
from store_sql.formats.sessions_json import entry_text
from store_sql.sessions import columns as session_columns
from store_sql.sessions import rows as sessions_mod

SESSIONS = 10_000
TASKS = 100

_COLUMNS = (
    "agent_id",
    "session_key",
    "position",
    "entry_json",
    "problem",
    *session_columns.entry_columns({}, "").keys(),
)
_MINIMAL_TABLE = (
    "CREATE TABLE entries (agent_id TEXT NOT NULL, session_key TEXT NOT NULL, "
    "entry_json TEXT NOT NULL, updated_at INTEGER, PRIMARY KEY (agent_id, session_key))"
)
_MINIMAL_UPSERT = (
    "INSERT INTO entries VALUES (?, ?, ?, ?) ON CONFLICT (agent_id, session_key) "
    "DO UPDATE SET entry_json = excluded.entry_json, updated_at = excluded.updated_at"
)
_UPSERT = (
    f"INSERT INTO session_entries ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (agent_id, session_key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[3:])
)


def rewrite_sessions_json(
    path: Path, key: str, patch: Mapping[str, Any], fsync: bool = False
) -> None:
    """The file design: the whole index is parsed and rewritten for one changed entry."""
    index = orjson.loads(path.read_bytes())
    index[key] = sessions_mod.apply_patch(index.get(key), patch)
    data = jsjson.dumps(index, indent=2).encode("utf-8")
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        if fsync:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)


def upsert_params(
    index: dict[str, dict[str, Any]], positions: dict[str, int], key: str, patch: Mapping[str, Any]
) -> tuple[Any, ...]:
    """The row the store writes for this patch, as a plain upsert's parameters."""
    merged = sessions_mod.apply_patch(index[key], patch)
    text = entry_text(merged)
    columns = session_columns.entry_columns(merged, text)
    return (AGENT, key, positions[key], text, None, *columns.values())


def minimal_db(path: Path, index: dict[str, dict[str, Any]]) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(_MINIMAL_TABLE)
        conn.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, ?)",
            ((AGENT, k, entry_text(v), v["updatedAt"]) for k, v in index.items()),
        )
    conn.close()


def one_by_one(
    conn: sqlite3.Connection, sql: str, params: list[tuple[Any, ...]], count: int
) -> Callable[[], object]:
    """`count` autocommit upserts per call, cycling through `params`."""
    cursor = iter(range(10**9))
    return lambda: [conn.execute(sql, params[next(cursor) % len(params)]) for _ in range(count)]


def batched(
    conn: sqlite3.Connection, sql: str, params: list[tuple[Any, ...]], per_txn: int
) -> Callable[[], None]:
    """All of `params` as upserts, `per_txn` per transaction, one execute each."""

    def go() -> None:
        for start in range(0, len(params), per_txn):
            conn.execute("BEGIN IMMEDIATE")
            for p in params[start : start + per_txn]:
                conn.execute(sql, p)
            conn.execute("COMMIT")

    return go


class PatchPlan:
    """A fixed sequence of (key, patch) pairs so store and baseline do the same work."""

    def __init__(self, keys: list[str], count: int, seed: int) -> None:
        rng = random.Random(seed)
        self.ops = [
            (rng.choice(keys), fixtures.usage_patch(rng, fixtures.BASE_MS + 10**8 + n))
            for n in range(count)
        ]
        self._next = 0

    def next(self) -> tuple[str, dict[str, Any]]:
        op = self.ops[self._next % len(self.ops)]
        self._next += 1
        return op


async def _main(quick: bool) -> list[Row]:
    work = bench_dir() / "sessions"
    work.mkdir(exist_ok=True)
    index = fixtures.session_index(SESSIONS)
    keys = list(index)
    positions = {key: n for n, key in enumerate(keys)}
    json_path = fixtures.write_file(
        work / "sessions.json", jsjson.dumps(index, indent=2).encode("utf-8")
    )
    db, plain_db = work / "store.sqlite", work / "plain.sqlite"
    mini_db = work / "minimal.sqlite"
    minimal_db(mini_db, index)
    async with await Store.open(db) as store:

        def fill(conn: sqlite3.Connection) -> None:
            for key, entry in index.items():
                sessions_mod.put_entry(conn, AGENT, key, entry)

        await store.write(fill)
    shutil.copyfile(db, plain_db)  # closed: the WAL is folded in, the copy is complete

    rounds = 3 if quick else 5
    per_round = 100 if quick else 300
    plan = PatchPlan(keys, 5000, seed=11)
    params = [upsert_params(index, positions, key, patch) for key, patch in plan.ops]
    mini_params = [(p[0], p[1], p[3], p[_COLUMNS.index("updated_at")]) for p in params]
    per_task = 20 if quick else 50
    total = TASKS * per_task
    ops = plan.ops[:total]
    fastest = Fastest()
    plain = fixtures.plain_connection(plain_db)
    mini = fixtures.plain_connection(mini_db)
    try:
        async with await Store.open(db) as store:

            async def patch_one() -> None:
                key, patch = plan.next()
                await store.sessions.patch(AGENT, key, patch)

            async def patcher(task: int) -> None:
                for key, patch in ops[task::TASKS]:
                    await store.sessions.patch(AGENT, key, patch)

            # Store and baselines take turns, round by round (see harness.Fastest).
            for _ in range(rounds):
                fastest.add("store", await abest_of(patch_one, repeat=1, number=per_round))
                fastest.add("sql", best_of(one_by_one(plain, _UPSERT, params, per_round)))
                fastest.add(
                    "mini", best_of(one_by_one(mini, _MINIMAL_UPSERT, mini_params, per_round))
                )
                fastest.add("json", timed(lambda: rewrite_sessions_json(json_path, *plan.next())))
                fastest.add(
                    "fsync", timed(lambda: rewrite_sessions_json(json_path, *plan.next(), True))
                )
            before = store.metrics()
            for _ in range(2 if quick else 3):
                with gc_paused():  # as for the baselines (harness.timed)
                    start = time.perf_counter()
                    await asyncio.gather(*(patcher(t) for t in range(TASKS)))
                    fastest.add("store_100", time.perf_counter() - start)
                fastest.add("sql_100", timed(batched(plain, _UPSERT, params[:total], 100)))
                fastest.add(
                    "mini_100", timed(batched(mini, _MINIMAL_UPSERT, mini_params[:total], 100))
                )
            after = store.metrics()
    finally:
        plain.close()
        mini.close()

    us = 1e6
    store_us, sql_us, mini_us = (
        fastest["store"] * us,
        fastest["sql"] * us / per_round,
        fastest["mini"] * us / per_round,
    )
    concurrent = row(
        "sessions.concurrent_patch",
        total / fastest["store_100"],
        total / fastest["sql_100"],
        "patches/s",
        True,
        target=0.5,
    )
    concurrent["mean_batch"] = round(
        (after["mutations"] - before["mutations"]) / max(1, after["batches"] - before["batches"]), 1
    )
    return [
        row(
            "sessions.patch_vs_sessions_json",
            store_us,
            fastest["json"] * us,
            "us/op",
            False,
            target=500,
        ),
        row(
            "sessions.patch_vs_sessions_json_fsync", store_us, fastest["fsync"] * us, "us/op", False
        ),
        row("sessions.patch_vs_sqlite", store_us, sql_us, "us/op", False, target=0.1),
        row("sessions.patch_vs_sqlite_minimal", store_us, mini_us, "us/op", False),
        concurrent,
        row(
            "sessions.concurrent_patch_vs_minimal",
            total / fastest["store_100"],
            total / fastest["mini_100"],
            "patches/s",
            True,
        ),
    ]


def run(quick: bool) -> list[Row]:
    return run_async(lambda: _main(quick))

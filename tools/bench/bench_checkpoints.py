"""Checkpoints and maintenance speed (issue 6).

Metrics (ratio orientation in harness.py: > 1 means the store did better):
- `checkpoints.persist_100k_vs_empty`: one `store.checkpoints.persist` on a session whose
  transcript has 100,000 entries vs the same on a session whose transcript holds only its
  header, measured in the same run, interleaved (both entries already carry 25 checkpoints,
  so every persist also trims one and releases its snapshot; no byte budget, so both keep
  25). The issue asks for "the same time":
  ratio = empty / 100k, ~1 expected, target >= 0.5.
- `checkpoints.persist_vs_file_copy`: the same persist vs what the gateway does for a
  checkpoint, copying the 100,000-entry JSONL file (`shutil.copyfile`, no fsync).
  Informational speedup.
- `maintenance.cleanup_100k`: `store.maintenance.cleanup` (enforce, maxEntries 500) of an
  index of 100,000 unprotected entries, removing 99,500 in batches, vs the gateway's file
  design: read sessions.json, parse, keep the newest 500, write it back (orjson, no fsync).
  Seconds; ratio = speedup (informational; the issue asks for "seconds").
- `maintenance.cleanup_reader_worst`: the worst latency of `store.sessions.get` called in a
  loop while that cleanup runs vs the same loop on the idle store. ms; ratio = idle / during.
  Informational (the issue asks that reads keep answering); the row also gives the reads
  completed meanwhile, their median, and the longest writer transaction of the cleanup.
Quick mode uses 25,000 index entries instead of 100,000 (the transcript stays 100,000).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fixtures
import orjson
from fixtures import AGENT, BASE_MS
from harness import Row, amedian_of, bench_dir, best_of, row, run_async, timed

from store_sql import Store
from store_sql.checkpoints.entries import CheckpointSpec
from store_sql.maintenance.policy import MaintenancePolicy
from store_sql.sessions import rows as sessions_mod

BIG = "bench-cp-big"
EMPTY = "bench-cp-empty"
KEEP = 500


async def _session(store: Store, key: str, session_id: str) -> None:
    await store.sessions.put(AGENT, key, {"sessionId": session_id, "updatedAt": BASE_MS})


def persist(store: Store, key: str, spec: CheckpointSpec) -> Callable[[], Awaitable[object]]:
    # No byte budget: with the default 128 MiB the 100k session (~50 MB per snapshot) would
    # keep 2 checkpoints and the empty one 25, and the entries would no longer compare.
    return lambda: store.checkpoints.persist(AGENT, key, spec, max_retained_bytes=1 << 50)


async def _persist_rows(quick: bool) -> list[Row]:
    work = bench_dir() / "checkpoints"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    big = fixtures.build_transcript(BIG, fixtures.chain_with_side_branches(100_000), seed=11)
    jsonl = fixtures.write_file(work / f"{BIG}.jsonl", big.file_bytes())
    store = await Store.open(work / "cp.sqlite")
    try:
        await fixtures.load_transcript(store, big)
        await store.transcripts.create(AGENT, EMPTY, cwd="/home/u/project")
        await _session(store, "agent:main:big", BIG)
        await _session(store, "agent:main:empty", EMPTY)
        spec = CheckpointSpec(reason="auto-threshold", summary="s", tokens_before=150_000)
        for _ in range(25):  # steady state: every further persist trims and releases one
            await persist(store, "agent:main:big", spec)()
            await persist(store, "agent:main:empty", spec)()
        rounds, number = (5, 20) if quick else (9, 50)
        big_times, empty_times = [], []
        for _ in range(rounds):  # interleaved, so drift and warm-up hit both alike
            big_times.append(
                await amedian_of(persist(store, "agent:main:big", spec), repeat=1, number=number)
            )
            empty_times.append(
                await amedian_of(persist(store, "agent:main:empty", spec), repeat=1, number=number)
            )
        persist_big, persist_empty = statistics.median(big_times), statistics.median(empty_times)
    finally:
        await store.close()
    copy = best_of(lambda: shutil.copyfile(jsonl, work / "copy.jsonl"), repeat=3)
    return [
        row("checkpoints.persist_100k_vs_empty", persist_big * 1e6, persist_empty * 1e6,
            "us/op", False, target=0.5),
        row("checkpoints.persist_vs_file_copy", persist_big * 1e6, copy * 1e6, "us/op", False),
    ]  # fmt: skip


def _index(count: int) -> dict[str, dict[str, Any]]:
    """`count` unprotected entries (direct chats), updatedAt ascending with n."""
    index = fixtures.session_index(count, seed=21)
    for entry in index.values():
        entry["chatType"] = "direct"
    return index


def _file_cleanup(path: Path) -> None:
    """The gateway's design: load sessions.json, keep the newest KEEP, write it back."""
    store = orjson.loads(path.read_bytes())
    newest = sorted(store, key=lambda k: store[k]["updatedAt"], reverse=True)[:KEEP]
    kept = {k: store[k] for k in store if k in set(newest)}
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(kept, option=orjson.OPT_INDENT_2))
    tmp.replace(path)


async def _cleanup_rows(quick: bool) -> list[Row]:
    count = 25_000 if quick else 100_000
    work = bench_dir() / "cleanup"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    index = _index(count)
    index_file = work / "sessions.json"
    index_file.write_bytes(orjson.dumps(index, option=orjson.OPT_INDENT_2))
    baseline = timed(lambda: _file_cleanup(index_file))
    path = work / "cleanup.sqlite"

    def bulk(conn: sqlite3.Connection) -> None:
        for key, entry in index.items():
            sessions_mod.put_entry(conn, AGENT, key, entry)

    async with await Store.open(path) as loading:
        await loading.write(bulk)
    probe = random.Random(5).sample(sorted(index), 200)
    index.clear()  # 100,000 dicts would make every garbage collection pass slower
    store = await Store.open(path)  # fresh metrics: max_txn_ms is the cleanup's own
    try:
        idle = await _reader_latencies(store, probe, None)
        now_ms = BASE_MS + count * 1000 + 2000  # nothing is stale: the cap does the work
        policy = MaintenancePolicy(mode="enforce", max_entries=KEEP)
        started = time.perf_counter()
        task = asyncio.create_task(store.maintenance.cleanup(AGENT, policy, now_ms=now_ms))
        during = await _reader_latencies(store, probe, task)
        report = await task
        seconds = time.perf_counter() - started
        writer_max_ms = float(store.metrics()["max_txn_ms"])
    finally:
        await store.close()
    assert report["afterCount"] == KEEP, report
    worst_idle, worst_during = max(idle) * 1000, max(during) * 1000
    reader = row("maintenance.cleanup_reader_worst", worst_during, worst_idle, "ms", False)
    reader["reads_during"] = len(during)
    reader["p50_during_ms"] = round(statistics.median(during) * 1000, 3)
    reader["longest_write_txn_ms"] = round(writer_max_ms, 1)
    return [
        row(f"maintenance.cleanup_{count // 1000}k", seconds, baseline, "s", False),
        reader,
    ]


async def _reader_latencies(
    store: Store, keys: list[str], task: asyncio.Task[Any] | None
) -> list[float]:
    """Latency of each `sessions.get` in a loop: until `task` ends, else 500 calls."""
    latencies: list[float] = []
    n = 0
    while (task is None and n < 500) or (task is not None and not task.done()):
        start = time.perf_counter()
        await store.sessions.get(AGENT, keys[n % len(keys)])
        latencies.append(time.perf_counter() - start)
        n += 1
    return latencies


async def _main(quick: bool) -> list[Row]:
    return [*await _persist_rows(quick), *await _cleanup_rows(quick)]


def run(quick: bool) -> list[Row]:
    return run_async(lambda: _main(quick))

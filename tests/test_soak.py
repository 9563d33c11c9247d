"""Concurrency soak: 100 tasks write and read one store for a fixed time; nothing is lost.

docs/GUARANTEES.md "Concurrency in one process" is the promise tested here. For the whole
run, appenders (some re-sending keys they already sent, as a gateway retries), patchers and
readers (list, tail through `changes_since`, `recent`, full-text search) share one store.
Afterwards:
- every acknowledged append is in its transcript exactly once, and nothing else is;
- every idempotency key is there at most once; a re-sent key returned the first entry;
- every acknowledged `update` increment is counted exactly once (n == acknowledged count);
- each tail reader saw every entry of its sessions once, in order, with no gap;
- no caller ever got an error (in particular no "database is locked");
- the WAL stayed bounded: its maximum (from `store.metrics()`) is printed and checked.

Default run ~5 s; `--long` runs 60 s (docs/TESTING.md).
"""

from __future__ import annotations

import asyncio
import collections
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from store_sql import Store
from store_sql.engine.pragmas import EngineSettings
from store_sql.transcripts.reads import Cursor

AGENT = "main"
SESSIONS = [f"soak-{i:02d}" for i in range(40)]
APPENDERS, PATCHERS, READERS = 60, 25, 15
WAL_BOUND = EngineSettings().wal_truncate_bytes


def session_key(sid: str) -> str:
    return f"agent:{AGENT}:{sid}"


@dataclass
class Ledger:
    """What callers were told, to compare with what the store holds afterwards."""

    appended: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (sid, id)
    resent: int = 0
    increments: collections.Counter[str] = field(default_factory=collections.Counter)
    patches: int = 0
    reads: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: list[str] = field(default_factory=list)
    tailed: dict[str, list[str | None]] = field(default_factory=dict)
    cursors: dict[str, Cursor | None] = field(default_factory=dict)
    max_wal: int = 0


def _bump(entry: dict[str, Any] | None) -> dict[str, Any]:
    assert entry is not None
    return {**entry, "n": entry.get("n", 0) + 1}


async def appender(store: Store, task: int, ledger: Ledger, stop: float) -> None:
    rng = random.Random(task)
    mine: list[tuple[str, str, str]] = []
    serial = 0
    while time.monotonic() < stop:
        sid = rng.choice(SESSIONS)
        try:
            if mine and rng.random() < 0.1:
                # A retry: the same key again must return the first entry, writing nothing.
                key, first_sid, first_id = rng.choice(mine)
                again = await store.transcripts.append_message(
                    AGENT, first_sid, {"role": "user", "content": "retry", "idempotencyKey": key}
                )
                assert (again.existed, again.id) == (True, first_id), key
                ledger.resent += 1
                continue
            count = 1 if rng.random() < 0.8 else rng.randint(2, 4)
            keys = [f"a{task}-{serial + i}" for i in range(count)]
            serial += count
            entries = [
                {
                    "type": "message",
                    "message": {
                        "role": rng.choice(("user", "assistant")),
                        "content": f"{'needle ' if rng.random() < 0.05 else ''}"
                        + "hay " * rng.randint(1, 200),
                        "idempotencyKey": key,
                    },
                }
                for key in keys
            ]
            done = await store.transcripts.append(AGENT, sid, entries)
            for key, result in zip(keys, done, strict=True):
                assert not result.existed
                ledger.appended[key] = (sid, result.id)
                mine.append((key, sid, result.id))
        except Exception as exc:  # every error is a failure of the run, reported at the end
            ledger.errors.append(f"appender {task}: {type(exc).__name__}: {exc}")


async def patcher(store: Store, task: int, ledger: Ledger, stop: float) -> None:
    rng = random.Random(1000 + task)
    while time.monotonic() < stop:
        key = session_key(rng.choice(SESSIONS))
        try:
            if rng.random() < 0.5:
                await store.sessions.update(AGENT, key, _bump)
                ledger.increments[key] += 1
            elif rng.random() < 0.5:
                patch = {"updatedAt": int(time.time() * 1000), "lastPatcher": task, "model": None}
                await store.sessions.patch(AGENT, key, patch)
                ledger.patches += 1
            else:
                await store.sessions.touch(AGENT, key, int(time.time() * 1000))
                ledger.patches += 1
        except Exception as exc:
            ledger.errors.append(f"patcher {task}: {type(exc).__name__}: {exc}")


async def reader(store: Store, task: int, ledger: Ledger, stop: float) -> None:
    rng = random.Random(2000 + task)
    # Each reader tails a few sessions through changes_since, like a UI following a chat.
    tailed = SESSIONS[task::READERS]
    for sid in tailed:
        ledger.tailed[sid] = []
        ledger.cursors[sid] = None
    while time.monotonic() < stop:
        try:
            what = rng.random()
            if what < 0.25:
                rows = await store.sessions.list_entries(AGENT, limit=20)
                assert len(rows) == 20
                ledger.reads["list"] += 1
            elif what < 0.5:
                sid = rng.choice(SESSIONS)
                recent = await store.transcripts.recent(AGENT, sid, limit=20)
                ids = [e.id for e in recent]
                assert len(set(ids)) == len(ids)
                ledger.reads["recent"] += 1
            elif what < 0.6:
                await store.search.find("needle", agent_id=AGENT, limit=10)
                ledger.reads["search"] += 1
            elif what < 0.7:
                # A snapshot never shows part of a group commit: every transcript's counters
                # and leaf agree with its lines, and every index entry is whole JSON.
                await store.read(_check_consistent)
                ledger.reads["consistency"] += 1
            else:
                sid = rng.choice(tailed)
                await tail(store, sid, ledger)
                ledger.reads["tail"] += 1
            ledger.max_wal = max(ledger.max_wal, store.metrics()["wal_bytes"])
        except Exception as exc:
            ledger.errors.append(f"reader {task}: {type(exc).__name__}: {exc}")


async def tail(store: Store, sid: str, ledger: Ledger, *, until_empty: bool = False) -> None:
    while True:
        changes = await store.transcripts.changes_since(AGENT, sid, ledger.cursors[sid], limit=200)
        assert not changes.replaced
        seen = ledger.tailed[sid]
        if changes.entries:
            # No gap and no repeat: pages continue exactly where the cursor stood.
            assert changes.entries[0].pos == len(seen), (sid, changes.entries[0].pos, len(seen))
        seen.extend(e.id for e in changes.entries)
        ledger.cursors[sid] = changes.cursor
        if not until_empty or not changes.entries:
            return


def _check_consistent(conn: sqlite3.Connection) -> None:
    bad = conn.execute(
        "SELECT t.transcript_id FROM transcripts t WHERE t.line_count != (SELECT count(*) "
        "FROM transcript_lines l WHERE l.transcript_id = t.transcript_id) OR t.leaf_pos IS NOT "
        "(SELECT max(pos) FROM transcript_lines l WHERE l.transcript_id = t.transcript_id "
        "AND l.kind = 'entry')"
    ).fetchall()
    assert not bad, f"a reader saw a half-applied append in transcripts {bad}"
    assert not conn.execute(
        "SELECT count(*) FROM session_entries WHERE NOT json_valid(entry_json)"
    ).fetchone()[0]


def _session_lines(conn: sqlite3.Connection, sid: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT l.pos, l.kind, l.entry_id, l.parent_id, l.idempotency_key FROM transcript_lines l "
        "JOIN transcripts t USING (transcript_id) WHERE t.agent_id = ? AND t.session_id = ? "
        "AND t.kind = 'live' ORDER BY l.pos",
        (AGENT, sid),
    ).fetchall()


async def soak(tmp_path: Path, seconds: float) -> None:
    store = await Store.open(tmp_path / "soak.sqlite")
    try:
        for sid in SESSIONS:
            await store.transcripts.create(AGENT, sid, cwd="/soak")
            await store.sessions.patch(AGENT, session_key(sid), {"sessionId": sid, "updatedAt": 1})
        before = store.metrics()
        ledger = Ledger()
        started = time.monotonic()
        stop = started + seconds
        await asyncio.gather(
            *(appender(store, t, ledger, stop) for t in range(APPENDERS)),
            *(patcher(store, t, ledger, stop) for t in range(PATCHERS)),
            *(reader(store, t, ledger, stop) for t in range(READERS)),
        )
        elapsed = time.monotonic() - started
        metrics = store.metrics()
        assert not ledger.errors, ledger.errors[:10]
        for sid in ledger.tailed:  # the tails catch up with the last appends
            await tail(store, sid, ledger, until_empty=True)

        def snapshot(conn: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
            lines = {sid: _session_lines(conn, sid) for sid in SESSIONS}
            sql = "SELECT session_key, json_extract(entry_json, '$.n') FROM session_entries"
            index = dict(conn.execute(sql).fetchall())
            return lines, index

        lines, index = await store.read(snapshot)
        integrity = await store.read(lambda c: c.execute("PRAGMA integrity_check").fetchall())
        assert integrity == [("ok",)]
    finally:
        await store.close()

    stored_keys: dict[str, tuple[str, str]] = {}
    for sid, rows in lines.items():
        entries = [r for r in rows if r[1] == "entry"]
        keys = collections.Counter(r[4] for r in entries)
        assert max(keys.values(), default=1) == 1, f"{sid}: an idempotency key twice"
        parent = None
        for _, _, entry_id, parent_id, key in entries:
            assert parent_id == parent, f"{sid}: broken chain at {entry_id}"
            parent = entry_id
            stored_keys[key] = (sid, entry_id)
        if sid in ledger.tailed:
            assert ledger.tailed[sid] == [r[2] for r in rows], f"{sid}: the tail missed lines"
    assert stored_keys == ledger.appended, "lost or unacknowledged entries"
    for key, count in ledger.increments.items():
        assert index[key] == count, f"{key}: {count} increments acknowledged, {index[key]} stored"
    assert ledger.reads["search"] > 0
    assert ledger.reads["tail"] > 0
    max_wal = max(metrics["max_wal_bytes"], ledger.max_wal)
    assert max_wal < 2 * WAL_BOUND, f"the WAL reached {max_wal} bytes"
    writes = len(ledger.appended) + ledger.resent + sum(ledger.increments.values()) + ledger.patches
    batches = metrics["batches"] - before["batches"]
    print(
        f"soak {elapsed:.1f}s, {APPENDERS}+{PATCHERS}+{READERS} tasks: "
        f"{len(ledger.appended)} entries appended, {ledger.resent} re-sent keys, "
        f"{sum(ledger.increments.values())} increments, {ledger.patches} patches/touches "
        f"= {writes / elapsed:.0f} writes/s in {batches} group commits "
        f"(mean {(metrics['mutations'] - before['mutations']) / max(batches, 1):.1f}, "
        f"largest {metrics['largest_batch']}, max txn {metrics['max_txn_ms']:.0f} ms); "
        f"reads {dict(ledger.reads)} = {sum(ledger.reads.values()) / elapsed:.0f}/s; "
        f"max WAL {max_wal} bytes, {metrics['checkpoints']} forced checkpoints; "
        f"0 errors"
    )


async def test_soak_100_tasks_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    await soak(tmp_path, seconds=5)


@pytest.mark.slow
async def test_soak_100_tasks_for_a_minute(tmp_path: Path) -> None:
    await soak(tmp_path, seconds=60)

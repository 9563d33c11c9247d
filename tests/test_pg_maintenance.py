"""Maintenance planning on PostgreSQL reads the same facts, and so plans the same cleanup,
as on SQLite for the same data (a store built through the API on SQLite, copied row for row
into PostgreSQL)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from inspection_data import cli
from pg_copy import copy_store, create_schema
from test_maintenance import AGENT, DAY, NOW, add

from store_sql import Store
from store_sql.checkpoints.entries import CheckpointSpec
from store_sql.maintenance import pg_steps, steps
from store_sql.maintenance import plan as mt
from store_sql.maintenance.policy import MaintenancePolicy


async def _build(path: Path) -> None:
    store = await Store.open(path)
    try:
        await add(store, "agent:main:main", age_days=0, transcript=True)
        for n in range(8):
            await add(store, f"agent:main:tg:direct:{n}", age_days=n * 7, transcript=n % 2 == 0)
        await add(store, "agent:main:tg:direct:origin", 40, origin={"chatType": "group"})
        await add(store, "agent:main:tg:direct:origin5", 40, origin={"chatType": 5})
        await add(store, "agent:main:tg:direct:archived", 40, archivedAt=None)
        await add(store, "agent:main:tg:direct:locked", 40, modelSelectionLocked=True)
        await add(store, "agent:main:tg:direct:locked1", 40, modelSelectionLocked=1)
        await add(store, "agent:main:tg:direct:unlocked", 40, modelSelectionLocked=False)
        await store.checkpoints.persist(AGENT, "agent:main:main", CheckpointSpec(reason="manual"))
        await store.lifecycle.delete(AGENT, "agent:main:tg:direct:0")
        await store.lifecycle.reset(AGENT, "agent:main:tg:direct:2")
    finally:
        await store.close()


@pytest.fixture
async def both(tmp_path: Path, pg_url: str) -> tuple[Path, str]:
    db = tmp_path / "store.sqlite"
    await _build(db)
    await create_schema(pg_url)
    await copy_store(db, pg_url)
    return db, pg_url


POLICIES = [
    MaintenancePolicy(mode="enforce"),
    MaintenancePolicy(mode="enforce", max_entries=5),
    MaintenancePolicy(mode="enforce", prune_after_ms=20 * DAY),
    MaintenancePolicy(max_disk_bytes=3000, high_water_bytes=2000),
]


async def test_the_same_facts_and_plans_on_both_backends(both: tuple[Path, str]) -> None:
    db, url = both
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        expected = steps.read_facts(conn, AGENT, NOW)
    finally:
        conn.close()
    pg = await asyncpg.connect(url)
    try:
        got = await pg_steps.read_facts(pg, AGENT, NOW)
    finally:
        await pg.close()
    assert asdict(got) == asdict(expected)
    assert sum(expected.entries.preserved) >= 4  # main, origin group, archived, locked x2
    assert any(f.kind == "snapshot" for f in expected.files)
    for policy in POLICIES:
        plans = [mt.plan_cleanup(facts, policy, now_ms=NOW) for facts in (expected, got)]
        assert plans[1].report() == plans[0].report()


async def _rows(db: Path, url: str) -> tuple[list[Any], list[Any]]:
    sql = (
        "SELECT 'entry', session_key, session_id FROM session_entries "
        "UNION ALL SELECT 'transcript', kind, file_name FROM transcripts "
        "UNION ALL SELECT 'snapshot', checkpoint_id, file_name FROM checkpoint_snapshots"
    )
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        expected = sorted(conn.execute(sql).fetchall())
    finally:
        conn.close()
    pg = await asyncpg.connect(url)
    try:
        got = sorted(tuple(r) for r in await pg.fetch(sql))
    finally:
        await pg.close()
    return expected, got


CLEANUPS = [
    *POLICIES[:3],
    MaintenancePolicy(mode="enforce", max_disk_bytes=3000, high_water_bytes=2000),
]


@pytest.mark.parametrize("policy", CLEANUPS, ids=["defaults", "cap", "prune", "budget"])
async def test_a_cleanup_does_the_same_on_both_backends(
    both: tuple[Path, str], policy: MaintenancePolicy
) -> None:
    db, url = both
    on_sqlite, on_postgresql = await Store.open(db), await Store.open(url)
    try:
        reports = [
            await store.maintenance.cleanup(AGENT, policy, now_ms=NOW + 30 * DAY)
            for store in (on_sqlite, on_postgresql)
        ]
    finally:
        await on_sqlite.close()
        await on_postgresql.close()
    space = reports[1].pop("spaceReclaimed")
    assert set(space.values()) == {0}  # the server's own business on PostgreSQL
    reports[0].pop("spaceReclaimed")
    assert reports[1] == reports[0]
    assert reports[1]["applied"] is True
    expected, got = await _rows(db, url)
    assert got == expected


async def test_cleanup_all_and_a_dry_run_do_the_same_on_both_backends(
    both: tuple[Path, str],
) -> None:
    db, url = both
    policy = MaintenancePolicy(mode="enforce", max_entries=3)
    on_sqlite, on_postgresql = await Store.open(db), await Store.open(url)
    try:
        before = await on_postgresql.sessions.count_entries(AGENT)
        runs = []
        for dry_run in (True, False):
            for store in (on_sqlite, on_postgresql):
                done = await store.maintenance.cleanup_all(policy, dry_run=dry_run, now_ms=NOW)
                done.pop("spaceReclaimed")
                runs.append(done)
            if dry_run:
                assert await on_postgresql.sessions.count_entries(AGENT) == before
        after = await on_postgresql.sessions.count_entries(AGENT)
    finally:
        await on_sqlite.close()
        await on_postgresql.close()
    assert runs[1] == runs[0]
    assert runs[3] == runs[2]
    assert after == runs[3]["stores"][0]["afterCount"] < before


def test_the_cleanup_command_reports_the_same_on_both_backends(both: tuple[Path, str]) -> None:
    db, url = both
    args = ["sessions", "cleanup", "--json", "--enforce", "--max-entries", "3", "--dry-run"]
    reports = []
    for location in (str(db), url):
        done = cli(*args, "--db", location)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        report.pop("spaceReclaimed")
        reports.append(report)
    assert reports[1] == reports[0]
    assert reports[0]["wouldMutate"] is True

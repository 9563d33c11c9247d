"""Session maintenance: the gateway's prune/cap/archive/disk-budget policy, dry runs that
change nothing, batched application, and space given back to the file system."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from store_sql import Store
from store_sql.checkpoints.entries import CheckpointSpec
from store_sql.engine import vacuum
from store_sql.maintenance import api as maintenance_api
from store_sql.maintenance import plan as mt
from store_sql.maintenance import policy as mp
from store_sql.maintenance import steps as steps
from store_sql.maintenance.plan import Removal
from store_sql.maintenance.policy import MaintenancePolicy

AGENT = "main"
NOW = 1_780_000_000_000
DAY = mp.DAY_MS
ENFORCE = MaintenancePolicy(mode="enforce")


async def add(
    store: Store, key: str, age_days: float, *, transcript: bool = False, **fields: Any
) -> str:
    sid = f"sid-{abs(hash(key)) % 10**8}"
    entry = {"sessionId": sid, "updatedAt": int(NOW - age_days * DAY), **fields}
    await store.sessions.put(AGENT, key, entry)
    if transcript and await store.transcripts.find(AGENT, sid) is None:
        await store.transcripts.create(AGENT, sid, cwd="/w")
        await store.transcripts.append_message(AGENT, sid, {"role": "user", "content": "x" * 200})
    return sid


async def keys(store: Store) -> set[str]:
    return {s.key for s in await store.sessions.list_entries(AGENT, limit=100_000)}


async def cleanup(store: Store, policy: MaintenancePolicy = ENFORCE, **kw: Any) -> dict[str, Any]:
    return await store.maintenance.cleanup(AGENT, policy, now_ms=NOW, **kw)


@pytest.mark.parametrize(
    ("key", "chat_type", "protected"),
    [
        ("agent:main:main", None, True),
        ("global", None, True),
        ("agent:main:discord:group:dev", None, True),
        ("agent:main:slack:channel:c1", None, True),
        ("agent:main:discord:channel:c1:thread:t9", None, True),
        ("agent:main:telegram:group:-100:topic:7", None, True),
        ("agent:main:telegram:direct:42", "group", True),
        ("agent:main:telegram:direct:42", "direct", False),
        ("agent:main:subagent:abc", "group", False),
        ("cron:8a5ac405", "channel", False),
        ("agent:main:hook:x", None, False),
        ("agent:main:heartbeat", None, False),
    ],
)
def test_protection_follows_the_gateway(key: str, chat_type: str | None, protected: bool) -> None:
    assert mt.is_protected(key, chat_type) is protected


async def test_stale_entries_are_pruned_but_protected_and_active_kept(backend: Store) -> None:
    store = backend
    for key in (
        "agent:main:main",
        "agent:main:x:group:g",
        "agent:main:tg:direct:1",
        "agent:main:tg:direct:2",
    ):
        await add(store, key, age_days=40)
    await add(store, "agent:main:tg:direct:3", age_days=40, archivedAt=1)
    await add(store, "agent:main:fresh", age_days=1)
    report = await cleanup(store, active_key="agent:main:tg:direct:2")
    assert report["pruned"] == 1
    assert "agent:main:tg:direct:1" not in await keys(store)
    assert len(await keys(store)) == 5


async def test_the_cap_keeps_the_newest_and_protected_ones_use_up_budget(backend: Store) -> None:
    store = backend
    await add(store, "agent:main:main", age_days=9)
    for n in range(6):
        await add(store, f"agent:main:tg:direct:{n}", age_days=n)
    report = await cleanup(store, MaintenancePolicy(mode="enforce", max_entries=4))
    assert report["capped"] == 3
    assert await keys(store) == {"agent:main:main"} | {
        f"agent:main:tg:direct:{n}" for n in range(3)
    }


async def test_when_protected_entries_fill_the_cap_25_removable_survive(backend: Store) -> None:
    store = backend
    for n in range(30):
        await add(store, f"agent:main:x:group:{n}", age_days=1)
    for n in range(40):
        await add(store, f"agent:main:tg:direct:{n}", age_days=n / 100)
    report = await cleanup(store, MaintenancePolicy(mode="enforce", max_entries=30))
    assert (report["capped"], report["afterCount"]) == (15, 55)
    assert "agent:main:tg:direct:24" in await keys(store)
    assert "agent:main:tg:direct:25" not in await keys(store)


async def test_warn_mode_changes_nothing(backend: Store) -> None:
    store = backend
    for n in range(5):
        await add(store, f"agent:main:tg:direct:{n}", age_days=60, transcript=True)
    policy = MaintenancePolicy(max_entries=1, max_disk_bytes=100)
    report = await cleanup(store, policy)
    assert (report["mode"], report["pruned"], report["afterCount"]) == ("warn", 0, 5)
    assert report["diskBudget"]["overBudget"] is True
    assert report["diskBudget"]["removedFiles"] == 0
    assert len(await keys(store)) == 5


async def test_removed_sessions_transcripts_become_deleted_archives(backend: Store) -> None:
    store = backend
    sid = await add(store, "agent:main:tg:direct:1", age_days=40, transcript=True)
    shared = await add(store, "agent:main:tg:direct:2", age_days=40, transcript=True)
    await store.sessions.put(AGENT, "agent:main:keep", {"sessionId": shared, "updatedAt": NOW})
    report = await cleanup(store)
    assert report["archivedTranscripts"] == 1
    kinds = {t.session_id: t.kind for t in await store.transcripts.list_transcripts(AGENT)}
    assert kinds == {sid: "deleted", shared: "live"}


async def test_archives_past_retention_are_deleted(store: Store) -> None:
    old = await add(store, "agent:main:tg:direct:old", age_days=1, transcript=True)
    new = await add(store, "agent:main:tg:direct:new", age_days=1, transcript=True)
    await store.lifecycle.delete(AGENT, "agent:main:tg:direct:new")

    def backdate(conn: sqlite3.Connection) -> None:
        from store_sql.lifecycle.rows import archive_transcripts

        archive_transcripts(
            conn, AGENT, [f"{old}.jsonl"], "reset", datetime(2026, 1, 1, tzinfo=UTC)
        )

    await store.write(backdate)
    report = await cleanup(store)
    assert report["archiveCleanup"] == {"scannedFiles": 2, "removedFiles": 1}
    remaining = {t.session_id: t.kind for t in await store.transcripts.list_transcripts(AGENT)}
    assert remaining == {new: "deleted"}


async def test_snapshots_no_checkpoint_names_are_released_after_prune_after(store: Store) -> None:
    await add(store, "agent:main:main", age_days=0, transcript=True)
    await store.checkpoints.persist(AGENT, "agent:main:main", CheckpointSpec(reason="manual"))
    await store.sessions.patch(AGENT, "agent:main:main", {"compactionCheckpoints": None})
    assert (await cleanup(store))["unreferencedArtifacts"]["removedFiles"] == 0
    report = await store.maintenance.cleanup(AGENT, ENFORCE, now_ms=NOW + 400 * DAY)
    assert report["unreferencedArtifacts"]["removedFiles"] == 1
    assert (
        await store.read(
            lambda c: c.execute("SELECT count(*) FROM checkpoint_snapshots").fetchone()[0]
        )
        == 0
    )


async def test_disk_budget_removes_archives_then_oldest_entries(store: Store) -> None:
    for n in range(6):
        await add(store, f"agent:main:tg:direct:{n}", age_days=n, transcript=True)
    await store.lifecycle.delete(AGENT, "agent:main:tg:direct:0")
    facts = await store.read(lambda c: steps.read_facts(c, AGENT, NOW))
    plan = mt.plan_cleanup(facts, MaintenancePolicy(max_disk_bytes=10**9), now_ms=NOW)
    assert plan.budget is not None
    total = plan.budget.total_bytes_before
    policy = MaintenancePolicy(
        mode="enforce", max_disk_bytes=total - 1, high_water_bytes=total - 700
    )
    report = await cleanup(store, policy)
    budget = report["diskBudget"]
    assert budget["overBudget"] is True
    assert budget["totalBytesAfter"] <= total - 700
    assert (budget["removedFiles"], budget["removedEntries"]) == (2, 1)
    assert "agent:main:tg:direct:5" not in await keys(store)
    assert len(await store.transcripts.list_transcripts(AGENT)) == 4


async def test_the_budget_counts_sessions_json_as_export_writes_it(store: Store) -> None:
    for n in range(3):
        await add(store, f"agent:main:tg:direct:{n}", age_days=n, label="é")
    facts = await store.read(lambda c: steps.read_facts(c, AGENT, NOW))
    plan = mt.plan_cleanup(facts, MaintenancePolicy(max_disk_bytes=10**9), now_ms=NOW)
    rendered = await store.sessions.render_json(AGENT)
    assert plan.budget is not None
    assert rendered is not None
    assert plan.budget.total_bytes_before == len(rendered)


async def populated(store: Store) -> None:
    await add(store, "agent:main:main", age_days=50, transcript=True)
    for n in range(12):
        await add(store, f"agent:main:tg:direct:{n}", age_days=n * 5, transcript=True)
    await store.lifecycle.delete(AGENT, "agent:main:tg:direct:0")


async def test_a_dry_run_reports_what_enforce_does_and_changes_no_byte(tmp_path: Path) -> None:
    path = tmp_path / "dry.sqlite"
    policy = MaintenancePolicy(mode="enforce", max_entries=5, max_disk_bytes=4000)
    store = await Store.open(path)
    await populated(store)
    await store.search.catch_up()  # else the indexer of the next open writes its mark
    await store.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    store = await Store.open(path)
    dry = await cleanup(store, policy, dry_run=True)
    await store.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    store = await Store.open(path)
    real = await cleanup(store, policy)
    await store.close()
    ignore = ("dryRun", "applied", "spaceReclaimed")
    assert {k: v for k, v in dry.items() if k not in ignore} == {
        k: v for k, v in real.items() if k not in ignore
    }
    assert real["wouldMutate"] is True


async def test_an_entry_touched_after_planning_is_left_alone(store: Store) -> None:
    sid = await add(store, "agent:main:tg:direct:1", age_days=40)
    planned = Removal("agent:main:tg:direct:1", sid, NOW - 40 * DAY, None)
    await store.sessions.touch(AGENT, "agent:main:tg:direct:1", NOW)
    when = datetime.now(UTC)
    result = await store.write(
        lambda c: steps.remove_entries(c, AGENT, [planned], when, archive=True)
    )
    assert result.removed == 0
    assert "agent:main:tg:direct:1" in await keys(store)


async def test_large_cleanups_run_in_many_short_transactions_while_reads_answer(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maintenance_api, "ENTRY_BATCH", 50)
    entries = {
        f"agent:main:tg:direct:{n}": {"sessionId": f"s{n}", "updatedAt": NOW - n}
        for n in range(1500)
    }

    def bulk(conn: sqlite3.Connection) -> None:
        from store_sql.sessions import rows as sessions

        for key, entry in entries.items():
            sessions.put_entry(conn, AGENT, key, entry)

    await store.write(bulk)
    batches = store.metrics()["batches"]
    reads = 0
    task = asyncio.create_task(cleanup(store, MaintenancePolicy(mode="enforce", max_entries=10)))
    while not task.done():
        await store.sessions.get(AGENT, "agent:main:tg:direct:0")
        reads += 1
    report = await task
    assert report["capped"] == 1490
    assert store.metrics()["batches"] - batches >= 1490 // 50
    assert reads > 1


async def test_space_is_given_back_to_the_file_system(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "space.sqlite")
    for n in range(40):
        sid = await add(store, f"agent:main:tg:direct:{n}", age_days=60 + n, transcript=True)
        await store.transcripts.append(
            AGENT, sid, [{"type": "custom", "customType": "x", "data": "y" * 4000}] * 40
        )
    await store.maintenance.reclaim_space()
    before = (tmp_path / "space.sqlite").stat().st_size
    policy = MaintenancePolicy(mode="enforce", archive_retention_ms=0)
    report = await cleanup(store, policy)
    await store.close()
    space = report["spaceReclaimed"]
    assert report["archiveCleanup"]["removedFiles"] == 0  # archived just now: not yet expired
    assert space["walBytesAfter"] == 0
    store = await Store.open(tmp_path / "space.sqlite")
    report = await store.maintenance.cleanup(AGENT, policy, now_ms=NOW + DAY)
    await store.close()
    space = report["spaceReclaimed"]
    assert report["archiveCleanup"]["removedFiles"] == 40
    assert space["pagesVacuumed"] > vacuum.VACUUM_THRESHOLD_PAGES
    assert space["dbBytesAfter"] < before / 2
    assert (tmp_path / "space.sqlite").stat().st_size == space["dbBytesAfter"]


async def test_every_agent_is_cleaned_with_all_agents(backend: Store) -> None:
    store = backend
    await add(store, "agent:main:tg:direct:1", age_days=40)
    await store.sessions.put(
        "ops", "agent:ops:tg:direct:1", {"sessionId": "o", "updatedAt": NOW - 40 * DAY}
    )
    report = await store.maintenance.cleanup_all(ENFORCE, now_ms=NOW)
    assert report["allAgents"] is True
    assert [(s["agentId"], s["pruned"]) for s in report["stores"]] == [("main", 1), ("ops", 1)]


def test_durations_and_sizes_read_as_the_gateway_writes_them() -> None:
    assert mp.parse_duration_ms("30d") == 30 * DAY
    assert mp.parse_duration_ms("7") == 7 * DAY
    assert mp.parse_duration_ms("12h") == 12 * 3_600_000
    assert mp.parse_bytes("500mb") == 500 << 20
    assert mp.parse_bytes("1.5GB") == 3 << 29
    assert mp.parse_bytes("100") == 100
    with pytest.raises(ValueError, match="cannot read"):
        mp.parse_bytes("lots")


async def test_write_triggered_capping_waits_for_the_gateway_high_water(backend: Store) -> None:
    store = backend
    for n in range(70):  # maxEntries 60: the gateway caps at 60 + max(25, 10%) = 85
        await add(store, f"agent:main:tg:direct:{n}", age_days=n / 1000)
    policy = MaintenancePolicy(mode="enforce", max_entries=60)
    assert (await cleanup(store, policy, force=False))["capped"] == 0
    assert (await cleanup(store, policy))["capped"] == 10
    assert (mp.entry_high_water(10), mp.entry_high_water(500)) == (11, 550)

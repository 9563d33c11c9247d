"""`store-sql sessions cleanup|reset` and `store-sql checkpoints` as real subprocesses."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from store_sql import Store
from store_sql.checkpoints.entries import CheckpointSpec

DAY = 86_400_000


def cli(db: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "store_sql", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def build(db: Path) -> str:
    """An index with a main session (one checkpoint) and 30 stale direct sessions."""

    async def work() -> str:
        store = await Store.open(db)
        try:
            await store.sessions.put("main", "agent:main:main", {"sessionId": "m", "updatedAt": 1})
            await store.transcripts.create("main", "m", cwd="/w")
            await store.transcripts.append_message("main", "m", {"role": "user", "content": "hi"})
            spec = CheckpointSpec(reason="manual", summary="s")
            persisted = await store.checkpoints.persist("main", "agent:main:main", spec)
            for n in range(30):
                entry = {"sessionId": f"s{n}", "updatedAt": 1_000 + n}
                await store.sessions.put("main", f"agent:main:tg:direct:{n}", entry)
            return str(persisted.checkpoint["checkpointId"])
        finally:
            await store.close()

    return asyncio.run(work())


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "cli.sqlite"
    return path, build(path)


def count(db: Path) -> int:
    async def work() -> int:
        store = await Store.open(db)
        try:
            return await store.sessions.count_entries("main")
        finally:
            await store.close()

    return asyncio.run(work())


def test_cleanup_dry_run_prints_the_report_and_changes_nothing(db: tuple[Path, str]) -> None:
    path, _ = db
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    report: dict[str, Any] = json.loads(
        cli(path, "sessions", "cleanup", "--dry-run", "--enforce", "--json").stdout
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert (report["dryRun"], report["beforeCount"], report["afterCount"]) == (True, 31, 1)
    assert report["pruned"] == 30


def test_cleanup_enforce_applies_the_policy(db: tuple[Path, str]) -> None:
    path, _ = db
    out = cli(
        path, "sessions", "cleanup", "--enforce", "--max-entries", "10", "--prune-after", "100000d"
    )
    assert "31 -> 10 entries" in out.stdout
    assert count(path) == 10


def test_cleanup_all_agents_in_warn_mode_only_reports(db: tuple[Path, str]) -> None:
    path, _ = db
    report = json.loads(
        cli(path, "sessions", "cleanup", "--all-agents", "--json", "--max-disk-bytes", "1kb").stdout
    )
    assert (report["allAgents"], report["mode"]) == (True, "warn")
    [summary] = report["stores"]
    assert summary["diskBudget"]["overBudget"] is True
    assert set(summary["diskBudget"]) == {
        "totalBytesBefore", "totalBytesAfter", "removedFiles", "removedEntries", "freedBytes",
        "maxBytes", "highWaterBytes", "overBudget",
    }  # fmt: skip
    assert count(path) == 31


def test_checkpoints_list_and_branch(db: tuple[Path, str]) -> None:
    path, checkpoint_id = db
    listed = json.loads(cli(path, "checkpoints", "list", "agent:main:main", "--json").stdout)
    assert [cp["checkpointId"] for cp in listed["checkpoints"]] == [checkpoint_id]
    branched = json.loads(
        cli(path, "checkpoints", "branch", "agent:main:main", checkpoint_id, "--json").stdout
    )
    assert branched["key"].startswith("agent:main:dashboard:")
    assert branched["entry"]["label"] == "Checkpoint branch"


def test_sessions_reset_prints_the_new_session_and_archive(db: tuple[Path, str]) -> None:
    path, _ = db
    result = json.loads(cli(path, "sessions", "reset", "agent:main:main", "--json").stdout)
    assert result["session_id"] != "m"
    assert result["archived"][0].startswith("m.jsonl.reset.")


def test_a_missing_checkpoint_is_reported_with_status_2(db: tuple[Path, str]) -> None:
    path, _ = db
    done = cli(path, "checkpoints", "show", "agent:main:main", "nope", ok=False)
    assert done.returncode == 2
    assert "no checkpoint 'nope'" in done.stderr

"""Reading today's gateway state, against OpenClaw's own migration of the same files.

Metrics (ratio orientation in harness.py: > 1 means the store did better), both measured
with the real CLIs as a user runs them (process start included), each against
`openclaw doctor --session-sqlite import` of the same legacy state dir (the real OpenClaw,
tools/oracles/openclaw, on a scratch HOME), timed in the same run:
- `openclaw_state.import_db_vs_openclaw_migrate`: `store-sql import` of the migrated state dir
  (reading every agent's openclaw-agent.sqlite) into a fresh database. Target >= 5.
- `openclaw_state.import_legacy_vs_openclaw_migrate`: `store-sql import` of the legacy
  state dir itself (sessions.json and the transcripts) into a fresh database. Target >= 5.
The legacy state dir holds one agent with `SESSIONS` sessions (entries as
fixtures.session_entry writes them), each with a transcript of `ENTRIES` pi message entries
(fixtures.build_transcript). Each side is timed once per round, best of the rounds.
Skipped (an error row saying why) where the OpenClaw oracle cannot be installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import fixtures
from harness import Row, bench_dir, error_row, row

from store_sql.formats import jsjson

REPO = Path(__file__).resolve().parents[2]
ORACLE = REPO / "tools" / "oracles" / "openclaw"
SESSIONS, ENTRIES = 120, 300
QUICK_SESSIONS, QUICK_ENTRIES = 30, 150
MIGRATE = (
    "doctor",
    "--session-sqlite",
    "import",
    "--session-sqlite-all-agents",
    "--non-interactive",
    "--yes",
    "--json",
)


def _legacy_state(root: Path, sessions: int, entries: int) -> Path:
    """A JSONL-era state dir: agents/main/sessions/ with sessions.json and the transcripts."""
    state = root / f"legacy-{sessions}x{entries}"
    if state.is_dir():
        return state
    folder = state / "agents" / fixtures.AGENT / "sessions"
    folder.mkdir(parents=True)
    index = fixtures.session_index(sessions)
    chain = [None, *range(entries - 1)]
    for entry in index.values():
        transcript = fixtures.build_transcript(entry["sessionId"], chain, seed=11)
        fixtures.write_file(folder / f"{entry['sessionId']}.jsonl", transcript.file_bytes())
    (folder / "sessions.json").write_bytes(jsjson.dumps(index, indent=2).encode("utf-8"))
    return state


def _openclaw_migrate(legacy: Path, home: Path) -> float:
    """Seconds `openclaw doctor --session-sqlite import` takes on a fresh copy of `legacy`."""
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(legacy, home / ".openclaw")
    env = {**os.environ, "HOME": str(home)}
    env.pop("OPENCLAW_STATE_DIR", None)
    start = time.perf_counter()
    done = subprocess.run(
        ["bash", str(ORACLE), *MIGRATE], capture_output=True, env=env, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"openclaw migration failed: {done.stderr.decode()[-500:]}")
    report = json.loads(done.stdout)
    if report["totals"]["issues"]:
        raise RuntimeError(f"openclaw migration reported issues: {report['totals']}")
    return seconds


def _store_import(state: Path, db: Path) -> float:
    """Seconds `store-sql import STATE` takes into a fresh database (process included)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "store_sql", "import", str(state), "--db", str(db), "--json"],
        capture_output=True,
        check=False,
        cwd=REPO,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"store-sql import failed: {done.stderr.decode()[-500:]}")
    return seconds


def run(quick: bool) -> list[Row]:
    installed = subprocess.run(
        ["bash", str(ORACLE), "--install"], capture_output=True, text=True, check=False
    )
    if installed.returncode != 0:
        reason = installed.stderr.strip() or "the OpenClaw oracle is unavailable"
        return [error_row("openclaw_state", RuntimeError(reason))]
    sessions, entries = (QUICK_SESSIONS, QUICK_ENTRIES) if quick else (SESSIONS, ENTRIES)
    work = bench_dir() / "openclaw_state"
    work.mkdir(exist_ok=True)
    legacy = _legacy_state(work, sessions, entries)
    home = work / "home"
    db = work / "store.sqlite"
    rounds = 1 if quick else 2
    migrate = min(_openclaw_migrate(legacy, home) for _ in range(rounds))
    migrated = home / ".openclaw"
    from_db = min(_store_import(migrated, db) for _ in range(rounds))
    from_files = min(_store_import(legacy, db) for _ in range(rounds))
    return [
        row("openclaw_state.import_db_vs_openclaw_migrate", from_db, migrate, "s", False, target=5),
        row(
            "openclaw_state.import_legacy_vs_openclaw_migrate",
            from_files,
            migrate,
            "s",
            False,
            target=5,
        ),
    ]

"""The CLI's writing commands go to the server that owns the database, and print the same.

Two databases get the same commands: one served by `store-sql serve`, one without a server.
The outputs must be equal but for `via` (and what differs by nature: random ids, times).

SQLite only: the CLI finds the server through the discovery file beside a SQLite file; on a
PostgreSQL URL every command runs in its own process (cli/remote.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from serving import RunningServer, session_path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "state"
SID = "c5640747-bfe2-4412-b259-049d3046e4f6"


def cli(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STORE_SQL_LOCAL"}
    return subprocess.run(
        [sys.executable, "-m", "store_sql", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**env, "PYTHONPATH": str(REPO)},
    )


def both(served: Path, local: Path, *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run `args --json` on both databases: (served answer, local answer)."""
    outs = []
    for db in (served, local):
        done = cli(*args, "--json", db=db)
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr
        outs.append(json.loads(done.stdout))
    assert outs[0].pop("via") == "server"
    assert outs[1].pop("via") == "local"
    return outs[0], outs[1]


def without(value: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in names}


@pytest.fixture
def pair(tmp_path: Path) -> Any:
    served, local = tmp_path / "served.sqlite", tmp_path / "local.sqlite"
    with RunningServer(served) as server:
        yield server, served, local


def test_writing_commands_go_to_the_server_and_print_the_same(pair: Any) -> None:
    server, served, local = pair
    a, b = both(served, local, "import", str(SAMPLE))
    assert without(a, "duration_s") == without(b, "duration_s")
    assert a["totals"]["files"] > 5
    # the server sees what the CLI imported through it (one writer: its own)
    listed = server.request("GET", "/v1/agents/main/sessions", query={"total": "1"}).json()
    assert listed["total"] > 0

    patch = '{"sessionId":"x","updatedAt":3,"label":"via-cli","n":2.5}'
    a, b = both(served, local, "sessions", "patch", "agent:main:cli", patch)
    assert a == b
    got = server.request("GET", session_path("main", "agent:main:cli")).json()
    assert got == {"sessionId": "x", "updatedAt": 3, "label": "via-cli", "n": 2.5}

    entry = '{"type":"message","message":{"role":"user","content":"hi","idempotencyKey":"cli-1"}}'
    a, b = both(served, local, "transcript", "append", SID, entry)
    assert without(a, "id") == without(b, "id")

    a, b = both(served, local, "sessions", "cleanup", "--dry-run")
    assert without(a, "spaceReclaimed") == without(b, "spaceReclaimed")

    a, b = both(served, local, "sessions", "delete", "agent:main:cli")
    assert a == b == {"agent": "main", "key": "agent:main:cli", "deleted": True}
    assert server.request("GET", session_path("main", "agent:main:cli")).status == 404

    a, b = both(served, local, "sessions", "purge", "--agent", "ops", "--yes")
    assert a == b


def test_without_a_server_the_cli_works_locally(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    with RunningServer(db):
        pass
    assert not db.with_name("store.sqlite.serve").exists()
    done = cli("sessions", "patch", "k", '{"sessionId":"s","updatedAt":1}', "--json", db=db)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["via"] == "local"


def test_a_stale_discovery_file_is_ignored(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    server = RunningServer(db).start()
    server.kill()  # kill -9: the discovery file stays behind, nobody answers
    assert db.with_name("store.sqlite.serve").exists()
    done = cli("sessions", "patch", "k", '{"sessionId":"s","updatedAt":1}', "--json", db=db)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["via"] == "local"
    # and a new server starts over it
    with RunningServer(db) as again:
        assert again.request("GET", session_path("main", "k")).status == 200


def test_errors_from_the_server_are_one_line(pair: Any) -> None:
    _, served, _ = pair
    done = cli("sessions", "patch", "k", '{"label":"no ids"}', db=served)
    assert done.returncode == 2
    assert done.stderr.count("\n") <= 2
    assert "sessionId" in done.stderr
    assert "Traceback" not in done.stderr

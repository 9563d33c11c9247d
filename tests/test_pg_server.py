"""The throwaway PostgreSQL server the tests run against (tools/pg_server.py) and the
per-test database fixture: local only, one fresh database per test, nothing left behind
when it stops or when the process that started it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, pg_server

asyncpg = pytest.importorskip("asyncpg", reason="asyncpg (a dev dependency) is not installed")


def _folder(url: str) -> Path:
    return Path(url.partition("?host=")[2])


def _postmaster(folder: Path) -> int:
    return int((folder / "data" / "postmaster.pid").read_text().split()[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("turn", [1, 2])
async def test_each_test_gets_a_fresh_empty_database(pg_url: str, turn: int) -> None:
    # Both turns create the same table: the second fails if the database were shared.
    conn: Any = await asyncpg.connect(pg_url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
        await conn.execute("CREATE TABLE marker (turn int)")
        await conn.execute("INSERT INTO marker VALUES ($1)", turn)
        assert await conn.fetchval("SELECT current_database()") != "postgres"
    finally:
        await conn.close()


async def test_the_server_listens_on_its_own_socket_only(pg_url: str) -> None:
    conn: Any = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SHOW listen_addresses") == ""
        folder = await conn.fetchval("SHOW unix_socket_directories")
        # Bytewise order, as SQLite's BINARY collation sorts.
        assert await conn.fetchval("SELECT datcollate FROM pg_database LIMIT 1") == "C"
    finally:
        await conn.close()
    assert Path(folder).name.startswith(pg_server.PREFIX)


def test_stop_removes_the_server_and_its_folder() -> None:
    server = pg_server.ThrowawayPostgres()
    try:
        url = server.start()
    except pg_server.Unavailable as exc:
        pytest.skip(f"no PostgreSQL server can be started here: {exc}")
    folder = _folder(url)
    pid = _postmaster(folder)
    assert _alive(pid)
    server.stop()
    assert not _alive(pid)
    assert not folder.exists()
    server.stop()  # idempotent


CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import pg_server
server = pg_server.ThrowawayPostgres()
print(server.start(), flush=True)
sys.stdin.read()
"""


def test_a_killed_run_leaves_no_server_behind() -> None:
    if pg_server.find_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql)")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ROOT / "tools")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        assert url.startswith("postgresql://"), url
        folder = _folder(url)
        pid = _postmaster(folder)
        assert _alive(pid)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # The watchdog polls once a second; the bound only keeps a broken watchdog from hanging.
    deadline = time.monotonic() + 30
    while (_alive(pid) or folder.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    assert not folder.exists()


def test_help_prints_usage_and_starts_no_server() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pg_server.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: tools/pg_server.py")
    assert "postgresql://" not in done.stdout

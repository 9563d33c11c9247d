"""The pg_dump backup before a PostgreSQL store's schema is upgraded, on a real server: the
dump is private from its first byte, `pg_restore` reads it back as the store was before the
upgrade, and a missing or too old pg_dump skips it with the reason said.

PostgreSQL only by nature: SQLite's VACUUM INTO backup has its own tests (test_opening.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from store_sql import DatabaseRefusedError, Store
from store_sql.engine.migrate import _alembic_config
from store_sql.engine.pg import opening
from store_sql.engine.pg.backup import major_of_pg_dump, major_of_server
from store_sql.engine.pg.url import split_password
from store_sql.schema.tables import SCHEMA_REVISION
from tests.conftest import database_url

STORE_SQL = Path(sys.executable).with_name("store-sql")
AGENT, KEY = "main", "agent:main:main"


def previous_revision() -> str:
    """The revision before the head: a store there is one upgrade behind."""
    head = ScriptDirectory.from_config(_alembic_config()).get_revision(SCHEMA_REVISION)
    assert head is not None
    assert isinstance(head.down_revision, str)
    return head.down_revision


async def older_store(url: str) -> str:
    """A store at the previous revision holding one session; that revision."""
    async with await Store.open(url) as store:
        await store.sessions.put(AGENT, KEY, {"sessionId": "s1", "updatedAt": 5})
    older = previous_revision()
    await opening.downgrade_to(url, older)
    return older


def pg_program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not on PATH: the dump cannot be read back here")
    return found


async def test_an_older_store_is_dumped_privately_then_upgraded(
    pg_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    older = await older_store(pg_url)
    folder = tmp_path / "state" / "backups"
    async with await Store.open(pg_url, backup_dir=folder) as store:
        report = store.open_report
        assert report.upgraded_from == older
        assert report.backup_skipped is None
        assert (await store.sessions.get(AGENT, KEY) or {})["sessionId"] == "s1"
    dump = report.backup_path
    assert dump is not None
    assert dump.parent == folder
    database = pg_url.partition("?")[0].rsplit("/", 1)[1]
    assert dump.name.startswith(f"{database}.backup-{older}-")
    assert dump.name.endswith(".dump")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == [dump.name]  # no partial file left
    listed = await asyncio.to_thread(
        subprocess.run,
        [pg_program("pg_restore"), "--list", str(dump)],
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert "TABLE DATA public session_entries" in listed.stdout
    # Restored into an empty database, the dump is the store as it was before the upgrade.
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute("DROP DATABASE IF EXISTS restored_dump WITH (FORCE)")
        await admin.execute(
            "CREATE DATABASE restored_dump TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
        )
        target = database_url(pg_server_url, "restored_dump")
        bare, password = split_password(target)
        restored = await asyncio.to_thread(
            subprocess.run,
            [pg_program("pg_restore"), "--no-owner", "--dbname", bare, str(dump)],
            capture_output=True,
            text=True,
            env={**os.environ, **({"PGPASSWORD": password} if password else {})},
        )
        assert restored.returncode == 0, restored.stderr
        conn = await asyncpg.connect(target)
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == older
            assert await conn.fetchval("SELECT count(*) FROM session_entries") == 1
        finally:
            await conn.close()
    finally:
        await admin.execute("DROP DATABASE IF EXISTS restored_dump WITH (FORCE)")
        await admin.close()


def test_migrate_names_the_dump_and_no_backup_makes_none(pg_url: str, tmp_path: Path) -> None:
    asyncio.run(older_store(pg_url))
    folder = tmp_path / "backups"
    done = subprocess.run(
        [str(STORE_SQL), "migrate", "--db", pg_url, "--backup-dir", str(folder), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["upgraded_from"] == previous_revision()
    assert result["backup_skipped"] is None
    assert Path(result["backup"]).parent == folder
    assert Path(result["backup"]).is_file()
    asyncio.run(opening.downgrade_to(pg_url, previous_revision()))
    done = subprocess.run(
        [str(STORE_SQL), "migrate", "--db", pg_url, "--backup-dir", str(folder), "--no-backup"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "(backup: none)" in done.stdout
    assert len(list(folder.iterdir())) == 1


def _fake_pg_dump(folder: Path, version: str) -> None:
    folder.mkdir()
    program = folder / "pg_dump"
    program.write_text(f"#!/bin/sh\necho 'pg_dump (PostgreSQL) {version}'\n")
    program.chmod(0o755)


@pytest.mark.parametrize(
    ("path_holds", "reason"),
    [
        (None, "pg_dump is not on PATH"),
        ("9.6.24", r"PostgreSQL 9\.6's, older than the server \(\d+\)"),
    ],
)
async def test_a_missing_or_older_pg_dump_skips_the_backup_and_says_why(
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    path_holds: str | None,
    reason: str,
) -> None:
    older = await older_store(pg_url)
    bin_dir = tmp_path / "bin"
    if path_holds is not None:
        _fake_pg_dump(bin_dir, path_holds)
    monkeypatch.setenv("PATH", str(bin_dir))
    folder = tmp_path / "backups"
    with caplog.at_level(logging.WARNING, logger="store_sql"):
        async with await Store.open(pg_url, backup_dir=folder) as store:
            report = store.open_report
    assert report.upgraded_from == older
    assert report.backup_path is None
    assert report.backup_skipped is not None
    assert re.search(reason, report.backup_skipped)
    assert any("no backup before the schema upgrade" in r.message for r in caplog.records)
    assert not folder.exists()


def test_versions_are_read_as_majors() -> None:
    assert major_of_pg_dump("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") == (15, 0)
    assert major_of_pg_dump("pg_dump (PostgreSQL) 9.6.24") == (9, 6)
    assert major_of_pg_dump("pg_dump (PostgreSQL) 17devel") == (17, 0)
    assert major_of_pg_dump("something else") is None
    assert major_of_server(150004) == (15, 0)
    assert major_of_server(90624) == (9, 6)
    assert major_of_pg_dump("pg_dump (PostgreSQL) 9.6.24") < major_of_server(100000)


def test_passwords_leave_the_url_for_the_environment() -> None:
    assert split_password("postgresql://me:s%40cret@host:5432/db") == (
        "postgresql://me@host:5432/db",
        "s@cret",
    )
    assert split_password("postgresql://me@/db?host=/tmp&password=s3&x=1") == (
        "postgresql://me@/db?host=/tmp&x=1",
        "s3",
    )
    assert split_password("postgresql://me@/db?password=s3&host=/tmp") == (
        "postgresql://me@/db?host=/tmp",
        "s3",
    )
    assert split_password("postgresql://me@h/db") == ("postgresql://me@h/db", None)


async def test_a_pg_dump_that_fails_refuses_the_upgrade_and_leaves_no_file(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = await older_store(pg_url)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "pg_dump"
    program.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi\n'
        "echo partial; echo 'pg_dump: error: connection refused' >&2; exit 1\n"
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    folder = tmp_path / "backups"
    with pytest.raises(DatabaseRefusedError, match=r"pg_dump exit 1: pg_dump: error: conn"):
        await Store.open(pg_url, backup_dir=folder)
    assert list(folder.iterdir()) == []  # the partial dump is gone
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == older
    finally:
        await conn.close()

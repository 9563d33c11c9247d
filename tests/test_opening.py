"""Opening a file: refuse what is not ours (untouched), create new ones, upgrade old ones.

An "older" database is made the way Alembic itself makes one: `alembic downgrade` on a
current database, to the base (its schema dropped, the file still ours) or to revision 0001
(a real older schema holding data)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from inspection_data import fts_rows

from store_sql import Store
from store_sql.engine.migrate import (
    downgrade_to,
    head_revision,
    include_object,
    transactional_engine,
)
from store_sql.engine.opening import inspect_file, prepare
from store_sql.errors import DatabaseRefusedError
from store_sql.schema import tables as schema

REPO = Path(__file__).resolve().parent.parent


def snapshot(directory: Path) -> dict[str, str]:
    """Every file in `directory` with the sha256 of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


async def make_store_db(path: Path) -> None:
    store = await Store.open(path)
    await store.sessions.patch("main", "agent:main:main", {"sessionId": "s1", "updatedAt": 1})
    await store.close()


def alembic(db: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"db={db}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def revision_of(path: Path) -> str | None:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()


# --- refusing --------------------------------------------------------------------------------


async def assert_refused(path: Path, reason: str) -> None:
    before = snapshot(path.parent)
    with pytest.raises(DatabaseRefusedError, match=reason):
        await Store.open(path)
    with pytest.raises(DatabaseRefusedError, match=reason):
        prepare(path, upgrade=True)
    assert snapshot(path.parent) == before, "a refused file (or its directory) was changed"


async def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b'{"sessions": "this is JSON, not SQLite"}\n' * 50)
    await assert_refused(path, "not a SQLite database")


async def test_a_corrupt_file_is_refused_untouched(tmp_path: Path) -> None:
    good = tmp_path / "good.sqlite"
    await make_store_db(good)
    header = good.read_bytes()[:100]  # our header: right magic, our application_id, WAL
    path = tmp_path / "corrupt" / "store.sqlite"
    path.parent.mkdir()
    path.write_bytes(header + bytes(range(256)) * 64)
    await assert_refused(path, "corrupt or unreadable")


async def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")  # WAL sidecars must not appear either
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.execute("INSERT INTO bookmarks VALUES ('https://example.org')")
    conn.commit()
    conn.close()
    assert pragma(path, "application_id") == 0
    await assert_refused(path, r"another application \(application_id=0\)")


async def test_a_newer_schema_revision_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite"
    await make_store_db(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version SET version_num = 'f00d'")
    conn.commit()
    conn.close()
    await assert_refused(path, r"revision 'f00d' is newer than this store_sql")


async def test_an_empty_file_with_a_wal_beside_it_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"")
    (tmp_path / "store.sqlite-wal").write_bytes(b"committed pages may live here")
    await assert_refused(path, "not a SQLite database")


# --- creating --------------------------------------------------------------------------------


async def test_a_new_database_is_created_at_head_with_wal_and_incremental_vacuum(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sub" / "new.sqlite"
    store = await Store.open(path)
    try:
        assert store.open_report.created is True
        assert store.open_report.upgraded_from is None
        assert pragma(path, "journal_mode") == "wal"
        assert pragma(path, "auto_vacuum") == 2  # INCREMENTAL
        assert pragma(path, "application_id") == schema.APPLICATION_ID
        assert revision_of(path) == schema.SCHEMA_REVISION == head_revision()
        assert inspect_file(path).revision == head_revision()
    finally:
        await store.close()
    leftovers = [p.name for p in path.parent.iterdir() if ".creating-" in p.name]
    assert leftovers == []
    reopened = await Store.open(path)
    try:
        assert reopened.open_report.created is False
        assert reopened.open_report.upgraded_from is None
        assert reopened.open_report.backup_path is None
    finally:
        await reopened.close()


async def test_an_empty_file_becomes_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "touched.sqlite"
    path.write_bytes(b"")  # `touch store.sqlite`, as sqlite3 itself treats it
    store = await Store.open(path)
    try:
        assert store.open_report.created is True
        assert revision_of(path) == head_revision()
    finally:
        await store.close()


# --- upgrading -------------------------------------------------------------------------------


async def test_alembic_current_works_through_alembic_ini(tmp_path: Path) -> None:
    path = tmp_path / "cli.sqlite"
    await make_store_db(path)
    assert alembic(path, "current").split() == [head_revision(), "(head)"]


async def test_an_older_database_is_refused_without_upgrade_and_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "older.sqlite"
    await make_store_db(path)
    alembic(path, "downgrade", "base")
    assert revision_of(path) is None
    before = snapshot(tmp_path)
    with pytest.raises(DatabaseRefusedError, match=r"older than .* run `store-sql migrate`"):
        prepare(path, upgrade=False)
    with pytest.raises(DatabaseRefusedError, match="older than"):
        await Store.open(path, upgrade=False)
    assert snapshot(tmp_path) == before


async def test_an_older_database_is_backed_up_then_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "older.sqlite"
    await make_store_db(path)
    alembic(path, "downgrade", "base")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE kept_note (text TEXT)")  # data the backup must hold
    conn.execute("INSERT INTO kept_note VALUES ('before the upgrade')")
    conn.commit()
    conn.close()

    store = await Store.open(path)
    try:
        report = store.open_report
        assert report.created is False
        assert report.upgraded_from == "base"
        assert report.backup_path is not None
        assert report.backup_path.parent == tmp_path
        assert report.backup_path.name.startswith("older.sqlite.backup-")
        assert await store.sessions.get("main", "agent:main:main") is None  # dropped by downgrade
        await store.sessions.patch("main", "k", {"sessionId": "s2", "updatedAt": 2})
    finally:
        await store.close()
    assert revision_of(path) == head_revision()
    assert alembic(path, "current").split() == [head_revision(), "(head)"]

    backup = report.backup_path
    assert oct(backup.stat().st_mode & 0o777) == oct(0o600)
    conn = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT text FROM kept_note").fetchall() == [("before the upgrade",)]
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "session_entries" not in tables  # the backup is the pre-upgrade state
    finally:
        conn.close()


async def test_upgrading_without_backup_makes_none(tmp_path: Path) -> None:
    path = tmp_path / "older.sqlite"
    await make_store_db(path)
    alembic(path, "downgrade", "base")
    report = prepare(path, backup=False)
    assert report.upgraded_from == "base"
    assert report.backup_path is None
    assert [name for name in os.listdir(tmp_path) if ".backup-" in name] == []
    assert revision_of(path) == head_revision()


async def test_a_0001_database_is_upgraded_with_its_lines_counted_as_indexed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r1.sqlite"
    async with await Store.open(path) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        for i in range(5):
            await store.transcripts.append_message(
                "main", "s1", {"role": "user", "content": f"old otter {i}"}
            )
        await store.search.catch_up()  # as 0001 wrote them: every line indexed
    downgrade_to(path, "0001")
    assert revision_of(path) == "0001"
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    indexed = conn.execute("SELECT rowid, text FROM entry_text_fts ORDER BY rowid").fetchall()
    top = conn.execute("SELECT max(line_pk) FROM transcript_lines").fetchone()[0]
    conn.close()
    assert "search_index_state" not in names
    assert "transcript_lines_search_mark" not in names
    assert len(indexed) == 5

    async with await Store.open(path) as store:
        assert store.open_report.upgraded_from == "0001"
        assert store.open_report.backup_path is not None
        assert store.indexer is not None
        found = await store.search.find("otter", limit=10)
        assert len(found.hits) == 5
        assert found.unsearched == 0
        fresh = await store.transcripts.append_message(
            "main", "s1", {"role": "user", "content": "a new otter"}
        )
        await store.search.catch_up()
        assert (await store.search.find("new otter")).hits[0].entry_id == fresh.id
    # 0006 rebuilt the index from the lines (it keeps no copy of the text any more): what
    # 0001 had indexed is indexed again, and the fresh line behind it.
    held = fts_rows(path)
    assert [held[pk] for pk, _ in indexed] == [text for _, text in indexed]
    assert len(held) == 6
    assert max(held) > top
    assert revision_of(path) == head_revision()
    assert schema_differences(path) == []


# --- the migration builds exactly the metadata -----------------------------------------------


def schema_differences(path: Path) -> list[object]:
    engine = transactional_engine(path)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": include_object})
            return list(compare_metadata(context, schema.metadata))
    finally:
        engine.dispose()


async def test_a_database_migrated_by_alembic_matches_the_metadata(tmp_path: Path) -> None:
    path = tmp_path / "migrated.sqlite"
    await make_store_db(path)
    assert schema_differences(path) == []


def test_the_code_revision_is_alembics_head() -> None:
    assert head_revision() == schema.SCHEMA_REVISION
    assert os.path.isdir(REPO / "migrations" / "versions")

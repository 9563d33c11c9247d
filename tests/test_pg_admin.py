"""`store-sql stats` and `store-sql doctor` on PostgreSQL: the same figures as on SQLite for
the same data (the inspection sample copied row for row), and doctor's checks finding what
a hand edit breaks, without writing anything."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import asyncpg
import pytest
from conftest import database_url
from inspection_data import Sample, cli, copy_db
from pg_copy import copy_store, create_schema
from test_pg_console import _digest

from store_sql.admin import doctor, pg_doctor, pg_stats, stats
from store_sql.schema.pg_views import SEARCH_INDEX_NAME
from store_sql.search.pg_indexer import index_step


@pytest.fixture
async def both(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> tuple[Path, str, Sample]:
    db, sample = copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("pgadmin"))
    await create_schema(pg_url)
    await copy_store(db, pg_url)
    return db, pg_url, sample


_BACKEND_OWN = ("path", "database_bytes", "free_bytes", "wal_bytes", "full_text_rows", "dialect")


async def test_stats_are_the_same_figures_on_both_backends(both: tuple[Path, str, Sample]) -> None:
    db, url, _ = both
    on_sqlite = asdict(stats.stats_file(db))
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(readonly=True):
            queued = await pg_stats.collect_stats(conn, url)
        entry_lines = await conn.fetchval(
            "SELECT count(*) FROM transcript_lines WHERE kind = 'entry'"
        )
        # The copied lines wait for the indexer until a step takes them.
        assert (queued.full_text_rows, queued.full_text_waiting) == (0, entry_lines)
        while (await index_step(conn)).lines_read:
            pass
        async with conn.transaction(readonly=True):
            on_postgresql = asdict(await pg_stats.collect_stats(conn, url))
    finally:
        await conn.close()
    # Indexed: the entries with searchable text, as SQLite's index holds them.
    assert on_postgresql.pop("full_text_rows") == on_sqlite["full_text_rows"]
    for name in _BACKEND_OWN:
        on_sqlite.pop(name)
    assert on_postgresql.pop("dialect") == "postgresql"
    assert on_postgresql.pop("database_bytes") > 0
    assert (on_postgresql.pop("free_bytes"), on_postgresql.pop("wal_bytes")) == (0, 0)
    on_postgresql.pop("path")
    assert on_postgresql == on_sqlite
    assert on_sqlite["sessions"] == 4


def test_stats_command_on_postgresql(both: tuple[Path, str, Sample]) -> None:
    _, url, _ = both
    done = cli("stats", "--db", url, "--json", "--top", "2")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["sessions"], out["dialect"], len(out["biggest_sessions"])) == (4, "postgresql", 2)
    text = cli("stats", "--db", url)
    assert text.returncode == 0, text.stderr
    assert "pg_database_size" in text.stdout
    assert "damaged lines 2 in 1 transcripts" in text.stdout


async def test_doctor_finds_a_healthy_store_and_writes_nothing(
    both: tuple[Path, str, Sample],
) -> None:
    _, url, _ = both
    before = await _digest(url)
    report = await pg_doctor.diagnose_url(url)
    assert report.status == "ok", doctor.format_report(report)
    names = [c.name for c in report.checks]
    assert names == ["database", "server", "text_rules", "schema_revision", "schema_objects",
                     "full_text_search", "chains", "foreign_key_check", "reader_role"]  # fmt: skip
    assert await _digest(url) == before
    done = cli("doctor", "--db", url, "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["status"] == "ok"


BREAKS = {
    "chains": [
        "UPDATE transcript_lines SET parent_pos = pos + 1 WHERE line_pk = "
        "(SELECT min(line_pk) FROM transcript_lines WHERE parent_pos IS NOT NULL)"
    ],
    "foreign_key_check": [
        "ALTER TABLE checkpoint_snapshots DISABLE TRIGGER ALL",
        "INSERT INTO checkpoint_snapshots (agent_id, checkpoint_id, transcript_id, upto_pos, "
        "file_name, created_at) VALUES ('main', 'c1', 999999, 0, 'x.jsonl', 'now')",
        "ALTER TABLE checkpoint_snapshots ENABLE TRIGGER ALL",
    ],
    "schema_revision": ["UPDATE alembic_version SET version_num = '9999'"],
    "full_text_search": [f"DROP INDEX {SEARCH_INDEX_NAME}"],
}


@pytest.mark.parametrize("broken", list(BREAKS))
async def test_doctor_reports_what_a_hand_edit_broke(
    both: tuple[Path, str, Sample], broken: str
) -> None:
    _, url, _ = both
    conn = await asyncpg.connect(url)
    try:
        for statement in BREAKS[broken]:
            await conn.execute(statement)
    finally:
        await conn.close()
    report = await pg_doctor.diagnose_url(url, quick=True)
    by_name = {c.name: c for c in report.checks}
    assert by_name[broken].status == "error", doctor.format_report(report)
    assert report.exit_code == 2
    others = [c for c in report.checks if c.status == "error" and c.name != broken]
    assert [c.name for c in others] in ([], ["schema_objects"]), doctor.format_report(report)


async def test_chain_counters_are_checked_unless_quick(both: tuple[Path, str, Sample]) -> None:
    _, url, s = both
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE transcripts SET line_count = line_count + 1 WHERE transcript_id = $1",
            s.main_transcript,
        )
    finally:
        await conn.close()
    assert (await pg_doctor.diagnose_url(url, quick=True)).status == "ok"
    full = await pg_doctor.diagnose_url(url)
    chains = next(c for c in full.checks if c.name == "chains")
    assert chains.status == "error"
    assert f"transcript {s.main_transcript}" in chains.summary


def test_doctor_refuses_a_database_without_a_store(pg_server_url: str) -> None:
    done = cli("doctor", "--db", database_url(pg_server_url, "postgres"))
    assert done.returncode == 2
    assert "not a store_sql database" in done.stdout
    assert "Traceback" not in done.stderr

"""`store-sql doctor` on both backends gives the same findings for the same logical data: the
inspection sample, copied row for row into PostgreSQL, damaged by the same SQL on each (each
dialect's way to bypass foreign keys aside), then examined by the real CLI. The store's own
checks (`backend` "both") must agree in name, status and, for the chains and the missing
parents, details; the exit codes agree but for what is checked on one backend only.

Both backends in one test, since the point is comparing their reports."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from inspection_data import Sample, cli, copy_db
from pg_copy import copy_store, create_schema

from store_sql.admin import doctor, pg_doctor
from store_sql.engine.migrate import known_revisions
from store_sql.schema.pg_views import SEARCH_INDEX_NAME
from store_sql.schema.tables import SCHEMA_REVISION

OLDER = sorted(known_revisions() - {SCHEMA_REVISION})[-1]
"""An older revision this store_sql knows: a store there is one `migrate` behind."""

DAMAGE: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    # name: (SQLite statements, PostgreSQL statements, {check: status} of the store's checks
    # that are not ok); `{main}` is the sample's main transcript.
    "healthy": ([], [], {}),
    "missing_parents": (
        ["PRAGMA foreign_keys = OFF", "DELETE FROM transcripts WHERE transcript_id = {main}"],
        [
            "SET session_replication_role = replica",
            "DELETE FROM transcripts WHERE transcript_id = {main}",
        ],
        {"foreign_key_check": "error"},
    ),
    "broken_parent": (
        [
            "UPDATE transcript_lines SET parent_pos = pos + 1 WHERE line_pk = "
            "(SELECT min(line_pk) FROM transcript_lines WHERE parent_pos IS NOT NULL)"
        ],
        [
            "UPDATE transcript_lines SET parent_pos = pos + 1 WHERE line_pk = "
            "(SELECT min(line_pk) FROM transcript_lines WHERE parent_pos IS NOT NULL)"
        ],
        {"chains": "error"},
    ),
    "broken_leaf": (
        ["UPDATE transcripts SET leaf_pos = line_count + 5 WHERE transcript_id = {main}"],
        ["UPDATE transcripts SET leaf_pos = line_count + 5 WHERE transcript_id = {main}"],
        {"chains": "error"},
    ),
    "wrong_counters": (
        ["UPDATE transcripts SET line_count = line_count + 1 WHERE transcript_id = {main}"],
        ["UPDATE transcripts SET line_count = line_count + 1 WHERE transcript_id = {main}"],
        {"chains": "error"},
    ),
    "newer_revision": (
        ["UPDATE alembic_version SET version_num = '9999'"],
        ["UPDATE alembic_version SET version_num = '9999'"],
        {"schema_revision": "error"},
    ),
    "older_revision": (
        [f"UPDATE alembic_version SET version_num = '{OLDER}'"],
        [f"UPDATE alembic_version SET version_num = '{OLDER}'"],
        {"schema_revision": "warn"},
    ),
    "search_index_dropped": (
        ["DROP TABLE entry_text_fts"],
        [f"DROP INDEX {SEARCH_INDEX_NAME}"],
        {"full_text_search": "error", "schema_objects": "error"},
    ),
}

THROUGH_CLI = {"healthy", "broken_parent", "older_revision"}
"""Cases examined by the real `store-sql doctor` in a subprocess (exit status included)."""

QUICK_TOO = {"healthy", "wrong_counters"}
"""Cases examined with `--quick` as well (it skips the counters, on both backends)."""

COMPARED_DETAILS = ("schema_revision", "chains", "foreign_key_check")
"""Checks whose details are the same on both backends (the others name each backend's own
objects: its index, its library or extension)."""

ENVIRONMENT = {"sqlite_library"}
"""Backend-only checks about the machine rather than the store (this Python's SQLite)."""

_RANK = {"ok": 0, "info": 0, "warn": 1, "error": 2}


def _damage_sqlite(db: Path, statements: list[str]) -> None:
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


async def _damage_postgresql(url: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _doctor(location: str | Path, quick: bool, *, through_cli: bool) -> dict[str, Any]:
    """The report as `store-sql doctor --json` prints it: from the real command, or from
    the same functions called here (the command's own test is the `through_cli` cases)."""
    if through_cli:
        done = await asyncio.to_thread(
            cli, "doctor", "--db", str(location), "--json", *(["--quick"] if quick else [])
        )
        assert "Traceback" not in done.stderr
        out: dict[str, Any] = json.loads(done.stdout)
        assert out["exit_code"] == done.returncode
        return out
    if isinstance(location, Path):
        report = await asyncio.to_thread(doctor.diagnose, location, quick=quick)
    else:
        report = await pg_doctor.diagnose_url(location, quick=quick)
    return report.as_dict()


def _store_checks(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in out["checks"] if c["backend"] == "both"]


def _worst(checks: list[dict[str, Any]]) -> int:
    return max((_RANK[c["status"]] for c in checks), default=0)


@pytest.mark.parametrize("case", list(DAMAGE))
async def test_doctor_finds_the_same_on_both_backends(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, case: str
) -> None:
    db, sample = copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("conf"))
    await create_schema(pg_url)
    await copy_store(db, pg_url)
    on_sqlite, on_postgresql, expected = DAMAGE[case]
    main = {"main": str(_main(sample))}
    _damage_sqlite(db, [s.format(**main) for s in on_sqlite])
    await _damage_postgresql(pg_url, [s.format(**main) for s in on_postgresql])
    for quick in (False, True) if case in QUICK_TOO else (False,):
        through_cli = case in THROUGH_CLI
        lite = await _doctor(db, quick, through_cli=through_cli)
        pg = await _doctor(pg_url, quick, through_cli=through_cli)
        lite_checks, pg_checks = _store_checks(lite), _store_checks(pg)
        assert [(c["name"], c["status"]) for c in lite_checks] == [
            (c["name"], c["status"]) for c in pg_checks
        ], (lite, pg)
        names = [c["name"] for c in lite_checks]
        assert names == ["database", "schema_revision", "schema_objects", "full_text_search",
                         "chains", "foreign_key_check"]  # fmt: skip
        for name in COMPARED_DETAILS:
            [a] = [c["details"] for c in lite_checks if c["name"] == name]
            [b] = [c["details"] for c in pg_checks if c["name"] == name]
            assert a == b, name
        found = {c["name"]: c["status"] for c in lite_checks if c["status"] != "ok"}
        if case == "wrong_counters" and quick:
            assert found == {}  # --quick leaves the counters alone, on both
        else:
            assert found == expected
        assert lite["store_status"] == pg["store_status"]
        # The exit codes agree but for checks about the machine (an old SQLite library).
        lite_rest = [c for c in lite["checks"] if c["name"] not in ENVIRONMENT]
        assert _worst(lite_rest) == _worst(pg["checks"]), (lite, pg)
        if all(c["status"] == "ok" for c in lite["checks"] if c["name"] in ENVIRONMENT):
            assert lite["exit_code"] == pg["exit_code"]
        assert set(lite["backend_only"]) == {
            "sqlite_library", "file_modes", "sidecar_files", "journal_mode",
            "quick_check" if quick else "integrity_check", "writer",
        }  # fmt: skip
        assert set(pg["backend_only"]) == {"server", "text_rules", "reader_role"}


def _main(sample: Sample) -> int:
    return sample.main_transcript


def test_the_human_report_names_the_backend_only_checks(tmp_path: Path) -> None:
    db, _ = copy_db(tmp_path, tmp_path / "human")
    done = cli("doctor", "--db", str(db))
    assert "SQLite only: sqlite_library, file_modes, sidecar_files, journal_mode, " in (done.stdout)
    assert "the store's own checks: healthy" in done.stdout

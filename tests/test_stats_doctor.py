"""`store-sql stats` and `store-sql doctor`: figures that match what was written, checks that
catch what they promise to catch, and neither writes to the database."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import pytest
from inspection_data import Sample, assert_untouched, cli, copy_db, files_digest, start_writer

from store_sql import Store
from store_sql.admin import doctor as doctor
from store_sql.admin import stats as stats


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Sample]:
    return copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("stats"))


@pytest.fixture
def private(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return copy_db(tmp_path_factory.getbasetemp(), tmp_path)[0]


def by_name(report: doctor.DoctorReport) -> dict[str, doctor.Check]:
    return {c.name: c for c in report.checks}


def expected_exit_when_healthy() -> int:
    # This machine's SQLite may predate the WAL-reset fix: then doctor warns (exit 1).
    return 0 if sqlite3.sqlite_version_info >= doctor.MIN_SQLITE else 1


# --- stats -----------------------------------------------------------------------------------


def test_stats_count_what_the_sample_holds(sample: tuple[Path, Sample]) -> None:
    db, _ = sample
    s = stats.stats_file(db)
    assert [a.agent_id for a in s.agents] == ["main", "ops"]
    assert (s.sessions, s.invalid_sessions) == (4, 0)
    assert s.transcripts_by_kind == {"live": 4, "reset": 1}
    assert (s.transcripts, s.superseded_transcripts) == (5, 1)
    assert s.damaged_lines == 2
    assert s.transcripts_with_damage == 1
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        entries, size = conn.execute(
            "SELECT sum(entry_count), sum(byte_size) FROM transcripts WHERE superseded_by IS NULL"
        ).fetchone()
        fts = conn.execute("SELECT count(*) FROM entry_text_fts").fetchone()[0]
    finally:
        conn.close()
    assert (s.entries, s.transcript_bytes, s.full_text_rows) == (entries, size, fts)
    assert fts > 0
    assert s.full_text_waiting == 0
    biggest = s.biggest_sessions[0]
    assert (biggest.session_key, biggest.session_id) == ("agent:main:main", "s-main")
    assert biggest.all_bytes > biggest.live_bytes  # its reset archive counts too
    assert s.database_bytes == db.stat().st_size


def test_stats_cli_json_and_text_and_missing_database(
    sample: tuple[Path, Sample], tmp_path: Path
) -> None:
    db, _ = sample
    proc = cli("stats", "--db", str(db), "--json", "--top", "2")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["sessions"] == 4
    assert len(out["biggest_sessions"]) == 2
    assert out["wal_bytes"] == os.stat(f"{db}-wal").st_size
    text = cli("stats", "--db", str(db))
    assert text.returncode == 0, text.stderr
    assert "damaged lines 2 in 1 transcripts" in text.stdout
    assert "agent:main:main" in text.stdout
    missing = tmp_path / "nope.sqlite"
    proc = cli("stats", "--db", str(missing))
    assert proc.returncode == 2
    assert "no such database" in proc.stderr
    assert not missing.exists()


# --- doctor: the library -----------------------------------------------------------------------


def test_sqlite_version_warning_names_the_wal_reset_bug() -> None:
    assert doctor.check_sqlite_version((3, 51, 3)).status == doctor.OK
    assert doctor.check_sqlite_version((3, 53, 0)).status == doctor.OK
    old = doctor.check_sqlite_version((3, 40, 1))
    assert old.status == doctor.WARN
    assert "3.51.3" in old.summary
    assert "WAL-reset" in old.summary
    assert doctor.WAL_RESET_BUG_URL in old.summary


def test_healthy_database_and_nothing_is_written(private: Path) -> None:
    before = files_digest(private)
    report = doctor.diagnose(private)
    checks = by_name(report)
    assert report.exit_code == expected_exit_when_healthy()
    healthy = ["full_text_search", "file_modes", "database", "schema_revision", "schema_objects",
               "journal_mode", "integrity_check", "foreign_key_check", "chains"]  # fmt: skip
    for name in healthy:
        assert checks[name].status == doctor.OK, checks[name]
    assert checks["full_text_search"].details == {
        "fts5": True,
        "trigram": True,
        "index": True,
        "lines_not_indexed": 0,
    }
    assert_untouched(private, before)


def test_loose_file_modes_are_a_warning(private: Path) -> None:
    private.chmod(0o644)
    check = by_name(doctor.diagnose(private))["file_modes"]
    assert check.status == doctor.WARN
    assert "0644" in check.summary


def test_foreign_key_violations_and_a_newer_revision_are_errors(private: Path) -> None:
    conn = sqlite3.connect(private)
    conn.execute(
        "INSERT INTO transcript_lines (transcript_id, pos, line, kind, byte_size) "
        "VALUES (999, 0, '{}', 'header', 2)"
    )
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    report = doctor.diagnose(private)
    checks = by_name(report)
    assert checks["foreign_key_check"].status == doctor.ERROR
    assert checks["foreign_key_check"].details["violations"][0]["table"] == "transcript_lines"
    assert checks["schema_revision"].status == doctor.ERROR
    assert "newer" in checks["schema_revision"].summary
    assert report.exit_code == 2


def test_a_corrupt_index_page_fails_integrity_check(private: Path) -> None:
    conn = sqlite3.connect(private)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'ix_transcript_lines_entry'"
    ).fetchone()[0]
    conn.close()
    with private.open("r+b") as f:  # scribble over the index's cells, keep its page header
        f.seek((root - 1) * page_size + page_size // 2)
        f.write(b"\xff" * (page_size // 2))
    check = by_name(doctor.diagnose(private))["integrity_check"]
    assert check.status == doctor.ERROR
    assert check.details["problems"]


def test_a_crashed_writers_wal_is_a_warning_and_a_live_one_is_fine(private: Path) -> None:
    writer = start_writer(private, "hold")
    try:
        live = by_name(doctor.diagnose(private))["sidecar_files"]
        assert live.status == doctor.OK
        assert live.details["processes"] == [writer.pid]
    finally:
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0
    crashed = start_writer(private, "crash")
    assert crashed.wait(timeout=30) == 0
    before = files_digest(private)
    report = doctor.diagnose(private)
    check = by_name(report)["sidecar_files"]
    assert check.status == doctor.WARN
    assert "never delete -wal or -shm" in check.summary
    assert check.details["wal_frames"] > check.details["wal_frames_checkpointed"]
    assert files_digest(private) == before  # the doctor did not checkpoint it


def test_foreign_and_missing_files_are_errors(tmp_path: Path) -> None:
    foreign = tmp_path / "other.sqlite"
    sqlite3.connect(foreign).close()
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    report = doctor.diagnose(foreign)
    assert by_name(report)["database"].status == doctor.ERROR
    assert report.exit_code == 2
    missing = doctor.diagnose(tmp_path / "missing.sqlite")
    assert by_name(missing)["database"].status == doctor.ERROR
    assert not (tmp_path / "missing.sqlite").exists()


async def test_in_process_diagnosis_reports_the_writer_metrics(private: Path) -> None:
    store = await Store.open(private)
    try:
        await store.transcripts.append_message("main", "s-other", {"role": "user", "content": "hi"})
        report = await doctor.diagnose_store(store)
    finally:
        await store.close()
    writer = by_name(report)["writer"]
    assert writer.details["writer_metrics"]["mutations"] >= 1
    assert "group commits" in writer.summary
    assert "wal_frames" not in writer.details  # the -shm header is not read in-process
    assert by_name(report)["sidecar_files"].status == doctor.OK


# --- doctor: the command -----------------------------------------------------------------------


def test_doctor_cli_exit_codes_and_json(private: Path) -> None:
    proc = cli("doctor", "--db", str(private), "--json")
    assert proc.returncode == expected_exit_when_healthy(), proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["exit_code"] == proc.returncode
    names = [c["name"] for c in out["checks"]]
    assert names[0] == "sqlite_library"
    assert {"integrity_check", "foreign_key_check", "journal_mode", "writer"} <= set(names)
    assert {"full_text_search", "chains", "schema_revision", "schema_objects"} <= set(names)
    assert out["backend_only"] == [c["name"] for c in out["checks"] if c["backend"] == "sqlite"]
    assert set(out["backend_only"]) == {
        "sqlite_library", "file_modes", "sidecar_files", "journal_mode", "integrity_check",
        "writer",
    }  # fmt: skip
    text = cli("doctor", "--db", str(private), "--quick")
    assert text.returncode == proc.returncode
    assert "quick_check" in text.stdout
    if proc.returncode == 1:  # old SQLite: the warning shows and explains itself
        assert "WAL-reset bug" in text.stdout
        assert "3.51.3" in text.stdout
    conn = sqlite3.connect(private)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DELETE FROM transcripts WHERE transcript_id = 2")  # orphans its lines
    conn.commit()
    conn.close()
    broken = cli("doctor", "--db", str(private))
    assert broken.returncode == 2
    assert "ERROR  foreign_key_check" in broken.stdout


def test_doctor_is_quick_on_the_sample(sample: tuple[Path, Sample]) -> None:
    db, _ = sample
    report = asyncio.run(asyncio.to_thread(doctor.diagnose, db, quick=True))
    assert by_name(report)["quick_check"].status == doctor.OK

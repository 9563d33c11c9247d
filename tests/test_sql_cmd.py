"""`store-sql sql`, the read-only maintainer console: output formats, bounded output, refusal
of every kind of write, and safety beside a live writer (no checkpoint, WAL untouched)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from inspection_data import Sample, assert_untouched, cli, copy_db, files_digest, start_writer

from store_sql.admin import sql_console as sql_console
from store_sql.errors import DatabaseRefusedError


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Sample]:
    """Read-only tests share one copy."""
    return copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("sql"))


@pytest.fixture
def private(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return copy_db(tmp_path_factory.getbasetemp(), tmp_path)[0]


# --- output ----------------------------------------------------------------------------------


def test_table_output_is_the_default(shared: tuple[Path, Sample]) -> None:
    db, _ = shared
    proc = cli("sql", "--db", str(db), "SELECT session_key, session_id FROM sessions ORDER BY 1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["session_key", "session_id"]
    assert lines[1].split() == ["agent:main:main", "s-main"]
    assert lines[-1] == "(4 rows)"


def test_json_output_has_columns_rows_and_blobs_as_base64(shared: tuple[Path, Sample]) -> None:
    db, _ = shared
    sql = (
        "SELECT pos, line, typeof(line) AS t FROM transcript_lines "
        "WHERE kind = 'damaged' ORDER BY pos"
    )
    proc = cli("sql", "--db", str(db), "--json", "--max-rows", "2", sql)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["columns"] == ["pos", "line", "t"]
    assert (out["row_count"], out["truncated"], out["max_rows"]) == (2, False, 2)
    blob, text = out["rows"]
    assert blob["t"] == "blob"
    assert blob["line"]["$base64"] is True  # Datasette's convention
    assert text["line"] == '{"type":"message","id":"cut","parentId":'


def test_csv_output_round_trips(shared: tuple[Path, Sample]) -> None:
    db, _ = shared
    proc = cli(
        "sql",
        "--db",
        str(db),
        "--csv",
        "SELECT role, text FROM messages WHERE role = 'bashExecution'",
    )
    assert proc.returncode == 0, proc.stderr
    assert list(csv.reader(io.StringIO(proc.stdout))) == [
        ["role", "text"],
        ["bashExecution", "ls -la\nREADME.md"],
    ]


def test_output_is_bounded_with_a_clear_notice(shared: tuple[Path, Sample]) -> None:
    db, _ = shared
    sql = "SELECT line_pk FROM transcript_lines ORDER BY line_pk"
    proc = cli("sql", "--db", str(db), "--csv", "--max-rows", "3", sql)
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["line_pk", "1", "2", "3"]
    assert "output cut at 3 rows" in proc.stderr


def test_library_reads_only_one_row_past_the_bound(shared: tuple[Path, Sample]) -> None:
    db, _ = shared
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"
    result = sql_console.run_query(db, endless, max_rows=5)
    assert result.rows == [(1,), (2,), (3,), (4,), (5,)]
    assert result.truncated


def test_a_runaway_query_is_stopped_by_the_timeout(shared: tuple[Path, Sample]) -> None:
    db, _ = shared
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    )
    with pytest.raises(sql_console.QueryFailedError, match=r"stopped after 0\.3 s"):
        sql_console.run_query(db, endless, timeout_s=0.3)


def test_reporting_pragmas_and_table_valued_pragmas_are_allowed(
    shared: tuple[Path, Sample],
) -> None:
    db, _ = shared
    with sql_console.open_console(db) as console:
        assert console.query("PRAGMA journal_mode").rows == [("wal",)]
        assert console.query("PRAGMA integrity_check").rows == [("ok",)]
        names = console.query("SELECT name FROM pragma_table_info('transcripts')").rows
        assert ("superseded_by",) in names
        hits = console.query("SELECT rowid FROM entry_text_fts WHERE text LIKE '%needle%'")
        assert len(hits.rows) >= 5


# --- refusing writes -------------------------------------------------------------------------

WRITES = [
    "DELETE FROM transcripts",
    "UPDATE session_entries SET label = 'x'",
    "INSERT INTO opaque_files (agent_id, rel_dir, file_name, kind, content, sha256, "
    "imported_at) VALUES ('a', 'b', 'c', 'd', x'00', 'e', 'f')",
    "INSERT INTO entry_text_fts (entry_text_fts) VALUES ('optimize')",
    "DROP VIEW messages",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "CREATE INDEX i ON transcripts (kind)",
    "ALTER TABLE transcripts ADD COLUMN x",
    "ATTACH DATABASE 'other.sqlite' AS other",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA wal_checkpoint",
    "PRAGMA query_only = 0",
    "PRAGMA user_version = 7",
    "PRAGMA optimize",
    "BEGIN IMMEDIATE",
    "SELECT load_extension('x')",
]


def test_every_kind_of_write_is_refused_and_nothing_changes(private: Path) -> None:
    before = files_digest(private)
    for statement in WRITES:
        with pytest.raises(sql_console.QueryFailedError, match="read-only"):
            sql_console.run_query(private, statement)
    assert_untouched(private, before)
    assert not (private.parent / "other.sqlite").exists()  # ATTACH would have created it


def test_a_writing_statement_exits_1_with_the_reason(private: Path) -> None:
    before = files_digest(private)
    proc = cli("sql", "--db", str(private), "DELETE FROM session_entries")
    assert proc.returncode == 1
    assert "refused: the console is read-only and DELETE writes" in proc.stderr
    assert proc.stdout == ""
    assert_untouched(private, before)


def test_missing_foreign_and_non_sqlite_files_are_refused_with_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite"
    proc = cli("sql", "--db", str(missing), "SELECT 1")
    assert proc.returncode == 2
    assert "no such database" in proc.stderr
    assert not missing.exists()
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    proc = cli("sql", "--db", str(foreign), "SELECT * FROM t")
    assert proc.returncode == 2
    assert "another application" in proc.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 10)
    with pytest.raises(DatabaseRefusedError, match="not a SQLite database"):
        sql_console.run_query(text, "SELECT 1")
    assert text.read_text() == "hello, not a database\n" * 10


def test_invalid_sql_is_a_query_failure(shared: tuple[Path, Sample]) -> None:
    db, _ = shared
    with pytest.raises(sql_console.QueryFailedError, match="query failed"):
        sql_console.run_query(db, "SELEC nothing")
    with pytest.raises(sql_console.QueryFailedError, match="one statement"):
        sql_console.run_query(db, "SELECT 1; SELECT 2")


# --- beside a live gateway -------------------------------------------------------------------


def test_wal_untouched_while_a_writer_holds_the_database(private: Path) -> None:
    writer = start_writer(private, "hold")
    try:
        wal = Path(f"{private}-wal")
        before = files_digest(private)
        assert wal.stat().st_size > 0  # the writer's commits are still in the WAL
        proc = cli(
            "sql", "--db", str(private), "SELECT count(*) FROM messages WHERE session_id = 's-live'"
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[1] == "20"  # sees committed WAL frames
        assert files_digest(private) == before  # no checkpoint: database and -wal identical
    finally:
        assert writer.stdin is not None
        writer.stdin.write("\n")
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0


def test_wal_of_a_crashed_writer_is_read_but_never_checkpointed(private: Path) -> None:
    writer = start_writer(private, "crash")
    assert writer.wait(timeout=30) == 0
    wal = Path(f"{private}-wal")
    assert wal.stat().st_size > 0  # nobody folded the frames into the database
    before = files_digest(private)
    result = sql_console.run_query(
        private, "SELECT count(*) FROM messages WHERE session_id = 's-live'"
    )
    assert result.rows == [(20,)]
    # The last connection to close was ours, read-only: it could not checkpoint or delete
    # the WAL (SQLite's recovery rebuilt the wal-index in -shm, which is not data).
    assert files_digest(private) == before


def test_queries_succeed_while_another_process_keeps_writing(private: Path) -> None:
    writer = start_writer(private, "loop")
    counts = []
    try:
        for _ in range(2):
            proc = cli("sql", "--db", str(private), "--json",
                       "SELECT count(*) AS n FROM transcript_lines")  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            counts.append(json.loads(proc.stdout)["rows"][0]["n"])
    finally:
        assert writer.stdin is not None
        assert writer.stdout is not None
        writer.stdin.write("\n")
        writer.stdin.flush()
        written = int(writer.stdout.readline())
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0
    assert counts == sorted(counts)
    assert written > 0
    final = sql_console.run_query(
        private, "SELECT count(*) FROM messages WHERE session_id = 's-live'"
    )
    assert final.rows == [(20 + written,)]

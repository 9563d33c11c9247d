"""`store-sql sql` on PostgreSQL: read-only as a READ ONLY transaction under the role
store_sql_reader, the same output formats and bounds as on SQLite (real subprocesses, the
inspection sample copied into PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import pytest
from conftest import database_url
from inspection_data import Sample, cli

from store_sql.admin import pg_console
from store_sql.admin.sql_console import QueryFailedError
from store_sql.cli.main import main
from store_sql.schema.pg_views import READER_ROLE, READER_ROLE_GRANTS

SAME_OUTPUT = [
    "SELECT session_key, session_id, updated_at_iso, transcript_file FROM sessions "
    "ORDER BY session_key",
    "SELECT entry_id, role, text, tool_names FROM messages ORDER BY line_pk",
    "SELECT transcript_id, target_id, label FROM resolved_labels ORDER BY 1, 2",
    "SELECT session_key, messages, usage_total_tokens FROM session_stats ORDER BY 1",
]


def _in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command run in this process (the subprocess tests below cover the real one)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("form", ["--table", "--csv", "--json"])
def test_the_same_query_prints_the_same_bytes_on_both_backends(
    both: tuple[Path, str, Sample], form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db, url, _ = both
    for sql in SAME_OUTPUT:
        on_sqlite = _in_process(capsys, "sql", "--db", str(db), form, sql)
        on_postgresql = _in_process(capsys, "sql", "--db", url, form, sql)
        assert on_sqlite[0] == 0, on_sqlite
        # the same bytes, and no notice: the reader role exists
        assert on_postgresql == on_sqlite
    real = cli("sql", "--db", url, form, SAME_OUTPUT[0])
    assert (real.returncode, real.stdout) == (
        0,
        _in_process(capsys, "sql", "--db", str(db), form, SAME_OUTPUT[0])[1],
    )


def test_bytes_print_as_on_sqlite(both: tuple[Path, str, Sample]) -> None:
    db, url, _ = both
    on_sqlite = cli("sql", "--db", str(db), "--json",
                    "SELECT line FROM transcript_lines WHERE typeof(line) = 'blob'")  # fmt: skip
    on_postgresql = cli("sql", "--db", url, "--json",
                        "SELECT line_bytes AS line FROM transcript_lines "
                        "WHERE line_bytes IS NOT NULL")  # fmt: skip
    assert json.loads(on_postgresql.stdout) == json.loads(on_sqlite.stdout)
    assert "$base64" in on_postgresql.stdout


def test_output_is_bounded_with_the_same_notice(both: tuple[Path, str, Sample]) -> None:
    db, url, _ = both
    rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) "
    pads = {
        str(db): rows + "SELECT i, substr(hex(zeroblob(500)), 1, 1000) AS pad FROM n",
        url: rows + "SELECT i, repeat('0', 1000) AS pad FROM n",
    }
    for args in (["--max-rows", "2"], ["--max-bytes", "10000"]):
        on_sqlite = cli("sql", "--db", str(db), "--csv", *args, pads[str(db)])
        on_postgresql = cli("sql", "--db", url, "--csv", *args, pads[url])
        assert (on_postgresql.returncode, on_postgresql.stdout, on_postgresql.stderr) == (
            0, on_sqlite.stdout, on_sqlite.stderr)  # fmt: skip
        assert "cut" in on_postgresql.stderr
    too_long = cli("sql", "--db", url, "--max-bytes", "1000", "SELECT repeat('x', 5000)")
    assert too_long.returncode == 1
    assert "longer than 1000 bytes" in too_long.stderr


def test_an_endless_query_is_read_one_row_past_the_bound(both: tuple[Path, str, Sample]) -> None:
    _, url, _ = both
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"
    result = pg_console.run_query(url, endless, max_rows=5, timeout_s=30, max_bytes=10**6)
    assert result.rows == [(1,), (2,), (3,), (4,), (5,)]
    assert result.truncated


@pytest.mark.parametrize("form", ["--table", "--csv", "--json"])
def test_an_endless_query_streams_through_the_printer_and_stops_at_the_bound(
    both: tuple[Path, str, Sample], form: str
) -> None:
    _, url, _ = both
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"
    done = cli("sql", "--db", url, form, "--max-rows", "1000", "--timeout", "60", endless)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "store-sql sql: output cut at 1000 rows; more rows were not read "
        "(raise --max-rows, or add LIMIT/WHERE)\n"
    )
    if form == "--json":
        printed = json.loads(done.stdout)
        assert [r["i"] for r in printed["rows"]] == list(range(1, 1001))
        assert (printed["truncated"], printed["cut_by"]) == (True, "rows")
    else:
        assert done.stdout.splitlines()[1:3] == ["1", "2"]
        assert "1000" in done.stdout.splitlines()[1000]


def test_a_runaway_query_is_stopped_by_the_timeout(both: tuple[Path, str, Sample]) -> None:
    _, url, _ = both
    done = cli("sql", "--db", url, "--timeout", "0.5", "SELECT pg_sleep(30)")
    assert done.returncode == 1
    assert "stopped after 0.5 s" in done.stderr


WRITES = [
    "INSERT INTO session_indexes (agent_id, rel_dir) VALUES ('x', 'sessions')",
    "UPDATE transcripts SET kind = 'other'",
    "DELETE FROM transcript_lines",
    "CREATE TABLE evil (a int)",
    "DROP VIEW messages",
    "ALTER TABLE transcripts ADD COLUMN evil int",
    "TRUNCATE transcripts CASCADE",
    "COPY transcripts TO PROGRAM 'touch /tmp/store-sql-console-escaped'",
    "DO $$ BEGIN DELETE FROM transcript_lines; END $$",
    "WITH gone AS (DELETE FROM transcript_lines RETURNING 1) SELECT count(*) FROM gone",
    "SELECT nextval(pg_get_serial_sequence('transcripts', 'transcript_id'))",
    "SELECT * FROM transcripts FOR UPDATE",
    "EXPLAIN ANALYZE DELETE FROM transcript_lines",
    "SELECT set_config('role', 'postgres', false)",
    "SELECT lo_export(0, '/tmp/store-sql-console-escaped')",
    "SELECT pg_read_file('/etc/hostname')",  # a superuser may; the reader role may not
    "SET ROLE postgres",
    "RESET ROLE",
    "VACUUM",
    "SELECT 1; DELETE FROM transcript_lines",
]


async def _digest(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        names = [r[0] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() ORDER BY 1")]  # fmt: skip
        return {
            name: await conn.fetchval(
                f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
                f"FROM {name} AS t"
            )
            for name in names
        }
    finally:
        await conn.close()


async def test_every_kind_of_write_is_refused_and_nothing_changes(
    both: tuple[Path, str, Sample],
) -> None:
    _, url, _ = both
    before = await _digest(url)
    assert "transcript_lines" in before
    for sql in WRITES:
        with pytest.raises(QueryFailedError) as refused:
            await pg_console.query(url, sql, max_rows=10, timeout_s=30, max_bytes=10**6)
        assert "refused" in str(refused.value) or "permission denied" in str(refused.value), sql
    for sql in WRITES[:3]:  # the command: exit 1, the reason in one line
        done = cli("sql", "--db", url, sql)
        assert (done.returncode, done.stdout) == (1, ""), done.stderr
        assert done.stderr.count("\n") == 1
        assert "read-only" in done.stderr
    assert await _digest(url) == before
    assert not await asyncio.to_thread(Path("/tmp/store-sql-console-escaped").exists)


async def test_without_the_reader_role_it_runs_read_only_and_says_so(
    both: tuple[Path, str, Sample], pg_server_url: str
) -> None:
    """A user who is not a member of store_sql_reader (the server let nobody grant it):
    the READ ONLY transaction alone still refuses writes."""
    _, url, _ = both
    user = f"u_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE ROLE {user} LOGIN")
        await admin.execute(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {user}")
        as_user = url.replace("postgresql://postgres@", f"postgresql://{user}@")
        assert as_user != url
        read = cli("sql", "--db", as_user, "SELECT count(*) AS n FROM sessions")
        assert read.returncode == 0, read.stderr
        assert READER_ROLE in read.stderr
        assert "READ ONLY transaction only" in read.stderr
        insert = "INSERT INTO session_indexes (agent_id, rel_dir) VALUES ('x', 's') RETURNING 1"
        written = cli("sql", "--db", as_user, f"WITH x AS ({insert}) SELECT * FROM x")
        assert written.returncode == 1
        assert "read-only" in written.stderr
    finally:
        await admin.execute(f"DROP OWNED BY {user}")
        await admin.execute(f"DROP ROLE {user}")
        await admin.close()


async def test_a_database_without_a_store_is_refused_with_exit_2(pg_server_url: str) -> None:
    url = database_url(pg_server_url, "postgres")
    done = cli("sql", "--db", url, "SELECT 1")
    assert done.returncode == 2
    assert "not a store_sql database" in done.stderr
    unreachable = cli("sql", "--db", "postgresql://nobody@/none?host=/nonexistent", "SELECT 1")
    assert unreachable.returncode == 2
    assert "cannot connect" in unreachable.stderr


async def test_granting_the_role_where_the_server_does_not_allow_it_only_says_so(
    pg_url: str,
) -> None:
    """The schema's owner without CREATEROLE: the grant block raises a NOTICE, not an
    error, so creating the schema goes on (a role name of its own, the real one being
    cluster-wide and already made by other tests)."""
    owner, role = f"o_{uuid.uuid4().hex[:12]}", f"r_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_url)
    notices: list[str] = []
    admin.add_log_listener(lambda _c, message: notices.append(str(message)))
    try:
        await admin.execute(f"CREATE ROLE {owner} NOLOGIN")
        async with admin.transaction():
            await admin.execute(f"SET LOCAL ROLE {owner}")
            await admin.execute(READER_ROLE_GRANTS.replace(READER_ROLE, role))
        assert not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        await asyncio.sleep(0)  # notices arrive through the event loop
        assert any("cannot create the role" in n for n in notices), notices
    finally:
        await admin.execute(f"DROP ROLE {owner}")
        await admin.close()

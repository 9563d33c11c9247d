"""The PostgreSQL engine on a real server: opening rules (encoding, collation, foreign and
newer schemas), the schema through Alembic, group commit, a failing mutation alone, reads
in one snapshot, the password masked, unported namespaces refused in one line.

PostgreSQL only by nature: these are the engine's own rules on that server; what both
backends share runs through the `backend` fixture elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from store_sql import BackendNotSupportedError, DatabaseRefusedError, Store, WriteFailedError
from store_sql import store as store_module
from store_sql.engine.pg.connection import CombinablePgMutation
from store_sql.engine.pg.url import is_postgres_url, mask_password
from store_sql.schema.tables import SCHEMA_REVISION, metadata
from tests.conftest import database_url


async def _make_database(server_url: str, name: str, *options: str) -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 {' '.join(options)}")
    finally:
        await admin.close()
    return database_url(server_url, name)


def test_urls_are_told_from_paths_and_passwords_masked() -> None:
    assert is_postgres_url("postgresql://u@h/db")
    assert is_postgres_url("postgres://u@h/db")
    assert not is_postgres_url("postgresql.sqlite")
    assert not is_postgres_url(Path("postgresql://x"))
    assert (
        mask_password("postgresql://me:s3cret@host:5432/db") == "postgresql://me:***@host:5432/db"
    )
    assert mask_password("postgresql://me@/db?host=/tmp&password=s3cret&x=1") == (
        "postgresql://me@/db?host=/tmp&password=***&x=1"
    )
    assert mask_password("postgresql://me@host/db") == "postgresql://me@host/db"


async def test_open_builds_the_schema_and_reopens(pg_url: str) -> None:
    store = await Store.open(pg_url)
    try:
        assert store.dialect == "postgresql"
        assert store.location == pg_url
        assert store.open_report.created
        revision = await store.postgres.read(
            lambda c: c.fetchval("SELECT version_num FROM alembic_version")
        )
        assert revision == SCHEMA_REVISION
    finally:
        await store.close()
    again = await Store.open(pg_url)
    assert not again.open_report.created
    assert again.open_report.upgraded_from is None
    await again.close()


async def test_the_schema_has_every_table_of_the_metadata(pg_url: str) -> None:
    await (await Store.open(pg_url)).close()
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
    finally:
        await conn.close()
    columns = {(r["table_name"], r["column_name"]): r["data_type"] for r in rows}
    for table in metadata.sorted_tables:
        for column in table.columns:
            assert (table.name, column.name) in columns, (table.name, column.name)
    # 64-bit row ids, numbers of entries as they are, bytes beside text for lines
    assert columns[("session_entries", "updated_at")] == "numeric"
    assert columns[("session_entries", "entry_pk")] == "bigint"
    assert columns[("transcript_lines", "line")] == "text"
    assert columns[("transcript_lines", "line_bytes")] == "bytea"
    assert columns[("opaque_files", "content")] == "bytea"


async def test_a_database_not_in_utf8_or_not_c_collated_is_refused(pg_server_url: str) -> None:
    latin = await _make_database(pg_server_url, "t_latin1", "ENCODING 'LATIN1'", "LOCALE 'C'")
    with pytest.raises(DatabaseRefusedError, match="encoding is LATIN1"):
        await Store.open(latin)
    try:
        icu = await _make_database(
            pg_server_url, "t_icu", "ENCODING 'UTF8'", "LOCALE_PROVIDER icu", "ICU_LOCALE 'en-US'"
        )
    except asyncpg.PostgresError as exc:  # a server built without ICU has no other order
        pytest.skip(f"no collation other than C on this server to refuse: {exc}")
    with pytest.raises(DatabaseRefusedError, match="collation is 'en-US', not C"):
        await Store.open(icu)


async def test_foreign_tables_and_newer_revisions_are_refused_untouched(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE theirs (x int)")
        with pytest.raises(DatabaseRefusedError, match="not a store_sql schema"):
            await Store.open(pg_url)
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        )
        assert tables == 1
        await conn.execute("DROP TABLE theirs")
        with pytest.raises(DatabaseRefusedError, match="no store_sql schema"):
            await Store.open(pg_url, create=False)
        await (await Store.open(pg_url)).close()
        await conn.execute("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(DatabaseRefusedError, match="newer than this store_sql"):
            await Store.open(pg_url)
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "9999"
    finally:
        await conn.close()


async def test_an_unreachable_server_is_one_refusal_with_the_password_masked(
    tmp_path: Path,
) -> None:
    url = f"postgresql://me:s3cret@/db?host={tmp_path}"
    with pytest.raises(DatabaseRefusedError) as caught:
        await Store.open(url)
    assert "s3cret" not in str(caught.value)
    assert "postgresql://me:***@/db" in str(caught.value)


async def test_every_namespace_is_on_postgresql() -> None:
    namespaces = {"sessions", "transcripts", "checkpoints", "lifecycle", "maintenance", "search"}
    assert namespaces == store_module.POSTGRES_NAMESPACES


async def test_unported_namespaces_raise_backend_not_supported(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A namespace left out of POSTGRES_NAMESPACES (none is now) refuses on first use."""
    ported = store_module.POSTGRES_NAMESPACES - {"checkpoints"}
    monkeypatch.setattr(store_module, "POSTGRES_NAMESPACES", ported)
    store = await Store.open(pg_url)
    try:
        with pytest.raises(
            BackendNotSupportedError, match=r"store\.checkpoints is not on PostgreSQL"
        ):
            await store.checkpoints.get("main", "agent:main:main", "x")
        with pytest.raises(BackendNotSupportedError):
            await store.write(lambda c: None)
        with pytest.raises(BackendNotSupportedError):
            _ = store.path
    finally:
        await store.close()


async def test_group_commit_keeps_each_failure_to_its_own_caller(pg_url: str) -> None:
    store = await Store.open(pg_url)
    db = store.postgres

    def insert(agent: str) -> Any:
        async def run(c: Any) -> str:
            await c.execute(
                "INSERT INTO session_indexes (agent_id, rel_dir) VALUES ($1, 'sessions')", agent
            )
            return agent

        return run

    async def fail(c: Any) -> None:
        await c.execute("SELECT 1/0")

    try:
        results = await asyncio.gather(
            *(db.write(insert(f"a{i}")) for i in range(20)),
            db.write(fail),
            db.write(insert("a0")),  # a duplicate key: this one alone fails
            return_exceptions=True,
        )
        assert results[:20] == [f"a{i}" for i in range(20)]
        assert isinstance(results[20], WriteFailedError)
        assert isinstance(results[21], WriteFailedError)
        assert "23505" in str(results[21])
        count = await db.read(lambda c: c.fetchval("SELECT count(*) FROM session_indexes"))
        assert count == 20
        assert store.metrics()["batches"] < 22  # queued writes shared transactions
    finally:
        await store.close()


class _Insert(CombinablePgMutation):
    calls: list[int] = []  # noqa: RUF012 - the test reads it

    def __init__(self, agent: str) -> None:
        self.agent = agent

    async def __call__(self, conn: Any) -> str:
        await conn.execute(
            "INSERT INTO session_indexes (agent_id, rel_dir) VALUES ($1, 'sessions')", self.agent
        )
        return self.agent

    @classmethod
    async def combine(cls, conn: Any, mutations: Any) -> list[str]:
        cls.calls.append(len(mutations))
        agents = [m.agent for m in mutations]
        await conn.execute(
            "INSERT INTO session_indexes (agent_id, rel_dir) "
            "SELECT a, 'sessions' FROM unnest($1::text[]) AS a",
            agents,
        )
        return agents


async def test_combinable_mutations_run_as_one_call_and_alone_on_failure(pg_url: str) -> None:
    store = await Store.open(pg_url)
    try:
        _Insert.calls.clear()
        names = [f"c{i}" for i in range(30)]
        got = await asyncio.gather(*(store.postgres.write(_Insert(n)) for n in names))
        assert got == names
        assert max(_Insert.calls, default=0) > 1
        again = await asyncio.gather(
            store.postgres.write(_Insert("new1")),
            store.postgres.write(_Insert("c0")),
            store.postgres.write(_Insert("new2")),
            return_exceptions=True,
        )
        assert again[0] == "new1"
        assert isinstance(again[1], WriteFailedError)
        assert again[2] == "new2"
    finally:
        await store.close()


async def test_reads_see_one_snapshot_and_cannot_write(pg_url: str) -> None:
    store = await Store.open(pg_url)
    try:
        gate = asyncio.Event()
        written = asyncio.Event()

        async def read_twice(c: Any) -> tuple[int, int]:
            first = await c.fetchval("SELECT count(*) FROM session_indexes")
            gate.set()
            await written.wait()
            return first, await c.fetchval("SELECT count(*) FROM session_indexes")

        reading = asyncio.create_task(store.postgres.read(read_twice))
        await gate.wait()
        await store.postgres.write(
            lambda c: c.execute("INSERT INTO session_indexes (agent_id, rel_dir) VALUES ('x', 's')")
        )
        written.set()
        assert await reading == (0, 0)
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await store.postgres.read(lambda c: c.execute("DELETE FROM session_indexes"))
    finally:
        await store.close()


async def test_two_processes_opening_at_once_build_the_schema_once(pg_url: str) -> None:
    stores = await asyncio.gather(Store.open(pg_url), Store.open(pg_url))
    assert sorted(s.open_report.created for s in stores) == [False, True]
    for s in stores:
        await s.close()


async def test_a_writer_whose_connection_broke_reconnects(pg_url: str) -> None:
    """The server ends the writer's connection (a restart, an admin): a group that met the
    broken connection fails with WriteFailedError (whether it committed is unknown); a
    connection already known to be closed is replaced before the next group runs."""
    store = await Store.open(pg_url)
    try:
        insert = "INSERT INTO session_indexes (agent_id, rel_dir) VALUES ($1, 'sessions')"
        await store.postgres.write(lambda c: c.execute(insert, "before"))
        pid = await store.postgres.write(lambda c: c.fetchval("SELECT pg_backend_pid()"))
        admin = await asyncpg.connect(pg_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        with contextlib.suppress(WriteFailedError):  # it depends on when asyncpg noticed
            await store.postgres.write(lambda c: c.execute(insert, "during"))
        await store.postgres.write(lambda c: c.execute(insert, "after"))
        agents = await store.postgres.read(
            lambda c: c.fetch("SELECT agent_id FROM session_indexes ORDER BY 1")
        )
        assert {"after", "before"} <= {r[0] for r in agents}
        assert store.metrics()["reconnects"] == 1
        assert await store.postgres.write(lambda c: c.fetchval("SELECT pg_backend_pid()")) != pid
    finally:
        await store.close()


async def test_a_read_cancelled_at_any_step_leaves_the_next_read_a_fresh_snapshot(
    pg_store_url: str,
) -> None:
    """A read cancelled while its BEGIN, a statement or its COMMIT is on the wire (a client
    that went away) must not hand its connection, still inside that transaction, to the
    next read: that read would run as a savepoint of the old snapshot and miss every
    commit made since."""
    other = await asyncpg.connect(pg_store_url)
    store = await Store.open(pg_store_url)
    try:
        await other.execute("CREATE TABLE probe (x integer)")
        db = store.postgres

        async def newest(conn: Any) -> int:
            await conn.fetchval("SELECT 1")
            return int(await conn.fetchval("SELECT coalesce(max(x), -1) FROM probe"))

        for steps in range(60):
            task = asyncio.create_task(db.read(newest))
            for _ in range(steps % 6):
                await asyncio.sleep(0)
            if steps >= 30:
                await asyncio.sleep((steps - 30) * 0.0001)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await other.execute("INSERT INTO probe VALUES ($1)", steps)
            assert await db.read(newest) == steps

        # Whatever left it there, a connection still inside a transaction after its read
        # goes, and the next read gets a connection of its own.
        async def leaves_a_transaction_open(conn: Any) -> None:
            await conn.execute("BEGIN")

        for steps in range(60, 65):
            await db.read(leaves_a_transaction_open, single_statement=True)
            await other.execute("INSERT INTO probe VALUES ($1)", steps)
            assert await db.read(newest) == steps
    finally:
        await store.close()
        await other.close()

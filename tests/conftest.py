"""Shared fixtures: a real Store on a SQLite file in tmp_path, a fresh database on a real
PostgreSQL server, Node as the JSON oracle, and the real pi (tools/oracles) as the oracle of
its own session code."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import inspection_data
import pg_copy
import pytest

from store_sql import Store
from store_sql.formats.transcript_jsonl import LineKind, classify_line, read_header, split_lines
from store_sql.sessions.rows import default_rel_dir
from store_sql.transcripts import pg_rows as pg_transcripts
from store_sql.transcripts import rows as transcripts

NODE = shutil.which("node")
ROOT = Path(__file__).resolve().parent.parent


def _load_pg_server() -> Any:
    spec = importlib.util.spec_from_file_location("pg_server", ROOT / "tools" / "pg_server.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pg_server = _load_pg_server()


def _cache_child_bytecode() -> None:
    """The run's child processes (hundreds of `store-sql` and server starts) read their
    modules' bytecode from a cache instead of compiling each module at each start, also where
    the machine sets PYTHONDONTWRITEBYTECODE: the cache is in .pytest_cache, outside the
    source tree, and a changed source file is compiled again as usual."""
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
        del os.environ["PYTHONDONTWRITEBYTECODE"]
        os.environ["PYTHONPYCACHEPREFIX"] = str(ROOT / ".pytest_cache" / "pycache")


_cache_child_bytecode()

LONG_ENV = "STORE_SQL_LONG_TESTS"
"""Set to 1 by `--long` (or by hand): long crash, soak and fuzz runs (docs/TESTING.md)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="also run tests marked slow (long crash, soak and fuzz runs; docs/TESTING.md)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Test modules read the mode at import time (hypothesis budgets), and child processes
    # inherit it: an environment variable reaches both.
    if config.getoption("--long"):
        os.environ[LONG_ENV] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long") or os.environ.get(LONG_ENV) == "1":
        return
    skip = pytest.mark.skip(reason="long run: use --long (docs/TESTING.md)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A freshly created database, closed (and drained) after the test."""
    opened = await Store.open(tmp_path / "store.sqlite")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """The URL of a PostgreSQL server for this run: the one `tools/dev.py test` started
    (STORE_SQL_TEST_PG), else a throwaway one started here for the run and stopped after it.
    Skips, saying why, where no server can be started."""
    given = os.environ.get(pg_server.URL_ENV)
    if given:
        yield given
        return
    server = pg_server.ThrowawayPostgres()
    try:
        server.start()
    except pg_server.Unavailable as exc:
        pytest.skip(f"no PostgreSQL server can be started here: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


TEMPLATE_DB = "store_sql_template"


async def _admin(url: str) -> Any:
    import asyncpg  # a dev dependency; imported here so SQLite-only runs never need it

    return await asyncpg.connect(url)


database_url = pg_server.database_url


@pytest.fixture
async def pg_url(pg_server_url: str) -> AsyncIterator[str]:
    """The URL of a fresh, empty PostgreSQL database made for this test (a copy of an empty
    template, FILE_COPY being the fast way for a small one), dropped after it."""
    admin = await _admin(pg_server_url)
    name = f"t_{uuid.uuid4().hex}"
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE_DB):
            try:
                await admin.execute(f"CREATE DATABASE {TEMPLATE_DB} IS_TEMPLATE true")
            except Exception as exc:  # another run made it first
                if "already exists" not in str(exc):
                    raise
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB} STRATEGY FILE_COPY")
        yield database_url(pg_server_url, name)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def both(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str
) -> tuple[Path, str, inspection_data.Sample]:
    """The inspection sample twice: a private SQLite copy, and copied row for row into a
    fresh PostgreSQL database (`pg_url`)."""
    db, sample = inspection_data.copy_db(
        tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("both")
    )
    await pg_copy.create_schema(pg_url)
    await pg_copy.copy_store(db, pg_url)
    return db, pg_url, sample


class FakeTerminal(io.StringIO):
    """Text written to a terminal: `isatty()` says so, as the progress bars ask."""

    def isatty(self) -> bool:
        return True


def claim_a_terminal(monkeypatch: pytest.MonkeyPatch) -> FakeTerminal:
    """From here on, in-process commands see a terminal on stderr (what they draw there is
    returned); their stdout is captured apart. Called in the test's body: pytest puts its
    own capture back on sys.stderr between a fixture's setup and the test."""
    drawn = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", drawn)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    return drawn


@pytest.fixture(scope="module")
def pg_module_url(pg_server_url: str) -> Iterator[str]:
    """`pg_url` for a module-scoped fixture (a server shared by a module's tests): a fresh
    database made once for the module, dropped after it."""
    import asyncio

    name = f"m_{uuid.uuid4().hex}"

    async def run(statement: str) -> None:
        admin = await _admin(pg_server_url)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    asyncio.run(run(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"))
    try:
        yield database_url(pg_server_url, name)
    finally:
        asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _migrated_template(admin: Any, server_url: str) -> str:
    """The name of a template database holding this code's whole schema, built once per
    server and schema revision (the revision is in its name, so a server kept between runs
    never hands out an old schema). It is built under another name and renamed when done,
    so a run that dies midway leaves no half-built template behind that name."""
    from store_sql.schema.tables import SCHEMA_REVISION

    name = f"store_sql_schema_{SCHEMA_REVISION}"
    if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        return name
    building = f"b_{uuid.uuid4().hex}"
    await admin.execute(f"CREATE DATABASE {building} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")
    opened = await Store.open(database_url(server_url, building))
    await opened.close()
    try:
        await _retry_while_in_use(admin, f"ALTER DATABASE {building} RENAME TO {name}")
    except Exception as exc:  # another run built it first
        if "already exists" not in str(exc):
            raise
        await admin.execute(f"DROP DATABASE IF EXISTS {building} WITH (FORCE)")
        return name
    await admin.execute(f"ALTER DATABASE {name} IS_TEMPLATE true")
    return name


async def _retry_while_in_use(admin: Any, statement: str) -> None:
    """Run `statement`, which needs a database nobody is connected to, waiting out the
    server's backends of connections just closed (they leave a moment after the close)."""
    import asyncio

    for _ in range(50):
        try:
            await admin.execute(statement)
            return
        except Exception as exc:
            if "is being accessed by other users" not in str(exc):
                raise
            await asyncio.sleep(0.1)
    await admin.execute(statement)


@pytest.fixture
async def pg_store_url(pg_server_url: str) -> AsyncIterator[str]:
    """The URL of a fresh PostgreSQL database that already holds the whole schema (a copy of
    `_migrated_template`), dropped after the test. Opening it finds the schema current, as
    opening a store made earlier does; `pg_url` is the empty database for tests of building
    the schema itself."""
    admin = await _admin(pg_server_url)
    name = f"t_{uuid.uuid4().hex}"
    try:
        template = await _migrated_template(admin, pg_server_url)
        await _retry_while_in_use(
            admin, f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"
        )
        yield database_url(pg_server_url, name)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend_location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where the `backend` store lives: a SQLite file in tmp_path (not there yet), or a fresh
    PostgreSQL database holding the schema (`pg_store_url`). For tests that open (or run a
    CLI on) the location themselves."""
    if request.param == "sqlite":
        return tmp_path / "store.sqlite"
    url: str = request.getfixturevalue("pg_store_url")
    return url


@pytest.fixture
async def backend(backend_location: str | Path) -> AsyncIterator[Store]:
    """The conformance fixture: an open Store on SQLite, then on PostgreSQL, closed after
    the test. A test taking it runs on both; a test that stays on `store` (SQLite only)
    says why."""
    opened = await Store.open(backend_location)
    try:
        yield opened
    finally:
        await opened.close()


def run_node(script: str, payload: Any = None) -> str:
    """Run `script` with Node; `payload` arrives as the global `input` (parsed JSON).

    The script prints its result with `process.stdout.write`; that text is returned."""
    if NODE is None:
        pytest.skip("node is not installed: the JSON.stringify oracle is unavailable")
    prelude = "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
    done = subprocess.run(
        [NODE, "-e", prelude + script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"node failed ({done.returncode}): {done.stderr}")
    return done.stdout


@pytest.fixture
def js() -> Any:
    """`js(script, payload) -> stdout`: Node as the oracle (the test skips visibly without it)."""
    if NODE is None:
        pytest.skip("node is not installed: the JSON.stringify oracle is unavailable")
    return run_node


def transcript_rows(data: bytes) -> tuple[list[transcripts.LineRow], bool, int | None]:
    """LineRows for a JSONL file (the rows an importer writes), its final-newline flag and
    its header version. Parents follow transcript_reads' rule: v1 entries chain to the
    previous entry; v2/v3 entries to the nearest preceding entry with their parentId."""
    lines, ends_with_newline = split_lines(data)
    rows: list[transcripts.LineRow] = []
    version: int | None = None
    previous: int | None = None
    latest_pos: dict[str, int] = {}
    for pos, raw in enumerate(lines):
        line = classify_line(raw, pos)
        if line.kind is LineKind.HEADER:
            header = read_header(line)
            version = header.version if header is not None else None
        parent_pos = None
        if line.kind is LineKind.ENTRY:
            if (version or 1) < 2:
                parent_pos = previous
            elif line.parent_id is not None:
                parent_pos = latest_pos.get(line.parent_id)
            previous = pos
            if line.entry_id is not None:
                latest_pos[line.entry_id] = pos
        rows.append(
            transcripts.LineRow(
                pos=pos,
                line=transcripts.stored_line(raw),
                kind=str(line.kind),
                entry_id=line.entry_id,
                parent_id=line.parent_id,
                parent_pos=parent_pos,
                type=line.type,
                role=line.role,
                timestamp=line.timestamp,
                idempotency_key=line.idempotency_key,
                byte_size=len(raw),
                damage=line.damage,
            )
        )
    return rows, ends_with_newline, version


LoadTranscript = Callable[..., Awaitable[int]]


@pytest.fixture
def load_transcript() -> LoadTranscript:
    """`await load_transcript(store, data, agent_id=..., session_id=..., kind=...)` stores
    a JSONL file's lines as a transcript (what an import does) and returns its id."""

    async def load(
        store: Store,
        data: bytes,
        *,
        agent_id: str = "main",
        session_id: str | None = None,
        kind: str = "live",
        file_name: str | None = None,
    ) -> int:
        rows, ends_with_newline, version = transcript_rows(data)
        header = rows[0] if rows and rows[0].kind == "header" else None
        sid = session_id or (header.entry_id if header is not None else None) or "session"

        identity: dict[str, Any] = {
            "agent_id": agent_id,
            "rel_dir": default_rel_dir(agent_id),
            "session_id": sid,
            "kind": kind,
            "file_name": file_name or f"{sid}.jsonl",
            "version": version,
        }

        def write(conn: sqlite3.Connection) -> int:
            tid = transcripts.insert_transcript(conn, **identity)
            transcripts.insert_lines(conn, tid, rows, ends_with_newline=ends_with_newline)
            return tid

        async def write_pg(conn: Any) -> int:
            tid = await pg_transcripts.insert_transcript(conn, **identity)
            await pg_transcripts.insert_lines(conn, tid, rows, ends_with_newline=ends_with_newline)
            return tid

        if store.dialect == "postgresql":
            return await store.postgres.write(write_pg)
        return await store.write(write)

    return load


# --- the real pi as the oracle -----------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "oracles"))
from pi_oracle import OracleUnavailable, PiOracle  # noqa: E402


@pytest.fixture(scope="session")
def pi() -> Iterator[PiOracle]:
    """The real pi (tools/oracles/pi, installed on first use) running in one Node process for
    the whole run; tests that use it skip, with the reason, where it cannot be installed."""
    try:
        oracle = PiOracle.start()
    except OracleUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield oracle
    finally:
        oracle.close()

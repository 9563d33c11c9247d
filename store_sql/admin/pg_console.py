"""The maintainer console on PostgreSQL: one read-only statement on a store's database.

What the SQLite console promises (sql_console.py), in PostgreSQL's terms:

- **It cannot write.** The statement runs inside `BEGIN READ ONLY`, which refuses every
  INSERT/UPDATE/DELETE, DDL and `nextval()` whoever runs it, and under `SET LOCAL ROLE
  store_sql_reader`, a role that may only SELECT the store's tables and views
  (schema/pg_views.py creates it where the server allows): so a superuser's powers outside
  the database (server files, other sessions, settings) are gone too. The transaction is
  rolled back, never committed. Before it runs, the statement must start with a reading
  verb (SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN); other verbs are refused by name, as on
  SQLite. Changing the role back (`set_config('role', ...)`, `SET ROLE`) and running code
  (`DO`, `CALL`, `COPY`) are refused before anything runs.
  Where the role does not exist or the connecting user is not a member of it, the statement
  runs in the READ ONLY transaction alone and `QueryResult.notice` says so.
- **Bounds**: at most `max_rows` rows (plus one, to tell truncation) and `max_bytes` bytes of
  values are fetched, through a cursor; `statement_timeout` stops a query after `timeout_s`.
  `stream` hands rows over as the cursor fetches them (the CLI prints them as they come, with
  the same printer and bounds as on SQLite), and its time limit covers the whole read.
  Unlike SQLite, PostgreSQL builds a value before the console can measure it: a single value
  longer than `max_bytes` fails the query once it has arrived.
- **It never migrates or creates**: the database must already hold a store_sql schema
  (`alembic_version`), else DatabaseRefusedError.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date, datetime
from datetime import time as clock
from decimal import Decimal
from typing import Any

import asyncpg

from store_sql.admin.sql_console import QueryFailedError, QueryResult
from store_sql.errors import DatabaseRefusedError
from store_sql.schema.pg_views import READER_ROLE

_FETCH = 256

_READING_VERB = re.compile(
    r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*(SELECT|WITH|VALUES|TABLE|SHOW|EXPLAIN)\b",
    re.IGNORECASE | re.DOTALL,
)
_FIRST_WORD = re.compile(r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*(\w+)", re.DOTALL)
# Ways out of the role or the transaction from inside a reading statement.
_ESCAPES = re.compile(
    r"\b(set_config|pg_terminate_backend|pg_cancel_backend|lo_export|lo_import|dblink\w*"
    r"|pg_reload_conf|pg_rotate_logfile)\s*\(",
    re.IGNORECASE,
)


def _check_statement(sql: str) -> None:
    if _READING_VERB.match(sql) is None:
        first = _FIRST_WORD.match(sql)
        named = " ".join(first.group(1).upper().split()) if first else "this statement"
        raise QueryFailedError(f"refused: the console is read-only and {named} is not a read")
    escape = _ESCAPES.search(sql)
    if escape is not None:
        raise QueryFailedError(
            f"refused: the console is read-only and {escape.group(1).lower()}() acts outside "
            "the query (on the session, the server or its files)"
        )


def _plain(value: Any) -> Any:
    """A value as the console prints it: what SQLite would hold (text, integer, real, bytes)."""
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    if isinstance(value, Decimal):
        whole = value.is_finite() and value == value.to_integral_value()
        return int(value) if whole else float(value)
    if isinstance(value, datetime | date | clock):
        return value.isoformat()
    return str(value)  # intervals, uuids, arrays, ranges, jsonb (asyncpg gives its text)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes) else 8


async def _reader_role(conn: asyncpg.Connection[Any]) -> bool:
    member = await conn.fetchval(
        "SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = $1",
        READER_ROLE,
    )
    return bool(member)


@contextlib.asynccontextmanager
async def reading(url: str) -> AsyncIterator[tuple[asyncpg.Connection[Any], bool]]:
    """A connection to the store at `url` inside a READ ONLY, REPEATABLE READ transaction
    (one snapshot) that is rolled back, as the reader role where this user may take it:
    (connection, True when it runs as the reader role). DatabaseRefusedError when the
    server cannot be reached or the database holds no store."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseRefusedError(f"cannot connect to the database: {exc}") from exc
    try:
        if not await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
            raise DatabaseRefusedError(
                "not a store_sql database (no alembic_version table); the console never creates one"
            )
        as_reader = await _reader_role(conn)
        transaction = conn.transaction(isolation="repeatable_read", readonly=True)
        await transaction.start()
        try:
            if as_reader:
                await conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
            yield conn, as_reader
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


async def query(
    url: str,
    sql: str,
    params: Sequence[Any] = (),
    *,
    max_rows: int,
    timeout_s: float,
    max_bytes: int,
) -> QueryResult:
    """Run one reading statement (see the module docstring)."""
    _check_statement(sql)
    started = time.perf_counter()
    async with reading(url) as (conn, as_reader):
        try:
            await conn.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout_s * 1000))}")
            columns, rows, cut_by = await _fetch(conn, sql, params, max_rows, max_bytes)
        except asyncpg.PostgresError as exc:
            raise _failed(exc, timeout_s) from exc
    return QueryResult.read(
        columns,
        rows,
        cut_by,
        max_rows=max_rows,
        max_bytes=max_bytes,
        started=started,
        notice=_role_notice(as_reader),
    )


def _failed(exc: asyncpg.PostgresError, timeout_s: float) -> QueryFailedError:
    """The console's one-line error for what the server refused or stopped."""
    if isinstance(exc, asyncpg.QueryCanceledError):
        return _stopped(timeout_s)
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError | asyncpg.InsufficientPrivilegeError):
        return QueryFailedError(f"refused: the console is read-only ({exc})")
    if isinstance(exc, asyncpg.PostgresSyntaxError) and "multiple commands" in str(exc):
        return QueryFailedError("query refused: one statement at a time")
    return QueryFailedError(f"query failed: {exc}")


def _stopped(timeout_s: float) -> QueryFailedError:
    return QueryFailedError(
        f"query stopped after {timeout_s:g} s; narrow the query or raise the time limit"
    )


def _role_notice(as_reader: bool) -> str | None:
    if as_reader:
        return None
    return (
        f"the role {READER_ROLE} is missing or not granted to this user, so the "
        "statement ran in a READ ONLY transaction only (docs/POSTGRES.md)"
    )


def _too_long(max_bytes: int) -> QueryFailedError:
    return QueryFailedError(
        f"query failed: a value is longer than {max_bytes} bytes, the most the "
        "console prints; select length(x) or substr(x, 1, n) instead, or "
        "raise --max-bytes"
    )


async def _fetch(
    conn: asyncpg.Connection[Any],
    sql: str,
    params: Sequence[Any],
    max_rows: int,
    max_bytes: int,
) -> tuple[list[str], list[tuple[Any, ...]], str | None]:
    statement = await conn.prepare(sql)
    columns = [a.name for a in statement.get_attributes()]
    rows: list[tuple[Any, ...]] = []
    if not columns:
        await statement.fetch(*params)  # SHOW and EXPLAIN have columns; nothing else lands here
        return columns, rows, None
    size = 0
    cursor = await statement.cursor(*params)
    while True:
        batch = await cursor.fetch(min(_FETCH, max_rows + 1))
        if not batch:
            return columns, rows, None
        for record in batch:
            if len(rows) == max_rows:
                return columns, rows, "rows"
            row = tuple(_plain(v) for v in record.values())
            for value in row:
                if _size(value) > max_bytes:
                    raise _too_long(max_bytes)
            size += sum(_size(v) for v in row)
            if size > max_bytes:
                return columns, rows, "bytes"
            rows.append(row)


class RowStream:
    """The rows of one console query on PostgreSQL (`stream`), fetched from a server-side
    cursor a batch at a time as iteration asks for them, each as the console prints it."""

    def __init__(
        self,
        runner: asyncio.Runner,
        columns: list[str],
        cursor: asyncpg.cursor.Cursor[Any] | None,
        notice: str | None,
        *,
        timeout_s: float,
        max_value_bytes: int,
    ) -> None:
        self.columns = columns
        """The result's column names (empty for a statement that returns no columns)."""
        self.notice = notice
        """Why the statement ran without the reader role, or None."""
        self._runner = runner
        self._cursor = cursor
        self._timeout_s = timeout_s
        self._max_value_bytes = max_value_bytes
        self._deadline = time.monotonic() + timeout_s

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if self._cursor is None:
            return
        while True:
            if time.monotonic() > self._deadline:
                # The snapshot is held while rows are printed: output read slowly counts too.
                raise _stopped(self._timeout_s)
            try:
                batch = self._runner.run(self._cursor.fetch(_FETCH))
            except asyncpg.PostgresError as exc:
                raise _failed(exc, self._timeout_s) from exc
            if not batch:
                return
            for record in batch:
                row = tuple(_plain(v) for v in record.values())
                if any(_size(v) > self._max_value_bytes for v in row):
                    raise _too_long(self._max_value_bytes)
                yield row


async def _cursor(
    statement: asyncpg.prepared_stmt.PreparedStatement[Any], params: Sequence[Any]
) -> asyncpg.cursor.Cursor[Any]:
    return await statement.cursor(*params)


@contextlib.contextmanager
def stream(
    url: str,
    sql: str,
    params: Sequence[Any] = (),
    *,
    timeout_s: float,
    max_value_bytes: int,
) -> Iterator[RowStream]:
    """Run one reading statement (see the module docstring) and yield its rows as they are
    fetched: memory holds one batch of rows, whatever the size of the result. The time
    limit covers the whole read, up to leaving the `with` block.

    Raises QueryFailedError, on entry or while iterating, when the statement is refused, is
    invalid, holds a value longer than `max_value_bytes`, or runs past `timeout_s`;
    DatabaseRefusedError when the server cannot be reached or holds no store."""
    _check_statement(sql)
    with asyncio.Runner() as runner:
        opened = reading(url)
        conn, as_reader = runner.run(opened.__aenter__())
        try:
            try:
                runner.run(
                    conn.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout_s * 1000))}")
                )
                statement = runner.run(conn.prepare(sql))
                columns = [a.name for a in statement.get_attributes()]
                cursor = runner.run(_cursor(statement, params)) if columns else None
                if cursor is None:
                    runner.run(statement.fetch(*params))
            except asyncpg.PostgresError as exc:
                raise _failed(exc, timeout_s) from exc
            yield RowStream(
                runner,
                columns,
                cursor,
                _role_notice(as_reader),
                timeout_s=timeout_s,
                max_value_bytes=max_value_bytes,
            )
        except BaseException as exc:
            if not runner.run(opened.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            runner.run(opened.__aexit__(None, None, None))


def run_query(
    url: str,
    sql: str,
    params: Sequence[Any] = (),
    *,
    max_rows: int,
    timeout_s: float,
    max_bytes: int,
) -> QueryResult:
    """`query` from synchronous code (the CLI)."""
    return asyncio.run(
        query(url, sql, params, max_rows=max_rows, timeout_s=timeout_s, max_bytes=max_bytes)
    )

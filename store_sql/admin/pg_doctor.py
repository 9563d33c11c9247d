"""`store-sql doctor` on PostgreSQL: what can be checked of a store on a server, read-only.

No PRAGMA and no files: the server keeps its own pages, WAL and integrity. What is checked,
in one READ ONLY snapshot through the console's connection (pg_console.reading):

- the store's own checks, as on SQLite (admin/store_checks.py): `schema_revision`,
  `schema_objects` (the tables, views and search index this store_sql creates),
  `full_text_search` (pg_trgm installed and `ix_transcript_lines_search` valid: a failed
  concurrent build leaves an index that is never used), `chains` (every line's parent_pos
  points to an earlier line of its transcript, every leaf to a line, the line counters
  agree with the lines; `--quick` skips the counters) and `foreign_key_check` (rows whose
  parent is missing: PostgreSQL enforces foreign keys, but a copy made with triggers off or
  the replica role, or a hand edit, can break them);
- PostgreSQL's alone (`backend="postgresql"`): `server` (its version), `text_rules` (UTF-8
  and the C collation, bytewise order as SQLite's BINARY) and `reader_role` (whether
  `store-sql sql` can run as the read-only role).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from store_sql.admin import store_checks
from store_sql.admin.findings import (
    BOTH,
    ERROR,
    INFO,
    OK,
    POSTGRESQL,
    WARN,
    Check,
    DoctorReport,
)
from store_sql.admin.pg_console import reading
from store_sql.admin.store_checks import revision_check
from store_sql.engine.pg.url import mask_password
from store_sql.errors import DatabaseRefusedError
from store_sql.schema import pg_views
from store_sql.schema import tables as schema
from store_sql.search.indexer import BACKLOG_LIMIT
from store_sql.search.pg_indexer import line_index_ready, queued

MIN_SERVER = 130000
"""PostgreSQL 13: the oldest server the store is tested against."""


async def check_server(conn: asyncpg.Connection[Any]) -> Check:
    number = int(await conn.fetchval("SHOW server_version_num"))
    text = str(await conn.fetchval("SHOW server_version"))
    details = {"server_version": text, "server_version_num": number}
    if number >= MIN_SERVER:
        return Check("server", OK, f"PostgreSQL {text}", details, POSTGRESQL)
    return Check(
        "server", WARN, f"PostgreSQL {text} is older than 13, which store_sql is not tested on",
        details, POSTGRESQL,
    )  # fmt: skip


async def check_text_rules(conn: asyncpg.Connection[Any]) -> Check:
    row = await conn.fetchrow(
        "SELECT pg_encoding_to_char(encoding) AS encoding, datcollate, datctype "
        "FROM pg_database WHERE datname = current_database()"
    )
    assert row is not None
    details = {"encoding": row["encoding"], "collate": row["datcollate"], "ctype": row["datctype"]}
    problems = []
    if row["encoding"] != "UTF8":
        problems.append(f"encoding {row['encoding']}, not UTF8 (lines are UTF-8 text)")
    if row["datcollate"] not in ("C", "POSIX"):
        problems.append(
            f"collation {row['datcollate']}, not C: text sorts differently than on SQLite"
        )
    if problems:
        return Check("text_rules", ERROR, "; ".join(problems), details, POSTGRESQL)
    return Check("text_rules", OK, f"UTF8, collation {row['datcollate']}", details, POSTGRESQL)


async def check_schema(conn: asyncpg.Connection[Any]) -> list[Check]:
    revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    present = {
        r["relname"]: r["relkind"]
        for r in await conn.fetch(
            "SELECT c.relname, c.relkind::text AS relkind FROM pg_class AS c "
            "WHERE c.relnamespace = current_schema()::regnamespace"
        )
    }
    expected = {name: "r" for name in schema.metadata.tables}
    expected["alembic_version"] = "r"
    expected.update({name: "v" for name in (*pg_views.VIEWS, "entry_search_text")})
    expected[pg_views.SEARCH_INDEX_NAME] = "i"
    missing = sorted(n for n, kind in expected.items() if present.get(n) != kind)
    return [revision_check(revision), store_checks.schema_objects_check(revision, missing)]


async def check_full_text(conn: asyncpg.Connection[Any]) -> Check:
    trgm = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'")
    valid = await conn.fetchval(
        "SELECT i.indisvalid AND i.indisready FROM pg_index AS i "
        "WHERE i.indexrelid = to_regclass($1)",
        pg_views.SEARCH_INDEX_NAME,
    )
    details = {"pg_trgm": trgm, "index_valid": valid}
    if trgm is None:
        return store_checks.search_index_problem("pg_trgm is not installed here", details)
    if not valid:
        return store_checks.search_index_problem(
            f"{pg_views.SEARCH_INDEX_NAME} is missing or invalid: searches read every entry; "
            "rebuild it with `store-sql search --rebuild`",
            details,
        )
    # Catch-up after an upgrade queued every stored line (revision 0008), or after a rebuild.
    details["lines_not_indexed"] = await queued(conn)
    details["line_index"] = await line_index_ready(conn)
    catching_up = (
        f"; revision 0006's index over the lines finds the queued lines until at most "
        f"{BACKLOG_LIMIT} wait"
        if details["line_index"]
        else ""
    )
    return Check(
        "full_text_search",
        OK,
        f"pg_trgm {trgm}, the trigram index is valid ({details['lines_not_indexed']} lines "
        f"waiting for the indexer{catching_up})",
        details,
    )


async def check_chains(conn: asyncpg.Connection[Any], *, quick: bool) -> Check:
    async def rows(sql: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await conn.fetch(sql)]

    counts = [] if quick else await rows(store_checks.WRONG_COUNTS)
    return store_checks.chains_check(
        await rows(store_checks.BROKEN_PARENTS),
        await rows(store_checks.BROKEN_LEAVES),
        counts,
        quick=quick,
    )


async def check_foreign_keys(conn: asyncpg.Connection[Any]) -> Check:
    """Rows whose parent is missing, key by key (store_checks.missing_parent_queries)."""
    violations = []
    for key, sql in store_checks.missing_parent_queries():
        count = await conn.fetchval(sql)
        if count:
            violations.append({**key, "rows": int(count)})
    return store_checks.missing_parents_check(violations)


def check_reader_role(as_reader: bool) -> Check:
    if as_reader:
        return Check(
            "reader_role",
            OK,
            f"store-sql sql runs as {pg_views.READER_ROLE} (may only read)",
            {"role": pg_views.READER_ROLE},
            POSTGRESQL,
        )
    return Check(
        "reader_role",
        INFO,
        f"this user is not a member of {pg_views.READER_ROLE} (the server did not allow the "
        "schema's owner to create or grant it): store-sql sql runs in a READ ONLY "
        "transaction only",
        {"role": pg_views.READER_ROLE},
        POSTGRESQL,
    )


async def diagnose_url(url: str, *, quick: bool = False) -> DoctorReport:
    """Every check on the store at `url`, without writing to it."""
    shown = mask_password(url)
    checks: list[Check] = []
    try:
        async with reading(url) as (conn, as_reader):
            checks.append(Check("database", OK, "a store_sql database (alembic_version found)"))
            steps: list[tuple[str, Callable[[], Awaitable[list[Check]]]]] = [
                ("server", lambda: _one(check_server(conn))),
                ("text_rules", lambda: _one(check_text_rules(conn))),
                ("schema_revision", lambda: check_schema(conn)),
                ("full_text_search", lambda: _one(check_full_text(conn))),
                ("chains", lambda: _one(check_chains(conn, quick=quick))),
                ("foreign_key_check", lambda: _one(check_foreign_keys(conn))),
            ]
            for name, step in steps:
                checks.extend(await _guarded(conn, name, step))
            checks.append(check_reader_role(as_reader))
    except DatabaseRefusedError as exc:
        checks.append(Check("database", ERROR, str(exc)))
    return DoctorReport(shown, checks)


async def _one(check: Awaitable[Check]) -> list[Check]:
    return [await check]


async def _guarded(
    conn: asyncpg.Connection[Any], name: str, run: Callable[[], Awaitable[list[Check]]]
) -> list[Check]:
    """A check's own result, or an error check when the server could not finish it (a
    missing table, a permission): the report goes on to the next check."""
    try:
        async with conn.transaction():  # a savepoint: a failed check leaves the snapshot usable
            return await run()
    except asyncpg.PostgresError as exc:
        backend = POSTGRESQL if name in _POSTGRESQL_ONLY else BOTH
        return [Check(name, ERROR, f"could not finish: {exc}", {"error": str(exc)}, backend)]


_POSTGRESQL_ONLY = frozenset({"server", "text_rules", "reader_role"})


def diagnose(url: str, *, quick: bool = False) -> DoctorReport:
    """`diagnose_url` from synchronous code (the CLI)."""
    return asyncio.run(diagnose_url(url, quick=quick))

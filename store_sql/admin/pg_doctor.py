"""`store-sql doctor` on PostgreSQL: what can be checked of a store on a server, read-only.

No PRAGMA and no files: the server keeps its own pages, WAL and integrity. What is checked,
in one READ ONLY snapshot through the console's connection (pg_console.reading):

- `server`: the server's version;
- `text_rules`: UTF-8 encoding and the C collation (bytewise order, as SQLite's BINARY);
- `schema_revision`, `schema_objects`: as on SQLite, against the tables, views and the
  search index this store_sql creates;
- `full_text_search`: pg_trgm installed and `ix_transcript_lines_search` valid (a failed
  concurrent build leaves an index that is never used);
- `chains`: every line's parent_pos points to an earlier line of its transcript, every
  leaf to a line, and the line counters agree with the lines (`--quick` skips the counters);
- `foreign_key_check`: rows whose parent is missing, for every foreign key of the schema
  (PostgreSQL enforces them, but a copy made with triggers off or a hand edit can break
  them);
- `reader_role`: whether `store-sql sql` can run as the read-only role.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from store_sql.admin.doctor import ERROR, INFO, OK, WARN, Check, DoctorReport, revision_check
from store_sql.admin.pg_console import reading
from store_sql.engine.pg.url import mask_password
from store_sql.errors import DatabaseRefusedError
from store_sql.schema import pg_views
from store_sql.schema import tables as schema

MIN_SERVER = 130000
"""PostgreSQL 13: the oldest server the store is tested against."""

_MAX_LISTED = 20


async def check_server(conn: asyncpg.Connection[Any]) -> Check:
    number = int(await conn.fetchval("SHOW server_version_num"))
    text = str(await conn.fetchval("SHOW server_version"))
    details = {"server_version": text, "server_version_num": number}
    if number >= MIN_SERVER:
        return Check("server", OK, f"PostgreSQL {text}", details)
    return Check(
        "server", WARN, f"PostgreSQL {text} is older than 13, which store_sql is not tested on",
        details,
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
        return Check("text_rules", ERROR, "; ".join(problems), details)
    return Check("text_rules", OK, f"UTF8, collation {row['datcollate']}", details)


async def check_schema(conn: asyncpg.Connection[Any]) -> list[Check]:
    revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    checks = [revision_check(revision)]
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
    if missing:
        checks.append(
            Check(
                "schema_objects",
                ERROR if revision == schema.SCHEMA_REVISION else WARN,
                "missing: " + ", ".join(missing),
                {"missing": missing},
            )
        )
    else:
        checks.append(Check("schema_objects", OK, "every table, view and index is present"))
    return checks


async def check_full_text(conn: asyncpg.Connection[Any]) -> Check:
    trgm = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'")
    valid = await conn.fetchval(
        "SELECT i.indisvalid AND i.indisready FROM pg_index AS i "
        "WHERE i.indexrelid = to_regclass($1)",
        pg_views.SEARCH_INDEX_NAME,
    )
    details = {"pg_trgm": trgm, "index_valid": valid}
    if trgm is None:
        return Check("full_text_search", ERROR, "pg_trgm is not installed here", details)
    if not valid:
        return Check(
            "full_text_search",
            ERROR,
            f"{pg_views.SEARCH_INDEX_NAME} is missing or invalid: searches read every entry; "
            "rebuild it with `store-sql search --rebuild`",
            details,
        )
    return Check("full_text_search", OK, f"pg_trgm {trgm}, the trigram index is valid", details)


_BROKEN_PARENTS = """
SELECT l.transcript_id, l.pos, l.parent_pos FROM transcript_lines AS l
LEFT JOIN transcript_lines AS p ON p.transcript_id = l.transcript_id AND p.pos = l.parent_pos
WHERE l.parent_pos IS NOT NULL AND (p.line_pk IS NULL OR l.parent_pos >= l.pos)
ORDER BY l.transcript_id, l.pos LIMIT $1
"""

_BROKEN_LEAVES = """
SELECT t.transcript_id, t.leaf_pos FROM transcripts AS t
WHERE t.leaf_pos IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM transcript_lines AS l
    WHERE l.transcript_id = t.transcript_id AND l.pos = t.leaf_pos AND l.kind = 'entry')
ORDER BY t.transcript_id LIMIT $1
"""

_WRONG_COUNTS = """
SELECT t.transcript_id, t.line_count, coalesce(c.lines, 0) AS lines, t.entry_count,
       coalesce(c.entries, 0) AS entries, coalesce(c.last_pos, -1) AS last_pos
FROM transcripts AS t
LEFT JOIN (
    SELECT transcript_id, count(*) AS lines, count(*) FILTER (WHERE kind = 'entry') AS entries,
           max(pos) AS last_pos
    FROM transcript_lines GROUP BY transcript_id
) AS c ON c.transcript_id = t.transcript_id
WHERE t.line_count <> coalesce(c.lines, 0) OR t.entry_count <> coalesce(c.entries, 0)
   OR coalesce(c.last_pos, -1) <> t.line_count - 1
ORDER BY t.transcript_id LIMIT $1
"""


async def check_chains(conn: asyncpg.Connection[Any], *, quick: bool) -> Check:
    parents = [dict(r) for r in await conn.fetch(_BROKEN_PARENTS, _MAX_LISTED)]
    leaves = [dict(r) for r in await conn.fetch(_BROKEN_LEAVES, _MAX_LISTED)]
    counts = [] if quick else [dict(r) for r in await conn.fetch(_WRONG_COUNTS, _MAX_LISTED)]
    details: dict[str, Any] = {
        "broken_parents": parents,
        "broken_leaves": leaves,
        "wrong_counts": counts,
        "counters_checked": not quick,
    }
    problems = []
    if parents:
        p = parents[0]
        problems.append(
            f"lines whose parent_pos is not an earlier line, e.g. transcript "
            f"{p['transcript_id']} pos {p['pos']} -> {p['parent_pos']}"
        )
    if leaves:
        problems.append(
            f"leaves that are not entry lines, e.g. transcript {leaves[0]['transcript_id']} "
            f"leaf_pos {leaves[0]['leaf_pos']}"
        )
    if counts:
        problems.append(
            f"line counters that disagree with the lines, e.g. transcript "
            f"{counts[0]['transcript_id']}"
        )
    if problems:
        return Check("chains", ERROR, "; ".join(problems), details)
    summary = "every parent and leaf points at a line" + (
        "" if quick else "; line counters agree with the lines"
    )
    return Check("chains", OK, summary, details)


async def check_foreign_keys(conn: asyncpg.Connection[Any]) -> Check:
    violations: list[dict[str, Any]] = []
    for table in schema.metadata.sorted_tables:
        for key in table.foreign_keys:
            child, parent = key.parent, key.column
            count = await conn.fetchval(
                f"SELECT count(*) FROM {table.name} AS c WHERE c.{child.name} IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {parent.table.name} AS p "
                f"WHERE p.{parent.name} = c.{child.name})"
            )
            if count:
                violations.append(
                    {"table": table.name, "column": child.name, "parent": parent.table.name,
                     "rows": int(count)}
                )  # fmt: skip
    if not violations:
        return Check("foreign_key_check", OK, "ok")
    first = violations[0]
    return Check(
        "foreign_key_check",
        ERROR,
        f"rows point at missing parents, e.g. {first['rows']} rows of {first['table']}."
        f"{first['column']} -> {first['parent']}",
        {"violations": violations},
    )


def check_reader_role(as_reader: bool) -> Check:
    if as_reader:
        return Check(
            "reader_role",
            OK,
            f"store-sql sql runs as {pg_views.READER_ROLE} (may only read)",
            {"role": pg_views.READER_ROLE},
        )
    return Check(
        "reader_role",
        INFO,
        f"this user is not a member of {pg_views.READER_ROLE} (the server did not allow the "
        "schema's owner to create or grant it): store-sql sql runs in a READ ONLY "
        "transaction only",
        {"role": pg_views.READER_ROLE},
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
        return [Check(name, ERROR, f"could not finish: {exc}", {"error": str(exc)})]


def diagnose(url: str, *, quick: bool = False) -> DoctorReport:
    """`diagnose_url` from synchronous code (the CLI)."""
    return asyncio.run(diagnose_url(url, quick=quick))

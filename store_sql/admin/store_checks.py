"""The doctor's checks of the stored data, the same on SQLite and on PostgreSQL: the schema
revision and objects, the search index, the transcripts' chains and the rows whose parent
is missing. For the same logical data both backends give the same checks, statuses and
(for the chains and the missing parents) the same details, so a report can be compared
across backends (tests/test_doctor_conformance.py).

The chain and parent queries are plain SQL both dialects run as written, with no
parameters; each backend's doctor runs them on its own connection and hands the rows here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from store_sql.admin.findings import ERROR, OK, WARN, Check
from store_sql.schema import tables as schema

MAX_LISTED = 20
"""At most this many problems of one kind are listed in a check's details."""


def revision_check(revision: str | None) -> Check:
    """The database's schema revision against the code's."""
    from store_sql.engine.migrate import known_revisions

    details = {"database": revision, "code": schema.SCHEMA_REVISION}
    if revision == schema.SCHEMA_REVISION:
        return Check("schema_revision", OK, f"revision {revision} (current)", details)
    if revision is None:
        return Check("schema_revision", ERROR, "no schema revision recorded", details)
    if revision in known_revisions():
        return Check(
            "schema_revision",
            WARN,
            f"revision {revision} is older than {schema.SCHEMA_REVISION}: run "
            "`store-sql migrate` (it backs the database up first)",
            details,
        )
    return Check(
        "schema_revision",
        ERROR,
        f"revision {revision} is newer than this store_sql ({schema.SCHEMA_REVISION}) "
        "knows: upgrade store_sql before using this database",
        details,
    )


def schema_objects_check(revision: str | None, missing: list[str]) -> Check:
    """The tables, views, indexes and triggers this store_sql creates (each backend names
    its own); a missing one is an error at the current revision, a warning at an older."""
    if not missing:
        return Check("schema_objects", OK, "every table, view, index and trigger is present")
    return Check(
        "schema_objects",
        ERROR if revision == schema.SCHEMA_REVISION else WARN,
        "missing: " + ", ".join(missing),
        {"missing": missing},
    )


def search_index_problem(what: str, details: dict[str, Any]) -> Check:
    """The search index is missing or unusable: searches fail or read every entry."""
    return Check("full_text_search", ERROR, what, details)


BROKEN_PARENTS = f"""
SELECT l.transcript_id, l.pos, l.parent_pos FROM transcript_lines AS l
LEFT JOIN transcript_lines AS p ON p.transcript_id = l.transcript_id AND p.pos = l.parent_pos
WHERE l.parent_pos IS NOT NULL AND (p.line_pk IS NULL OR l.parent_pos >= l.pos)
ORDER BY l.transcript_id, l.pos LIMIT {MAX_LISTED}
"""

BROKEN_LEAVES = f"""
SELECT t.transcript_id, t.leaf_pos FROM transcripts AS t
WHERE t.leaf_pos IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM transcript_lines AS l
    WHERE l.transcript_id = t.transcript_id AND l.pos = t.leaf_pos AND l.kind = 'entry')
ORDER BY t.transcript_id LIMIT {MAX_LISTED}
"""

WRONG_COUNTS = f"""
SELECT t.transcript_id, t.line_count, coalesce(c.lines, 0) AS lines, t.entry_count,
       coalesce(c.entries, 0) AS entries, coalesce(c.last_pos, -1) AS last_pos
FROM transcripts AS t
LEFT JOIN (
    SELECT transcript_id, count(*) AS lines,
           sum(CASE WHEN kind = 'entry' THEN 1 ELSE 0 END) AS entries, max(pos) AS last_pos
    FROM transcript_lines GROUP BY transcript_id
) AS c ON c.transcript_id = t.transcript_id
WHERE t.line_count <> coalesce(c.lines, 0) OR t.entry_count <> coalesce(c.entries, 0)
   OR coalesce(c.last_pos, -1) <> t.line_count - 1
ORDER BY t.transcript_id LIMIT {MAX_LISTED}
"""


def _plain(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every number an int (PostgreSQL's sum and count are numeric and bigint)."""
    return [{k: int(v) if v is not None else None for k, v in row.items()} for row in rows]


def chains_check(
    parents: Sequence[dict[str, Any]],
    leaves: Sequence[dict[str, Any]],
    counts: Sequence[dict[str, Any]],
    *,
    quick: bool,
) -> Check:
    """Every line's parent_pos names an earlier line of its transcript, every leaf an entry
    line, and (unless `quick`) the line counters agree with the lines."""
    details: dict[str, Any] = {
        "broken_parents": _plain(parents),
        "broken_leaves": _plain(leaves),
        "wrong_counts": _plain(counts),
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


def missing_parent_queries() -> list[tuple[dict[str, str], str]]:
    """For every foreign key of the schema: what it is, and the query counting the rows
    whose parent is missing. A copy made with foreign keys off (SQLite's default for a
    plain connection, PostgreSQL's replica role) or a hand edit can leave such rows."""
    queries = []
    for table in schema.metadata.sorted_tables:
        for key in sorted(table.foreign_keys, key=lambda k: k.parent.name):
            child, parent = key.parent, key.column
            sql = (
                f"SELECT count(*) FROM {table.name} AS c WHERE c.{child.name} IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {parent.table.name} AS p "
                f"WHERE p.{parent.name} = c.{child.name})"
            )
            queries.append(({"table": table.name, "column": child.name,
                             "parent": parent.table.name}, sql))  # fmt: skip
    return queries


def missing_parents_check(violations: list[dict[str, Any]]) -> Check:
    """`violations`: the foreign keys (missing_parent_queries) with a count of rows > 0."""
    if not violations:
        return Check("foreign_key_check", OK, "every row's parent is present")
    first = violations[0]
    return Check(
        "foreign_key_check",
        ERROR,
        f"rows point at missing parents, e.g. {first['rows']} rows of {first['table']}."
        f"{first['column']} -> {first['parent']}",
        {"violations": violations},
    )

"""`store.search` on PostgreSQL: the same query semantics as query.py, read through
`ix_transcript_lines_search` (a pg_trgm GIN index over `entry_search_text(line)`,
schema/pg_views.py).

PostgreSQL keeps that index in the transaction that writes a line, so there is no indexer,
no mark and no backlog: every committed line is searched (`unsearched` is always 0). Each
substring of the search becomes `entry_search_text(line) ILIKE '%substring%'`, combined
with AND, OR and AND NOT as the raw query says; pg_trgm answers a pattern with 3 or more
characters from the index and a shorter one by reading every entry's text, which the
result says (`mode`, `notice`), as on SQLite. `Terms.matches` then checks each hit's text
as it does on SQLite, so a hit is what both backends call a match: ILIKE folds the case of
ASCII letters only under the C character type the store's database uses, where SQLite's
check folds every letter (docs/POSTGRES.md).

Hits come newest first (entry timestamp, then line_pk), as on SQLite; neither backend ranks
by relevance.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from store_sql.schema.pg_views import SEARCH_INDEX_NAME
from store_sql.search.query import (
    MAX_LIMIT,
    TRIGRAM_MIN_CHARS,
    RebuildReport,
    SearchHit,
    SearchQuery,
    SearchResult,
    check_query,
    like_pattern,
    make_snippet,
    normalize_since,
)
from store_sql.search.terms import (
    AllOf,
    AnyOf,
    InvalidSearchError,
    Node,
    Substring,
    Terms,
    literal,
    raw_query,
)

_FETCH = 64
"""Hits fetched and checked per round trip."""

_TEXT = "entry_search_text(l.line)"
"""The indexed expression, spelled as the index spells it so the planner uses it."""


class _Params:
    """Numbered parameters ($1, $2, ...) in the order they are added."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _condition(node: Node, params: _Params) -> str:
    """The SQL test of `node` on the entry's text."""
    if isinstance(node, Substring):
        return f"{_TEXT} ILIKE {params.add(like_pattern(node.text))}"
    if isinstance(node, AllOf | AnyOf):
        joiner = " AND " if isinstance(node, AllOf) else " OR "
        return "(" + joiner.join(_condition(part, params) for part in node.parts) + ")"
    return f"({_condition(node.kept, params)} AND NOT {_condition(node.left_out, params)})"


def _filters(query: SearchQuery, params: _Params) -> list[str]:
    where = ["t.superseded_by IS NULL", "l.kind = 'entry'"]
    if query.agent_id is not None:
        where.append(f"t.agent_id = {params.add(query.agent_id)}")
    if query.session is not None:
        session = params.add(query.session)
        where.append(
            f"(t.session_id = {session} OR t.session_id IN (SELECT e.session_id FROM "
            f"session_entries AS e WHERE e.agent_id = t.agent_id AND e.session_key = {session}))"
        )
    if query.role is not None:
        where.append(f"l.role = {params.add(query.role)}")
    if query.since is not None:
        where.append(f"l.timestamp >= {params.add(normalize_since(query.since))}")
    if query.kinds:
        where.append(f"t.kind = ANY({params.add(list(query.kinds))}::text[])")
    return where


_ACTIVE_PATH = """
, path(transcript_id, pos) AS (
    SELECT t.transcript_id, t.leaf_pos FROM transcripts AS t
    WHERE t.transcript_id IN (SELECT transcript_id FROM found) AND t.leaf_pos IS NOT NULL
    UNION ALL
    SELECT l.transcript_id, l.parent_pos FROM path
    JOIN transcript_lines AS l ON l.transcript_id = path.transcript_id AND l.pos = path.pos
    WHERE l.parent_pos IS NOT NULL AND l.parent_pos < l.pos
)
"""


def search_sql(query: SearchQuery, terms: Terms) -> tuple[str, list[Any]]:
    """The statement finding `query`'s hits, newest first, and its parameters."""
    params = _Params()
    where = [*_filters(query, params), _condition(terms.node, params)]
    sql = (
        "WITH RECURSIVE found AS ("
        " SELECT l.line_pk, l.transcript_id, l.pos, l.entry_id, l.type, l.role, l.timestamp,"
        f" t.agent_id, t.session_id, t.kind, t.file_name, {_TEXT} AS text"
        " FROM transcript_lines AS l"
        " JOIN transcripts AS t ON t.transcript_id = l.transcript_id"
        f" WHERE {' AND '.join(where)})"
        + (_ACTIVE_PATH if query.active_path_only else "")
        + " SELECT f.*, (SELECT e.session_key FROM session_entries AS e"
        " WHERE e.agent_id = f.agent_id AND e.session_id = f.session_id"
        " ORDER BY e.updated_at DESC NULLS LAST LIMIT 1) AS session_key FROM found AS f"
        + (
            " WHERE (f.transcript_id, f.pos) IN (SELECT transcript_id, pos FROM path)"
            if query.active_path_only
            else ""
        )
        + " ORDER BY f.timestamp DESC NULLS LAST, f.line_pk DESC"
    )
    return sql, params.values


def _mode_and_notice(query: SearchQuery, terms: Terms) -> tuple[str, str | None]:
    if terms.match is not None:
        return ("fts-raw" if query.raw else "fts"), None
    if query.raw:
        return "fts-raw", (
            f"{query.text!r} has a part shorter than {TRIGRAM_MIN_CHARS} characters that "
            "decides the match: the trigram index cannot look it up, so every entry's text "
            f"was read; use {TRIGRAM_MIN_CHARS} or more characters for an indexed search"
        )
    return "like", (
        f"{query.text!r} is shorter than {TRIGRAM_MIN_CHARS} characters: the trigram index "
        "cannot look it up, so every entry was scanned (ILIKE); use 3 or more characters "
        "for an indexed search"
    )


async def search_entries(conn: asyncpg.Connection[Any], query: SearchQuery) -> SearchResult:
    """Run a search on a read connection inside its transaction (a cursor needs one)."""
    check_query(query)
    if not query.text.strip():
        raise InvalidSearchError("give a search text (3 or more characters use the index)")
    limit = max(1, min(query.limit, MAX_LIMIT))
    terms = raw_query(query.text) if query.raw else literal(query.text)
    mode, notice = _mode_and_notice(query, terms)
    sql, args = search_sql(query, terms)
    needles = terms.substrings()
    hits: list[SearchHit] = []
    more = False
    cursor = await conn.cursor(sql, *args)
    while not more and (rows := await cursor.fetch(_FETCH)):
        for row in rows:
            if not terms.matches(row["text"]):
                continue  # ILIKE and str.lower fold a few letters differently
            if len(hits) == limit:
                more = True
                break
            hits.append(_hit(row, needles))
    return SearchResult(hits=hits, more=more, mode=mode, notice=notice, unsearched=0)


def _hit(row: asyncpg.Record, needles: list[str]) -> SearchHit:
    text: str = row["text"]
    needle = next((n for n in needles if n.lower() in text.lower()), None)
    return SearchHit(
        agent_id=row["agent_id"],
        session_key=row["session_key"],
        session_id=row["session_id"],
        transcript_id=row["transcript_id"],
        transcript_kind=row["kind"],
        file_name=row["file_name"],
        entry_id=row["entry_id"],
        pos=row["pos"],
        type=row["type"],
        role=row["role"],
        timestamp=row["timestamp"],
        snippet=make_snippet(text, needle),
    )


async def rebuild_index(conn: asyncpg.Connection[Any]) -> RebuildReport:
    """Rebuild `ix_transcript_lines_search` from the stored lines (a writer mutation: writes
    to transcript lines wait until it commits). The report counts the entry lines, the
    entries with text (indexed) and those that are not readable JSON."""
    await conn.execute(f"REINDEX INDEX {SEARCH_INDEX_NAME}")
    row = await conn.fetchrow(
        "SELECT count(*) AS lines, count(entry_search_text(line)) AS indexed,"
        " count(*) FILTER (WHERE line IS NOT NULL AND entry_line_json(line) IS NULL)"
        " AS unreadable, coalesce(max(line_pk), 0) AS upto"
        " FROM transcript_lines WHERE kind = 'entry'"
    )
    assert row is not None
    return RebuildReport(
        lines_read=int(row["lines"]),
        rows_indexed=int(row["indexed"]),
        unreadable=int(row["unreadable"]),
        batches=1,
        upto_line_pk=int(row["upto"]),
    )

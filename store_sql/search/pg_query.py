"""`store.search` on PostgreSQL: the same query semantics as query.py, read through
`search_text` (the entry lines' searchable text under the pg_trgm GIN index
`ix_search_text_trgm`, schema/pg_views.py) and the lines still queued for the background
indexer (`search_pending`, search/pg_indexer.py), whose text the search computes itself.
In any snapshot an entry line is in exactly one of the two, so a committed append is found
at once, whichever process wrote it and whether or not it has been indexed. As on SQLite,
a search computes the text of at most `BACKLOG_LIMIT` queued lines; past that it leaves
them out and says how many (`unsearched`, the notice), except while revision 0006's index
over the lines' text stands (after an upgrade to 0008 queued every stored line): then the
queued lines are found through it.

Each substring of the search becomes `text ILIKE '%substring%'`, combined with AND, OR and
AND NOT as the raw query says; pg_trgm answers a pattern with 3 or more characters from
the index and a shorter one by reading every entry's text, which the result says (`mode`,
`notice`), as on SQLite. `Terms.matches` then checks each hit's text as it does on SQLite,
so a hit is what both backends call a match: ILIKE folds the case of ASCII letters only
under the C character type the store's database uses, where SQLite's check folds every
letter (docs/POSTGRES.md).

Hits come newest first (entry timestamp, then line_pk), as on SQLite; neither backend ranks
by relevance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from store_sql.search.indexer import BACKLOG_LIMIT, INDEX_BATCH
from store_sql.search.pg_indexer import index_step, line_index_ready, queue_every_line, queued
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

if TYPE_CHECKING:
    import asyncpg

_FETCH = 64
"""Hits fetched and checked per round trip."""

_TEXT = "\x00text\x00"
"""Where `_condition` puts the text it tests: `s.text` (indexed) or `q.text` (queued)."""


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


def search_sql(
    query: SearchQuery, terms: Terms, *, queued: bool = True, through_line_index: bool = False
) -> tuple[str, list[Any]]:
    """The statement finding `query`'s hits, newest first, and its parameters: the indexed
    lines through the trigram index, and (`queued`) the lines waiting for the indexer, by
    key, or (`through_line_index`) through revision 0006's index over the lines' text."""
    params = _Params()
    where = " AND ".join(_filters(query, params))
    condition = _condition(terms.node, params)
    columns = (
        "l.line_pk, l.transcript_id, l.pos, l.entry_id, l.type, l.role, l.timestamp,"
        " t.agent_id, t.session_id, t.kind, t.file_name"
    )
    found = (
        f"SELECT {columns}, s.text FROM search_text AS s"
        " JOIN transcript_lines AS l ON l.line_pk = s.line_pk"
        " JOIN transcripts AS t ON t.transcript_id = l.transcript_id"
        f" WHERE {where} AND {condition.replace(_TEXT, 's.text')}"
    )
    # The queued lines are looked up by key (`= ANY` of the queue's keys read first) and
    # materialized before their text is computed, so the text is computed for them alone:
    # as a join, the planner scanned every line and computed the text or probed the queue
    # for each (the queue's size changes too fast for its statistics to tell).
    queued_cte = ""
    if through_line_index:
        # After an upgrade to 0008 queued every stored line: 0006's index over the text of
        # every entry line finds the candidates, which are kept if still queued.
        text = "entry_search_text(l.line)"
        queued_cte = (
            f"queued AS MATERIALIZED (SELECT {columns}, {text} AS text"
            " FROM transcript_lines AS l"
            " JOIN transcripts AS t ON t.transcript_id = l.transcript_id"
            f" WHERE {where} AND {condition.replace(_TEXT, text)}"
            " AND EXISTS (SELECT 1 FROM search_pending AS p WHERE p.line_pk = l.line_pk)), "
        )
        found += (
            " UNION ALL SELECT line_pk, transcript_id, pos, entry_id, type, role, timestamp,"
            " agent_id, session_id, kind, file_name, text FROM queued"
        )
    elif queued:
        queued_cte = (
            f"queued AS MATERIALIZED (SELECT {columns}, l.line FROM transcript_lines AS l"
            " JOIN transcripts AS t ON t.transcript_id = l.transcript_id"
            " WHERE l.line_pk = ANY(ARRAY(SELECT line_pk FROM search_pending))"
            f" AND {where}), "
        )
        found += (
            " UNION ALL SELECT line_pk, transcript_id, pos, entry_id, type, role, timestamp,"
            " agent_id, session_id, kind, file_name, q.text FROM queued"
            " CROSS JOIN LATERAL (SELECT entry_search_text(queued.line) AS text) AS q"
            f" WHERE {condition.replace(_TEXT, 'q.text')}"
        )
    sql = (
        f"WITH RECURSIVE {queued_cte}found AS ({found})"
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
    waiting = await queued(conn, BACKLOG_LIMIT + 1)
    # More lines queued than a search reads itself: after an upgrade to 0008 queued every
    # stored line, 0006's index over the lines finds them until the indexer has caught up
    # (for a text the trigram index can look up); otherwise they are left out and counted.
    through_line_index = (
        waiting > BACKLOG_LIMIT and terms.match is not None and await line_index_ready(conn)
    )
    unsearched = await queued(conn) if waiting > BACKLOG_LIMIT and not through_line_index else 0
    if unsearched:
        notice = "; ".join(
            filter(
                None,
                [
                    notice,
                    f"{unsearched} lines written since the full-text index was last brought "
                    f"up to date were not searched (more than {BACKLOG_LIMIT} lines are "
                    "waiting); they are indexed in the background, or now with "
                    "`store-sql search --catch-up`",
                ],
            )
        )
    sql, args = search_sql(
        query, terms, queued=not unsearched, through_line_index=through_line_index
    )
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
    return SearchResult(hits=hits, more=more, mode=mode, notice=notice, unsearched=unsearched)


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


async def index_counts(conn: asyncpg.Connection[Any]) -> RebuildReport:
    """The report of a finished rebuild: the entry lines, those with text (indexed) and
    those that are not readable JSON, and the largest line_pk."""
    row = await conn.fetchrow(
        "SELECT count(*) AS lines, (SELECT count(*) FROM search_text) AS indexed,"
        " count(*) FILTER (WHERE line IS NOT NULL AND entry_line_json(line) IS NULL)"
        " AS unreadable, coalesce(max(line_pk), 0) AS upto"
        " FROM transcript_lines WHERE kind = 'entry'"
    )
    assert row is not None
    return RebuildReport(
        lines_read=int(row["lines"]),
        rows_indexed=int(row["indexed"]),
        unreadable=int(row["unreadable"]),
        upto_line_pk=int(row["upto"]),
    )


async def rebuild_index(conn: asyncpg.Connection[Any]) -> RebuildReport:
    """Empty `search_text` and index every entry line again on `conn`, in the caller's
    transaction (`store.search.rebuild` does the same in writer steps, appends going on in
    between)."""
    await queue_every_line(conn)
    batches = 0
    while True:
        batches += 1
        if (await index_step(conn, INDEX_BATCH)).lines_read < INDEX_BATCH:
            break
    report = await index_counts(conn)
    report.batches = batches
    return report

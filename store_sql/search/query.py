"""Full-text search over transcript entries: `store.search` and `store-sql search`.

The index is the FTS5 table `entry_text_fts` (schema/extra_sql.py): rowid =
transcript_lines.line_pk, an external-content trigram index over the view
`entry_search_text`, written behind the appends by the background indexer (indexer.py) and
told of deleted lines by a trigger. It keeps which lines hold each trigram, not where, so
it yields candidate lines, and each candidate's text (computed from its line by the view)
decides (terms.py). A search reads the index for the lines up to the indexer's mark and
scans the lines above it itself, so a committed append is found at once. `rebuild`
recreates the index from the lines.

Search text is matched as a literal substring, case-insensitively. Trigrams cannot match
fewer than 3 characters, so a shorter text is looked up with LIKE instead, which reads
every entry's text: the result says so (`mode`, `notice`). Only current (not superseded)
transcripts are searched; archives are included, and each hit names its transcript kind.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from store_sql.formats.sqltext import storable, storable_text
from store_sql.search.indexer import BACKLOG_LIMIT, INDEX_BATCH, indexed_upto
from store_sql.search.terms import InvalidSearchError, Terms, literal, raw_query

TRIGRAM_MIN_CHARS = 3
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
REBUILD_BATCH = INDEX_BATCH
_SNIPPET_BEFORE = 40
_SNIPPET_AFTER = 80


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What to look for and where."""

    text: str
    agent_id: str | None = None
    session: str | None = None
    """A session key ('agent:main:main') or a session id."""
    role: str | None = None
    since: str | None = None
    """ISO time; entries with an earlier timestamp are left out."""
    active_path_only: bool = False
    kinds: tuple[str, ...] = ()
    """Transcript kinds to search (live, reset, ...); empty: all."""
    limit: int = DEFAULT_LIMIT
    raw: bool = False
    """`text` is a raw query (AND, OR, NOT, "phrases", parentheses; terms.py) instead of one
    literal substring."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching entry."""

    agent_id: str
    session_key: str | None
    session_id: str | None
    transcript_id: int
    transcript_kind: str
    file_name: str
    entry_id: str | None
    pos: int
    type: str | None
    role: str | None
    timestamp: str | None
    snippet: str


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Hits newest first; `more` says the limit cut them."""

    hits: list[SearchHit]
    more: bool
    mode: str
    """'fts' (the trigram index), 'like' (a scan, for short text) or 'fts-raw'."""
    notice: str | None = None
    unsearched: int = 0
    """Lines not in the index yet that could not be searched (more than
    `search.indexer.BACKLOG_LIMIT` of them); 0 means every stored entry was searched."""


@dataclass(slots=True)
class RebuildReport:
    """What `rebuild` did."""

    lines_read: int = 0
    rows_indexed: int = 0
    unreadable: int = 0
    """Entry lines that could not be parsed (kept out of the index)."""
    batches: int = 0
    upto_line_pk: int = 0
    notes: list[str] = field(default_factory=list)


# --- the query (thread side) -----------------------------------------------------------------


def normalize_since(value: str) -> str:
    """An ISO date or time as the UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` entries carry (naive: UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidSearchError(
            f"--since {value!r} is not an ISO date or time (e.g. 2026-02-10 or "
            "2026-02-10T09:30:00Z)"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


def like_pattern(text: str) -> str:
    """`%text%` for LIKE/ILIKE with `\\` as the escape character (both dialects)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filters(query: SearchQuery) -> tuple[list[str], dict[str, Any]]:
    where = ["t.superseded_by IS NULL", "l.kind = 'entry'"]
    params: dict[str, Any] = {}
    if query.agent_id is not None:
        where.append("t.agent_id = :agent")
        params["agent"] = query.agent_id
    if query.session is not None:
        where.append(
            "(t.session_id = :session OR t.session_id IN (SELECT e.session_id FROM "
            "session_entries AS e WHERE e.agent_id = t.agent_id AND e.session_key = :session))"
        )
        params["session"] = query.session
    if query.role is not None:
        where.append("l.role = :role")
        params["role"] = query.role
    if query.since is not None:
        where.append("l.timestamp >= :since")
        params["since"] = normalize_since(query.since)
    if query.kinds:
        marks = ", ".join(f":kind{i}" for i in range(len(query.kinds)))
        where.append(f"t.kind IN ({marks})")
        params.update({f"kind{i}": kind for i, kind in enumerate(query.kinds)})
    return where, params


# The active path of each transcript that has a candidate hit; parent_pos < pos ends it.
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


_FETCH = 64
"""Candidates fetched, checked and their texts read per round trip."""

_TEXTS = "SELECT line_pk, CAST(text AS BLOB) FROM entry_search_text WHERE line_pk IN ({marks})"


def _decoded(text: bytes) -> str:
    """A searchable text read as bytes. SQLite's JSON functions write an escaped lone
    surrogate (`"\\ud800"`) as its three-byte form, which is not UTF-8, so sqlite3 cannot
    read the text as TEXT; such a character becomes U+FFFD here, as in every copy of text
    the store makes (`storable_text`)."""
    try:
        return storable_text(text.decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError:
        return text.decode("utf-8", "replace")


def check_query(query: SearchQuery) -> None:
    """Refuse, with the reason, text the database cannot bind or the index cannot match."""
    if not isinstance(query.text, str):
        raise InvalidSearchError(f"the search text must be a string, got {query.text!r}")
    if "\0" in query.text:
        raise InvalidSearchError(
            f"the search text {query.text!r} holds a NUL character, which cannot be searched for"
        )
    for name, value in (
        ("search text", query.text),
        ("agent", query.agent_id),
        ("session", query.session),
        ("role", query.role),
        *(("kind", kind) for kind in query.kinds),
    ):
        if isinstance(value, str) and "\0" in value:
            # PostgreSQL text cannot hold NUL, so neither backend takes it (one answer on both).
            raise InvalidSearchError(
                f"the {name} {value!r} holds a NUL character, which cannot be searched for"
            )
        if value is not None and not (isinstance(value, str) and storable(value)):
            raise InvalidSearchError(
                f"the {name} {value!r} is not well-formed text (a lone surrogate, or bytes "
                "that are not UTF-8 given on the command line): nothing stored can match it"
            )
    if isinstance(query.limit, bool) or not isinstance(query.limit, int):
        raise InvalidSearchError(f"limit must be an integer, got {query.limit!r}")


def search_entries(conn: sqlite3.Connection, query: SearchQuery) -> SearchResult:
    """Run a search on a read connection (a reader of the pool, or the console's)."""
    check_query(query)
    text = query.text
    if not text.strip():
        raise InvalidSearchError("give a search text (3 or more characters use the index)")
    limit = max(1, min(query.limit, MAX_LIMIT))
    terms = raw_query(text) if query.raw else literal(text)
    where, params = _filters(query)
    notices: list[str] = []
    if terms.match is not None:
        mode = "fts-raw" if query.raw else "fts"
        source = "SELECT rowid AS line_pk FROM entry_text_fts WHERE entry_text_fts MATCH :match"
        params["match"] = terms.match
    else:
        mode = "fts-raw" if query.raw else "like"
        # No index use: every entry with text up to the mark is a candidate.
        source = "SELECT line_pk FROM entry_search_text WHERE line_pk <= :upto_all"
        params["upto_all"] = indexed_upto(conn)
        if not query.raw:
            source += " AND text LIKE :like ESCAPE '\\'"
            params["like"] = like_pattern(text)
        notices.append(
            f"{text!r} has a part shorter than {TRIGRAM_MIN_CHARS} characters that decides "
            "the match: the trigram index cannot look it up, so every entry's text was read; "
            f"use {TRIGRAM_MIN_CHARS} or more characters for an indexed search"
            if query.raw
            else f"{text!r} is shorter than {TRIGRAM_MIN_CHARS} characters: the trigram index "
            "cannot look it up, so every indexed entry was scanned (LIKE); use 3 or more "
            "characters for an indexed search"
        )
    recent, unsearched = _search_unindexed(conn, query, terms, where, params)
    if unsearched:
        notices.append(
            f"{unsearched} lines written since the full-text index was last brought up to date "
            f"were not searched (more than {BACKLOG_LIMIT} lines are waiting); they are "
            "indexed in the background, or now with `store-sql search --catch-up`"
        )
    params["recent"] = orjson.dumps(list(recent)).decode()
    sql = (
        "WITH RECURSIVE found AS ("
        " SELECT l.line_pk, l.transcript_id, l.pos, l.entry_id, l.type, l.role, l.timestamp,"
        " t.agent_id, t.session_id, t.kind, t.file_name"
        f" FROM ({source} UNION SELECT value FROM json_each(:recent)) AS h"
        " JOIN transcript_lines AS l ON l.line_pk = h.line_pk"
        " JOIN transcripts AS t ON t.transcript_id = l.transcript_id"
        f" WHERE {' AND '.join(where)})"
        + (_ACTIVE_PATH if query.active_path_only else "")
        + " SELECT f.*, (SELECT e.session_key FROM session_entries AS e"
        " WHERE e.agent_id = f.agent_id AND e.session_id = f.session_id"
        " ORDER BY +e.updated_at DESC LIMIT 1) AS session_key FROM found AS f"
        + (
            " WHERE (f.transcript_id, f.pos) IN (SELECT transcript_id, pos FROM path)"
            if query.active_path_only
            else ""
        )
        + " ORDER BY f.timestamp DESC, f.line_pk DESC"
    )
    cursor = conn.execute(sql, params)
    needles = terms.substrings()
    hits: list[SearchHit] = []
    more = False
    while not more and (rows := cursor.fetchmany(_FETCH)):
        texts = _texts(conn, [row[0] for row in rows if row[0] not in recent])
        texts.update(recent)
        for row in rows:
            found = texts.get(row[0])
            if found is None or not terms.matches(found):
                continue  # a candidate of the trigrams whose text does not match
            if len(hits) == limit:
                more = True
                break
            hits.append(_hit(row, found, needles))
    cursor.close()
    return SearchResult(
        hits=hits,
        more=more,
        mode=mode,
        notice="; ".join(notices) or None,
        unsearched=unsearched,
    )


def _texts(conn: sqlite3.Connection, line_pks: list[int]) -> dict[int, str]:
    if not line_pks:
        return {}
    marks = ", ".join("?" * len(line_pks))
    rows = conn.execute(_TEXTS.format(marks=marks), line_pks).fetchall()
    return {pk: _decoded(text) for pk, text in rows if text is not None}


def _search_unindexed(
    conn: sqlite3.Connection,
    query: SearchQuery,
    terms: Terms,
    where: list[str],
    params: dict[str, Any],
) -> tuple[dict[int, str], int]:
    """Match the lines above the indexer's mark here: {line_pk: text} of the matching
    entries, and the number of lines left unsearched."""
    upto = indexed_upto(conn)
    waiting = conn.execute(
        "SELECT count(*) FROM transcript_lines WHERE line_pk > ?", (upto,)
    ).fetchone()[0]
    if not waiting:
        return {}, 0
    if waiting > BACKLOG_LIMIT:
        return {}, int(waiting)
    raw_like = None if query.raw else _raw_line_pattern(query.text)
    rows = conn.execute(
        "SELECT v.line_pk, CAST(v.text AS BLOB) FROM entry_search_text AS v "
        "JOIN transcript_lines AS l ON l.line_pk = v.line_pk "
        "JOIN transcripts AS t ON t.transcript_id = l.transcript_id "
        f"WHERE v.line_pk > :upto AND {' AND '.join(where)}"
        + (" AND l.line LIKE :raw_like ESCAPE '\\'" if raw_like else ""),
        {**params, "upto": upto, "raw_like": raw_like},
    ).fetchall()
    texts = {pk: _decoded(found) for pk, found in rows if found is not None}
    return {pk: found for pk, found in texts.items() if terms.matches(found)}, 0


# Characters no JSON writer we know escapes (Go escapes <, > and &; some writers escape /).
_VERBATIM_IN_JSON = re.compile(r"[A-Za-z0-9 _.,:;!?@#$%*()=+'-]+")


def _raw_line_pattern(text: str) -> str | None:
    """A LIKE pattern the stored JSON line must match for its text to contain `text`, or
    None when `text` holds a character a writer may escape (then every line is parsed).
    Such a text appears in the line exactly as typed; LIKE folds ASCII case as the trigram
    index does, so SQLite can skip most lines before Python parses any."""
    return like_pattern(text) if _VERBATIM_IN_JSON.fullmatch(text) else None


def _hit(row: Sequence[Any], indexed: str, needles: list[str]) -> SearchHit:
    (_, transcript_id, pos, entry_id, kind, role, timestamp,
     agent_id, session_id, transcript_kind, file_name, session_key) = row  # fmt: skip
    needle = next((n for n in needles if n.lower() in indexed.lower()), None)
    return SearchHit(
        agent_id=agent_id,
        session_key=session_key,
        session_id=session_id,
        transcript_id=transcript_id,
        transcript_kind=transcript_kind,
        file_name=file_name,
        entry_id=entry_id,
        pos=pos,
        type=kind,
        role=role,
        timestamp=timestamp,
        snippet=make_snippet(indexed, needle),
    )


def make_snippet(indexed: str, needle: str | None) -> str:
    """The text around the first occurrence of `needle` (case-insensitive), marked with
    [brackets], whitespace collapsed. Built here rather than with FTS5's snippet(), whose
    trigram highlighting cuts matches short on SQLite 3.40."""
    match = re.search(re.escape(needle), indexed, re.IGNORECASE) if needle else None
    if match is None:
        start, end = 0, 0
    else:
        start, end = match.span()
    lo = max(0, start - _SNIPPET_BEFORE)
    hi = min(len(indexed), end + _SNIPPET_AFTER)
    before, hit, after = indexed[lo:start], indexed[start:end], indexed[end:hi]
    parts = [
        "…" if lo > 0 else "",
        _squash(before),
        f"[{_squash(hit)}]" if hit else "",
        _squash(after),
        "…" if hi < len(indexed) else "",
    ]
    return "".join(parts).strip()


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)

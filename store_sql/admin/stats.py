"""`store-sql stats`: what a database holds and how big it is, read in one snapshot.

Reads through the read-only console (`sql_console`), not `Store.open`: a stats run must not
create a database at a mistyped path, upgrade an old one, or become a second writer that
checkpoints the WAL on close while the gateway is running. Every figure comes from the
counters kept on `transcripts` and indexed columns, so the cost does not grow with the
size of the lines (the full-text row count is the one scan, of the index's own table).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from store_sql.admin.sql_console import open_console
from store_sql.search.indexer import backlog

DEFAULT_TOP = 10


@dataclass(frozen=True, slots=True)
class AgentStats:
    agent_id: str
    sessions: int
    transcripts: int
    entries: int
    transcript_bytes: int


@dataclass(frozen=True, slots=True)
class SessionSize:
    """A session by the bytes of its transcripts: the live one and all others (archives,
    snapshots, old versions) of its session id."""

    agent_id: str
    session_key: str | None
    session_id: str | None
    transcript_id: int
    entries: int
    live_bytes: int
    all_bytes: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    path: str
    database_bytes: int
    free_bytes: int
    wal_bytes: int
    agents: list[AgentStats]
    sessions: int
    invalid_sessions: int
    transcripts: int
    transcripts_by_kind: dict[str, int]
    superseded_transcripts: int
    lines: int
    entries: int
    transcript_bytes: int
    superseded_bytes: int
    session_index_bytes: int
    damaged_lines: int
    transcripts_with_damage: int
    opaque_files: int
    opaque_file_bytes: int
    checkpoint_snapshots: int
    full_text_rows: int
    full_text_waiting: int
    """Lines not in the full-text index yet (the background indexer's backlog)."""
    biggest_sessions: list[SessionSize]
    dialect: str = "sqlite"
    """"sqlite" or "postgresql" (there `database_bytes` is pg_database_size, and the free
    pages and the WAL are the server's business: 0)."""


def _one(conn: sqlite3.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


_AGENTS = """
WITH ids AS (
    SELECT agent_id FROM session_indexes UNION SELECT agent_id FROM session_entries
    UNION SELECT agent_id FROM transcripts
)
SELECT ids.agent_id,
    (SELECT count(*) FROM session_entries AS e WHERE e.agent_id = ids.agent_id),
    (SELECT count(*) FROM transcripts AS t
     WHERE t.agent_id = ids.agent_id AND t.superseded_by IS NULL),
    (SELECT coalesce(sum(t.entry_count), 0) FROM transcripts AS t
     WHERE t.agent_id = ids.agent_id AND t.superseded_by IS NULL),
    (SELECT coalesce(sum(t.byte_size), 0) FROM transcripts AS t
     WHERE t.agent_id = ids.agent_id AND t.superseded_by IS NULL)
FROM ids ORDER BY ids.agent_id
"""

_BIGGEST = """
SELECT t.agent_id,
    (SELECT e.session_key FROM session_entries AS e
     WHERE e.agent_id = t.agent_id AND e.session_id = t.session_id
     ORDER BY +e.updated_at DESC LIMIT 1) AS session_key,
    t.session_id, t.transcript_id, t.entry_count, t.byte_size,
    (SELECT sum(o.byte_size) FROM transcripts AS o
     WHERE o.agent_id = t.agent_id AND o.session_id = t.session_id) AS all_bytes
FROM transcripts AS t
WHERE t.kind IN ('live', 'fork') AND t.superseded_by IS NULL
ORDER BY all_bytes DESC, t.byte_size DESC, t.transcript_id
LIMIT ?
"""


def collect_stats(conn: sqlite3.Connection, path: Path, *, top: int = DEFAULT_TOP) -> StoreStats:
    """Every figure, from one read transaction on `conn`."""
    page_size = _one(conn, "PRAGMA page_size")
    kinds = dict(
        conn.execute(
            "SELECT kind, count(*) FROM transcripts WHERE superseded_by IS NULL "
            "GROUP BY kind ORDER BY kind"
        ).fetchall()
    )
    current = "SELECT {} FROM transcripts WHERE superseded_by IS NULL"
    try:
        wal_bytes = os.stat(f"{path}-wal").st_size
    except OSError:
        wal_bytes = 0
    return StoreStats(
        path=str(path),
        database_bytes=_one(conn, "PRAGMA page_count") * page_size,
        free_bytes=_one(conn, "PRAGMA freelist_count") * page_size,
        wal_bytes=wal_bytes,
        agents=[AgentStats(*row) for row in conn.execute(_AGENTS).fetchall()],
        sessions=_one(conn, "SELECT count(*) FROM session_entries"),
        invalid_sessions=_one(
            conn, "SELECT count(*) FROM session_entries WHERE problem IS NOT NULL"
        ),
        transcripts=sum(kinds.values()),
        transcripts_by_kind=kinds,
        superseded_transcripts=_one(
            conn, "SELECT count(*) FROM transcripts WHERE superseded_by IS NOT NULL"
        ),
        lines=_one(conn, current.format("sum(line_count)")),
        entries=_one(conn, current.format("sum(entry_count)")),
        transcript_bytes=_one(conn, current.format("sum(byte_size)")),
        superseded_bytes=_one(
            conn, "SELECT sum(byte_size) FROM transcripts WHERE superseded_by IS NOT NULL"
        ),
        session_index_bytes=_one(conn, "SELECT sum(entry_bytes) FROM session_entries"),
        damaged_lines=_one(conn, current.format("sum(damaged_count)")),
        transcripts_with_damage=_one(conn, current.format("count(*)") + " AND damaged_count > 0"),
        opaque_files=_one(conn, "SELECT count(*) FROM opaque_files"),
        opaque_file_bytes=_one(conn, "SELECT sum(length(content)) FROM opaque_files"),
        checkpoint_snapshots=_one(conn, "SELECT count(*) FROM checkpoint_snapshots"),
        full_text_rows=_one(conn, "SELECT count(*) FROM entry_text_fts"),
        full_text_waiting=backlog(conn),
        biggest_sessions=[SessionSize(*row) for row in conn.execute(_BIGGEST, (top,)).fetchall()],
    )


def stats_file(path: str | Path, *, top: int = DEFAULT_TOP) -> StoreStats:
    """Statistics of a database file, read-only (see the module docstring; a store on
    PostgreSQL: admin/pg_stats.py)."""
    with open_console(path) as console:
        console.conn.execute("BEGIN")
        try:
            return collect_stats(console.conn, console.path, top=top)
        finally:
            console.conn.execute("COMMIT")

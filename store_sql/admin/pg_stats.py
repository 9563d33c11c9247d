"""`store-sql stats` on PostgreSQL: the same figures as stats.py, read in one READ ONLY
snapshot through the console's connection (pg_console.reading), from the counters kept on
`transcripts` and indexed columns.

`full_text_rows` counts the rows of `search_text` (indexed entry lines with text) and
`full_text_waiting` the lines queued for the background indexer; the database's size is
`pg_database_size`; free pages and the WAL belong to the server and read 0.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from store_sql.admin.pg_console import reading
from store_sql.admin.stats import _AGENTS, DEFAULT_TOP, AgentStats, SessionSize, StoreStats
from store_sql.engine.pg.url import mask_password

_BIGGEST = """
SELECT t.agent_id,
    (SELECT e.session_key FROM session_entries AS e
     WHERE e.agent_id = t.agent_id AND e.session_id = t.session_id
     ORDER BY e.updated_at DESC NULLS LAST LIMIT 1) AS session_key,
    t.session_id, t.transcript_id, t.entry_count, t.byte_size,
    (SELECT sum(o.byte_size) FROM transcripts AS o
     WHERE o.agent_id = t.agent_id AND o.session_id = t.session_id) AS all_bytes
FROM transcripts AS t
WHERE t.kind IN ('live', 'fork') AND t.superseded_by IS NULL
ORDER BY all_bytes DESC NULLS LAST, t.byte_size DESC, t.transcript_id
LIMIT $1
"""


async def _one(conn: asyncpg.Connection[Any], sql: str) -> int:
    value = await conn.fetchval(sql)
    return 0 if value is None else int(value)


async def collect_stats(
    conn: asyncpg.Connection[Any], location: str, *, top: int = DEFAULT_TOP
) -> StoreStats:
    """Every figure, from the transaction `conn` is in."""
    kinds = {
        r[0]: int(r[1])
        for r in await conn.fetch(
            "SELECT kind, count(*) FROM transcripts WHERE superseded_by IS NULL "
            "GROUP BY kind ORDER BY kind"
        )
    }
    current = "SELECT {} FROM transcripts WHERE superseded_by IS NULL"
    agents = [AgentStats(r[0], *(int(v) for v in r[1:])) for r in await conn.fetch(_AGENTS)]
    biggest = [
        SessionSize(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), int(r[6] or 0))
        for r in await conn.fetch(_BIGGEST, top)
    ]
    return StoreStats(
        path=location,
        database_bytes=await _one(conn, "SELECT pg_database_size(current_database())"),
        free_bytes=0,
        wal_bytes=0,
        agents=agents,
        sessions=await _one(conn, "SELECT count(*) FROM session_entries"),
        invalid_sessions=await _one(
            conn, "SELECT count(*) FROM session_entries WHERE problem IS NOT NULL"
        ),
        transcripts=sum(kinds.values()),
        transcripts_by_kind=kinds,
        superseded_transcripts=await _one(
            conn, "SELECT count(*) FROM transcripts WHERE superseded_by IS NOT NULL"
        ),
        lines=await _one(conn, current.format("sum(line_count)")),
        entries=await _one(conn, current.format("sum(entry_count)")),
        transcript_bytes=await _one(conn, current.format("sum(byte_size)")),
        superseded_bytes=await _one(
            conn, "SELECT sum(byte_size) FROM transcripts WHERE superseded_by IS NOT NULL"
        ),
        session_index_bytes=await _one(conn, "SELECT sum(entry_bytes) FROM session_entries"),
        damaged_lines=await _one(conn, current.format("sum(damaged_count)")),
        transcripts_with_damage=await _one(
            conn, current.format("count(*)") + " AND damaged_count > 0"
        ),
        opaque_files=await _one(conn, "SELECT count(*) FROM opaque_files"),
        opaque_file_bytes=await _one(conn, "SELECT sum(octet_length(content)) FROM opaque_files"),
        checkpoint_snapshots=await _one(conn, "SELECT count(*) FROM checkpoint_snapshots"),
        full_text_rows=await _one(conn, "SELECT count(*) FROM search_text"),
        full_text_waiting=await _one(conn, "SELECT count(*) FROM search_pending"),
        biggest_sessions=biggest,
        dialect="postgresql",
    )


def stats(url: str, *, top: int = DEFAULT_TOP) -> StoreStats:
    """Statistics of the store at `url`, read-only."""

    async def run() -> StoreStats:
        async with reading(url) as (conn, _):
            return await collect_stats(conn, mask_password(url), top=top)

    return asyncio.run(run())

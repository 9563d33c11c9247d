"""Session maintenance on PostgreSQL: the twins of maintenance/steps.py. Reading an agent's
facts gives the same rows from PostgreSQL's SQL, assembled by the shared
`steps.assemble_facts`; the writer steps take lists as `= ANY($n)` arrays. There are no
free pages to vacuum and no WAL to truncate here: the server reuses and returns space
itself (autovacuum).

JSON inside an entry is read through `entry_line_json` (NULL for text that is not JSON)
and typed as SQLite's `json_extract` gives it where the plan looks at the type: a chat type
or a file name only when it is a JSON string, `modelSelectionLocked` as 1/0 for a boolean.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from store_sql.lifecycle import pg_rows as pg_lc
from store_sql.maintenance.plan import AgentFacts, Removal
from store_sql.maintenance.steps import (
    BatchResult,
    assemble_facts,
    still_as_planned,
    unused_transcript_names,
)
from store_sql.sessions import pg_rows as pg_sessions

if TYPE_CHECKING:
    import asyncpg

_ENTRY_FACTS = """
SELECT session_key, session_id, updated_at, session_file, entry_bytes, chat_type,
    CASE WHEN chat_type IS NULL AND strpos(entry_json, '"origin"') > 0 THEN
        CASE WHEN jsonb_typeof(entry_line_json(entry_json) -> 'origin' -> 'chatType') = 'string'
             THEN entry_line_json(entry_json) -> 'origin' ->> 'chatType' END
    END,
    CASE WHEN strpos(entry_json, '"archivedAt"') > 0 THEN
        jsonb_typeof(entry_line_json(entry_json) -> 'archivedAt')
    END,
    CASE WHEN strpos(entry_json, '"modelSelectionLocked"') > 0 THEN (
        SELECT CASE jsonb_typeof(m.value)
            WHEN 'boolean' THEN m.value::boolean::int
            WHEN 'number' THEN m.value::numeric END
        FROM (SELECT entry_line_json(entry_json) -> 'modelSelectionLocked' AS value) AS m)
    END
FROM session_entries WHERE agent_id = $1 ORDER BY position
"""

_NAMED_CHECKPOINTS = """
SELECT CASE WHEN jsonb_typeof(c.value -> 'checkpointId') = 'string'
            THEN c.value ->> 'checkpointId' END,
       CASE WHEN jsonb_typeof(c.value -> 'preCompaction' -> 'sessionFile') = 'string'
            THEN c.value -> 'preCompaction' ->> 'sessionFile' END
FROM session_entries AS e
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(entry_line_json(e.entry_json) -> 'compactionCheckpoints') = 'array'
         THEN entry_line_json(e.entry_json) -> 'compactionCheckpoints' END) AS c(value)
WHERE e.agent_id = $1 AND strpos(e.entry_json, '"compactionCheckpoints"') > 0
"""

_TRANSCRIPT_FACTS = """
SELECT t.transcript_id, t.kind, t.file_name, t.session_id,
    coalesce(octet_length(t.compressed_bytes), t.byte_size), t.archived_at, t.created_at,
    (SELECT l.timestamp FROM transcript_lines AS l
     WHERE l.transcript_id = t.transcript_id AND l.pos = t.leaf_pos)
FROM transcripts AS t WHERE t.agent_id = $1 AND t.superseded_by IS NULL
ORDER BY t.transcript_id
"""

_SNAPSHOT_FACTS = """
SELECT s.snapshot_pk, s.checkpoint_id, s.file_name, s.transcript_id, s.created_at,
    coalesce(s.byte_size, (SELECT coalesce(sum(l.byte_size + 1), 0) FROM transcript_lines AS l
        WHERE l.transcript_id = s.transcript_id AND l.pos <= s.upto_pos)
        - (CASE WHEN s.ends_with_newline <> 0 THEN 0 ELSE 1 END))
FROM checkpoint_snapshots AS s WHERE s.agent_id = $1 ORDER BY s.snapshot_pk
"""

_OTHER_BYTES = (
    "SELECT coalesce(sum(octet_length(content)), 0) FROM opaque_files WHERE agent_id = $1"
)


async def read_facts(conn: asyncpg.Connection[Any], agent_id: str, now_ms: int) -> AgentFacts:
    """What the plan needs, read in the reader's one snapshot."""
    return assemble_facts(
        agent_id,
        now_ms,
        await conn.fetch(_ENTRY_FACTS, agent_id),
        await conn.fetch(_NAMED_CHECKPOINTS, agent_id),
        await conn.fetch(_SNAPSHOT_FACTS, agent_id),
        await conn.fetch(_TRANSCRIPT_FACTS, agent_id),
        int(await conn.fetchval(_OTHER_BYTES, agent_id)),
    )


# --- applying (writer) -----------------------------------------------------------------------


async def remove_entries(
    conn: asyncpg.Connection[Any],
    agent_id: str,
    batch: Sequence[Removal],
    when: datetime,
    *,
    archive: bool,
) -> BatchResult:
    """steps.remove_entries' twin: the entries still as planned go (locked first, so a
    change by another process in between is seen), then their unused transcripts are
    archived or marked for deletion."""
    rows = await conn.fetch(
        "SELECT session_key, session_id, updated_at FROM session_entries "
        "WHERE agent_id = $1 AND session_key = ANY($2::text[]) ORDER BY entry_pk FOR UPDATE",
        agent_id,
        [r.key for r in batch],
    )
    removed = still_as_planned(batch, {r[0]: (r[1], r[2]) for r in rows})
    await pg_sessions.delete_entries(conn, agent_id, [r.key for r in removed])
    unused = {
        r[0]
        for r in await conn.fetch(
            "SELECT j FROM unnest($1::text[]) AS j WHERE NOT EXISTS (SELECT 1 FROM "
            "session_entries AS e WHERE e.agent_id = $2 AND e.session_id = j)",
            sorted({r.session_id for r in removed if r.session_id}),
            agent_id,
        )
    }
    names = unused_transcript_names(removed, unused)
    if archive:
        archived = await pg_lc.archive_transcripts(conn, agent_id, names, "deleted", when)
        return BatchResult(len(removed), archived, [])
    return BatchResult(len(removed), [], await _unpinned_transcripts(conn, agent_id, names))


async def _unpinned_transcripts(
    conn: asyncpg.Connection[Any], agent_id: str, names: Sequence[str]
) -> list[int]:
    if not names:
        return []
    rows = await conn.fetch(
        "SELECT transcript_id FROM transcripts AS t WHERE agent_id = $1 AND rel_dir = $2 "
        "AND file_name = ANY($3::text[]) AND kind IN ('live', 'topic') "
        "AND superseded_by IS NULL AND NOT EXISTS (SELECT 1 FROM checkpoint_snapshots AS s "
        "WHERE s.transcript_id = t.transcript_id) ORDER BY transcript_id",
        agent_id,
        await pg_lc.index_rel_dir(conn, agent_id),
        list(names),
    )
    return [int(r[0]) for r in rows]


async def transcript_versions(conn: asyncpg.Connection[Any], transcript_id: int) -> list[int]:
    """A transcript and the older versions it superseded, oldest first."""
    rows = await conn.fetch(
        "WITH RECURSIVE older(id) AS (SELECT $1::bigint UNION "
        " SELECT t.transcript_id FROM transcripts AS t JOIN older ON t.superseded_by = older.id) "
        "SELECT id FROM older ORDER BY id",
        transcript_id,
    )
    return [int(r[0]) for r in rows]


async def release_snapshot_rows(conn: asyncpg.Connection[Any], snapshot_pks: list[int]) -> int:
    """Delete snapshot rows (planned as unreferenced or over budget), in one statement."""
    status = await conn.execute(
        "DELETE FROM checkpoint_snapshots WHERE snapshot_pk = ANY($1::bigint[])", snapshot_pks
    )
    return int(status.rsplit(" ", 1)[-1])

"""Reading an agent's maintenance facts on PostgreSQL: the twin of `steps.read_facts`, the
same rows from PostgreSQL's SQL, assembled by the shared `steps.assemble_facts`.

JSON inside an entry is read through `entry_line_json` (NULL for text that is not JSON)
and typed as SQLite's `json_extract` gives it where the plan looks at the type: a chat type
or a file name only when it is a JSON string, `modelSelectionLocked` as 1/0 for a boolean.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from store_sql.maintenance.plan import AgentFacts
from store_sql.maintenance.steps import assemble_facts

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

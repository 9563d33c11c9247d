"""Recovering a damaged index on PostgreSQL: the twin of `sessions/recovery.py` (which
holds the salvage itself and the rules; this module holds only the SQL)."""

from __future__ import annotations

import hashlib

from store_sql.engine.pg.connection import PgConnection
from store_sql.errors import NotFoundError
from store_sql.sessions import pg_rows
from store_sql.sessions.recovery import (
    IndexRecovery,
    check_damaged,
    kept_name,
    kept_stamp,
    salvaged_entries,
)


async def recover_index(conn: PgConnection, agent_id: str) -> IndexRecovery:
    """Salvage the damaged index of `agent_id` (runs in the writer's transaction, the
    index's row locked)."""
    row = await conn.fetchrow(
        "SELECT source_state, rel_dir, source_bytes FROM session_indexes WHERE agent_id = $1 "
        "FOR UPDATE",
        agent_id,
    )
    if row is None:
        raise NotFoundError(f"agent {agent_id!r} has no session index; nothing to recover")
    state, rel_dir, data = row[0], row[1], bytes(row[2] or b"")
    check_damaged(agent_id, state, rel_dir)
    entries, lost = salvaged_entries(data, no_nul=True)
    stamp = kept_stamp()
    taken = {
        r[0]
        for r in await conn.fetch(
            "SELECT file_name FROM opaque_files WHERE agent_id = $1 AND rel_dir = $2 "
            "AND file_name LIKE $3",
            agent_id,
            rel_dir,
            kept_name(stamp, 1) + "%",
        )
    }
    serial = 1
    while kept_name(stamp, serial) in taken:
        serial += 1
    name = kept_name(stamp, serial)
    await conn.execute(
        "INSERT INTO opaque_files (agent_id, rel_dir, file_name, kind, content, sha256, "
        "imported_at) VALUES ($1, $2, $3, 'backup', $4, $5, "
        "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))",
        agent_id,
        rel_dir,
        name,
        data,
        hashlib.sha256(data).hexdigest(),
    )
    # source_sha256 stays: importing the same damaged file again is then "unchanged".
    await conn.execute(
        "UPDATE session_indexes SET source_bytes = NULL, source_state = 'api', "
        "source_error = NULL, next_position = 0 WHERE agent_id = $1",
        agent_id,
    )
    await conn.execute("DELETE FROM session_entries WHERE agent_id = $1", agent_id)
    await pg_rows.insert_imported_entries(conn, agent_id, entries)
    return IndexRecovery(agent_id, len(entries), lost, f"{rel_dir}/{name}", len(data))

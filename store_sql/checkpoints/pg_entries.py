"""Compaction checkpoints on PostgreSQL: the twin of checkpoints/entries.py.

The checkpoint object, the trim and the entry it leaves are entries.py's pure functions, so
both backends store the same entry text. Persisting reads the entry with its row locked
(`FOR UPDATE`) to the end of the writer's transaction: two processes persisting to one key
take turns, and neither checkpoint is lost.
"""

from __future__ import annotations

from store_sql.checkpoints import pg_snapshots as pg_snap
from store_sql.checkpoints.entries import (
    DEFAULT_MAX_RETAINED_BYTES,
    Checkpoint,
    CheckpointSpec,
    Persisted,
    checkpoint_of,
    checkpoints_of,
    entry_checkpoints,
    new_checkpoint,
    persisted_session,
    require_source,
    trimmed_entry,
)
from store_sql.checkpoints.snapshots import CapturedSnapshot
from store_sql.engine.pg.connection import PgConnection
from store_sql.sessions import pg_rows as pg_sessions
from store_sql.sessions.rows import Entry, entry_of

_SELECT_LOCKED = (
    "SELECT entry_json FROM session_entries WHERE agent_id = $1 AND session_key = $2 FOR UPDATE"
)


async def locked_entry(conn: PgConnection, agent_id: str, key: str) -> Entry | None:
    """The entry, its row locked to the end of the transaction (None when missing)."""
    pg_sessions.check_key(key)
    text = await conn.fetchval(_SELECT_LOCKED, agent_id, key)
    return entry_of(None if text is None else str(text))


async def persist_checkpoint(
    conn: PgConnection,
    agent_id: str,
    key: str,
    spec: CheckpointSpec,
    snapshot: CapturedSnapshot | None = None,
    *,
    max_retained_bytes: int = DEFAULT_MAX_RETAINED_BYTES,
) -> Persisted:
    """entries.persist_checkpoint."""
    entry, session_id = persisted_session(await locked_entry(conn, agent_id, key), agent_id, key)
    if snapshot is None:
        snapshot = await pg_snap.capture_snapshot(conn, agent_id, session_id)
    else:
        await pg_snap.check_captured(conn, agent_id, snapshot)
    new = new_checkpoint(key, session_id, spec, snapshot)
    existing = entry_checkpoints(entry)
    sizes = await pg_snap.snapshot_sizes(conn, agent_id, existing)
    trim = trimmed_entry(entry, existing, new, sizes, max_retained_bytes)
    await pg_sessions.put_entry(conn, agent_id, key, trim.entry)
    await pg_snap.insert_snapshot(conn, agent_id, key, new.checkpoint_id, snapshot, new.file_name)
    await pg_snap.release_snapshots(conn, agent_id, trim.removed, trim.kept)
    return trim.persisted(new)


async def list_checkpoints(conn: PgConnection, agent_id: str, key: str) -> list[Checkpoint]:
    """entries.list_checkpoints."""
    return checkpoints_of(await pg_sessions.get_entry(conn, agent_id, key), agent_id, key)


async def get_checkpoint(
    conn: PgConnection, agent_id: str, key: str, checkpoint_id: str
) -> Checkpoint:
    """entries.get_checkpoint."""
    entry = await pg_sessions.get_entry(conn, agent_id, key)
    return checkpoint_of(entry, agent_id, key, checkpoint_id)


async def checkpoint_snapshot_bytes(
    conn: PgConnection, agent_id: str, key: str, checkpoint_id: str
) -> bytes:
    """entries.checkpoint_snapshot_bytes."""
    cp = await get_checkpoint(conn, agent_id, key, checkpoint_id)
    source = await pg_snap.snapshot_source(conn, agent_id, cp)
    return await pg_snap.snapshot_bytes(conn, require_source(source, key, checkpoint_id))

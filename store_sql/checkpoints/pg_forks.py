"""Branching and restoring a compaction checkpoint on PostgreSQL: the twin of
checkpoints/forks.py.

The snapshot is parsed and the new transcript's lines built by forks.py's pure functions
(`SnapshotEntries`, `build_fork_plan`), so both backends write the same bytes. The commit
reads the source entry with its row locked (`FOR UPDATE`) to the end of the writer's
transaction, so another process cannot move the session between the check and the write.
"""

from __future__ import annotations

from store_sql.checkpoints import pg_snapshots as pg_snap
from store_sql.checkpoints.entries import Checkpoint
from store_sql.checkpoints.forks import (
    POST_TRANSCRIPT_ORDER,
    READ_BATCH,
    ForkMode,
    ForkPlan,
    ForkResult,
    ForkSource,
    SnapshotEntries,
    build_fork_plan,
    check_fork,
    clone_entry,
    fork_checkpoint,
    fork_key,
    fork_origin,
    key_taken,
    new_transcript,
    source_of_snapshot,
    source_of_transcript,
)
from store_sql.checkpoints.pg_entries import locked_entry
from store_sql.checkpoints.snapshots import base_name
from store_sql.engine.pg.connection import PgConnection
from store_sql.sessions import pg_rows as pg_sessions
from store_sql.transcripts import pg_reads
from store_sql.transcripts import pg_rows as pg_tx


async def _fork_source(conn: PgConnection, agent_id: str, cp: Checkpoint) -> ForkSource:
    path, stop, from_snapshot = fork_origin(cp)
    if from_snapshot:
        return source_of_snapshot(cp, path, stop, await pg_snap.snapshot_source(conn, agent_id, cp))
    row = await conn.fetchrow(
        "SELECT transcript_id, line_count FROM transcripts WHERE agent_id = $1 "
        f"AND file_name = $2 AND superseded_by IS NULL {POST_TRANSCRIPT_ORDER}",
        agent_id,
        base_name(path),
    )
    return source_of_transcript(cp, path, stop, None if row is None else tuple(row))


async def plan_fork(
    conn: PgConnection,
    agent_id: str,
    key: str,
    checkpoint_id: str,
    *,
    cwd: str | None = None,
) -> ForkPlan:
    """forks.plan_fork (a reader)."""
    entry = await pg_sessions.get_entry(conn, agent_id, key)
    session_id, cp = fork_checkpoint(entry, agent_id, key, checkpoint_id)
    source = await _fork_source(conn, agent_id, cp)
    read = SnapshotEntries(source)
    while read.wants_more:
        batch = await pg_reads.page(
            conn, source.transcript_id, after_pos=read.after, limit=READ_BATCH
        )
        read.take(batch)
    old_header, entries = read.result()
    return build_fork_plan(
        agent_id=agent_id,
        key=key,
        session_id=session_id,
        cp=cp,
        source=source,
        old_header=old_header,
        entries=entries,
        rel_dir=await pg_snap.index_rel_dir(conn, agent_id),
        cwd=cwd,
    )


async def commit_fork(
    conn: PgConnection, plan: ForkPlan, mode: ForkMode, new_key: str | None = None
) -> ForkResult:
    """forks.commit_fork (one writer mutation)."""
    locked = await locked_entry(conn, plan.agent_id, plan.source_key)
    current, cp = check_fork(locked, plan, mode)
    key = fork_key(plan, mode, new_key)
    if mode == "branch" and await pg_sessions.read_entry_text(conn, plan.agent_id, key) is not None:
        raise key_taken(key)
    tid = await pg_tx.insert_transcript(conn, **new_transcript(plan))
    await pg_tx.insert_lines(conn, tid, plan.rows, ends_with_newline=True)
    entry = clone_entry(current, plan, branch_of=plan.source_key if mode == "branch" else None)
    await pg_sessions.put_entry(conn, plan.agent_id, key, entry)
    return ForkResult(key, plan.session_id, entry, cp, tid, plan.file_name)

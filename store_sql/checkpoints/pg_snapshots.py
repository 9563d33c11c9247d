"""Snapshots of compaction checkpoints on PostgreSQL: the twin of checkpoints/snapshots.py.

The rules (which row or imported copy a checkpoint's file means, what a snapshot holds,
which files a trim releases) are snapshots.py's pure functions; here is only the SQL. A list
of file names is one `= ANY($n)` array where SQLite reads `json_each(?)`; the snapshot file
is rendered by the server a block of lines at a time (`pg_reads.transcript_blocks`), the same
bytes as on SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from store_sql.checkpoints.snapshots import (
    CapturedSnapshot,
    SnapshotSource,
    base_name,
    captured_of,
    check_captured_info,
    files_to_release,
    known_sizes,
    pre_file,
    snapshot_file_names,
)
from store_sql.engine.pg.connection import PgConnection
from store_sql.sessions.rows import default_rel_dir
from store_sql.transcripts import pg_reads
from store_sql.transcripts import pg_rows as pg_tx
from store_sql.transcripts.rows import now_iso


async def capture_snapshot(conn: PgConnection, agent_id: str, session_id: str) -> CapturedSnapshot:
    """snapshots.capture_snapshot."""
    return captured_of(await pg_tx.require_live(conn, agent_id, session_id), session_id)


async def check_captured(conn: PgConnection, agent_id: str, snap: CapturedSnapshot) -> None:
    check_captured_info(await pg_tx.get_info(conn, snap.transcript_id), agent_id, snap)


async def index_rel_dir(conn: PgConnection, agent_id: str) -> str:
    """snapshots.index_rel_dir."""
    found = await conn.fetchval("SELECT rel_dir FROM session_indexes WHERE agent_id = $1", agent_id)
    return str(found) if found is not None else default_rel_dir(agent_id)


async def _lines_size(conn: PgConnection, transcript_id: int, upto_pos: int, final_nl: bool) -> int:
    row = await conn.fetchrow(
        "SELECT coalesce(sum(byte_size + 1), 0), count(*) FROM transcript_lines "
        "WHERE transcript_id = $1 AND pos <= $2",
        transcript_id,
        upto_pos,
    )
    assert row is not None  # an aggregate always gives one row
    return int(row[0]) - (0 if final_nl or not row[1] else 1)


async def snapshot_source(
    conn: PgConnection, agent_id: str, cp: Mapping[str, Any]
) -> SnapshotSource | None:
    """snapshots.snapshot_source."""
    name = pre_file(cp)
    if name is None:
        return None
    file_name = base_name(name)
    row = await conn.fetchrow(
        "SELECT snapshot_pk, transcript_id, upto_pos, byte_size, ends_with_newline "
        "FROM checkpoint_snapshots WHERE agent_id = $1 AND file_name = $2 "
        "ORDER BY checkpoint_id = $3 DESC, snapshot_pk DESC LIMIT 1",
        agent_id,
        file_name,
        str(cp.get("checkpointId")),
    )
    if row is not None:
        pk, tid, upto, size, final_nl = row
        if size is None:
            size = await _lines_size(conn, tid, upto, bool(final_nl))
        return SnapshotSource(int(tid), int(upto), file_name, int(size), bool(final_nl), int(pk))
    found = await conn.fetchrow(
        "SELECT transcript_id, line_count, byte_size, ends_with_newline FROM transcripts "
        "WHERE agent_id = $1 AND rel_dir = $2 AND file_name = $3 AND kind = 'checkpoint' "
        "AND superseded_by IS NULL ORDER BY transcript_id DESC LIMIT 1",
        agent_id,
        await index_rel_dir(conn, agent_id),
        file_name,
    )
    if found is None:
        return None
    tid, line_count, size, final_nl = found
    return SnapshotSource(int(tid), int(line_count) - 1, file_name, int(size), bool(final_nl), None)


async def snapshot_sizes(
    conn: PgConnection, agent_id: str, checkpoints: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """snapshots.snapshot_sizes: one query for the snapshot rows."""
    rows = await conn.fetch(
        "SELECT checkpoint_id, file_name, byte_size FROM checkpoint_snapshots "
        "WHERE agent_id = $1 AND file_name = ANY($2::text[])",
        agent_id,
        snapshot_file_names(checkpoints),
    )
    sizes, unknown = known_sizes(checkpoints, rows)
    for cp in unknown:
        source = await snapshot_source(conn, agent_id, cp)
        sizes[str(cp.get("checkpointId"))] = source.byte_size if source else 0
    return sizes


async def snapshot_bytes(conn: PgConnection, source: SnapshotSource) -> bytes:
    """snapshots.snapshot_bytes."""
    chunks = pg_reads.transcript_blocks(
        conn, source.transcript_id, upto_pos=source.upto_pos, newline=source.ends_with_newline
    )
    return b"".join([chunk async for chunk in chunks])


async def insert_snapshot(
    conn: PgConnection,
    agent_id: str,
    key: str,
    checkpoint_id: str,
    snap: CapturedSnapshot,
    file_name: str,
) -> None:
    await conn.execute(
        "INSERT INTO checkpoint_snapshots (agent_id, checkpoint_id, transcript_id, upto_pos, "
        "leaf_id, file_name, created_at, session_key, byte_size, ends_with_newline) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        agent_id, checkpoint_id, snap.transcript_id, snap.upto_pos, snap.leaf_id, file_name,
        now_iso(), key, snap.byte_size, int(snap.ends_with_newline),
    )  # fmt: skip


async def release_snapshots(
    conn: PgConnection,
    agent_id: str,
    removed: Sequence[Mapping[str, Any]],
    kept: Sequence[Mapping[str, Any]],
) -> int:
    """snapshots.release_snapshots."""
    released = 0
    for cp in files_to_release(removed, kept):
        source = await snapshot_source(conn, agent_id, cp)
        if source is None:
            continue
        if source.snapshot_pk is not None:
            await conn.execute(
                "DELETE FROM checkpoint_snapshots WHERE snapshot_pk = $1", source.snapshot_pk
            )
        else:  # an imported copy: the gateway would unlink the file
            await conn.execute(
                "DELETE FROM transcripts WHERE transcript_id = $1", source.transcript_id
            )
        released += 1
    return released

"""Which files the store holds, and their bytes, on PostgreSQL: the async twins of
`exporter.plan`'s reads (docs/POSTGRES.md).

Each function runs on one read connection inside one snapshot. A transcript's bytes come
from the transcripts' own reader (`transcripts.pg_reads.transcript_blocks`: blocks joined
by the server); large bytea cells (opaque files, compressed archives) are read in slices.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from store_sql.engine.pg.connection import PgConnection as Connection
from store_sql.exporter.plan import (
    ExportPlan,
    IndexLayout,
    PlannedFile,
    PreMigrationRows,
    StoredFiles,
    assemble_plan,
    entry_file_bytes,
    index_layout_of,
    state_bytes,
)
from store_sql.sessions.pg_rows import render_sessions_json
from store_sql.transcripts.pg_reads import transcript_blocks

SLICE_BYTES = 16 << 20
"""A bytea cell larger than this is read in slices of this size."""


async def plan_export(
    conn: Connection, agent: str | None = None, index_layout: IndexLayout | None = None
) -> ExportPlan:
    """`plan.plan_export` on PostgreSQL."""
    only = "agent_id = $1" if agent is not None else "TRUE"
    params = (agent,) if agent is not None else ()
    indexes = [
        (r[0], r[1], r[2])
        for r in await conn.fetch(
            "SELECT agent_id, rel_dir, EXISTS (SELECT 1 FROM session_directories d "
            f"WHERE d.agent_id = i.agent_id) FROM session_indexes i WHERE {only} "
            "ORDER BY agent_id",
            *params,
        )
    ]
    entries: dict[str, list[tuple[int, str]]] = {}
    for agent_id, _, directory in indexes:
        if index_layout_of(directory, index_layout) == "directory":
            rows = await conn.fetch(
                "SELECT entry_pk, session_key FROM session_entries WHERE agent_id = $1",
                agent_id,
            )
            entries[agent_id] = [(r[0], r[1]) for r in rows]
    transcripts = [
        (r[0], r[1], r[2], r[3], r[4])
        for r in await conn.fetch(
            "SELECT transcript_id, agent_id, rel_dir, file_name, compressed_bytes IS NOT NULL "
            f"FROM transcripts WHERE superseded_by IS NULL AND {only} ORDER BY transcript_id",
            *params,
        )
    ]
    opaque = [
        (r[0], r[1], r[2], r[3])
        for r in await conn.fetch(
            "SELECT file_pk, agent_id, rel_dir, file_name FROM opaque_files "
            f"WHERE {only} ORDER BY file_pk",
            *params,
        )
    ]
    snapshots = [
        (r[0], r[1], r[2], r[3])
        for r in await conn.fetch(
            "SELECT s.snapshot_pk, s.agent_id, t.rel_dir, s.file_name FROM checkpoint_snapshots s "
            "JOIN transcripts t ON t.transcript_id = s.transcript_id "
            f"WHERE {only.replace('agent_id', 's.agent_id')} ORDER BY s.snapshot_pk",
            *params,
        )
    ]
    return assemble_plan(
        StoredFiles(indexes, entries, transcripts, opaque, snapshots), index_layout
    )


async def file_chunks(conn: Connection, item: PlannedFile) -> AsyncIterator[bytes]:
    """`plan.file_chunks` on PostgreSQL: the exact bytes of a planned file, in chunks."""
    if item.source == "index":
        data = await render_sessions_json(conn, item.agent_id)
        if data:
            yield data
    elif item.source == "index_state":
        row = await conn.fetchrow(
            "SELECT i.source_bytes, d.state_version FROM session_indexes i "
            "LEFT JOIN session_directories d ON d.agent_id = i.agent_id WHERE i.agent_id = $1",
            item.agent_id,
        )
        yield state_bytes(None if row is None else tuple(row))
    elif item.source == "index_entry":
        row = await conn.fetchrow(
            "SELECT e.session_key, e.entry_json, f.content, f.entry_sha256 "
            "FROM session_entries e LEFT JOIN session_entry_files f "
            "ON f.agent_id = e.agent_id AND f.session_key = e.session_key WHERE e.entry_pk = $1",
            item.ref,
        )
        if row is not None:
            yield entry_file_bytes(tuple(row))
    elif item.source == "transcript":
        async for block in transcript_blocks(conn, item.ref):
            yield block
    elif item.source == "compressed":
        async for block in _bytea_slices(conn, "transcripts", "compressed_bytes", item.ref):
            yield block
    elif item.source == "opaque":
        async for block in _bytea_slices(conn, "opaque_files", "content", item.ref):
            yield block
    else:
        row = await conn.fetchrow(
            "SELECT transcript_id, upto_pos, ends_with_newline FROM checkpoint_snapshots "
            "WHERE snapshot_pk = $1",
            item.ref,
        )
        if row is not None:
            async for block in transcript_blocks(
                conn, row[0], upto_pos=row[1], newline=bool(row[2])
            ):
                yield block


async def _bytea_slices(
    conn: Connection, table: str, column: str, ref: int
) -> AsyncIterator[bytes]:
    key = "transcript_id" if table == "transcripts" else "file_pk"
    size = await conn.fetchval(f"SELECT octet_length({column}) FROM {table} WHERE {key} = $1", ref)
    if not size:
        return
    if size <= SLICE_BYTES:
        yield await conn.fetchval(f"SELECT {column} FROM {table} WHERE {key} = $1", ref)
        return
    for start in range(0, size, SLICE_BYTES):
        yield await conn.fetchval(
            f"SELECT substring({column} FROM $2 FOR $3) FROM {table} WHERE {key} = $1",
            ref,
            start + 1,
            SLICE_BYTES,
        )


async def pre_migration_rows(conn: Connection, agent: str | None) -> PreMigrationRows:
    """`pre_migration.pre_migration_rows` on PostgreSQL."""
    migrated = {r[0] for r in await conn.fetch("SELECT agent_id FROM agent_databases")}
    archived = await conn.fetch(
        "SELECT o.file_pk, o.agent_id, o.file_name, p.original_name, p.role, p.session_id "
        "FROM pre_migration_files p JOIN opaque_files o USING (file_pk) "
        "ORDER BY o.agent_id, o.file_name"
    )
    sessions = {}
    for agent_id in migrated:
        entries = await conn.fetch(
            "SELECT session_key, session_id FROM session_entries WHERE agent_id = $1 "
            "ORDER BY position",
            agent_id,
        )
        sessions[agent_id] = [(r[0], r[1]) for r in entries]
    return PreMigrationRows(
        await plan_export(conn, agent),
        migrated,
        {r[0] for r in await conn.fetch("SELECT transcript_id FROM database_transcripts")},
        [tuple(r) for r in archived],
        sessions,
    )

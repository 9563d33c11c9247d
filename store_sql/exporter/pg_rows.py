"""Which files the store holds, and their bytes, on PostgreSQL: the async twins of
`exporter.plan`'s reads (docs/POSTGRES.md).

Each function runs on one read connection inside one snapshot. A transcript's lines stream
through a server-side cursor in `pos` order and are joined into blocks of about
`BLOCK_BYTES` here; a text line comes back as its UTF-8 bytes (`convert_to`, so the client
never decodes it) and a bytea line as it is, so the bytes are the stored ones. Large bytea
cells (opaque files, compressed archives) are read in slices.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from store_sql.engine.pg.writer import PgConnection as Connection
from store_sql.errors import NotFoundError
from store_sql.exporter.plan import (
    ExportPlan,
    IndexLayout,
    PlannedFile,
    StoredFiles,
    assemble_plan,
    entry_file_bytes,
    index_layout_of,
    state_bytes,
)
from store_sql.formats import jsjson
from store_sql.sessions.pg_rows import render_sessions_json

if TYPE_CHECKING:
    from store_sql.exporter.pre_migration import PreMigrationRows

BLOCK_BYTES = 1 << 20
"""Bytes of lines joined per block handed to the file writer."""
SLICE_BYTES = 16 << 20
"""A bytea cell larger than this is read in slices of this size."""
_PREFETCH = 512
"""Rows a cursor fetches per round trip."""


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


async def transcript_blocks(
    conn: Connection,
    transcript_id: int,
    *,
    upto_pos: int | None = None,
    newline: bool | None = None,
) -> AsyncIterator[bytes]:
    """`transcripts.file_bytes.transcript_blocks` on PostgreSQL: lines 0..`upto_pos`, each
    followed by ``\\n`` except the last when the file had no final newline (`newline`,
    default: as stored). Runs inside the caller's transaction (a cursor needs one)."""
    if newline is None:
        stored = await conn.fetchval(
            "SELECT ends_with_newline FROM transcripts WHERE transcript_id = $1", transcript_id
        )
        newline = bool(stored) if stored is not None else True
    upto = upto_pos if upto_pos is not None else (1 << 62)
    block: list[bytes] = []
    size = 0
    wrote = False
    async for row in conn.cursor(
        "SELECT coalesce(convert_to(line, 'UTF8'), line_bytes) FROM transcript_lines "
        "WHERE transcript_id = $1 AND pos <= $2::bigint ORDER BY pos",
        transcript_id,
        upto,
        prefetch=_PREFETCH,
    ):
        block.append(row[0])
        size += len(row[0]) + 1
        if size >= BLOCK_BYTES:
            if wrote:
                yield b"\n"
            yield b"\n".join(block)
            wrote = True
            block, size = [], 0
    if block:
        if wrote:
            yield b"\n"
        yield b"\n".join(block)
        wrote = True
    if wrote and newline:
        yield b"\n"


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
    from store_sql.exporter.pre_migration import PreMigrationRows  # it imports this module

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


async def find_transcript(
    conn: Connection, agent: str, session: str
) -> tuple[int, str, str | None]:
    """`api._find_transcript` on PostgreSQL: (transcript_id, file_name, session_id) of a
    session key's transcript (its entry's `sessionId`), a session id's live transcript (else
    its newest current one of any kind), or a stored file name."""
    text = await conn.fetchval(
        "SELECT entry_json FROM session_entries WHERE agent_id = $1 AND session_key = $2",
        agent,
        session,
    )
    entry = _entry_value(text)
    session_id = entry.get("sessionId") if isinstance(entry, dict) else None
    for candidate in (session_id, session):
        if not isinstance(candidate, str):
            continue
        row = await conn.fetchrow(
            "SELECT transcript_id, file_name, session_id FROM transcripts "
            "WHERE agent_id = $1 AND session_id = $2 AND kind IN ('live', 'fork') "
            "AND superseded_by IS NULL ORDER BY file_name = $3 DESC, transcript_id DESC LIMIT 1",
            agent,
            candidate,
            f"{candidate}.jsonl",
        ) or await conn.fetchrow(
            "SELECT transcript_id, file_name, session_id FROM transcripts WHERE agent_id = $1 "
            "AND superseded_by IS NULL AND (session_id = $2 OR file_name = $2) "
            "ORDER BY transcript_id DESC LIMIT 1",
            agent,
            candidate,
        )
        if row is not None:
            return row[0], row[1], row[2]
    raise NotFoundError(f"agent {agent!r} has no session or transcript {session!r}")


def _entry_value(text: str | None) -> object:
    if text is None:
        return None
    try:
        return jsjson.loads(text)
    except (jsjson.JSONSyntaxError, ValueError):
        return None

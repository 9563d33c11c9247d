"""The store's side of reading OpenClaw's database: what a transcript read from it was made
of (`database_transcripts`), the agents whose index came from it (`agent_databases`) and the
legacy files OpenClaw archived (`pre_migration_files`). Plain functions run by the writer
(or a reader), as in importer.rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import astuple, dataclass

from store_sql.importer import rows as db
from store_sql.importer.chunks import LineChunk
from store_sql.transcripts.rows import now_iso


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a stored transcript was read from in OpenClaw's database."""

    source: str
    """events | archive | cold_archive"""
    generation: str | None
    last_seq: int | None
    event_count: int
    base_created_at: int | None
    last_event_sha256: str | None
    source_sha256: str | None

    def row(self, transcript_id: int, agent_id: str, session_id: str) -> tuple[object, ...]:
        """The transcript's `database_transcripts` row, in column order: its three keys, then
        these fields in the order they are declared (and read back: `Origin(*row)`)."""
        return (transcript_id, agent_id, session_id, *astuple(self))


@dataclass(frozen=True, slots=True)
class OriginUpdate:
    """What `write_events_chunk` records next to the lines it stores."""

    agent_id: str
    session_id: str
    source: str
    generation: str | None
    base_created_at: int | None
    first_count: int
    """Events already stored before this run's first line."""
    first_pos: int
    """Line position of this run's first event."""
    seqs: list[int]
    """seq of every event read in this run, in order (line first_pos + i is seqs[i])."""


def stored_with_origin(
    conn: sqlite3.Connection, agent_id: str, rel_dir: str, file_name: str
) -> tuple[db.StoredSource | None, Origin | None]:
    stored = db.current_transcript(conn, agent_id, rel_dir, file_name)
    if stored is None:
        return None, None
    row = conn.execute(
        "SELECT source, generation, last_seq, event_count, base_created_at, last_event_sha256, "
        "source_sha256 FROM database_transcripts WHERE transcript_id = ?",
        (stored.transcript_id,),
    ).fetchone()
    return stored, None if row is None else Origin(*row)


def record_origin(
    conn: sqlite3.Connection,
    transcript_id: int,
    agent_id: str,
    session_id: str,
    origin: Origin,
) -> None:
    conn.execute(
        "INSERT INTO database_transcripts (transcript_id, agent_id, session_id, source, "
        "generation, last_seq, event_count, base_created_at, last_event_sha256, source_sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (transcript_id) DO UPDATE SET "
        "source = excluded.source, generation = excluded.generation, "
        "last_seq = excluded.last_seq, event_count = excluded.event_count, "
        "base_created_at = excluded.base_created_at, "
        "last_event_sha256 = excluded.last_event_sha256, source_sha256 = excluded.source_sha256",
        origin.row(transcript_id, agent_id, session_id),
    )


def write_events_chunk(
    conn: sqlite3.Connection,
    target: db.NewTranscript | db.Continuation,
    chunk: LineChunk,
    update: OriginUpdate,
) -> tuple[int, int]:
    """Store one chunk of events and, in the same transaction, how far the transcript has
    read (so an interrupted import resumes after the last committed event). The transcript's
    source is the database, not a file: its source_size follows byte_size, with no hash.
    Returns the transcript id and its size."""
    tid = db.write_chunk(conn, target, chunk)
    conn.execute(
        "UPDATE transcripts SET source_size = byte_size, source_sha256 = NULL "
        "WHERE transcript_id = ?",
        (tid,),
    )
    origin = origin_after(chunk, update)
    if origin is not None:
        record_origin(conn, tid, update.agent_id, update.session_id, origin)
    (size,) = conn.execute(
        "SELECT byte_size FROM transcripts WHERE transcript_id = ?", (tid,)
    ).fetchone()
    return tid, int(size)


def origin_after(chunk: LineChunk, update: OriginUpdate) -> Origin | None:
    """Where the transcript's origin stands once `chunk` is stored (None: no lines)."""
    if not chunk.rows:
        return None
    last_pos, last_line = chunk.rows[-1][0], chunk.rows[-1][1]
    index = last_pos - update.first_pos
    return Origin(
        update.source,
        update.generation,
        update.seqs[index],
        update.first_count + index + 1,
        update.base_created_at,
        hashlib.sha256(last_line).hexdigest(),
        None,
    )


def record_database(
    conn: sqlite3.Connection,
    agent_id: str,
    rel_path: str,
    schema_version: int,
    app_version: str | None,
) -> None:
    conn.execute(
        "INSERT INTO agent_databases (agent_id, rel_path, schema_version, app_version, "
        "imported_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET "
        "rel_path = excluded.rel_path, schema_version = excluded.schema_version, "
        "app_version = excluded.app_version, imported_at = excluded.imported_at",
        (agent_id, rel_path, schema_version, app_version, now_iso()),
    )


def record_pre_migration(
    conn: sqlite3.Connection,
    agent_id: str,
    rel_dir: str,
    name: str,
    original_name: str | None,
    role: str,
    session_id: str | None,
) -> None:
    (file_pk,) = conn.execute(
        "SELECT file_pk FROM opaque_files WHERE agent_id = ? AND rel_dir = ? AND file_name = ?",
        (agent_id, rel_dir, name),
    ).fetchone()
    conn.execute(
        "INSERT INTO pre_migration_files (file_pk, original_name, role, session_id) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (file_pk) DO UPDATE SET "
        "original_name = excluded.original_name, role = excluded.role, "
        "session_id = excluded.session_id",
        (file_pk, original_name, role, session_id),
    )

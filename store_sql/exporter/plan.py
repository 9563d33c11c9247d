"""Which files the store holds, and their bytes as a stream: shared by export and verify.

Functions here run on a reader connection (one snapshot per call). A file's bytes come in
chunks straight from SQLite (a transcript's lines in ~512 KB blocks joined by SQLite itself,
`transcript_dump`; compressed archives and opaque files through incremental blob I/O), so
memory stays flat however large a file is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from store_sql.sessions.rows import render_sessions_json
from store_sql.transcripts.file_bytes import transcript_blocks

Source = Literal["index", "transcript", "compressed", "opaque", "snapshot"]

_BLOB_READ = 1 << 20


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """One file the store would write, relative to the state dir."""

    rel_path: str
    agent_id: str
    source: Source
    """Where the bytes come from: the session index, a transcript's lines, a compressed
    archive's original bytes, an opaque file, or a checkpoint snapshot (a transcript prefix)."""
    ref: int
    """transcript_id, file_pk or snapshot_pk (0 for an index)."""


def plan_export(
    conn: sqlite3.Connection, agent: str | None = None
) -> tuple[list[PlannedFile], list[str]]:
    """Every file of the store (of one agent), sorted by path, and the conflicts found.

    Only current transcripts are listed (a superseded version is history, not a file). When
    two stored things map to one path, the first of index, transcript, opaque file, snapshot
    wins and the conflict is described in the second list."""
    where, params = ("WHERE agent_id = ?", (agent,)) if agent is not None else ("", ())
    found: list[PlannedFile] = []
    for agent_id, rel_dir in conn.execute(
        f"SELECT agent_id, rel_dir FROM session_indexes {where} ORDER BY agent_id", params
    ):
        found.append(PlannedFile(f"{rel_dir}/sessions.json", agent_id, "index", 0))
    t_where = "WHERE superseded_by IS NULL" + (" AND agent_id = ?" if agent is not None else "")
    for tid, agent_id, rel_dir, name, compressed in conn.execute(
        "SELECT transcript_id, agent_id, rel_dir, file_name, compressed_bytes IS NOT NULL "
        f"FROM transcripts {t_where} ORDER BY transcript_id",
        params,
    ):
        source: Source = "compressed" if compressed else "transcript"
        found.append(PlannedFile(f"{rel_dir}/{name}", agent_id, source, tid))
    for pk, agent_id, rel_dir, name in conn.execute(
        f"SELECT file_pk, agent_id, rel_dir, file_name FROM opaque_files {where} ORDER BY file_pk",
        params,
    ):
        found.append(PlannedFile(f"{rel_dir}/{name}", agent_id, "opaque", pk))
    s_where = "WHERE s.agent_id = ?" if agent is not None else ""
    for pk, agent_id, rel_dir, name in conn.execute(
        "SELECT s.snapshot_pk, s.agent_id, t.rel_dir, s.file_name FROM checkpoint_snapshots s "
        f"JOIN transcripts t ON t.transcript_id = s.transcript_id {s_where} "
        "ORDER BY s.snapshot_pk",
        params,
    ):
        found.append(PlannedFile(f"{rel_dir}/{name}", agent_id, "snapshot", pk))
    files: dict[str, PlannedFile] = {}
    conflicts: list[str] = []
    for item in found:
        kept = files.setdefault(item.rel_path, item)
        if kept is not item:
            conflicts.append(
                f"{item.rel_path}: both a stored {kept.source} and a {item.source} "
                f"(id {item.ref}) map to this file; the {kept.source} is written"
            )
    return [files[k] for k in sorted(files)], conflicts


def file_chunks(conn: sqlite3.Connection, item: PlannedFile) -> Iterator[bytes]:
    """The exact bytes of a planned file, in chunks of up to a few MB."""
    if item.source == "index":
        data = render_sessions_json(conn, item.agent_id)
        if data:
            yield data
    elif item.source == "transcript":
        yield from transcript_blocks(conn, item.ref)
    elif item.source in ("compressed", "opaque"):
        table, column = (
            ("transcripts", "compressed_bytes")
            if item.source == "compressed"
            else ("opaque_files", "content")
        )
        yield from _blob_chunks(conn, table, column, item.ref)
    else:
        row = conn.execute(
            "SELECT transcript_id, upto_pos, ends_with_newline FROM checkpoint_snapshots "
            "WHERE snapshot_pk = ?",
            (item.ref,),
        ).fetchone()
        if row is not None:
            yield from transcript_blocks(conn, row[0], upto_pos=row[1], newline=bool(row[2]))


def _blob_chunks(conn: sqlite3.Connection, table: str, column: str, rowid: int) -> Iterator[bytes]:
    with conn.blobopen(table, column, rowid, readonly=True) as blob:
        while block := blob.read(_BLOB_READ):
            yield block

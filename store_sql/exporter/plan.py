"""Which files the store holds, and their bytes as a stream: shared by export and verify.

Functions here run on a reader connection (one snapshot per call). A file's bytes come in
chunks straight from SQLite (a transcript's lines in ~512 KB blocks joined by SQLite itself,
`transcript_dump`; compressed archives and opaque files through incremental blob I/O), so
memory stays flat however large a file is.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from store_sql.errors import ExportRefusedError
from store_sql.formats import sessions_dir as directory_index
from store_sql.sessions.rows import render_sessions_json
from store_sql.transcripts.file_bytes import transcript_blocks

Source = Literal[
    "index", "index_state", "index_entry", "transcript", "compressed", "opaque", "snapshot"
]
IndexLayout = Literal["json", "directory"]
"""How an agent's session index is written: ``sessions.json``, or a ``sessions.d``."""
INDEX_LAYOUTS: tuple[IndexLayout, ...] = ("json", "directory")
_ENTRIES = f"{directory_index.DIRECTORY_NAME}/{directory_index.ENTRIES_DIR}"
_STATE = f"{directory_index.DIRECTORY_NAME}/{directory_index.STATE_FILE}"

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
    """transcript_id, file_pk, snapshot_pk or entry_pk (0 for an index or its state.json)."""


@dataclass(slots=True)
class ExportPlan:
    """What an export writes, sorted by path, and what it cannot write."""

    files: list[PlannedFile] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    """Two stored things mapping to one path (the first of index, transcript, opaque file,
    snapshot is written)."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(path, why) of session keys a sessions.d cannot hold as they are."""
    layouts: dict[str, tuple[str, IndexLayout]] = field(default_factory=dict)
    """agent id -> (rel_dir, layout) of each index written."""


@dataclass(frozen=True, slots=True)
class PreMigrationRows:
    """What `plan_pre_migration` reads from the store (each backend's SQL fills it)."""

    exported: ExportPlan
    migrated: set[str]
    """Agents whose index came from an OpenClaw database."""
    from_database: set[int]
    """Transcripts read from such a database."""
    archived: list[tuple[int, str, str, str | None, str, str | None]]
    """(file_pk, agent_id, file_name, original_name, role, session_id) by agent and name."""
    sessions: dict[str, list[tuple[str, str | None]]]
    """migrated agent -> (session_key, session_id) by position."""


def check_layout(layout: str | None) -> IndexLayout | None:
    if layout is not None and layout not in INDEX_LAYOUTS:
        raise ExportRefusedError(f"unknown index layout {layout!r}: use 'json' or 'directory'")
    return layout


@dataclass(frozen=True, slots=True)
class StoredFiles:
    """What the store holds that becomes files, as rows (read by each backend's SQL)."""

    indexes: list[tuple[str, str, bool]]
    """(agent_id, rel_dir, imported from a sessions.d) by agent."""
    entries: dict[str, list[tuple[int, str]]]
    """agent_id -> (entry_pk, session_key) of the agents written as a sessions.d."""
    transcripts: list[tuple[int, str, str, str, bool]]
    """(transcript_id, agent_id, rel_dir, file_name, compressed) of current transcripts."""
    opaque: list[tuple[int, str, str, str]]
    """(file_pk, agent_id, rel_dir, file_name)."""
    snapshots: list[tuple[int, str, str, str]]
    """(snapshot_pk, agent_id, rel_dir of its transcript, file_name)."""


def index_layout_of(imported_directory: bool, index_layout: IndexLayout | None) -> IndexLayout:
    """The layout an index is written in: the one asked for, else the imported one."""
    return index_layout or ("directory" if imported_directory else "json")


def plan_export(
    conn: sqlite3.Connection, agent: str | None = None, index_layout: IndexLayout | None = None
) -> ExportPlan:
    """Every file of the store (of one agent), sorted by path, and the conflicts found.

    Only current transcripts are listed (a superseded version is history, not a file). When
    two stored things map to one path, the first of index, transcript, opaque file, snapshot
    wins and the conflict is described. Each index is written in `index_layout`, or in the
    layout it was imported in (``sessions.json`` for one made through the API)."""
    where, params = ("WHERE agent_id = ?", (agent,)) if agent is not None else ("", ())
    indexes = [
        (agent_id, rel_dir, bool(directory))
        for agent_id, rel_dir, directory in conn.execute(
            "SELECT agent_id, rel_dir, EXISTS (SELECT 1 FROM session_directories d "
            f"WHERE d.agent_id = i.agent_id) FROM session_indexes i {where} ORDER BY agent_id",
            params,
        )
    ]
    entries = {
        agent_id: conn.execute(
            "SELECT entry_pk, session_key FROM session_entries WHERE agent_id = ?", (agent_id,)
        ).fetchall()
        for agent_id, _, directory in indexes
        if index_layout_of(directory, index_layout) == "directory"
    }
    t_where = "WHERE superseded_by IS NULL" + (" AND agent_id = ?" if agent is not None else "")
    transcripts = [
        (tid, agent_id, rel_dir, name, bool(compressed))
        for tid, agent_id, rel_dir, name, compressed in conn.execute(
            "SELECT transcript_id, agent_id, rel_dir, file_name, compressed_bytes IS NOT NULL "
            f"FROM transcripts {t_where} ORDER BY transcript_id",
            params,
        )
    ]
    opaque = conn.execute(
        f"SELECT file_pk, agent_id, rel_dir, file_name FROM opaque_files {where} ORDER BY file_pk",
        params,
    ).fetchall()
    s_where = "WHERE s.agent_id = ?" if agent is not None else ""
    snapshots = conn.execute(
        "SELECT s.snapshot_pk, s.agent_id, t.rel_dir, s.file_name FROM checkpoint_snapshots s "
        f"JOIN transcripts t ON t.transcript_id = s.transcript_id {s_where} "
        "ORDER BY s.snapshot_pk",
        params,
    ).fetchall()
    return assemble_plan(
        StoredFiles(indexes, entries, transcripts, opaque, snapshots), index_layout
    )


def assemble_plan(stored: StoredFiles, index_layout: IndexLayout | None) -> ExportPlan:
    """The export plan of `stored` (see `plan_export`); no SQL, shared by both backends."""
    plan = ExportPlan()
    found: list[PlannedFile] = []
    for agent_id, rel_dir, imported_directory in stored.indexes:
        layout = index_layout_of(imported_directory, index_layout)
        plan.layouts[agent_id] = (rel_dir, layout)
        if layout == "json":
            found.append(PlannedFile(f"{rel_dir}/sessions.json", agent_id, "index", 0))
            continue
        found.append(PlannedFile(f"{rel_dir}/{_STATE}", agent_id, "index_state", 0))
        for entry_pk, key in stored.entries.get(agent_id, []):
            refusal = directory_index.key_refusal(key)
            if refusal is not None:
                plan.refused.append((f"{rel_dir}/{_ENTRIES} (session key {key!r})", refusal))
                continue
            name = directory_index.entry_file_name(key)
            found.append(
                PlannedFile(f"{rel_dir}/{_ENTRIES}/{name}", agent_id, "index_entry", entry_pk)
            )
    for tid, agent_id, rel_dir, name, compressed in stored.transcripts:
        source: Source = "compressed" if compressed else "transcript"
        found.append(PlannedFile(f"{rel_dir}/{name}", agent_id, source, tid))
    for pk, agent_id, rel_dir, name in stored.opaque:
        found.append(PlannedFile(f"{rel_dir}/{name}", agent_id, "opaque", pk))
    for pk, agent_id, rel_dir, name in stored.snapshots:
        found.append(PlannedFile(f"{rel_dir}/{name}", agent_id, "snapshot", pk))
    files: dict[str, PlannedFile] = {}
    for item in found:
        kept = files.setdefault(item.rel_path, item)
        if kept is not item:
            plan.conflicts.append(
                f"{item.rel_path}: both a stored {kept.source} and a {item.source} "
                f"(id {item.ref}) map to this file; the {kept.source} is written"
            )
    plan.files = [files[k] for k in sorted(files)]
    return plan


def file_chunks(conn: sqlite3.Connection, item: PlannedFile) -> Iterator[bytes]:
    """The exact bytes of a planned file, in chunks of up to a few MB."""
    if item.source == "index":
        data = render_sessions_json(conn, item.agent_id)
        if data:
            yield data
    elif item.source == "index_state":
        yield _state_bytes(conn, item.agent_id)
    elif item.source == "index_entry":
        yield from _entry_file_bytes(conn, item.ref)
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


def _state_bytes(conn: sqlite3.Connection, agent_id: str) -> bytes:
    """state.json: as imported while the index is untouched, else a new state whose version
    is above every one imported (1 for an index that never was a sessions.d)."""
    row = conn.execute(
        "SELECT i.source_bytes, d.state_version FROM session_indexes i "
        "LEFT JOIN session_directories d ON d.agent_id = i.agent_id WHERE i.agent_id = ?",
        (agent_id,),
    ).fetchone()
    return state_bytes(row)


def state_bytes(row: Sequence[Any] | None) -> bytes:
    """state.json from (source_bytes, state_version) of the agent's index (module doc of
    `_state_bytes`); shared by both backends."""
    if row is not None and row[0] is not None and row[1] is not None:
        return bytes(row[0])
    version = (row[1] if row is not None and row[1] is not None else 0) + 1
    return directory_index.render_state(version, int(time.time() * 1000))


def _entry_file_bytes(conn: sqlite3.Connection, entry_pk: int) -> Iterator[bytes]:
    """An entry file: the imported bytes while the entry is as imported, else the gateway's
    rendering (the same bytes, for a file the gateway wrote)."""
    row = conn.execute(
        "SELECT e.session_key, e.entry_json, f.content, f.entry_sha256 FROM session_entries e "
        "LEFT JOIN session_entry_files f "
        "ON f.agent_id = e.agent_id AND f.session_key = e.session_key WHERE e.entry_pk = ?",
        (entry_pk,),
    ).fetchone()
    if row is not None:
        yield entry_file_bytes(row)


def entry_file_bytes(row: Sequence[Any]) -> bytes:
    """An entry file from (session_key, entry_json, imported content, entry_sha256)."""
    key, text, content, entry_sha = row
    if content is not None:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if digest == entry_sha:
            return bytes(content)
    return directory_index.render_entry_file(key, text)

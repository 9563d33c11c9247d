"""Snapshots of compaction checkpoints: a transcript's prefix named by one row.

The gateway copies the whole transcript before a compaction (docs/FORMATS.md §5); here the copy
is a `checkpoint_snapshots` row naming the live transcript and the last line it had, since
transcripts only grow. This module takes those rows, finds the lines behind a checkpoint's
`preCompaction.sessionFile` (a row, or a `.checkpoint.` transcript imported under that
name), renders them byte for byte, and releases them when their checkpoints are trimmed.
`checkpoints/entries.py` builds and trims the checkpoint objects that name them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from store_sql.errors import InvalidEntryError
from store_sql.sessions import rows as sessions
from store_sql.transcripts import rows as tx
from store_sql.transcripts.file_bytes import transcript_blocks
from store_sql.transcripts.rows import TranscriptInfo


@dataclass(frozen=True, slots=True)
class CapturedSnapshot:
    """Where a transcript stood when captured: enough to name its prefix forever."""

    transcript_id: int
    session_id: str
    """The transcript's header id (becomes `preCompaction.sessionId`)."""
    file_name: str
    """The live transcript's file name; the snapshot file is named after it."""
    upto_pos: int
    """Last line of the snapshot: every line the file had, as the gateway's copy has."""
    leaf_id: str | None
    byte_size: int
    ends_with_newline: bool


@dataclass(frozen=True, slots=True)
class SnapshotSource:
    """Where the lines of a checkpoint's snapshot file live."""

    transcript_id: int
    upto_pos: int
    file_name: str
    byte_size: int
    ends_with_newline: bool
    snapshot_pk: int | None
    """The `checkpoint_snapshots` row, or None for an imported `.checkpoint.` transcript."""


def base_name(path: str) -> str:
    """The file name of a path as the entry writes it (absolute or bare)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def snapshot_file_name(live_file_name: str, snapshot_uuid: str) -> str:
    """`<name>.checkpoint.<uuid>.jsonl`, as the gateway derives it from the live file."""
    stem, dot, ext = live_file_name.rpartition(".")
    if not dot or not stem:
        return f"{live_file_name}.checkpoint.{snapshot_uuid}.jsonl"
    return f"{stem}.checkpoint.{snapshot_uuid}.{ext}"


# --- capture ---------------------------------------------------------------------------------


def captured_of(info: TranscriptInfo, session_id: str) -> CapturedSnapshot:
    """Where a live transcript stands: every line it has now."""
    return CapturedSnapshot(
        transcript_id=info.transcript_id,
        session_id=info.session_id or session_id,
        file_name=info.file_name,
        upto_pos=info.line_count - 1,
        leaf_id=info.leaf_id,
        byte_size=info.byte_size,
        ends_with_newline=info.ends_with_newline,
    )


def capture_snapshot(conn: sqlite3.Connection, agent_id: str, session_id: str) -> CapturedSnapshot:
    """The live transcript of a session as it stands: one row read, whatever its length."""
    return captured_of(tx.require_live(conn, agent_id, session_id), session_id)


def check_captured(conn: sqlite3.Connection, agent_id: str, snap: CapturedSnapshot) -> None:
    check_captured_info(tx.get_info(conn, snap.transcript_id), agent_id, snap)


def check_captured_info(info: TranscriptInfo, agent_id: str, snap: CapturedSnapshot) -> None:
    """InvalidEntryError unless the snapshot is a prefix of this agent's transcript."""
    if info.agent_id != agent_id:
        raise InvalidEntryError(
            f"snapshot of transcript {snap.transcript_id} belongs to agent {info.agent_id!r}, "
            f"not {agent_id!r}"
        )
    if not 0 <= snap.upto_pos < info.line_count:
        raise InvalidEntryError(
            f"snapshot position {snap.upto_pos} is outside transcript {info.file_name} "
            f"({info.line_count} lines): capture it again"
        )


def pre_file(cp: Mapping[str, Any]) -> str | None:
    pre = cp.get("preCompaction")
    value = pre.get("sessionFile") if isinstance(pre, dict) else None
    # The gateway's `value?.trim() ? value.trim() : undefined`.
    return (value.strip() or None) if isinstance(value, str) else None


# --- snapshots -------------------------------------------------------------------------------


def index_rel_dir(conn: sqlite3.Connection, agent_id: str) -> str:
    row = conn.execute(
        "SELECT rel_dir FROM session_indexes WHERE agent_id = ?", (agent_id,)
    ).fetchone()
    return str(row[0]) if row else sessions.default_rel_dir(agent_id)


def _lines_size(conn: sqlite3.Connection, transcript_id: int, upto_pos: int, final_nl: bool) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(byte_size + 1), 0), count(*) FROM transcript_lines "
        "WHERE transcript_id = ? AND pos <= ?",
        (transcript_id, upto_pos),
    ).fetchone()
    return int(row[0]) - (0 if final_nl or not row[1] else 1)


def snapshot_source(
    conn: sqlite3.Connection, agent_id: str, cp: Mapping[str, Any]
) -> SnapshotSource | None:
    """The lines behind a checkpoint's `preCompaction.sessionFile`: our snapshot row, else a
    `.checkpoint.` transcript imported under that name, else None (no file)."""
    name = pre_file(cp)
    if name is None:
        return None
    file_name = base_name(name)
    row = conn.execute(
        "SELECT snapshot_pk, transcript_id, upto_pos, byte_size, ends_with_newline "
        "FROM checkpoint_snapshots WHERE agent_id = ? AND file_name = ? "
        "ORDER BY checkpoint_id = ? DESC, snapshot_pk DESC LIMIT 1",
        (agent_id, file_name, str(cp.get("checkpointId"))),
    ).fetchone()
    if row is not None:
        pk, tid, upto, size, final_nl = row
        if size is None:
            size = _lines_size(conn, tid, upto, bool(final_nl))
        return SnapshotSource(tid, upto, file_name, int(size), bool(final_nl), pk)
    found = conn.execute(
        "SELECT transcript_id, line_count, byte_size, ends_with_newline FROM transcripts "
        "WHERE agent_id = ? AND rel_dir = ? AND file_name = ? AND kind = 'checkpoint' "
        "AND superseded_by IS NULL ORDER BY transcript_id DESC LIMIT 1",
        (agent_id, index_rel_dir(conn, agent_id), file_name),
    ).fetchone()
    if found is None:
        return None
    tid, line_count, size, final_nl = found
    return SnapshotSource(tid, int(line_count) - 1, file_name, int(size), bool(final_nl), None)


def snapshot_sizes(
    conn: sqlite3.Connection, agent_id: str, checkpoints: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Checkpoint id -> bytes of its snapshot file (0 when it has none): one query for the
    snapshot rows, a lookup per checkpoint only for imported copies and unknown sizes."""
    rows = conn.execute(
        "SELECT checkpoint_id, file_name, byte_size FROM checkpoint_snapshots "
        "WHERE agent_id = ? AND file_name IN (SELECT value FROM json_each(?))",
        (agent_id, orjson.dumps(snapshot_file_names(checkpoints)).decode()),
    ).fetchall()
    sizes, unknown = known_sizes(checkpoints, rows)
    for cp in unknown:
        source = snapshot_source(conn, agent_id, cp)
        sizes[str(cp.get("checkpointId"))] = source.byte_size if source else 0
    return sizes


def snapshot_file_names(checkpoints: Sequence[Mapping[str, Any]]) -> list[str]:
    """The snapshot file names the checkpoints name (bare names, as the rows hold them)."""
    return [base_name(n) for cp in checkpoints if (n := pre_file(cp)) is not None]


def known_sizes(
    checkpoints: Sequence[Mapping[str, Any]], rows: Iterable[Iterable[Any]]
) -> tuple[dict[str, int], list[Mapping[str, Any]]]:
    """`(sizes, unknown)`: checkpoint id -> snapshot bytes from the `(checkpoint_id,
    file_name, byte_size)` rows (0 without a file), and the checkpoints whose size the rows
    do not give (an imported copy, or a row of unknown size)."""
    found = {(cp_id, name): size for cp_id, name, size in rows}
    sizes: dict[str, int] = {}
    unknown: list[Mapping[str, Any]] = []
    for cp in checkpoints:
        cp_id, name = str(cp.get("checkpointId")), pre_file(cp)
        size = found.get((cp_id, base_name(name))) if name else 0
        if size is None:
            unknown.append(cp)
        else:
            sizes[cp_id] = int(size)
    return sizes, unknown


def snapshot_bytes(conn: sqlite3.Connection, source: SnapshotSource) -> bytes:
    """The snapshot file exactly as the gateway's copy of the transcript was."""
    chunks = transcript_blocks(
        conn, source.transcript_id, upto_pos=source.upto_pos, newline=source.ends_with_newline
    )
    return b"".join(chunks)


def insert_snapshot(
    conn: sqlite3.Connection,
    agent_id: str,
    key: str,
    checkpoint_id: str,
    snap: CapturedSnapshot,
    file_name: str,
) -> None:
    conn.execute(
        "INSERT INTO checkpoint_snapshots (agent_id, checkpoint_id, transcript_id, upto_pos, "
        "leaf_id, file_name, created_at, session_key, byte_size, ends_with_newline) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        (agent_id, checkpoint_id, snap.transcript_id, snap.upto_pos, snap.leaf_id, file_name,
         tx.now_iso(), key, snap.byte_size, int(snap.ends_with_newline)),
    )  # fmt: skip


def files_to_release(
    removed: Sequence[Mapping[str, Any]], kept: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The trimmed checkpoints whose snapshot files go: those naming a file that no kept
    checkpoint names (the gateway's cleanupTrimmedCompactionCheckpointFiles)."""
    kept_files = {base_name(f) for cp in kept if (f := pre_file(cp)) is not None}
    return [
        cp
        for cp in removed
        if (name := pre_file(cp)) is not None and base_name(name) not in kept_files
    ]


def release_snapshots(
    conn: sqlite3.Connection,
    agent_id: str,
    removed: Sequence[Mapping[str, Any]],
    kept: Sequence[Mapping[str, Any]],
) -> int:
    """Drop the snapshots of trimmed checkpoints unless a kept checkpoint names the same
    file (the gateway's cleanupTrimmedCompactionCheckpointFiles). Returns how many went."""
    released = 0
    for cp in files_to_release(removed, kept):
        source = snapshot_source(conn, agent_id, cp)
        if source is None:
            continue
        if source.snapshot_pk is not None:
            conn.execute(
                "DELETE FROM checkpoint_snapshots WHERE snapshot_pk = ?", (source.snapshot_pk,)
            )
        else:  # an imported copy: the gateway would unlink the file
            conn.execute("DELETE FROM transcripts WHERE transcript_id = ?", (source.transcript_id,))
        released += 1
    return released

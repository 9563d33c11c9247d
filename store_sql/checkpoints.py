"""Compaction checkpoints: the `compactionCheckpoints` list of an entry and its snapshots.

The gateway copies the whole transcript before every compaction and lists the copy in the
entry (FORMATS.md §5). Here a snapshot is a `checkpoint_snapshots` row naming the live
transcript and the last line it had: transcripts only grow, so lines `0..upto_pos` are the
copy, and taking it costs one row whatever the transcript's length. Export writes the
`<sessionId>.checkpoint.<uuid>.jsonl` file the entry names from that row, byte for byte.

The entry's JSON is written exactly as the gateway's `persistSessionCompactionCheckpoint`
would (openclaw `src/gateway/session-compaction-checkpoints.ts`): checkpoint fields in its
order, the newest 25 kept, then a per-session byte budget over the snapshots (newest always
kept), `updatedAt = max(updatedAt, createdAt)`. Trimmed checkpoints release their snapshots
unless a kept checkpoint still names the same file.

Functions here run on a connection thread; `checkpoint_api.CheckpointAPI` submits them.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from store_sql import sessions
from store_sql import transcripts as tx
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.transcript_dump import transcript_blocks

MAX_CHECKPOINTS_PER_SESSION: Final = 25
"""The gateway's MAX_COMPACTION_CHECKPOINTS_PER_SESSION."""
DEFAULT_MAX_RETAINED_BYTES: Final = 128 * 1024 * 1024
"""The gateway's per-session budget for retained snapshot bytes (compactionCheckpointMaxBytes)."""
REASONS: Final = ("manual", "auto-threshold", "overflow-retry", "timeout-retry")

Checkpoint = dict[str, Any]


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
class CheckpointSpec:
    """What the caller tells about one compaction; the store adds ids and the snapshot."""

    reason: str
    summary: str | None = None
    first_kept_entry_id: str | None = None
    tokens_before: int | float | None = None
    tokens_after: int | float | None = None
    post_session_file: str | None = None
    post_leaf_id: str | None = None
    post_entry_id: str | None = None
    created_at: int | None = None
    """Epoch ms; default now."""
    session_id: str | None = None
    """`sessionId` after compaction; default the entry's."""


@dataclass(frozen=True, slots=True)
class Persisted:
    """The stored checkpoint and the ids of the checkpoints the trim removed."""

    checkpoint: Checkpoint
    removed: list[str]
    entry: sessions.Entry


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


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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


def capture_snapshot(conn: sqlite3.Connection, agent_id: str, session_id: str) -> CapturedSnapshot:
    """The live transcript of a session as it stands: one row read, whatever its length."""
    info = tx.require_live(conn, agent_id, session_id)
    return CapturedSnapshot(
        transcript_id=info.transcript_id,
        session_id=info.session_id or session_id,
        file_name=info.file_name,
        upto_pos=info.line_count - 1,
        leaf_id=info.leaf_id,
        byte_size=info.byte_size,
        ends_with_newline=info.ends_with_newline,
    )


def _check_captured(conn: sqlite3.Connection, agent_id: str, snap: CapturedSnapshot) -> None:
    info = tx.get_info(conn, snap.transcript_id)
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


# --- the checkpoint object -------------------------------------------------------------------


def _text(value: str | None) -> str | None:
    """The gateway's `value?.trim() ? value.trim() : undefined`."""
    if value is None:
        return None
    trimmed = value.strip()
    return trimmed or None


def _number(name: str, value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEntryError(f"{name} must be a number, got {value!r}")
    return value


def build_checkpoint(
    *,
    checkpoint_id: str,
    session_key: str,
    session_id: str,
    spec: CheckpointSpec,
    created_at: int,
    pre_session_id: str,
    pre_session_file: str | None,
    pre_leaf_id: str | None,
) -> Checkpoint:
    """The checkpoint object with the gateway's field order; absent optionals are left out
    (JSON.stringify drops `undefined`)."""
    if spec.reason not in REASONS:
        raise InvalidEntryError(
            f"unknown checkpoint reason {spec.reason!r}; expected one of {REASONS}"
        )
    cp: Checkpoint = {
        "checkpointId": checkpoint_id,
        "sessionKey": session_key,
        "sessionId": session_id,
        "createdAt": created_at,
        "reason": spec.reason,
    }
    optional = {
        "tokensBefore": _number("tokens_before", spec.tokens_before),
        "tokensAfter": _number("tokens_after", spec.tokens_after),
        "summary": _text(spec.summary),
        "firstKeptEntryId": _text(spec.first_kept_entry_id),
    }
    cp.update((k, v) for k, v in optional.items() if v is not None)
    pre: dict[str, Any] = {"sessionId": pre_session_id}
    if pre_session_file:
        pre["sessionFile"] = pre_session_file
    if pre_leaf_id:
        pre["leafId"] = pre_leaf_id
    post: dict[str, Any] = {"sessionId": session_id}
    for field, value in (
        ("sessionFile", spec.post_session_file),
        ("leafId", spec.post_leaf_id),
        ("entryId", spec.post_entry_id),
    ):
        if (clean := _text(value)) is not None:
            post[field] = clean
    cp["preCompaction"] = pre
    cp["postCompaction"] = post
    return cp


def entry_checkpoints(entry: Mapping[str, Any] | None) -> list[Checkpoint]:
    """The entry's checkpoints in stored order (anything that is not a list reads as none)."""
    value = entry.get("compactionCheckpoints") if entry else None
    return [cp for cp in value if isinstance(cp, dict)] if isinstance(value, list) else []


def _newest_first_key(cp: Checkpoint) -> float:
    value = cp.get("createdAt")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return float("inf")  # no usable createdAt: after every dated checkpoint
    return -float(value)


def newest_first(checkpoints: Sequence[Checkpoint]) -> list[Checkpoint]:
    """By `createdAt`, newest first; ties keep list order (the gateway's stable toSorted)."""
    return sorted(checkpoints, key=_newest_first_key)


def pre_file(cp: Checkpoint) -> str | None:
    pre = cp.get("preCompaction")
    value = pre.get("sessionFile") if isinstance(pre, dict) else None
    return _text(value) if isinstance(value, str) else None


def trim_checkpoints(
    checkpoints: Sequence[Checkpoint], bytes_of: Mapping[str, int], max_retained_bytes: int
) -> tuple[list[Checkpoint], list[Checkpoint]]:
    """`(kept, removed)`: the newest 25 by list order, then newest-first within the byte
    budget, the newest always kept; kept ones stay in list order (the gateway's
    trimSessionCheckpoints). `bytes_of` maps a checkpoint id to its snapshot's size."""
    count_kept = list(checkpoints[-MAX_CHECKPOINTS_PER_SESSION:])
    removed = list(checkpoints[: len(checkpoints) - len(count_kept)])
    kept_newest_first: list[Checkpoint] = []
    over_budget: list[Checkpoint] = []
    retained = 0
    for cp in reversed(count_kept):
        size = bytes_of.get(str(cp.get("checkpointId")), 0)
        if not kept_newest_first or retained + size <= max_retained_bytes:
            kept_newest_first.append(cp)
            retained += size
        else:
            over_budget.append(cp)
    return kept_newest_first[::-1], removed + over_budget[::-1]


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
    conn: sqlite3.Connection, agent_id: str, cp: Checkpoint
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
    conn: sqlite3.Connection, agent_id: str, checkpoints: Sequence[Checkpoint]
) -> dict[str, int]:
    """Checkpoint id -> bytes of its snapshot file (0 when it has none): one query for the
    snapshot rows, a lookup per checkpoint only for imported copies and unknown sizes."""
    names = {str(cp.get("checkpointId")): pre_file(cp) for cp in checkpoints}
    rows = {
        (cp_id, name): size
        for cp_id, name, size in conn.execute(
            "SELECT checkpoint_id, file_name, byte_size FROM checkpoint_snapshots "
            "WHERE agent_id = ? AND file_name IN (SELECT value FROM json_each(?))",
            (agent_id, orjson.dumps([base_name(n) for n in names.values() if n]).decode()),
        )
    }
    sizes: dict[str, int] = {}
    for cp in checkpoints:
        cp_id, name = str(cp.get("checkpointId")), names[str(cp.get("checkpointId"))]
        size = rows.get((cp_id, base_name(name))) if name else 0
        if size is None:
            source = snapshot_source(conn, agent_id, cp)
            size = source.byte_size if source else 0
        sizes[cp_id] = int(size)
    return sizes


def snapshot_bytes(conn: sqlite3.Connection, source: SnapshotSource) -> bytes:
    """The snapshot file exactly as the gateway's copy of the transcript was."""
    chunks = transcript_blocks(
        conn, source.transcript_id, upto_pos=source.upto_pos, newline=source.ends_with_newline
    )
    return b"".join(chunks)


def _insert_snapshot(
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


def release_snapshots(
    conn: sqlite3.Connection,
    agent_id: str,
    removed: Sequence[Checkpoint],
    kept: Sequence[Checkpoint],
) -> int:
    """Drop the snapshots of trimmed checkpoints unless a kept checkpoint names the same
    file (the gateway's cleanupTrimmedCompactionCheckpointFiles). Returns how many went."""
    kept_files = {base_name(f) for cp in kept if (f := pre_file(cp)) is not None}
    released = 0
    for cp in removed:
        name = pre_file(cp)
        if name is None or base_name(name) in kept_files:
            continue
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


# --- persist ---------------------------------------------------------------------------------


def persist_checkpoint(
    conn: sqlite3.Connection,
    agent_id: str,
    key: str,
    spec: CheckpointSpec,
    snapshot: CapturedSnapshot | None = None,
    *,
    max_retained_bytes: int = DEFAULT_MAX_RETAINED_BYTES,
) -> Persisted:
    """Append a checkpoint to the entry of `key` and take its snapshot, in the caller's
    transaction. Raises NotFoundError, storing nothing, when the key (or its transcript,
    when no `snapshot` is given) does not exist."""
    entry = sessions.get_entry(conn, agent_id, key)
    session_id = entry.get("sessionId") if entry else None
    if entry is None or not isinstance(session_id, str) or not session_id:
        raise NotFoundError(
            f"agent {agent_id!r} has no session {key!r}; the checkpoint was not stored"
        )
    if snapshot is None:
        snapshot = capture_snapshot(conn, agent_id, session_id)
    else:
        _check_captured(conn, agent_id, snapshot)
    created_at = spec.created_at if spec.created_at is not None else now_ms()
    if isinstance(created_at, bool) or not isinstance(created_at, int):
        raise InvalidEntryError(f"created_at must be epoch milliseconds, got {created_at!r}")
    checkpoint_id = str(uuid.uuid4())
    file_name = snapshot_file_name(snapshot.file_name, str(uuid.uuid4()))
    checkpoint = build_checkpoint(
        checkpoint_id=checkpoint_id,
        session_key=key,
        session_id=spec.session_id or session_id,
        spec=spec,
        created_at=created_at,
        pre_session_id=snapshot.session_id,
        pre_session_file=file_name,
        pre_leaf_id=snapshot.leaf_id,
    )
    existing = entry_checkpoints(entry)
    sizes = snapshot_sizes(conn, agent_id, existing)
    sizes[checkpoint_id] = snapshot.byte_size
    kept, removed = trim_checkpoints([*existing, checkpoint], sizes, max_retained_bytes)
    updated_at = entry.get("updatedAt")
    if isinstance(updated_at, bool) or not isinstance(updated_at, int | float):
        updated_at = 0
    new_entry = sessions.apply_patch(
        entry,
        {"updatedAt": max(updated_at, created_at), "compactionCheckpoints": kept},
    )
    sessions.put_entry(conn, agent_id, key, new_entry)
    _insert_snapshot(conn, agent_id, key, checkpoint_id, snapshot, file_name)
    release_snapshots(conn, agent_id, removed, kept)
    return Persisted(checkpoint, [str(cp.get("checkpointId")) for cp in removed], new_entry)


# --- reads -----------------------------------------------------------------------------------


def list_checkpoints(conn: sqlite3.Connection, agent_id: str, key: str) -> list[Checkpoint]:
    """The checkpoints of `key`, newest first (NotFoundError when the key does not exist)."""
    entry = sessions.get_entry(conn, agent_id, key)
    if entry is None:
        raise NotFoundError(f"agent {agent_id!r} has no session {key!r}")
    return newest_first(entry_checkpoints(entry))


def find_checkpoint(entry: Mapping[str, Any] | None, checkpoint_id: str) -> Checkpoint | None:
    wanted = checkpoint_id.strip()
    if not wanted:
        return None
    for cp in newest_first(entry_checkpoints(entry)):
        if cp.get("checkpointId") == wanted:
            return cp
    return None


def get_checkpoint(
    conn: sqlite3.Connection, agent_id: str, key: str, checkpoint_id: str
) -> Checkpoint:
    entry = sessions.get_entry(conn, agent_id, key)
    if entry is None:
        raise NotFoundError(f"agent {agent_id!r} has no session {key!r}")
    cp = find_checkpoint(entry, checkpoint_id)
    if cp is None:
        raise NotFoundError(
            f"session {key!r} of agent {agent_id!r} has no checkpoint {checkpoint_id!r}"
        )
    return cp


def checkpoint_snapshot_bytes(
    conn: sqlite3.Connection, agent_id: str, key: str, checkpoint_id: str
) -> bytes:
    """The `.checkpoint.` file of one checkpoint, as export writes it."""
    source = snapshot_source(conn, agent_id, get_checkpoint(conn, agent_id, key, checkpoint_id))
    if source is None:
        raise NotFoundError(f"checkpoint {checkpoint_id!r} of {key!r} has no snapshot file")
    return snapshot_bytes(conn, source)

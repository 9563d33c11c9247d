"""Compaction checkpoints: the `compactionCheckpoints` list of an entry and its snapshots.

The gateway copies the whole transcript before every compaction and lists the copy in the
entry (docs/FORMATS.md §5). Here a snapshot is a `checkpoint_snapshots` row naming the live
transcript and the last line it had: transcripts only grow, so lines `0..upto_pos` are the
copy, and taking it costs one row whatever the transcript's length. Export writes the
`<sessionId>.checkpoint.<uuid>.jsonl` file the entry names from that row, byte for byte.

The entry's JSON is written exactly as the gateway's `persistSessionCompactionCheckpoint`
would (openclaw `src/gateway/session-compaction-checkpoints.ts`): checkpoint fields in its
order, the newest 25 kept, then a per-session byte budget over the snapshots (newest always
kept), `updatedAt = max(updatedAt, createdAt)`. Trimmed checkpoints release their snapshots
unless a kept checkpoint still names the same file.

The snapshot rows themselves (taking, finding, rendering, releasing) are in
checkpoints/snapshots.py. Functions here run on a connection thread;
`checkpoints.api.CheckpointAPI` submits them.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from store_sql.checkpoints.snapshots import (
    CapturedSnapshot,
    SnapshotSource,
    capture_snapshot,
    check_captured,
    insert_snapshot,
    release_snapshots,
    snapshot_bytes,
    snapshot_file_name,
    snapshot_sizes,
    snapshot_source,
)
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.sessions import rows as sessions

MAX_CHECKPOINTS_PER_SESSION: Final = 25
"""The gateway's MAX_COMPACTION_CHECKPOINTS_PER_SESSION."""
DEFAULT_MAX_RETAINED_BYTES: Final = 128 * 1024 * 1024
"""The gateway's per-session budget for retained snapshot bytes (compactionCheckpointMaxBytes)."""
REASONS: Final = ("manual", "auto-threshold", "overflow-retry", "timeout-retry")

Checkpoint = dict[str, Any]


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


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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
    entry, session_id = persisted_session(sessions.get_entry(conn, agent_id, key), agent_id, key)
    if snapshot is None:
        snapshot = capture_snapshot(conn, agent_id, session_id)
    else:
        check_captured(conn, agent_id, snapshot)
    new = new_checkpoint(key, session_id, spec, snapshot)
    existing = entry_checkpoints(entry)
    sizes = snapshot_sizes(conn, agent_id, existing)
    trim = trimmed_entry(entry, existing, new, sizes, max_retained_bytes)
    sessions.put_entry(conn, agent_id, key, trim.entry)
    insert_snapshot(conn, agent_id, key, new.checkpoint_id, snapshot, new.file_name)
    release_snapshots(conn, agent_id, trim.removed, trim.kept)
    return trim.persisted(new)


def persisted_session(
    entry: sessions.Entry | None, agent_id: str, key: str
) -> tuple[sessions.Entry, str]:
    """The entry and its `sessionId`; NotFoundError (nothing stored) when the key or its
    session is missing."""
    session_id = entry.get("sessionId") if entry else None
    if entry is None or not isinstance(session_id, str) or not session_id:
        raise NotFoundError(
            f"agent {agent_id!r} has no session {key!r}; the checkpoint was not stored"
        )
    return entry, session_id


@dataclass(frozen=True, slots=True)
class NewCheckpoint:
    """A checkpoint about to be stored, with the snapshot file it names."""

    checkpoint: Checkpoint
    checkpoint_id: str
    file_name: str
    created_at: int
    byte_size: int


def new_checkpoint(
    key: str, session_id: str, spec: CheckpointSpec, snapshot: CapturedSnapshot
) -> NewCheckpoint:
    """The checkpoint object for a captured snapshot: fresh ids, `createdAt` now unless
    given."""
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
    return NewCheckpoint(checkpoint, checkpoint_id, file_name, created_at, snapshot.byte_size)


@dataclass(frozen=True, slots=True)
class Trimmed:
    """The entry with the new checkpoint added and the list trimmed."""

    entry: sessions.Entry
    kept: list[Checkpoint]
    removed: list[Checkpoint]

    def persisted(self, new: NewCheckpoint) -> Persisted:
        ids = [str(cp.get("checkpointId")) for cp in self.removed]
        return Persisted(new.checkpoint, ids, self.entry)


def trimmed_entry(
    entry: sessions.Entry,
    existing: Sequence[Checkpoint],
    new: NewCheckpoint,
    sizes: dict[str, int],
    max_retained_bytes: int,
) -> Trimmed:
    """The entry after `new` is appended and the list trimmed (`sizes`: the existing
    checkpoints' snapshot bytes); `updatedAt = max(updatedAt, createdAt)`."""
    sizes = {**sizes, new.checkpoint_id: new.byte_size}
    kept, removed = trim_checkpoints([*existing, new.checkpoint], sizes, max_retained_bytes)
    updated_at = entry.get("updatedAt")
    if isinstance(updated_at, bool) or not isinstance(updated_at, int | float):
        updated_at = 0
    new_entry = sessions.apply_patch(
        entry,
        {"updatedAt": max(updated_at, new.created_at), "compactionCheckpoints": kept},
    )
    return Trimmed(new_entry, kept, removed)


# --- reads -----------------------------------------------------------------------------------


def list_checkpoints(conn: sqlite3.Connection, agent_id: str, key: str) -> list[Checkpoint]:
    """The checkpoints of `key`, newest first (NotFoundError when the key does not exist)."""
    return checkpoints_of(sessions.get_entry(conn, agent_id, key), agent_id, key)


def checkpoints_of(entry: Mapping[str, Any] | None, agent_id: str, key: str) -> list[Checkpoint]:
    """The entry's checkpoints newest first; NotFoundError when there is no entry."""
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
    return checkpoint_of(sessions.get_entry(conn, agent_id, key), agent_id, key, checkpoint_id)


def checkpoint_of(
    entry: Mapping[str, Any] | None, agent_id: str, key: str, checkpoint_id: str
) -> Checkpoint:
    """The entry's checkpoint by id; NotFoundError when the entry or the id is missing."""
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
    return snapshot_bytes(conn, require_source(source, key, checkpoint_id))


def require_source(source: SnapshotSource | None, key: str, checkpoint_id: str) -> SnapshotSource:
    if source is None:
        raise NotFoundError(f"checkpoint {checkpoint_id!r} of {key!r} has no snapshot file")
    return source

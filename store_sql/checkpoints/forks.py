"""Branching and restoring a compaction checkpoint: a new session from a snapshot.

Both follow the gateway's `forkCompactionCheckpointTranscriptAsync` and
`cloneCheckpointSessionEntry` (openclaw `src/gateway/session-compaction-checkpoints.ts`):
the snapshot's entries up to the checkpoint's leaf are parsed and re-written with
JSON.stringify (unreadable lines dropped, as pi's loader drops them; an entry whose line is
not UTF-8 is copied byte for byte, where the gateway would write U+FFFD for its invalid bytes)
under a fresh header naming `parentSession`, in a new live transcript
`<ISO time, ':' and '.' as '->_<uuid>.jsonl`.
Branch adds a new session key for it (label `"<label> (checkpoint)"`, `parentSessionKey`);
restore points the same key at it, keeping the checkpoints. The old transcript is left as it
is, as the gateway leaves the file.

The copy is prepared on a reader (`plan_fork`: the snapshot is an immutable prefix, so
nothing can change it meanwhile) and written by one writer mutation (`commit_fork`), which
first checks that the session and checkpoint are still what the plan saw.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from store_sql.checkpoints.entries import Checkpoint, find_checkpoint, now_ms
from store_sql.checkpoints.snapshots import (
    SnapshotSource,
    base_name,
    index_rel_dir,
    snapshot_source,
)
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.sessions import rows as sessions
from store_sql.transcripts import rows as tx
from store_sql.transcripts.reads import StoredEntry, page

ForkMode = Literal["branch", "restore"]

# Cleared on the new session's entry: run state that belongs to the old transcript.
_RUN_STATE_CLEARED = (
    "startedAt",
    "endedAt",
    "runtimeMs",
    "status",
    "inputTokens",
    "outputTokens",
    "cacheRead",
    "cacheWrite",
    "estimatedCostUsd",
)


@dataclass(frozen=True, slots=True)
class ForkPlan:
    """A new transcript ready to be written, and what it was made from."""

    agent_id: str
    source_key: str
    source_session_id: str
    checkpoint_id: str
    session_id: str
    file_name: str
    session_file: str
    """The new transcript as the entry's `sessionFile` names it."""
    parent_session: str
    rows: list[tx.LineRow]
    """Header (pos 0) and entries, as JSON.stringify writes them."""
    total_tokens: int | float | None
    rel_dir: str


@dataclass(frozen=True, slots=True)
class ForkResult:
    key: str
    session_id: str
    entry: sessions.Entry
    checkpoint: Checkpoint
    transcript_id: int
    file_name: str


@dataclass(frozen=True, slots=True)
class ForkSource:
    transcript_id: int
    upto_pos: int
    stop_after_id: str | None
    path: str
    total_tokens: int | float | None


def _field(obj: Any, name: str) -> str | None:
    value = obj.get(name) if isinstance(obj, dict) else None
    return value.strip() or None if isinstance(value, str) else None


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return value if abs(value) != float("inf") else None


def fork_origin(cp: Checkpoint) -> tuple[str, str | None, bool]:
    """`(path, stop_after_id, from_snapshot)`: the pre-compaction snapshot when the
    checkpoint names one; failing that, the post-compaction transcript up to its entry (the
    gateway's resolveCheckpointTranscriptForkSource)."""
    pre, post = cp.get("preCompaction"), cp.get("postCompaction")
    pre_path = _field(pre, "sessionFile")
    if pre_path is not None:
        return pre_path, _field(pre, "entryId") or _field(pre, "leafId"), True
    post_path = _field(post, "sessionFile")
    stop = _field(post, "entryId") or _field(post, "leafId")
    if post_path is None or stop is None:
        raise NotFoundError("the checkpoint names no transcript to branch from")
    return post_path, stop, False


def source_of_snapshot(
    cp: Checkpoint, path: str, stop: str | None, source: SnapshotSource | None
) -> ForkSource:
    if source is None:
        raise NotFoundError(f"the snapshot {path!r} of checkpoint is not in the store")
    return ForkSource(
        source.transcript_id, source.upto_pos, stop, path, _number(cp.get("tokensBefore"))
    )


def source_of_transcript(
    cp: Checkpoint, path: str, stop: str | None, row: Sequence[Any] | None
) -> ForkSource:
    """`row`: the `(transcript_id, line_count)` of the transcript the path names."""
    if row is None:
        raise NotFoundError(f"the transcript {path!r} of checkpoint is not in the store")
    return ForkSource(int(row[0]), int(row[1]) - 1, stop, path, _number(cp.get("tokensAfter")))


POST_TRANSCRIPT_ORDER = "ORDER BY kind = 'live' DESC, transcript_id DESC LIMIT 1"
"""Which transcript a post-compaction file name means: the live one, else the newest."""


def _fork_source(conn: sqlite3.Connection, agent_id: str, cp: Checkpoint) -> ForkSource:
    path, stop, from_snapshot = fork_origin(cp)
    if from_snapshot:
        return source_of_snapshot(cp, path, stop, snapshot_source(conn, agent_id, cp))
    row = conn.execute(
        "SELECT transcript_id, line_count FROM transcripts WHERE agent_id = ? AND file_name = ? "
        f"AND superseded_by IS NULL {POST_TRANSCRIPT_ORDER}",
        (agent_id, base_name(path)),
    ).fetchone()
    return source_of_transcript(cp, path, stop, row)


def _plain(value: Any) -> Any:
    """What JSON.parse would hold: numbers as doubles, whatever their spelling."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, jsjson.NumberLiteral):
        return float(value)
    return value


def parse_like_js(raw: bytes) -> dict[str, Any] | None:
    """`JSON.parse(line)` when it gives an object, else None (the line is skipped).

    A line that is not UTF-8 is read as the gateway reads its file, invalid bytes replaced
    by U+FFFD: it is skipped only when that text is not a JSON object either."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            value = _plain(jsjson.loads(raw))
        except ValueError:
            try:
                value = _plain(jsjson.loads(raw.decode("utf-8", "replace")))
            except ValueError:
                return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """One entry of the snapshot: what JSON.parse gives, and the line's own bytes when they
    are not UTF-8. Such a line is copied byte for byte: re-written from its value, its
    invalid bytes would become U+FFFD and the text it held would be lost."""

    value: dict[str, Any]
    verbatim: bytes | None = None


def _verbatim(raw: bytes) -> bytes | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    return None


READ_BATCH = 5000
"""Lines read per page while a snapshot is parsed."""


class SnapshotEntries:
    """The snapshot's header and entries, parsed a page of lines at a time up to the
    source's last line or its stop entry."""

    def __init__(self, source: ForkSource) -> None:
        self._source = source
        self.header: dict[str, Any] | None = None
        self.entries: list[SnapshotEntry] = []
        self.after = -1
        self._done = False
        self._found_stop = False

    @property
    def wants_more(self) -> bool:
        return not self._done and self.after < self._source.upto_pos

    def take(self, batch: Sequence[StoredEntry]) -> None:
        """Parse one page (`page(after_pos=self.after)`); an empty page ends the read."""
        if not batch:
            self._done = True
            return
        for line in batch:
            if line.pos > self._source.upto_pos:
                break
            value = parse_like_js(line.raw)
            if value is None:
                continue
            if self.header is None:
                self.header = value
                continue
            if value.get("type") == "session":
                continue
            self.entries.append(SnapshotEntry(value, _verbatim(line.raw)))
            stop = self._source.stop_after_id
            if stop is not None and value.get("id") == stop:
                self._done = self._found_stop = True
                return
        self.after = batch[-1].pos

    def result(self) -> tuple[dict[str, Any], list[SnapshotEntry]]:
        header = self.header
        if self._found_stop and header is not None:
            return header, self.entries
        if (
            header is None
            or header.get("type") != "session"
            or not isinstance(header.get("id"), str)
        ):
            raise InvalidEntryError("the snapshot does not start with a session header")
        stop = self._source.stop_after_id
        if stop is not None:
            raise NotFoundError(f"the snapshot has no entry {stop!r} (its leaf)")
        return header, self.entries


def _read_entries(
    conn: sqlite3.Connection, source: ForkSource
) -> tuple[dict[str, Any], list[SnapshotEntry]]:
    read = SnapshotEntries(source)
    while read.wants_more:
        read.take(page(conn, source.transcript_id, after_pos=read.after, limit=READ_BATCH))
    return read.result()


def _row(
    pos: int,
    value: dict[str, Any],
    pos_of: dict[str, int],
    header: bool,
    verbatim: bytes | None = None,
) -> tx.LineRow:
    raw = jsjson.dumps_bytes(value) if verbatim is None else verbatim
    entry_id = value.get("id") if isinstance(value.get("id"), str) else None
    parent_id = value.get("parentId") if isinstance(value.get("parentId"), str) else None
    found = value.get("message")
    message: dict[str, Any] = found if isinstance(found, dict) else {}
    key = message.get("idempotencyKey") if value.get("type") == "message" else None
    role, kind, timestamp = message.get("role"), value.get("type"), value.get("timestamp")
    row = tx.LineRow(
        pos=pos,
        line=tx.stored_line(raw),
        kind="header" if header else "entry",
        entry_id=entry_id,
        parent_id=None if header else parent_id,
        parent_pos=None if header or parent_id is None else pos_of.get(parent_id),
        type=kind if isinstance(kind, str) else None,
        role=role if isinstance(role, str) else None,
        timestamp=timestamp if isinstance(timestamp, str) else None,
        idempotency_key=key if isinstance(key, str) else None,
        byte_size=len(raw),
        damage=None,
    )
    if entry_id is not None and not header:
        pos_of[entry_id] = pos
    return row


def plan_fork(
    conn: sqlite3.Connection,
    agent_id: str,
    key: str,
    checkpoint_id: str,
    *,
    cwd: str | None = None,
) -> ForkPlan:
    """Read the checkpoint's snapshot and build the new transcript's lines (a reader)."""
    session_id, cp = fork_checkpoint(
        sessions.get_entry(conn, agent_id, key), agent_id, key, checkpoint_id
    )
    source = _fork_source(conn, agent_id, cp)
    old_header, entries = _read_entries(conn, source)
    return build_fork_plan(
        agent_id=agent_id,
        key=key,
        session_id=session_id,
        cp=cp,
        source=source,
        old_header=old_header,
        entries=entries,
        rel_dir=index_rel_dir(conn, agent_id),
        cwd=cwd,
    )


def fork_checkpoint(
    entry: sessions.Entry | None, agent_id: str, key: str, checkpoint_id: str
) -> tuple[str, Checkpoint]:
    """`(session_id, checkpoint)` of the entry a fork starts from (NotFoundError else)."""
    session_id = entry.get("sessionId") if entry else None
    if entry is None or not isinstance(session_id, str) or not session_id:
        raise NotFoundError(f"agent {agent_id!r} has no session {key!r}")
    cp = find_checkpoint(entry, checkpoint_id)
    if cp is None:
        raise NotFoundError(f"session {key!r} has no checkpoint {checkpoint_id!r}")
    return session_id, cp


def build_fork_plan(
    *,
    agent_id: str,
    key: str,
    session_id: str,
    cp: Checkpoint,
    source: ForkSource,
    old_header: dict[str, Any],
    entries: list[SnapshotEntry],
    rel_dir: str,
    cwd: str | None,
) -> ForkPlan:
    """The new transcript's lines: a fresh header naming the source, then the entries as
    JSON.stringify writes them (a line that is not UTF-8 as it was)."""
    if old_header.get("version") != 3:
        raise InvalidEntryError(
            f"the snapshot is a v{old_header.get('version') or 1} transcript; migrate the "
            "transcript to v3 first (store-sql transcript migrate)"
        )
    new_id = str(uuid.uuid4())
    timestamp = tx.now_iso()
    file_name = f"{timestamp.replace(':', '-').replace('.', '-')}_{new_id}.jsonl"
    folder = source.path.rstrip("/").rpartition("/")[0]
    # `targetCwd ?? sourceHeader.cwd ?? process.cwd()`, a blank cwd counting as none.
    if cwd is None:
        cwd = old_header["cwd"] if _field(old_header, "cwd") else os.getcwd()
    header = tx.header_value(new_id, cwd=cwd, timestamp=timestamp, parent_session=source.path)
    pos_of: dict[str, int] = {}
    rows = [_row(0, header, pos_of, header=True)]
    rows += [
        _row(pos, entry.value, pos_of, header=False, verbatim=entry.verbatim)
        for pos, entry in enumerate(entries, 1)
    ]
    return ForkPlan(
        agent_id=agent_id,
        source_key=key,
        source_session_id=session_id,
        checkpoint_id=str(cp["checkpointId"]),
        session_id=new_id,
        file_name=file_name,
        session_file=f"{folder}/{file_name}" if folder else file_name,
        parent_session=source.path,
        rows=rows,
        total_tokens=source.total_tokens,
        rel_dir=rel_dir,
    )


def clone_entry(
    current: sessions.Entry, plan: ForkPlan, *, branch_of: str | None
) -> sessions.Entry:
    """The gateway's cloneCheckpointSessionEntry: `{...current, <new identity>, <run state
    cleared>}`; fields set to undefined keep no place in the JSON, new ones go last. A
    branch (`branch_of` = the source key) gets its own label and parent and no checkpoints;
    a restore keeps label, parent and checkpoints as they were."""
    total = plan.total_tokens
    patch: dict[str, Any] = {
        "sessionId": plan.session_id,
        "sessionFile": plan.session_file,
        "updatedAt": now_ms(),
        "systemSent": False,
        "abortedLastRun": False,
        **dict.fromkeys(_RUN_STATE_CLEARED),
        "totalTokens": total,
        "totalTokensFresh": True if total is not None else None,
    }
    if branch_of is not None:
        patch["label"] = _branch_label(current)
        patch["parentSessionKey"] = branch_of
        patch["compactionCheckpoints"] = None
    return sessions.apply_patch(current, patch)


def _branch_label(current: sessions.Entry) -> str:
    label = current.get("label")
    if isinstance(label, str) and label.strip():
        return f"{label.strip()} (checkpoint)"
    return "Checkpoint branch"


def commit_fork(
    conn: sqlite3.Connection, plan: ForkPlan, mode: ForkMode, new_key: str | None = None
) -> ForkResult:
    """Write the planned transcript and the entry that uses it (one writer mutation)."""
    current, cp = check_fork(sessions.get_entry(conn, plan.agent_id, plan.source_key), plan, mode)
    key = fork_key(plan, mode, new_key)
    if mode == "branch" and sessions.read_entry_text(conn, plan.agent_id, key) is not None:
        raise key_taken(key)
    tid = tx.insert_transcript(conn, **new_transcript(plan))
    tx.insert_lines(conn, tid, plan.rows, ends_with_newline=True)
    entry = clone_entry(current, plan, branch_of=plan.source_key if mode == "branch" else None)
    sessions.put_entry(conn, plan.agent_id, key, entry)
    return ForkResult(key, plan.session_id, entry, cp, tid, plan.file_name)


def check_fork(
    current: sessions.Entry | None, plan: ForkPlan, mode: ForkMode
) -> tuple[sessions.Entry, Checkpoint]:
    """The entry and the checkpoint, when the session is still what the plan saw (else
    NotFoundError, or InvalidEntryError: retry)."""
    if current is None:
        raise NotFoundError(f"agent {plan.agent_id!r} has no session {plan.source_key!r}")
    if current.get("sessionId") != plan.source_session_id:
        raise InvalidEntryError(
            f"session {plan.source_key!r} changed before the checkpoint {mode}; retry"
        )
    cp = find_checkpoint(current, plan.checkpoint_id)
    if cp is None:
        raise NotFoundError(f"session {plan.source_key!r} has no checkpoint {plan.checkpoint_id!r}")
    return current, cp


def fork_key(plan: ForkPlan, mode: ForkMode, new_key: str | None) -> str:
    """The key the fork writes: a branch's new key (given, else `agent:<id>:dashboard:<uuid>`),
    a restore's own."""
    if mode == "branch":
        return new_key or f"agent:{plan.agent_id}:dashboard:{uuid.uuid4()}"
    return plan.source_key


def key_taken(key: str) -> InvalidEntryError:
    return InvalidEntryError(f"session key {key!r} already exists; choose another")


def new_transcript(plan: ForkPlan) -> dict[str, Any]:
    """The `insert_transcript` arguments of the fork's transcript."""
    return {
        "agent_id": plan.agent_id,
        "rel_dir": plan.rel_dir,
        "session_id": plan.session_id,
        "kind": "live",
        "file_name": plan.file_name,
        "version": 3,
        "parent_session": plan.parent_session,
    }

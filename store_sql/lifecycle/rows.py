"""Session life cycle: reset, delete with archive, purge of an agent (docs/FORMATS.md §1, §5).

The gateway renames a transcript to `<file>.reset.<time>` or `<file>.deleted.<time>` to
archive it. Here archiving is an UPDATE of the transcript row (kind and file name), so it
costs the same for ten lines as for a million; export writes the archive under its new name.

Reset writes the new entry the way the gateway's `performGatewaySessionReset` builds it
(openclaw `src/gateway/session-reset-service.ts`): a fresh object holding only the fields a
reset carries over, in the gateway's order. Carried over: the user's settings (thinking,
verbosity, reasoning, elevated and TTS levels, exec and queue settings, send policy, group
activation), user-chosen model and auth overrides (`modelOverrideSource`/
`authProfileOverrideSource` "user", or a legacy override without a source), Control UI
appearance, identity and routing (chat type, label, display name, channel, group, origin,
delivery context, last route, spawn/parent links, ACP and CLI bindings) and the compaction
count and checkpoints. Dropped: run state (`systemPromptReport`, `contextTokens`, token and
cost counters, which restart at 0), auto-chosen overrides, and fields the gateway does not
know it should keep (unknown fields; pass `keep_fields` to carry more). `model` and
`modelProvider` are kept as they were (the gateway re-resolves them from its config, which
the store does not have), or become the preserved user override.

Functions here run on a connection thread; `lifecycle.api.LifecycleAPI` submits them.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from store_sql.checkpoints.snapshots import base_name, index_rel_dir
from store_sql.errors import NotFoundError
from store_sql.formats.state_dir import archive_name
from store_sql.sessions import rows as sessions
from store_sql.transcripts import rows as tx

ArchiveKind = Literal["reset", "deleted"]

# The reset entry, field by field in the gateway's order. A name maps to itself except where
# the gateway writes a constant; `_PRESERVED_SELECTION` goes where the gateway spreads it.
_RESET_SETTINGS: Final = (
    "thinkingLevel", "fastMode", "verboseLevel", "traceLevel", "reasoningLevel",
    "elevatedLevel", "ttsAuto", "execHost", "execSecurity", "execAsk", "execNode",
    "responseUsage",
)  # fmt: skip
_RESET_IDENTITY: Final = (
    "groupActivation", "groupActivationNeedsSystemIntro", "chatType", "model",
    "modelProvider", "compactionCount", "compactionCheckpoints", "sendPolicy", "queueMode",
    "queueDebounceMs", "queueCap", "queueDrop", "spawnedBy", "spawnedWorkspaceDir",
    "parentSessionKey", "forkedFromParent", "spawnDepth", "subagentRole",
    "subagentControlScope", "label", "displayName", "channel", "groupId", "subject",
    "groupChannel", "space", "origin", "deliveryContext", "cliSessionBindings",
    "cliSessionIds", "claudeCliSessionId", "lastChannel", "lastTo", "lastAccountId",
    "lastThreadId", "acp",
)  # fmt: skip
_APPEARANCE: Final = ("icon", "color", "category", "boardFace", "visibility")
# A field the old entry lacks is `undefined` in the gateway's object literal, which
# JSON.stringify leaves out; a field holding null stays null.
_ABSENT: Final = object()

DELETE_CHUNK_LINES: Final = 2000
"""Lines removed per writer transaction when a transcript is deleted: a few milliseconds,
so a purge or an archive cleanup never holds the writer for long."""


@dataclass(frozen=True, slots=True)
class ResetResult:
    key: str
    previous_session_id: str | None
    session_id: str
    entry: sessions.Entry
    archived: list[str]
    """File names the old transcripts were archived under."""
    transcript_id: int


@dataclass(frozen=True, slots=True)
class DeleteResult:
    key: str
    deleted: bool
    archived: list[str]


@dataclass(frozen=True, slots=True)
class PurgeResult:
    agent_id: str
    entries: int
    transcripts: int
    lines: int
    snapshots: int
    files: int


# --- archiving -------------------------------------------------------------------------------


def archive_stamp(when: datetime) -> str:
    """The time as an archive name writes it (`2026-02-10T10-51-08.679Z`)."""
    return archive_name("", "reset", when).removeprefix(".reset.")


def session_referenced(
    conn: sqlite3.Connection, agent_id: str, session_id: str, *, except_key: str | None = None
) -> bool:
    """Whether an entry of the agent (other than `except_key`) uses this session id."""
    row = conn.execute(
        "SELECT 1 FROM session_entries WHERE agent_id = ? AND session_id = ? "
        "AND session_key IS NOT ? LIMIT 1",
        (agent_id, session_id, except_key),
    ).fetchone()
    return row is not None


def transcript_candidates(session_id: str, session_file: Any) -> list[str]:
    """The files a session's transcript may be: its `sessionFile` and `<sessionId>.jsonl`
    (the gateway's resolveSessionTranscriptCandidates, within the sessions directory)."""
    names = [base_name(session_file)] if isinstance(session_file, str) and session_file else []
    return list(dict.fromkeys([*names, f"{session_id}.jsonl"]))


def archive_transcripts(
    conn: sqlite3.Connection,
    agent_id: str,
    file_names: Sequence[str],
    kind: ArchiveKind,
    when: datetime,
) -> list[str]:
    """Rename the current live/topic transcripts with these names to archives: one UPDATE
    each, whatever their size. Returns the archive names."""
    if not file_names:
        return []
    rows = conn.execute(
        "SELECT transcript_id, file_name FROM transcripts WHERE agent_id = ? AND rel_dir = ? "
        "AND file_name IN (SELECT value FROM json_each(?)) AND kind IN ('live', 'topic') "
        "AND superseded_by IS NULL",
        (agent_id, index_rel_dir(conn, agent_id), orjson.dumps(list(file_names)).decode()),
    ).fetchall()
    stamp = archive_stamp(when)
    archived = []
    for transcript_id, file_name in rows:
        new_name = archive_name(file_name, kind, when)
        conn.execute(
            "UPDATE transcripts SET kind = ?, file_name = ?, archived_at = ? "
            "WHERE transcript_id = ?",
            (kind, new_name, stamp, transcript_id),
        )
        archived.append(new_name)
    return archived


def archive_session(
    conn: sqlite3.Connection,
    agent_id: str,
    session_id: Any,
    session_file: Any,
    kind: ArchiveKind,
    when: datetime,
    *,
    except_key: str | None = None,
) -> list[str]:
    """Archive a session's transcript unless another entry still uses that session id."""
    if not isinstance(session_id, str) or not session_id:
        return []
    if session_referenced(conn, agent_id, session_id, except_key=except_key):
        return []
    names = transcript_candidates(session_id, session_file)
    return archive_transcripts(conn, agent_id, names, kind, when)


# --- reset -----------------------------------------------------------------------------------


def _preserved_selection(current: sessions.Entry) -> dict[str, Any]:
    """The gateway's resolveResetPreservedSelection: user-chosen overrides and appearance."""
    kept: dict[str, Any] = {name: current[name] for name in _APPEARANCE if name in current}
    source = current.get("modelOverrideSource")
    if current.get("modelOverride") and (source == "user" or source is None):
        kept["providerOverride"] = current.get("providerOverride", _ABSENT)
        kept["modelOverride"] = current["modelOverride"]
        kept["modelOverrideSource"] = "user"
    if current.get("authProfileOverrideSource") == "user" and current.get("authProfileOverride"):
        kept["authProfileOverride"] = current["authProfileOverride"]
        kept["authProfileOverrideSource"] = "user"
        if "authProfileOverrideCompactionCount" in current:
            kept["authProfileOverrideCompactionCount"] = current[
                "authProfileOverrideCompactionCount"
            ]
    return kept


def reset_entry(
    current: sessions.Entry,
    *,
    session_id: str,
    now: int,
    keep_fields: Iterable[str] = (),
) -> sessions.Entry:
    """The entry a reset writes (see the module doc for what is carried over)."""
    old_file = current.get("sessionFile")
    folder = old_file.rpartition("/")[0] if isinstance(old_file, str) else ""
    selection = _preserved_selection(current)
    fields: dict[str, Any] = {
        "sessionId": session_id,
        "sessionFile": f"{folder}/{session_id}.jsonl" if folder else f"{session_id}.jsonl",
        "updatedAt": now,
        "sessionStartedAt": now,
        "systemSent": False,
        "abortedLastRun": False,
        **{name: current.get(name, _ABSENT) for name in _RESET_SETTINGS},
        **selection,
        **{name: current.get(name, _ABSENT) for name in _RESET_IDENTITY},
        "inputTokens": 0,
        "outputTokens": 0,
        "totalTokens": 0,
        "totalTokensFresh": True,
    }
    if "modelOverride" in selection:
        fields["model"] = selection["modelOverride"]
        fields["modelProvider"] = selection["providerOverride"]
    for name in keep_fields:
        fields.setdefault(name, current.get(name, _ABSENT))
    return {name: value for name, value in fields.items() if value is not _ABSENT}


def reset_session(
    conn: sqlite3.Connection,
    agent_id: str,
    key: str,
    *,
    cwd: str | None = None,
    keep_fields: Iterable[str] = (),
    when: datetime | None = None,
) -> ResetResult:
    """New session id and transcript for `key`; the old transcript becomes a `.reset.`
    archive (unless another entry still uses it). One transaction, O(1) in its size."""
    current = sessions.get_entry(conn, agent_id, key)
    if current is None:
        raise NotFoundError(f"agent {agent_id!r} has no session {key!r}; nothing to reset")
    when = when or datetime.now(UTC)
    now = int(when.timestamp() * 1000)
    old_id = current.get("sessionId")
    old_info = tx.find_live(conn, agent_id, old_id) if isinstance(old_id, str) else None
    archived = archive_session(
        conn, agent_id, old_id, current.get("sessionFile"), "reset", when, except_key=key
    )
    new_id = str(uuid.uuid4())
    entry = reset_entry(current, session_id=new_id, now=now, keep_fields=keep_fields)
    sessions.put_entry(conn, agent_id, key, entry)
    info = tx.create_transcript(
        conn,
        agent_id,
        new_id,
        rel_dir=index_rel_dir(conn, agent_id),
        cwd=cwd or _header_cwd(conn, old_info),
        timestamp=tx.now_iso(),
        file_name=base_name(entry["sessionFile"]),
    )
    return ResetResult(
        key, old_id if isinstance(old_id, str) else None, new_id, entry, archived,
        info.transcript_id,
    )  # fmt: skip


def _header_cwd(conn: sqlite3.Connection, info: tx.TranscriptInfo | None) -> str:
    """The old header's cwd, else this process's (the gateway writes its own process cwd)."""
    if info is not None:
        row = conn.execute(
            "SELECT json_extract(line, '$.cwd') FROM transcript_lines "
            "WHERE transcript_id = ? AND pos = 0 AND kind = 'header'",
            (info.transcript_id,),
        ).fetchone()
        if row is not None and isinstance(row[0], str) and row[0].strip():
            return row[0]
    return os.getcwd()


# --- delete ----------------------------------------------------------------------------------


def delete_session(
    conn: sqlite3.Connection,
    agent_id: str,
    key: str,
    *,
    archive: bool = True,
    when: datetime | None = None,
) -> DeleteResult:
    """Remove the entry; its transcript becomes a `.deleted.` archive unless another entry
    still uses that session id. Its checkpoint snapshots stay until maintenance finds them
    unreferenced (the gateway leaves the checkpoint files too)."""
    current = sessions.get_entry(conn, agent_id, key)
    if current is None:
        return DeleteResult(key, False, [])
    sessions.delete_entry(conn, agent_id, key)
    archived: list[str] = []
    if archive:
        when = when or datetime.now(UTC)
        sid, file = current.get("sessionId"), current.get("sessionFile")
        archived = archive_session(conn, agent_id, sid, file, "deleted", when)
    return DeleteResult(key, True, archived)


# --- deleting transcripts and purging agents -------------------------------------------------


def delete_transcript_chunk(
    conn: sqlite3.Connection, transcript_id: int, max_lines: int = DELETE_CHUNK_LINES
) -> tuple[int, bool]:
    """Delete up to `max_lines` lines from the end of a transcript, and the transcript once
    it is empty. Returns (lines deleted, finished). Call again until finished."""
    row = conn.execute(
        "SELECT pos FROM transcript_lines WHERE transcript_id = ? ORDER BY pos DESC "
        "LIMIT 1 OFFSET ?",
        (transcript_id, max(1, max_lines) - 1),
    ).fetchone()
    if row is None:
        deleted = conn.execute(
            "DELETE FROM transcript_lines WHERE transcript_id = ?", (transcript_id,)
        ).rowcount
        conn.execute("DELETE FROM transcripts WHERE transcript_id = ?", (transcript_id,))
        return deleted, True
    deleted = conn.execute(
        "DELETE FROM transcript_lines WHERE transcript_id = ? AND pos >= ?",
        (transcript_id, row[0]),
    ).rowcount
    return deleted, False


@dataclass(frozen=True, slots=True)
class PurgeStart:
    entries: int
    snapshots: int
    files: int
    transcript_ids: list[int]


def purge_agent_rows(conn: sqlite3.Connection, agent_id: str) -> PurgeStart:
    """First step of a purge: the index, entries, snapshots and kept files go at once (the
    agent vanishes from every listing); its transcripts are then deleted chunk by chunk."""
    snapshots = conn.execute(
        "DELETE FROM checkpoint_snapshots WHERE agent_id = ?", (agent_id,)
    ).rowcount
    entries = conn.execute("DELETE FROM session_entries WHERE agent_id = ?", (agent_id,)).rowcount
    files = conn.execute("DELETE FROM opaque_files WHERE agent_id = ?", (agent_id,)).rowcount
    conn.execute("DELETE FROM session_indexes WHERE agent_id = ?", (agent_id,))
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT transcript_id FROM transcripts WHERE agent_id = ? ORDER BY transcript_id",
            (agent_id,),
        )
    ]
    return PurgeStart(entries, snapshots, files, ids)

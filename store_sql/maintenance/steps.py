"""The thread-side SQL of session maintenance: reading an agent's facts, and the short
steps a cleanup is applied in.

`read_facts` runs on a pooled reader (one snapshot); each other function is one writer
mutation, small enough (one batch of entries, a chunk of lines, a few thousand free pages)
that the writer serves other callers between two of them. `maintenance.plan_cleanup`
decides what they do; `maintenance_api` runs them in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from store_sql.checkpoints.snapshots import base_name, index_rel_dir
from store_sql.lifecycle.rows import archive_transcripts, transcript_candidates
from store_sql.maintenance.plan import AgentFacts, EntryColumns, FileFact, Removal, is_protected
from store_sql.sessions import rows as sessions

# --- reading the facts (reader thread) -------------------------------------------------------


def _time_ms(text: Any, fallback: int) -> int:
    """Epoch ms of an ISO time, also in the archive-name spelling (`T10-51-08.679Z`)."""
    if not isinstance(text, str) or len(text) < 19:
        return fallback
    if text[13:14] == "-":
        text = f"{text[:13]}:{text[14:16]}:{text[17:]}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return fallback
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


_ENTRY_FACTS = (
    "SELECT session_key, session_id, updated_at, session_file, entry_bytes, chat_type, "
    # origin.chatType counts only when chatType is absent (`entry.chatType ?? origin...`);
    # instr() spares the JSON parse for the entries that cannot match.
    " CASE WHEN chat_type IS NULL AND instr(entry_json, '\"origin\"') > 0 "
    "  THEN json_extract(entry_json, '$.origin.chatType') END, "
    " CASE WHEN instr(entry_json, '\"archivedAt\"') > 0 "
    "  THEN json_type(entry_json, '$.archivedAt') END, "
    " CASE WHEN instr(entry_json, '\"modelSelectionLocked\"') > 0 "
    "  THEN json_extract(entry_json, '$.modelSelectionLocked') END "
    "FROM session_entries WHERE agent_id = ? ORDER BY position"
)
_NAMED_CHECKPOINTS = (
    "SELECT json_extract(c.value, '$.checkpointId'), "
    " json_extract(c.value, '$.preCompaction.sessionFile') "
    "FROM session_entries e, json_each(e.entry_json, '$.compactionCheckpoints') c "
    "WHERE e.agent_id = ? AND instr(e.entry_json, '\"compactionCheckpoints\"') > 0 "
    "AND json_type(e.entry_json, '$.compactionCheckpoints') = 'array'"
)
_TRANSCRIPT_FACTS = (
    "SELECT t.transcript_id, t.kind, t.file_name, t.session_id, "
    " coalesce(length(t.compressed_bytes), t.byte_size), t.archived_at, t.created_at, "
    " (SELECT l.timestamp FROM transcript_lines l "
    "  WHERE l.transcript_id = t.transcript_id AND l.pos = t.leaf_pos) "
    "FROM transcripts t WHERE t.agent_id = ? AND t.superseded_by IS NULL "
    "ORDER BY t.transcript_id"
)
_SNAPSHOT_FACTS = (
    "SELECT s.snapshot_pk, s.checkpoint_id, s.file_name, s.transcript_id, s.created_at, "
    # a snapshot of unknown size is its transcript's lines 0..upto_pos, with their newlines
    " coalesce(s.byte_size, (SELECT coalesce(sum(l.byte_size + 1), 0) FROM transcript_lines l "
    "  WHERE l.transcript_id = s.transcript_id AND l.pos <= s.upto_pos) "
    "  - (CASE WHEN s.ends_with_newline <> 0 THEN 0 ELSE 1 END)) "
    "FROM checkpoint_snapshots s WHERE s.agent_id = ? ORDER BY s.snapshot_pk"
)
_OTHER_BYTES = "SELECT coalesce(sum(length(content)), 0) FROM opaque_files WHERE agent_id = ?"

Rows = Iterable[Sequence[Any]]


def read_facts(conn: sqlite3.Connection, agent_id: str, now_ms: int) -> AgentFacts:
    """What the plan needs, read in one snapshot (reader thread)."""
    return assemble_facts(
        agent_id,
        now_ms,
        conn.execute(_ENTRY_FACTS, (agent_id,)),
        conn.execute(_NAMED_CHECKPOINTS, (agent_id,)).fetchall(),
        conn.execute(_SNAPSHOT_FACTS, (agent_id,)).fetchall(),
        conn.execute(_TRANSCRIPT_FACTS, (agent_id,)),
        int(conn.execute(_OTHER_BYTES, (agent_id,)).fetchone()[0]),
    )


def assemble_facts(
    agent_id: str,
    now_ms: int,
    entry_rows: Rows,
    checkpoint_rows: Rows,
    snapshot_rows: Rows,
    transcript_rows: Rows,
    other_bytes: int,
) -> AgentFacts:
    """The facts from the rows of the queries above (either backend's twin of them):
    entries (key, session id, updatedAt, sessionFile, bytes, chatType, origin.chatType,
    the JSON type of archivedAt, modelSelectionLocked); the checkpoints the entries name
    (id, preCompaction.sessionFile); snapshot rows (pk, id, file, transcript, created, bytes);
    current transcripts (id, kind, file, session id, bytes, archived at, created, last
    entry's time)."""
    entries = EntryColumns()
    keys, sids, updates, files_, sizes, kept = (
        entries.keys, entries.session_ids, entries.updated, entries.files, entries.sizes,
        entries.preserved,
    )  # fmt: skip
    for key, sid, updated, file, size, chat, origin_chat, archived, locked in entry_rows:
        if chat is None and isinstance(origin_chat, str):
            chat = origin_chat
        chat_type = chat if isinstance(chat, str) else None
        keys.append(key)
        sids.append(sid)
        updates.append(updated)
        files_.append(file)
        sizes.append(size)
        kept.append(archived is not None or locked == 1 or is_protected(key, chat_type))
    ids, names = set(), set()
    for cp_id, name in checkpoint_rows:
        ids.add(cp_id)
        if isinstance(name, str):
            names.add(base_name(name.strip()))
    files: list[FileFact] = []
    pins: set[int] = set()
    for pk, cp_id, name, tid, created, size in snapshot_rows:
        referenced = cp_id in ids or name in names
        if referenced:
            pins.add(tid)
        when = _time_ms(created, now_ms)
        files.append(FileFact("snapshot", pk, name, None, int(size), when, when, False, referenced))
    for tid, kind, name, sid, size, archived_at, created, last in transcript_rows:
        made = _time_ms(created, now_ms)
        referenced = kind != "checkpoint" or name in names
        files.append(
            FileFact(kind, tid, name, sid, int(size), _time_ms(archived_at, made),
                     _time_ms(last, made), tid in pins, referenced)
        )  # fmt: skip
    return AgentFacts(agent_id, entries, files, other_bytes)


# --- applying (writer thread) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchResult:
    removed: int
    archived: list[str]
    doomed_transcripts: list[int]
    """Transcripts of evicted sessions, to delete chunk by chunk after this batch."""


def remove_entries(
    conn: sqlite3.Connection,
    agent_id: str,
    batch: Sequence[Removal],
    when: datetime,
    *,
    archive: bool,
) -> BatchResult:
    """Remove planned entries still as planned (an entry touched since is left alone); then
    archive (or, for budget evictions, mark for deletion) transcripts no entry uses now.
    A handful of set-based statements per batch."""
    current = {
        key: (sid, updated)
        for key, sid, updated in conn.execute(
            "SELECT session_key, session_id, updated_at FROM session_entries "
            "WHERE agent_id = ? AND session_key IN (SELECT value FROM json_each(?))",
            (agent_id, _json_list(r.key for r in batch)),
        )
    }
    removed = still_as_planned(batch, current)
    sessions.delete_entries(conn, agent_id, [r.key for r in removed])
    unused = {
        row[0]
        for row in conn.execute(
            "SELECT j.value FROM json_each(?) j WHERE NOT EXISTS (SELECT 1 FROM session_entries "
            "e WHERE e.agent_id = ? AND e.session_id = j.value)",
            (_json_list({r.session_id for r in removed if r.session_id}), agent_id),
        )
    }
    names = unused_transcript_names(removed, unused)
    if archive:
        return BatchResult(
            len(removed), archive_transcripts(conn, agent_id, names, "deleted", when), []
        )
    return BatchResult(len(removed), [], _unpinned_transcripts(conn, agent_id, names))


def still_as_planned(
    batch: Sequence[Removal], current: dict[str, tuple[Any, Any]]
) -> list[Removal]:
    """The planned removals whose entry still has the session id and updatedAt it had."""
    return [r for r in batch if current.get(r.key) == (r.session_id, r.updated_at)]


def unused_transcript_names(removed: Sequence[Removal], unused: set[str]) -> list[str]:
    """The transcript files of removed sessions whose session id no entry uses any more."""
    return list(
        dict.fromkeys(
            name
            for r in removed
            if r.session_id and r.session_id in unused
            for name in transcript_candidates(r.session_id, r.session_file)
        )
    )


def _json_list(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


def _unpinned_transcripts(
    conn: sqlite3.Connection, agent_id: str, names: Sequence[str]
) -> list[int]:
    if not names:
        return []
    rows = conn.execute(
        "SELECT transcript_id FROM transcripts t WHERE agent_id = ? AND rel_dir = ? "
        "AND file_name IN (SELECT value FROM json_each(?)) AND kind IN ('live', 'topic') "
        "AND superseded_by IS NULL AND NOT EXISTS (SELECT 1 FROM checkpoint_snapshots s "
        "WHERE s.transcript_id = t.transcript_id)",
        (agent_id, index_rel_dir(conn, agent_id), _json_list(names)),
    ).fetchall()
    return [int(r[0]) for r in rows]


def transcript_versions(conn: sqlite3.Connection, transcript_id: int) -> list[int]:
    """A transcript and the older versions it superseded, oldest first: deleting only the
    current one would make an old version current again."""
    rows = conn.execute(
        "WITH RECURSIVE older(id) AS (SELECT ? UNION "
        " SELECT t.transcript_id FROM transcripts t JOIN older ON t.superseded_by = older.id) "
        "SELECT id FROM older ORDER BY id",
        (transcript_id,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def release_snapshot_rows(conn: sqlite3.Connection, snapshot_pks: Iterable[int]) -> int:
    """Delete snapshot rows (planned as unreferenced or over budget)."""
    count = 0
    for pk in snapshot_pks:
        count += conn.execute(
            "DELETE FROM checkpoint_snapshots WHERE snapshot_pk = ?", (pk,)
        ).rowcount
    return count

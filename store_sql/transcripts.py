"""Transcripts: identities, lines, and appends (FORMATS.md §3).

A transcript is one file's worth of lines (the live transcript of a session, an archive, a
snapshot, a fork). Each line is stored with its exact bytes and the columns the tree needs;
`parent_pos` links an entry to the nearest *preceding* entry carrying its `parentId`, so a
path can never cycle. The leaf (last entry in file order) is kept on the transcript row and
moved in the same transaction as every append, making an append O(1) in the file's size.

Functions here run on a connection thread; `store.Store` submits them.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from store_sql.engine import deferred
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.search_text import entry_search_text
from store_sql.sqltext import text_or_none

LEAF: Final = "<leaf>"
"""Append as a child of the current leaf (the default)."""

KINDS = ("live", "topic", "fork", "checkpoint", "reset", "deleted", "other")

_INFO_COLUMNS = (
    "transcript_id, agent_id, rel_dir, session_id, kind, file_name, topic, archived_at, "
    "parent_session, version, leaf_pos, leaf_id, line_count, entry_count, byte_size, "
    "damaged_count, ends_with_newline, generation, superseded_by, created_at"
)


@dataclass(frozen=True, slots=True)
class TranscriptInfo:
    """A transcript's identity and counters, read without touching its lines."""

    transcript_id: int
    agent_id: str
    rel_dir: str
    session_id: str | None
    kind: str
    file_name: str
    topic: str | None
    archived_at: str | None
    parent_session: str | None
    version: int | None
    leaf_pos: int | None
    leaf_id: str | None
    line_count: int
    entry_count: int
    byte_size: int
    damaged_count: int
    ends_with_newline: bool
    generation: int
    superseded_by: int | None
    created_at: str


@dataclass(frozen=True, slots=True)
class Appended:
    """The result of appending one entry."""

    id: str
    pos: int
    existed: bool
    """True when an entry with the same idempotency key was already there (nothing written)."""


@dataclass(frozen=True, slots=True)
class LineRow:
    """A line ready to be inserted (shared by appends and imports)."""

    pos: int
    line: str | bytes
    kind: str
    entry_id: str | None
    parent_id: str | None
    parent_pos: int | None
    type: str | None
    role: str | None
    timestamp: str | None
    idempotency_key: str | None
    byte_size: int
    damage: str | None
    search_text: str | None

    def params(self, transcript_id: int) -> tuple[Any, ...]:
        return (
            transcript_id,
            self.pos,
            self.line,
            self.kind,
            self.entry_id,
            self.parent_id,
            self.parent_pos,
            self.type,
            self.role,
            self.timestamp,
            self.idempotency_key,
            self.byte_size,
            self.damage,
        )


def stored_line(raw: bytes) -> str | bytes:
    """TEXT when valid UTF-8 (json_extract works on it), else the BLOB of exact bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def line_bytes(stored: str | bytes) -> bytes:
    return stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)


def now_iso() -> str:
    """An ISO-8601 UTC time with milliseconds, as JavaScript's Date.toISOString writes it."""
    n = datetime.now(UTC)
    # f-string fields, not strftime: 5x faster, and this runs on every append.
    return (
        f"{n.year:04d}-{n.month:02d}-{n.day:02d}T{n.hour:02d}:{n.minute:02d}:{n.second:02d}"
        f".{n.microsecond // 1000:03d}Z"
    )


# --- reading identities ----------------------------------------------------------------------


def _info(row: Sequence[Any]) -> TranscriptInfo:
    values = list(row)
    values[16] = bool(values[16])
    return TranscriptInfo(*values)


def get_info(conn: sqlite3.Connection, transcript_id: int) -> TranscriptInfo:
    row = conn.execute(
        f"SELECT {_INFO_COLUMNS} FROM transcripts WHERE transcript_id = ?", (transcript_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no transcript with id {transcript_id}")
    return _info(row)


def find_live(conn: sqlite3.Connection, agent_id: str, session_id: str) -> TranscriptInfo | None:
    """The live transcript of a session: current (not superseded), kind 'live' or 'fork' (a
    branched session lives in `<ISO time>_<sessionId>.jsonl`), preferring the file named
    `<sessionId>.jsonl`, then the newest."""
    # Almost always one row: choosing in Python avoids a sort SQLite would do with a temp
    # B-tree on every append and read.
    rows = conn.execute(
        f"SELECT {_INFO_COLUMNS} FROM transcripts "
        "WHERE agent_id = ? AND session_id = ? AND kind IN ('live', 'fork') "
        "AND superseded_by IS NULL",
        (agent_id, session_id),
    ).fetchall()
    if not rows:
        return None
    named = f"{session_id}.jsonl"
    best = max(rows, key=lambda r: (r[5] == named, r[0]))
    return _info(best)


def require_live(conn: sqlite3.Connection, agent_id: str, session_id: str) -> TranscriptInfo:
    info = find_live(conn, agent_id, session_id)
    if info is None:
        raise NotFoundError(f"agent {agent_id!r} has no live transcript for session {session_id!r}")
    return info


def list_transcripts(
    conn: sqlite3.Connection, agent_id: str, *, session_id: str | None = None
) -> list[TranscriptInfo]:
    sql = f"SELECT {_INFO_COLUMNS} FROM transcripts WHERE agent_id = ?"
    params: list[Any] = [agent_id]
    if session_id is not None:
        sql += " AND session_id = ?"
        params.append(session_id)
    rows = conn.execute(sql + " ORDER BY transcript_id", params).fetchall()
    return [_info(r) for r in rows]


# --- creating --------------------------------------------------------------------------------


def header_value(
    session_id: str, *, cwd: str, timestamp: str, parent_session: str | None
) -> dict[str, Any]:
    """The v3 header exactly as pi's SessionManager.newSession builds it."""
    header: dict[str, Any] = {
        "type": "session",
        "version": 3,
        "id": session_id,
        "timestamp": timestamp,
        "cwd": cwd,
    }
    if parent_session is not None:
        header["parentSession"] = parent_session
    return header


def insert_transcript(
    conn: sqlite3.Connection,
    *,
    agent_id: str,
    rel_dir: str,
    session_id: str | None,
    kind: str,
    file_name: str,
    version: int | None,
    parent_session: str | None = None,
    topic: str | None = None,
    archived_at: str | None = None,
) -> int:
    """A new, empty transcript row; lines are added with `insert_lines`."""
    if kind not in KINDS:
        raise InvalidEntryError(f"unknown transcript kind {kind!r}; expected one of {KINDS}")
    cur = conn.execute(
        "INSERT INTO transcripts (agent_id, rel_dir, session_id, kind, file_name, topic, "
        "archived_at, parent_session, version, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            agent_id,
            rel_dir,
            session_id,
            kind,
            file_name,
            topic,
            archived_at,
            parent_session,
            version,
            now_iso(),
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def create_transcript(
    conn: sqlite3.Connection,
    agent_id: str,
    session_id: str,
    *,
    rel_dir: str,
    cwd: str,
    parent_session: str | None = None,
    timestamp: str | None = None,
    file_name: str | None = None,
) -> TranscriptInfo:
    """A live v3 transcript holding only its header, written as the gateway writes it."""
    if find_live(conn, agent_id, session_id) is not None:
        raise InvalidEntryError(
            f"agent {agent_id!r} already has a live transcript for session {session_id!r}"
        )
    tid = insert_transcript(
        conn,
        agent_id=agent_id,
        rel_dir=rel_dir,
        session_id=session_id,
        kind="live",
        file_name=file_name or f"{session_id}.jsonl",
        version=3,
        parent_session=parent_session,
    )
    header = header_value(
        session_id, cwd=cwd, timestamp=timestamp or now_iso(), parent_session=parent_session
    )
    raw = jsjson.dumps(header).encode("utf-8")
    row = LineRow(0, raw.decode(), "header", session_id, None, None, "session", None,
                  header["timestamp"], None, len(raw), None, None)  # fmt: skip
    insert_lines(conn, tid, [row], ends_with_newline=True)
    return get_info(conn, tid)


# --- lines -----------------------------------------------------------------------------------

_INSERT_LINE = (
    "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
    "parent_pos, type, role, timestamp, idempotency_key, byte_size, damage) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_TEXT = "INSERT INTO entry_text_fts (rowid, text) VALUES (?, ?)"


def insert_lines(
    conn: sqlite3.Connection,
    transcript_id: int,
    rows: Iterable[LineRow],
    *,
    ends_with_newline: bool,
    full_text: bool = True,
) -> None:
    """Add lines at the end of a transcript and move its counters and leaf to match.

    Rows must continue the transcript's positions. The full-text index is written in the
    same transaction (unless `full_text` is False, for a bulk import that rebuilds it)."""
    added_lines = added_entries = added_damaged = added_bytes = 0
    leaf: LineRow | None = None
    for row in rows:
        cur = conn.execute(_INSERT_LINE, row.params(transcript_id))
        if full_text and row.search_text:
            deferred.insert(conn, _INSERT_TEXT, (cur.lastrowid, row.search_text))
        added_lines += 1
        added_bytes += row.byte_size + 1
        if row.kind == "entry":
            added_entries += 1
            leaf = row
        elif row.kind == "damaged":
            added_damaged += 1
    if not added_lines:
        return
    # byte_size counts a newline after every line; a file without a final newline is one
    # byte shorter, and a line appended after such a line first terminates it.
    conn.execute(
        "UPDATE transcripts SET line_count = line_count + ?, entry_count = entry_count + ?, "
        "damaged_count = damaged_count + ?, "
        "byte_size = byte_size + ? + (CASE WHEN ends_with_newline OR line_count = 0 "
        "THEN 0 ELSE 1 END) - ?, ends_with_newline = ?, "
        "leaf_pos = coalesce(?, leaf_pos), leaf_id = CASE WHEN ? IS NULL THEN leaf_id ELSE ? END "
        "WHERE transcript_id = ?",
        (
            added_lines,
            added_entries,
            added_damaged,
            added_bytes,
            0 if ends_with_newline else 1,
            int(ends_with_newline),
            None if leaf is None else leaf.pos,
            None if leaf is None else leaf.pos,
            None if leaf is None else leaf.entry_id,
            transcript_id,
        ),
    )


def resolve_parent_pos(
    conn: sqlite3.Connection, transcript_id: int, parent_id: str, before_pos: int
) -> int | None:
    """Position of the nearest entry before `before_pos` whose id is `parent_id`."""
    row = conn.execute(
        "SELECT max(pos) FROM transcript_lines WHERE transcript_id = ? AND entry_id = ? "
        "AND kind = 'entry' AND pos < ?",
        (transcript_id, parent_id, before_pos),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


# --- appending -------------------------------------------------------------------------------

# pi writes `custom` and `custom_message` entries with their payload before the tree fields
# (SessionManager.appendCustomEntry / appendCustomMessageEntry); every other type after them.
_PAYLOAD_FIRST = frozenset({"custom", "custom_message"})


def _entry_object(
    fields: Mapping[str, Any], entry_id: str, parent_id: str | None, timestamp: str
) -> dict[str, Any]:
    kind = fields.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidEntryError(f"an entry needs a non-empty string 'type', got {kind!r}")
    for reserved in ("id", "parentId"):
        if reserved in fields:
            raise InvalidEntryError(
                f"entries get their {reserved!r} from the store; remove it from the entry"
            )
    payload = {k: v for k, v in fields.items() if k not in ("type", "timestamp")}
    tree = {"id": entry_id, "parentId": parent_id, "timestamp": timestamp}
    if kind in _PAYLOAD_FIRST:
        return {"type": kind, **payload, **tree}
    return {"type": kind, **tree, **payload}


def _new_id(conn: sqlite3.Connection, transcript_id: int, taken: set[str]) -> str:
    # pi: randomUUID().slice(0, 8), collision-checked within the transcript.
    for _ in range(100):
        candidate = os.urandom(4).hex()  # the first 8 hex digits of a v4 UUID are random too
        if candidate in taken:
            continue
        exists = conn.execute(
            "SELECT 1 FROM transcript_lines WHERE transcript_id = ? AND entry_id = ? LIMIT 1",
            (transcript_id, candidate),
        ).fetchone()
        if exists is None:
            return candidate
    return str(uuid.uuid4())


def _idempotency_key(fields: Mapping[str, Any]) -> str | None:
    message = fields.get("message")
    if fields.get("type") == "message" and isinstance(message, Mapping):
        return text_or_none(message.get("idempotencyKey"))
    return None


def find_by_idempotency_key(
    conn: sqlite3.Connection, transcript_id: int, key: str
) -> tuple[str | None, int] | None:
    # `+pos`: without it SQLite may walk the (transcript_id, pos) index to avoid a sort and
    # scan the whole transcript (38-68 ms at 100,000 lines) instead of the key index.
    row = conn.execute(
        "SELECT entry_id, pos FROM transcript_lines WHERE transcript_id = ? "
        "AND idempotency_key = ? ORDER BY +pos LIMIT 1",
        (transcript_id, key),
    ).fetchone()
    return None if row is None else (row[0], int(row[1]))


def append_entries(
    conn: sqlite3.Connection,
    transcript: int | TranscriptInfo,
    entries: Sequence[Mapping[str, Any]],
    *,
    parent_id: str | None = LEAF,
    full_text: bool = True,
) -> list[Appended]:
    """Append entries as a chain: the first is a child of the leaf (or of `parent_id`;
    None starts a new root), each next one a child of the previous.

    An entry whose `message.idempotencyKey` is already in the transcript is not written; its
    result names the existing entry, and the chain goes on from the new entries only."""
    # A caller that just resolved the transcript passes its info: one query less per append.
    info = transcript if isinstance(transcript, TranscriptInfo) else get_info(conn, transcript)
    transcript_id = info.transcript_id
    if info.superseded_by is not None:
        raise InvalidEntryError(
            f"transcript {transcript_id} was superseded by {info.superseded_by}; append there"
        )
    if info.version is not None and info.version < 2:
        raise InvalidEntryError(
            f"transcript {info.file_name} is a v1 transcript (entries have no ids); migrate it "
            "to v3 first (store-sql transcript migrate)"
        )
    if parent_id == LEAF:
        parent, parent_pos = info.leaf_id, info.leaf_pos
    elif parent_id is None:
        parent, parent_pos = None, None
    else:
        parent_pos = resolve_parent_pos(conn, transcript_id, parent_id, info.line_count)
        if parent_pos is None:
            raise NotFoundError(f"transcript {info.file_name} has no entry {parent_id!r}")
        parent = parent_id
    results: list[Appended] = []
    rows: list[LineRow] = []
    taken: set[str] = set()
    keys_here: dict[str, Appended] = {}
    pos = info.line_count
    for fields in entries:
        if not isinstance(fields, Mapping):
            raise InvalidEntryError(f"an entry must be a JSON object, got {type(fields).__name__}")
        key = _idempotency_key(fields)
        if key is not None:
            existing = keys_here.get(key)
            if existing is None:
                found = find_by_idempotency_key(conn, transcript_id, key)
                if found is not None:
                    existing = Appended(id=found[0] or "", pos=found[1], existed=True)
            if existing is not None:
                results.append(Appended(existing.id, existing.pos, existed=True))
                continue
        entry_id = _new_id(conn, transcript_id, taken)
        taken.add(entry_id)
        timestamp = fields.get("timestamp")
        if not isinstance(timestamp, str):
            timestamp = now_iso()
        value = _entry_object(fields, entry_id, parent, timestamp)
        # jsjson escapes lone surrogates, so its text is always valid UTF-8: stored as TEXT.
        text = jsjson.dumps(value)
        message = value.get("message")
        rows.append(
            LineRow(
                pos=pos,
                line=text,
                kind="entry",
                entry_id=entry_id,
                parent_id=parent,
                parent_pos=parent_pos,
                type=text_or_none(value["type"]),
                role=text_or_none(message.get("role")) if isinstance(message, dict) else None,
                timestamp=text_or_none(timestamp),
                idempotency_key=key,
                byte_size=len(text) if text.isascii() else len(text.encode("utf-8")),
                damage=None,
                search_text=entry_search_text(value) if full_text else None,
            )
        )
        appended = Appended(id=entry_id, pos=pos, existed=False)
        if key is not None:
            keys_here[key] = appended
        results.append(appended)
        parent, parent_pos = entry_id, pos
        pos += 1
    insert_lines(conn, transcript_id, rows, ends_with_newline=True, full_text=full_text)
    return results


def parse_stored(line: str | bytes) -> Any:
    """The JSON value of a stored line (orjson first; jsjson for what orjson refuses)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return jsjson.loads(line)

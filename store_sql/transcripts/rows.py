"""Transcripts: identities, lines, and appends (docs/FORMATS.md §3).

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import orjson

from store_sql.addresses import check_target
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.schema.navigation_lines import side_append

KINDS = ("live", "topic", "fork", "checkpoint", "reset", "deleted", "other")

INFO_COLUMNS = (
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
            side_append(self.line),
        )


def stored_line(raw: bytes) -> str | bytes:
    """TEXT when valid UTF-8 (json_extract works on it), else the BLOB of exact bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def line_bytes(stored: str | bytes) -> bytes:
    return stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)


def new_entry_id(is_taken: Callable[[str], bool]) -> str:
    """An entry id as pi makes them: 8 hex digits (`randomUUID().slice(0, 8)`), retried while
    taken; after 100 collisions a whole UUID, as pi does."""
    for _ in range(100):
        candidate = os.urandom(4).hex()  # the first 8 hex digits of a v4 UUID are random too
        if not is_taken(candidate):
            return candidate
    return str(uuid.uuid4())


def now_iso() -> str:
    """An ISO-8601 UTC time with milliseconds, as JavaScript's Date.toISOString writes it."""
    n = datetime.now(UTC)
    # f-string fields, not strftime: 5x faster, and this runs on every append.
    return (
        f"{n.year:04d}-{n.month:02d}-{n.day:02d}T{n.hour:02d}:{n.minute:02d}:{n.second:02d}"
        f".{n.microsecond // 1000:03d}Z"
    )


# --- reading identities ----------------------------------------------------------------------


def info_of_row(row: Iterable[Any]) -> TranscriptInfo:
    """A TranscriptInfo from a row of `INFO_COLUMNS` (either backend)."""
    values = list(row)
    values[16] = bool(values[16])
    return TranscriptInfo(*values)


def get_info(conn: sqlite3.Connection, transcript_id: int) -> TranscriptInfo:
    row = conn.execute(
        f"SELECT {INFO_COLUMNS} FROM transcripts WHERE transcript_id = ?", (transcript_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no transcript with id {transcript_id}")
    return info_of_row(row)


def find_live(conn: sqlite3.Connection, agent_id: str, session_id: str) -> TranscriptInfo | None:
    """The live transcript of a session: current (not superseded), kind 'live' or 'fork' (a
    branched session lives in `<ISO time>_<sessionId>.jsonl`), preferring the file named
    `<sessionId>.jsonl`, then the newest."""
    # Almost always one row: choosing in Python avoids a sort SQLite would do with a temp
    # B-tree on every append and read.
    rows = conn.execute(
        f"SELECT {INFO_COLUMNS} FROM transcripts "
        "WHERE agent_id = ? AND session_id = ? AND kind IN ('live', 'fork') "
        "AND superseded_by IS NULL",
        (agent_id, session_id),
    ).fetchall()
    return info_of_row(pick_live(session_id, rows)) if rows else None


class Row(Protocol):
    """A row of either driver (sqlite3's tuple, asyncpg's Record), read by position."""

    def __getitem__(self, index: int, /) -> Any: ...


R = TypeVar("R", bound=Row)


def pick_live(session_id: str, rows: Sequence[R]) -> R:
    """`find_live`'s choice among a session's live rows (`INFO_COLUMNS`)."""
    named = f"{session_id}.jsonl"
    return max(rows, key=lambda r: (r[5] == named, r[0]))


def require_live(conn: sqlite3.Connection, agent_id: str, session_id: str) -> TranscriptInfo:
    info = find_live(conn, agent_id, session_id)
    if info is None:
        raise NotFoundError(f"agent {agent_id!r} has no live transcript for session {session_id!r}")
    return info


def resolve_target(conn: sqlite3.Connection, agent_id: str, target: str | int) -> TranscriptInfo:
    """A session id names its live transcript; an int is a transcript_id, which must be one
    of `agent_id`'s transcripts (a bool is neither)."""
    check_target(target)
    if isinstance(target, int):
        info = get_info(conn, target)
        if info.agent_id != agent_id:
            raise NotFoundError(
                f"agent {agent_id!r} has no transcript with id {target} (it belongs to agent "
                f"{info.agent_id!r})"
            )
        return info
    return require_live(conn, agent_id, target)


def list_transcripts(
    conn: sqlite3.Connection, agent_id: str, *, session_id: str | None = None
) -> list[TranscriptInfo]:
    sql = f"SELECT {INFO_COLUMNS} FROM transcripts WHERE agent_id = ?"
    params: list[Any] = [agent_id]
    if session_id is not None:
        sql += " AND session_id = ?"
        params.append(session_id)
    rows = conn.execute(sql + " ORDER BY transcript_id", params).fetchall()
    return [info_of_row(r) for r in rows]


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
        raise second_live_error(agent_id, session_id)
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
    row = header_row(session_id, cwd=cwd, timestamp=timestamp, parent_session=parent_session)
    insert_lines(conn, tid, [row], ends_with_newline=True)
    return get_info(conn, tid)


def second_live_error(agent_id: str, session_id: str) -> InvalidEntryError:
    return InvalidEntryError(
        f"agent {agent_id!r} already has a live transcript for session {session_id!r}"
    )


def header_row(
    session_id: str, *, cwd: str, timestamp: str | None, parent_session: str | None
) -> LineRow:
    """The header line of a new live transcript (`header_value`), as the row at pos 0."""
    header = header_value(
        session_id, cwd=cwd, timestamp=timestamp or now_iso(), parent_session=parent_session
    )
    raw = jsjson.dumps(header).encode("utf-8")
    return LineRow(0, raw.decode(), "header", session_id, None, None, "session", None,
                   header["timestamp"], None, len(raw), None)  # fmt: skip


# --- lines -----------------------------------------------------------------------------------

_INSERT_LINE = (
    "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
    "parent_pos, type, role, timestamp, idempotency_key, byte_size, damage, side_append) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def insert_lines(
    conn: sqlite3.Connection,
    transcript_id: int,
    rows: Iterable[LineRow],
    *,
    ends_with_newline: bool,
) -> None:
    """Add lines at the end of a transcript and move its counters and leaf to match.

    Rows must continue the transcript's positions. The full-text index catches up behind
    (search/indexer.py)."""
    rows = list(rows)
    if not rows:
        return
    conn.executemany(_INSERT_LINE, [row.params(transcript_id) for row in rows])
    totals = line_totals(rows)
    conn.execute(
        ADVANCE_SQL, advance_params(transcript_id, **totals, ends_with_newline=ends_with_newline)
    )


def line_totals(rows: Sequence[LineRow]) -> dict[str, Any]:
    """`advance_params`' counts (lines, entries, damaged, line_bytes, leaf) for `rows`."""
    leaf: LineRow | None = None
    entries = damaged = 0
    for row in rows:
        if row.kind == "entry":
            entries += 1
            leaf = row
        elif row.kind == "damaged":
            damaged += 1
    return {
        "lines": len(rows),
        "entries": entries,
        "damaged": damaged,
        "line_bytes": sum(row.byte_size for row in rows) + len(rows),
        "leaf": None if leaf is None else (leaf.pos, leaf.entry_id),
    }


# byte_size counts a newline after every line; a file without a final newline is one byte
# shorter, and a line appended after such a line first terminates it.
ADVANCE_SQL = (
    "UPDATE transcripts SET line_count = line_count + ?, entry_count = entry_count + ?, "
    "damaged_count = damaged_count + ?, "
    "byte_size = byte_size + ? + (CASE WHEN ends_with_newline OR line_count = 0 "
    "THEN 0 ELSE 1 END) - ?, ends_with_newline = ?, "
    "leaf_pos = coalesce(?, leaf_pos), leaf_id = CASE WHEN ? IS NULL THEN leaf_id ELSE ? END "
    "WHERE transcript_id = ?"
)


def advance_params(
    transcript_id: int,
    *,
    lines: int,
    entries: int,
    damaged: int,
    line_bytes: int,
    leaf: tuple[int | None, str | None] | None,
    ends_with_newline: bool,
) -> tuple[Any, ...]:
    """ADVANCE_SQL's parameters for lines added at the end of a transcript: `line_bytes`
    counts a newline after each line; `leaf` is (pos, id) of the last entry added, if any."""
    leaf_pos, leaf_id = leaf if leaf is not None else (None, None)
    return (
        lines,
        entries,
        damaged,
        line_bytes,
        0 if ends_with_newline else 1,
        int(ends_with_newline),
        leaf_pos,
        leaf_pos,
        leaf_id,
        transcript_id,
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


def parse_stored(line: str | bytes) -> Any:
    """The JSON value of a stored line (orjson first; jsjson for what orjson refuses)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return jsjson.loads(line)

"""Transcripts on PostgreSQL: identities, lines and counters (the twin of rows.py).

The rules are rows.py's (which transcript is live, the header pi writes, how counters move);
only the SQL differs. A line is stored in `line` (text) when it is valid UTF-8 without NUL
and in `line_bytes` (bytea) otherwise, exactly one of the two set (docs/POSTGRES.md, "Bytes");
reads take `RAW_LINE`, the exact bytes either way, converted by the server so no line is
decoded and encoded again in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from store_sql.addresses import check_target
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.schema.navigation_lines import side_append
from store_sql.transcripts.rows import (
    INFO_COLUMNS,
    KINDS,
    LineRow,
    TranscriptInfo,
    header_row,
    info_of_row,
    line_bytes,
    line_totals,
    now_iso,
    pick_live,
    second_live_error,
)

if TYPE_CHECKING:
    import asyncpg

RAW_LINE = "coalesce(convert_to({p}line, 'UTF8'), {p}line_bytes)"
"""A line's exact bytes as one bytea value (`{p}`: a table prefix such as `l.`, or empty)."""


def raw_line(prefix: str = "") -> str:
    return RAW_LINE.format(p=prefix)


def line_columns(raw: bytes) -> tuple[str | None, bytes | None]:
    """(line, line_bytes) for a line's exact bytes: text when PostgreSQL's text can hold it
    (valid UTF-8 without NUL), else the bytes."""
    if b"\x00" not in raw:
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError:
            pass
    return None, raw


# --- reading identities ----------------------------------------------------------------------


async def get_info(conn: asyncpg.Connection, transcript_id: int) -> TranscriptInfo:
    row = await conn.fetchrow(
        f"SELECT {INFO_COLUMNS} FROM transcripts WHERE transcript_id = $1", transcript_id
    )
    if row is None:
        raise NotFoundError(f"no transcript with id {transcript_id}")
    return info_of_row(row)


async def find_live(
    conn: asyncpg.Connection, agent_id: str, session_id: str
) -> TranscriptInfo | None:
    """rows.find_live."""
    if "\x00" in session_id:
        return None  # no PostgreSQL text holds NUL, so no transcript has this session id
    rows = await conn.fetch(
        f"SELECT {INFO_COLUMNS} FROM transcripts "
        "WHERE agent_id = $1 AND session_id = $2 AND kind IN ('live', 'fork') "
        "AND superseded_by IS NULL",
        agent_id,
        session_id,
    )
    return info_of_row(pick_live(session_id, rows)) if rows else None


async def require_live(conn: asyncpg.Connection, agent_id: str, session_id: str) -> TranscriptInfo:
    info = await find_live(conn, agent_id, session_id)
    if info is None:
        raise NotFoundError(f"agent {agent_id!r} has no live transcript for session {session_id!r}")
    return info


async def resolve_target(
    conn: asyncpg.Connection, agent_id: str, target: str | int
) -> TranscriptInfo:
    """rows.resolve_target."""
    check_target(target)
    if isinstance(target, int):
        info = await get_info(conn, target)
        if info.agent_id != agent_id:
            raise NotFoundError(
                f"agent {agent_id!r} has no transcript with id {target} (it belongs to agent "
                f"{info.agent_id!r})"
            )
        return info
    return await require_live(conn, agent_id, target)


async def list_transcripts(
    conn: asyncpg.Connection, agent_id: str, *, session_id: str | None = None
) -> list[TranscriptInfo]:
    if session_id is not None and "\x00" in session_id:
        return []  # no PostgreSQL text holds NUL, so no transcript has this session id
    sql = f"SELECT {INFO_COLUMNS} FROM transcripts WHERE agent_id = $1"
    params: list[Any] = [agent_id]
    if session_id is not None:
        sql += " AND session_id = $2"
        params.append(session_id)
    rows = await conn.fetch(sql + " ORDER BY transcript_id", *params)
    return [info_of_row(r) for r in rows]


# --- creating --------------------------------------------------------------------------------


async def insert_transcript(
    conn: asyncpg.Connection,
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
    """rows.insert_transcript."""
    if kind not in KINDS:
        raise InvalidEntryError(f"unknown transcript kind {kind!r}; expected one of {KINDS}")
    tid: int = await conn.fetchval(
        "INSERT INTO transcripts (agent_id, rel_dir, session_id, kind, file_name, topic, "
        "archived_at, parent_session, version, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING transcript_id",
        agent_id, rel_dir, session_id, kind, file_name, topic, archived_at, parent_session,
        version, now_iso(),
    )  # fmt: skip
    return tid


async def create_transcript(
    conn: asyncpg.Connection,
    agent_id: str,
    session_id: str,
    *,
    rel_dir: str,
    cwd: str,
    parent_session: str | None = None,
    timestamp: str | None = None,
) -> TranscriptInfo:
    """rows.create_transcript. The check for a live transcript runs under a transaction
    lock on (agent, session), so two processes creating one session cannot both pass it."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", agent_id,
                       session_id)  # fmt: skip
    if await find_live(conn, agent_id, session_id) is not None:
        raise second_live_error(agent_id, session_id)
    tid = await insert_transcript(
        conn,
        agent_id=agent_id,
        rel_dir=rel_dir,
        session_id=session_id,
        kind="live",
        file_name=f"{session_id}.jsonl",
        version=3,
        parent_session=parent_session,
    )
    row = header_row(session_id, cwd=cwd, timestamp=timestamp, parent_session=parent_session)
    await insert_lines(conn, tid, [row], ends_with_newline=True)
    return await get_info(conn, tid)


# --- lines -----------------------------------------------------------------------------------

_INSERT_LINES = (
    "INSERT INTO transcript_lines (transcript_id, pos, line, line_bytes, kind, entry_id, "
    "parent_id, parent_pos, type, role, timestamp, idempotency_key, byte_size, damage, "
    "side_append) SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::bytea[], $5::text[], "
    "$6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], "
    "$13::bigint[], $14::text[], $15::bigint[])"
)
# The first line holding each key, as an imported file keeps it; later ones keep their line
# but not the key's row.
_INSERT_KEYS = (
    "INSERT INTO idempotency_keys (transcript_id, key, pos) "
    "SELECT $1, k.key, min(k.pos) FROM unnest($2::text[], $3::bigint[]) AS k(key, pos) "
    "GROUP BY k.key ON CONFLICT DO NOTHING"
)
ADVANCE_SQL = (
    "UPDATE transcripts SET line_count = line_count + $2, entry_count = entry_count + $3, "
    "damaged_count = damaged_count + $4, "
    "byte_size = byte_size + $5 + (CASE WHEN ends_with_newline <> 0 OR line_count = 0 "
    "THEN 0 ELSE 1 END) - $6, ends_with_newline = $7, "
    "leaf_pos = coalesce($8, leaf_pos), leaf_id = CASE WHEN $8::bigint IS NULL THEN leaf_id "
    "ELSE $9 END WHERE transcript_id = $1"
)


def line_arrays(rows: Sequence[LineRow]) -> list[list[Any]]:
    """`_INSERT_LINES`' column arrays ($2..$15) for `rows`."""
    columns: list[list[Any]] = [[] for _ in range(14)]
    for row in rows:
        text, data = line_columns(line_bytes(row.line))
        values = (row.pos, text, data, row.kind, row.entry_id, row.parent_id, row.parent_pos,
                  row.type, row.role, row.timestamp, row.idempotency_key, row.byte_size,
                  row.damage, side_append(row.line))  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


async def insert_lines(
    conn: asyncpg.Connection,
    transcript_id: int,
    rows: Iterable[LineRow],
    *,
    ends_with_newline: bool,
) -> None:
    """rows.insert_lines: lines at the end of a transcript, its counters and leaf moved, and
    the idempotency keys of its entries recorded (the first line of each key)."""
    rows = list(rows)
    if not rows:
        return
    await conn.execute(_INSERT_LINES, transcript_id, *line_arrays(rows))
    keyed = [(r.idempotency_key, r.pos) for r in rows if r.idempotency_key is not None]
    if keyed:
        await conn.execute(
            _INSERT_KEYS, transcript_id, [k for k, _ in keyed], [p for _, p in keyed]
        )
    totals = line_totals(rows)
    leaf_pos, leaf_id = totals["leaf"] if totals["leaf"] is not None else (None, None)
    await conn.execute(
        ADVANCE_SQL,
        transcript_id,
        totals["lines"],
        totals["entries"],
        totals["damaged"],
        totals["line_bytes"],
        0 if ends_with_newline else 1,
        int(ends_with_newline),
        leaf_pos,
        leaf_id,
    )


async def resolve_parent_pos(
    conn: asyncpg.Connection, transcript_id: int, parent_id: str, before_pos: int
) -> int | None:
    """rows.resolve_parent_pos."""
    pos: int | None = await conn.fetchval(
        "SELECT max(pos) FROM transcript_lines WHERE transcript_id = $1 AND entry_id = $2 "
        "AND kind = 'entry' AND pos < $3",
        transcript_id,
        parent_id,
        before_pos,
    )
    return pos

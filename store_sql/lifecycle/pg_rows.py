"""Session life cycle on PostgreSQL: the twins of lifecycle/rows.py's SQL (resetting and
deleting a session, archiving, deleting transcripts a chunk at a time, purging an agent), async
functions on an asyncpg connection inside the writer's group transaction.

Names, stamps and candidates are the shared pure functions of rows.py; a list of ids or
names is one `= ANY($n)` array where SQLite reads `json_each(?)`. Archiving renames every
transcript of the list in one UPDATE.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from store_sql.errors import NotFoundError
from store_sql.formats.state_dir import archive_name
from store_sql.lifecycle.rows import (
    DELETE_CHUNK_LINES,
    ArchiveKind,
    DeleteResult,
    PurgeStart,
    ResetResult,
    archive_stamp,
    reset_entry,
    transcript_candidates,
)
from store_sql.sessions import pg_rows as pg_sessions
from store_sql.sessions.rows import default_rel_dir
from store_sql.transcripts import pg_rows as pg_tx
from store_sql.transcripts import rows as tx

if TYPE_CHECKING:
    import asyncpg


async def index_rel_dir(conn: asyncpg.Connection[Any], agent_id: str) -> str:
    """The agent's sessions directory (its index's, else the default)."""
    found = await conn.fetchval("SELECT rel_dir FROM session_indexes WHERE agent_id = $1", agent_id)
    return str(found) if found is not None else default_rel_dir(agent_id)


async def session_referenced(
    conn: asyncpg.Connection[Any], agent_id: str, session_id: str, *, except_key: str | None = None
) -> bool:
    """Whether an entry of the agent (other than `except_key`) uses this session id."""
    found = await conn.fetchval(
        "SELECT 1 FROM session_entries WHERE agent_id = $1 AND session_id = $2 "
        "AND session_key IS DISTINCT FROM $3 LIMIT 1",
        agent_id,
        session_id,
        except_key,
    )
    return found is not None


async def archive_transcripts(
    conn: asyncpg.Connection[Any],
    agent_id: str,
    file_names: Sequence[str],
    kind: ArchiveKind,
    when: datetime,
) -> list[str]:
    """Rename the current live/topic transcripts with these names to archives, in one
    UPDATE whatever their number and size. Returns the archive names, in id order."""
    if not file_names:
        return []
    rows = await conn.fetch(
        "SELECT transcript_id, file_name FROM transcripts WHERE agent_id = $1 AND rel_dir = $2 "
        "AND file_name = ANY($3::text[]) AND kind IN ('live', 'topic') "
        "AND superseded_by IS NULL ORDER BY transcript_id FOR UPDATE",
        agent_id,
        await index_rel_dir(conn, agent_id),
        list(file_names),
    )
    if not rows:
        return []
    names = [archive_name(r["file_name"], kind, when) for r in rows]
    await conn.execute(
        "UPDATE transcripts AS t SET kind = $1, file_name = u.name, archived_at = $2 "
        "FROM unnest($3::bigint[], $4::text[]) AS u(id, name) WHERE t.transcript_id = u.id",
        kind,
        archive_stamp(when),
        [r["transcript_id"] for r in rows],
        names,
    )
    return names


async def archive_session(
    conn: asyncpg.Connection[Any],
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
    if await session_referenced(conn, agent_id, session_id, except_key=except_key):
        return []
    names = transcript_candidates(session_id, session_file)
    return await archive_transcripts(conn, agent_id, names, kind, when)


async def delete_transcript_chunk(
    conn: asyncpg.Connection[Any], transcript_id: int, max_lines: int = DELETE_CHUNK_LINES
) -> tuple[int, bool]:
    """Delete up to `max_lines` lines from the end of a transcript, and the transcript once
    it is empty. Returns (lines deleted, finished). Call again until finished."""
    pos = await conn.fetchval(
        "SELECT pos FROM transcript_lines WHERE transcript_id = $1 ORDER BY pos DESC "
        "LIMIT 1 OFFSET $2",
        transcript_id,
        max(1, max_lines) - 1,
    )
    if pos is None:
        deleted = await conn.execute(
            "DELETE FROM transcript_lines WHERE transcript_id = $1", transcript_id
        )
        await conn.execute("DELETE FROM transcripts WHERE transcript_id = $1", transcript_id)
        return _count(deleted), True
    deleted = await conn.execute(
        "DELETE FROM transcript_lines WHERE transcript_id = $1 AND pos >= $2", transcript_id, pos
    )
    return _count(deleted), False


async def purge_agent_rows(conn: asyncpg.Connection[Any], agent_id: str) -> PurgeStart:
    """First step of a purge: the index, entries, snapshots and kept files go at once (the
    agent vanishes from every listing); its transcripts are then deleted chunk by chunk."""
    snapshots = await conn.execute("DELETE FROM checkpoint_snapshots WHERE agent_id = $1", agent_id)
    entries = await conn.execute("DELETE FROM session_entries WHERE agent_id = $1", agent_id)
    files = await conn.execute("DELETE FROM opaque_files WHERE agent_id = $1", agent_id)
    await conn.execute("DELETE FROM session_indexes WHERE agent_id = $1", agent_id)
    ids = await conn.fetch(
        "SELECT transcript_id FROM transcripts WHERE agent_id = $1 ORDER BY transcript_id",
        agent_id,
    )
    return PurgeStart(_count(entries), _count(snapshots), _count(files), [int(r[0]) for r in ids])


def _count(status: str) -> int:
    """The row count of a command status (`DELETE 3`)."""
    return int(status.rsplit(" ", 1)[-1])


async def delete_session(
    conn: asyncpg.Connection[Any],
    agent_id: str,
    key: str,
    *,
    archive: bool = True,
    when: datetime | None = None,
) -> DeleteResult:
    """Remove the entry; its transcript becomes a `.deleted.` archive unless another entry
    still uses that session id (rows.delete_session's twin)."""
    current = await pg_sessions.get_entry(conn, agent_id, key)
    if current is None:
        return DeleteResult(key, False, [])
    await pg_sessions.delete_entry(conn, agent_id, key)
    archived: list[str] = []
    if archive:
        when = when or datetime.now(UTC)
        sid, file = current.get("sessionId"), current.get("sessionFile")
        archived = await archive_session(conn, agent_id, sid, file, "deleted", when)
    return DeleteResult(key, True, archived)


async def reset_session(
    conn: asyncpg.Connection[Any],
    agent_id: str,
    key: str,
    *,
    cwd: str | None = None,
    keep_fields: Iterable[str] = (),
    when: datetime | None = None,
) -> ResetResult:
    """rows.reset_session's twin: new session id and transcript for `key`; the old
    transcript becomes a `.reset.` archive (unless another entry still uses it)."""
    current = await pg_sessions.get_entry(conn, agent_id, key)
    if current is None:
        raise NotFoundError(f"agent {agent_id!r} has no session {key!r}; nothing to reset")
    when = when or datetime.now(UTC)
    now = int(when.timestamp() * 1000)
    old_id = current.get("sessionId")
    old_info = await pg_tx.find_live(conn, agent_id, old_id) if isinstance(old_id, str) else None
    archived = await archive_session(
        conn, agent_id, old_id, current.get("sessionFile"), "reset", when, except_key=key
    )
    new_id = str(uuid.uuid4())
    entry = reset_entry(current, session_id=new_id, now=now, keep_fields=keep_fields)
    await pg_sessions.put_entry(conn, agent_id, key, entry)
    info = await pg_tx.create_transcript(
        conn,
        agent_id,
        new_id,
        rel_dir=await index_rel_dir(conn, agent_id),
        cwd=cwd or await _header_cwd(conn, old_info),
        timestamp=tx.now_iso(),
    )
    return ResetResult(
        key, old_id if isinstance(old_id, str) else None, new_id, entry, archived,
        info.transcript_id,
    )  # fmt: skip


async def _header_cwd(conn: asyncpg.Connection[Any], info: tx.TranscriptInfo | None) -> str:
    """The old header's cwd, else this process's (the gateway writes its own process cwd)."""
    if info is not None:
        found = await conn.fetchval(
            "SELECT CASE WHEN jsonb_typeof(entry_line_json(line) -> 'cwd') = 'string' "
            "THEN entry_line_json(line) ->> 'cwd' END FROM transcript_lines "
            "WHERE transcript_id = $1 AND pos = 0 AND kind = 'header'",
            info.transcript_id,
        )
        if isinstance(found, str) and found.strip():
            return found
    return os.getcwd()

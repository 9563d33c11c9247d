"""Reading transcripts on PostgreSQL (the twin of reads.py, context.py and file_bytes.py).

The tree rules, the choice of recent entries, labels, names, the tree view and the model
context are reads.py's and context.py's own functions; here is only how the rows are
read. A statement costs a round trip to the server, so each read is as few statements as
it can be: a path is one recursive walk over `parent_pos` (which carries the columns along,
one index probe per step), the navigation probe rides along with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from store_sql.engine.pg.connection import snapshot
from store_sql.errors import NotFoundError
from store_sql.schema.navigation_lines import NAVIGATION_LINES
from store_sql.transcripts import legacy
from store_sql.transcripts.context import SessionContext, context_from_path
from store_sql.transcripts.pg_rows import get_info, raw_line, require_live
from store_sql.transcripts.reads import (
    Changes,
    Cursor,
    Navigated,
    StoredEntry,
    TranscriptCounts,
    TreeNode,
    build_tree,
    changes_of,
    name_of,
    navigated_of,
    pick_recent,
    read_after,
    resolve_labels,
)
from store_sql.transcripts.rows import INFO_COLUMNS, TranscriptInfo, info_of_row, parse_stored

if TYPE_CHECKING:
    import asyncpg


def _columns(prefix: str = "") -> str:
    """The columns of a `StoredEntry`, in field order, the line as its exact bytes."""
    p = prefix
    return (
        f"{p}pos, {p}entry_id, {p}parent_id, {p}parent_pos, {p}type, {p}role, {p}timestamp, "
        f"{raw_line(p)}, {p}kind, {p}damage"
    )


_ENTRY_COLUMNS = _columns()


def _entry(row: Iterable[Any]) -> StoredEntry:
    return StoredEntry(*row)


async def entry_by_id(conn: asyncpg.Connection, transcript_id: int, entry_id: str) -> StoredEntry:
    row = await conn.fetchrow(
        f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = $1 "
        "AND entry_id = $2 AND kind = 'entry' ORDER BY pos DESC LIMIT 1",
        transcript_id,
        entry_id,
    )
    if row is None:
        raise NotFoundError(f"transcript {transcript_id} has no entry {entry_id!r}")
    return _entry(row)


async def entry_at(conn: asyncpg.Connection, transcript_id: int, pos: int) -> StoredEntry | None:
    row = await conn.fetchrow(
        f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = $1 AND pos = $2",
        transcript_id,
        pos,
    )
    return None if row is None else _entry(row)


async def leaf(conn: asyncpg.Connection, info: TranscriptInfo) -> StoredEntry | None:
    if info.leaf_pos is None:
        return None
    return await entry_at(conn, info.transcript_id, info.leaf_pos)


async def children(
    conn: asyncpg.Connection, transcript_id: int, entry_id: str
) -> list[StoredEntry]:
    parent = await entry_by_id(conn, transcript_id, entry_id)
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = $1 "
        "AND parent_pos = $2 ORDER BY pos",
        transcript_id,
        parent.pos,
    )
    return [_entry(r) for r in rows]


# The walk from $2 up to the root, leaf first, at most $3 lines; parent_pos is always
# smaller than pos, so it ends. A missing line ends the path. The last column says whether
# the transcript follows today's tree rules (then the walk is not the path).
_WALK = (
    f"WITH RECURSIVE walk AS (SELECT {_columns()}, 1::bigint AS depth FROM transcript_lines "
    "WHERE transcript_id = $1 AND pos = $2 "
    f"UNION ALL SELECT {_columns('l.')}, walk.depth + 1 FROM walk JOIN transcript_lines l "
    "ON l.transcript_id = $1 AND l.pos = walk.parent_pos WHERE walk.depth < $3) "
    "SELECT *, EXISTS (SELECT 1 FROM transcript_lines n WHERE n.transcript_id = $1 AND "
    f"{NAVIGATION_LINES}) FROM walk ORDER BY depth"
)
_NAVIGATION_PROBE = (
    f"SELECT EXISTS (SELECT 1 FROM transcript_lines WHERE transcript_id = $1 AND "
    f"{NAVIGATION_LINES})"
)
_NO_LIMIT = 1 << 62


async def _walk(
    conn: asyncpg.Connection, transcript_id: int, start: int, limit: int = _NO_LIMIT
) -> tuple[list[StoredEntry], bool]:
    """The path from `start` to its root (leaf first, at most `limit` entries), and whether
    the transcript follows today's tree rules."""
    rows = await conn.fetch(_WALK, transcript_id, start, limit)
    if not rows:
        return [], await navigates(conn, transcript_id)
    return [StoredEntry(*row[:10]) for row in rows], bool(rows[0][11])


async def navigates(conn: asyncpg.Connection, transcript_id: int) -> bool:
    """Whether the transcript holds a line that makes it follow today's tree rules."""
    return bool(await conn.fetchval(_NAVIGATION_PROBE, transcript_id))


async def navigation(conn: asyncpg.Connection, transcript_id: int) -> Navigated | None:
    """reads.navigation."""
    if not await navigates(conn, transcript_id):
        return None
    return navigated_of(await all_entries(conn, transcript_id))


async def active_path(
    conn: asyncpg.Connection, info: TranscriptInfo, to_entry_id: str | None = None
) -> list[StoredEntry]:
    """reads.active_path: root -> leaf (or -> `to_entry_id`)."""
    tid = info.transcript_id
    if to_entry_id is None:
        if info.leaf_pos is None:
            navigated = await navigation(conn, tid)
            return [] if navigated is None else navigated.path(None)
        path, navigates_ = await _walk(conn, tid, info.leaf_pos)
    else:
        try:
            start = (await entry_by_id(conn, tid, to_entry_id)).pos
        except NotFoundError:
            navigated = await navigation(conn, tid)
            if navigated is not None and to_entry_id in navigated.nav.by_id:
                return navigated.path(to_entry_id)
            raise
        path, navigates_ = await _walk(conn, tid, start)
    if navigates_:
        navigated = await navigation(conn, tid)
        if navigated is not None and (to_entry_id is None or to_entry_id in navigated.nav.by_id):
            return navigated.path(to_entry_id)
    path.reverse()
    return path


async def recent_entries(
    conn: asyncpg.Connection,
    info: TranscriptInfo,
    *,
    limit: int = 50,
    max_bytes: int | None = None,
    types: frozenset[str] | None = None,
) -> list[StoredEntry]:
    """reads.recent_entries."""
    limit = max(0, min(limit, 1000))
    if info.leaf_pos is None or limit == 0:
        return []
    ahead = limit if types is None else _NO_LIMIT
    path, navigates_ = await _walk(conn, info.transcript_id, info.leaf_pos, ahead)
    if navigates_:
        navigated = await navigation(conn, info.transcript_id)
        if navigated is not None:
            path = navigated.path(None)
            path.reverse()
    return pick_recent(path, limit, max_bytes, types)


_INFO_WIDTH = len(INFO_COLUMNS.split(","))
# recent() of a session's live transcript in one statement: find it (rows.find_live's
# choice, in SQL), walk from its leaf unless it is v1/v2, say whether it navigates.
_RECENT_LIVE = (
    f"WITH RECURSIVE t AS (SELECT {INFO_COLUMNS} FROM transcripts WHERE agent_id = $1 "
    "AND session_id = $2 AND kind IN ('live', 'fork') AND superseded_by IS NULL "
    "ORDER BY file_name = $2 || '.jsonl' DESC, transcript_id DESC LIMIT 1), "
    f"walk AS (SELECT {_columns('l.')}, 1::bigint AS depth FROM t JOIN transcript_lines l "
    "ON l.transcript_id = t.transcript_id AND l.pos = t.leaf_pos "
    "WHERE coalesce(t.version, 1) >= 3 AND $3::bigint > 0 "
    f"UNION ALL SELECT {_columns('l.')}, walk.depth + 1 FROM walk JOIN transcript_lines l "
    "ON l.transcript_id = (SELECT transcript_id FROM t) AND l.pos = walk.parent_pos "
    "WHERE walk.depth < $3) "
    "SELECT t.*, EXISTS (SELECT 1 FROM transcript_lines n WHERE "
    f"n.transcript_id = t.transcript_id AND {NAVIGATION_LINES}), walk.* "
    "FROM t LEFT JOIN walk ON true ORDER BY walk.depth"
)


async def recent_of_session(
    conn: asyncpg.Connection,
    agent_id: str,
    session_id: str,
    *,
    limit: int = 50,
    max_bytes: int | None = None,
    types: frozenset[str] | None = None,
) -> list[StoredEntry]:
    """`recent` of a session's live transcript, run outside a transaction: one statement
    (its own snapshot) for a v3 transcript that keeps the JSONL-era tree rules, the
    gateway's everyday read; any other is read again in one snapshot, as `recent_entries`
    and `legacy` read it."""
    limit = max(0, min(limit, 1000))
    rows = await conn.fetch(
        _RECENT_LIVE, agent_id, session_id, limit if types is None else _NO_LIMIT
    )
    if rows:
        info = info_of_row(rows[0][:_INFO_WIDTH])
        if not legacy.is_legacy(info) and not rows[0][_INFO_WIDTH]:
            if info.leaf_pos is None or limit == 0:
                return []
            first = _INFO_WIDTH + 1
            path = [StoredEntry(*row[first : first + 10]) for row in rows if row[first] is not None]
            return pick_recent(path, limit, max_bytes, types)
    async with snapshot(conn):
        info = await require_live(conn, agent_id, session_id)
        if legacy.is_legacy(info):
            migrated_ = await migrated(conn, info)
            return migrated_.recent(limit=limit, max_bytes=max_bytes, types=types)
        return await recent_entries(conn, info, limit=limit, max_bytes=max_bytes, types=types)


async def page(
    conn: asyncpg.Connection,
    transcript_id: int,
    *,
    after_pos: int | None = None,
    before_pos: int | None = None,
    limit: int = 100,
) -> list[StoredEntry]:
    """reads.page."""
    if before_pos is not None:
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = $1 "
            "AND pos < $2 ORDER BY pos DESC LIMIT $3",
            transcript_id,
            before_pos,
            limit,
        )
        rows.reverse()
    else:
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLUMNS} FROM transcript_lines WHERE transcript_id = $1 "
            "AND pos > $2 ORDER BY pos LIMIT $3",
            transcript_id,
            -1 if after_pos is None else after_pos,
            limit,
        )
    return [_entry(r) for r in rows]


async def changes_since(
    conn: asyncpg.Connection, current: TranscriptInfo, cursor: Cursor | None, limit: int = 1000
) -> Changes:
    """reads.changes_since."""
    after = read_after(current, cursor)
    entries = await page(conn, current.transcript_id, after_pos=after, limit=limit)
    return changes_of(current, cursor, after, entries)


async def all_entries(conn: asyncpg.Connection, transcript_id: int) -> list[StoredEntry]:
    """Every line with its columns, in file order (read in pages)."""
    entries: list[StoredEntry] = []
    after = -1
    while batch := await page(conn, transcript_id, after_pos=after, limit=5000):
        entries.extend(batch)
        after = batch[-1].pos
    return entries


async def labels(conn: asyncpg.Connection, transcript_id: int) -> dict[str, str]:
    rows = await conn.fetch(
        f"SELECT {raw_line()} FROM transcript_lines WHERE transcript_id = $1 "
        "AND type = 'label' AND kind = 'entry' ORDER BY pos",
        transcript_id,
    )
    return resolve_labels(parse_stored(row[0]) for row in rows)


async def session_name(conn: asyncpg.Connection, transcript_id: int) -> str | None:
    raw = await conn.fetchval(
        f"SELECT {raw_line()} FROM transcript_lines WHERE transcript_id = $1 "
        "AND type = 'session_info' AND kind = 'entry' ORDER BY pos DESC LIMIT 1",
        transcript_id,
    )
    return None if raw is None else name_of(parse_stored(raw))


async def tree(conn: asyncpg.Connection, transcript_id: int) -> list[TreeNode]:
    """reads.tree."""
    rows: list[Any] = [
        tuple(r)
        for r in await conn.fetch(
            "SELECT pos, entry_id, parent_pos, type, role, timestamp FROM transcript_lines "
            "WHERE transcript_id = $1 AND kind = 'entry' ORDER BY pos",
            transcript_id,
        )
    ]
    navigated = await navigation(conn, transcript_id)
    if navigated is not None:
        rows = navigated.tree_rows(rows)
    return build_tree(rows, await labels(conn, transcript_id), by_time=navigated is None)


async def counts(conn: asyncpg.Connection, transcript_id: int) -> TranscriptCounts:
    info = await get_info(conn, transcript_id)
    rows = await conn.fetch(
        "SELECT role, count(*) FROM transcript_lines WHERE transcript_id = $1 "
        "AND type = 'message' AND role IS NOT NULL GROUP BY role",
        transcript_id,
    )
    roles = {role: int(n) for role, n in rows}
    return TranscriptCounts(
        info.line_count, info.entry_count, info.damaged_count, info.byte_size, roles
    )


async def context(
    conn: asyncpg.Connection, info: TranscriptInfo, leaf_id: str | None = None
) -> SessionContext:
    """context.build_context."""
    if leaf_id is None:
        navigated = await navigation(conn, info.transcript_id)
        if navigated is not None:
            return context_from_path(navigated.context_entries())
    return context_from_path(await active_path(conn, info, leaf_id))


async def migrated(conn: asyncpg.Connection, info: TranscriptInfo) -> legacy.MigratedTranscript:
    """legacy.load_migrated."""
    return legacy.migrated_of(info, await all_entries(conn, info.transcript_id))


# --- the file's bytes --------------------------------------------------------------------------

_BLOCK_LINES = 4096
# Lines joined with \n by the server, as bytea throughout, so nothing is decoded. The
# subquery's ORDER BY and LIMIT pick the block; string_agg's ORDER BY joins it in order.
_BLOCK = (
    "SELECT string_agg(raw, '\\x0a'::bytea ORDER BY pos), count(*), max(pos) FROM "
    f"(SELECT pos, {raw_line()} AS raw FROM transcript_lines WHERE transcript_id = $1 "
    "AND pos >= $2 AND pos <= $3 ORDER BY pos LIMIT $4) AS block"
)


async def transcript_blocks(
    conn: asyncpg.Connection,
    transcript_id: int,
    *,
    from_pos: int | None = None,
    upto_pos: int | None = None,
    newline: bool | None = None,
) -> AsyncIterator[bytes]:
    """file_bytes.transcript_blocks: lines `from_pos`(0)..`upto_pos`, each followed by
    ``\\n`` except the last when the file had no final newline (`newline`, default: as
    stored); separators between blocks come as their own chunks."""
    if newline is None:
        newline = (await get_info(conn, transcript_id)).ends_with_newline
    low = 0 if from_pos is None else from_pos
    high = _NO_LIMIT if upto_pos is None else upto_pos
    wrote = False
    while low <= high:
        row = await conn.fetchrow(_BLOCK, transcript_id, low, high, _BLOCK_LINES)
        assert row is not None  # an aggregate always gives one row
        block, count, last = row
        if not count:
            break
        if wrote:
            yield b"\n"
        if block:
            yield block
        wrote = True
        low = last + 1
    if wrote and newline:
        yield b"\n"

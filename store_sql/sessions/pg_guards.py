"""Compare-and-swap for the session index on PostgreSQL: the twin of `sessions/guards.py`.

The expected state is checked on the entry's row read `FOR UPDATE`: the lock holds to the
commit, so no other process's write lands between the check and the write, and the
comparison itself is `guards.check_stored`, shared with SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from store_sql.engine.pg.connection import PgConnection
from store_sql.errors import InvalidEntryError
from store_sql.sessions import guards
from store_sql.sessions import pg_rows as sessions
from store_sql.sessions.guards import EntryText, Expect, SessionOp, SessionOpResult, entry_version
from store_sql.sessions.rows import Entry, not_found


async def check_expect(conn: PgConnection, agent_id: str, key: str, expect: Expect) -> None:
    """Raise ConflictError unless the entry of `key` is as `expect` says; the entry's row
    stays locked to the end of the transaction."""
    sessions.check_key(key)
    row = await conn.fetchrow(
        "SELECT entry_json, session_id, updated_at FROM session_entries "
        "WHERE agent_id = $1 AND session_key = $2 FOR UPDATE",
        agent_id,
        key,
    )
    stored = None if row is None else (row[0], row[1], sessions.number_of(row[2]))
    guards.check_stored(agent_id, key, expect, stored)


async def read_entry(conn: PgConnection, agent_id: str, key: str) -> EntryText | None:
    text = await sessions.read_entry_text(conn, agent_id, key)
    return None if text is None else EntryText(text, entry_version(text))


async def patch(
    conn: PgConnection, agent_id: str, key: str, changes: Mapping[str, Any], expect: Expect | None
) -> EntryText:
    if expect is not None:
        await check_expect(conn, agent_id, key, expect)
    text = await sessions.patch_entry(conn, agent_id, key, changes)
    return EntryText(text, entry_version(text))


async def put(
    conn: PgConnection, agent_id: str, key: str, entry: Entry, expect: Expect | None
) -> EntryText:
    if expect is not None:
        await check_expect(conn, agent_id, key, expect)
    if not isinstance(entry, dict):
        raise InvalidEntryError(f"an entry must be a JSON object, got {type(entry).__name__}")
    await sessions.put_entry(conn, agent_id, key, entry)
    stored = await read_entry(conn, agent_id, key)
    assert stored is not None
    return stored


async def delete(conn: PgConnection, agent_id: str, key: str, expect: Expect | None) -> bool:
    if expect is not None:
        await check_expect(conn, agent_id, key, expect)
    return await sessions.delete_entry(conn, agent_id, key)


async def touch(
    conn: PgConnection, agent_id: str, key: str, updated_at: int, expect: Expect | None
) -> EntryText:
    if expect is not None:
        await check_expect(conn, agent_id, key, expect)
    await sessions.touch_entry(conn, agent_id, key, updated_at)
    stored = await read_entry(conn, agent_id, key)
    if stored is None:  # pragma: no cover - touch_entry raised already
        raise not_found(agent_id, key)
    return stored


async def apply_batch(
    conn: PgConnection, agent_id: str, ops: Sequence[SessionOp]
) -> list[SessionOpResult]:
    """`guards.apply_batch` on PostgreSQL: every op in order, all written or none."""
    results: list[SessionOpResult] = []
    for op in ops:
        guards.check_op(op)
        if op.op == "patch":
            entry = await patch(conn, agent_id, op.key, op.value or {}, op.expect)
            results.append(SessionOpResult(op.op, op.key, entry))
        elif op.op == "put":
            assert op.value is not None
            entry = await put(conn, agent_id, op.key, dict(op.value), op.expect)
            results.append(SessionOpResult(op.op, op.key, entry))
        elif op.op == "delete":
            deleted = await delete(conn, agent_id, op.key, op.expect)
            results.append(SessionOpResult(op.op, op.key, None, deleted))
        else:
            assert op.updated_at is not None
            entry = await touch(conn, agent_id, op.key, op.updated_at, op.expect)
            results.append(SessionOpResult(op.op, op.key, entry))
    return results

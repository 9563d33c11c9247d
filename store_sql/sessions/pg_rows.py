"""The session index on PostgreSQL: the twin of `sessions/rows.py`.

Everything that is not SQL (entry text, patch merging, JS key order, rendering sessions.json,
validation) is `rows.py`'s own pure functions, so both backends store the same bytes. What
differs is the SQL and how several processes stay correct: every change reads the entry
with `FOR UPDATE`, so a read-modify-write (patch, update's mutator, an `expect`) is a
compare-and-swap across processes; a new key takes its position from the agent's index
row, which the same statement locks; and the insert of a new key that another process
inserted first (`ON CONFLICT DO NOTHING` returns nothing) runs the operation again on the
entry that process stored.

Numbers copied from an entry (updatedAt, token counts) are `numeric` there: an int is
bound as it is, a float by its shortest decimal spelling, and read back as the same int or
float (`number_of`). A string column cannot hold NUL on PostgreSQL: such a value is left
out of its column (NULL), as a string SQLite cannot store is; the entry text keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from store_sql.engine.pg.connection import PgConnection
from store_sql.errors import InvalidEntryError, WriteFailedError
from store_sql.formats.sqltext import storable
from store_sql.sessions import rows
from store_sql.sessions.columns import COLUMN_NAMES, NUMBER_COLUMNS, entry_columns
from store_sql.sessions.rows import (
    DAMAGED_STATES,
    Entry,
    ListFilter,
    Mutator,
    SessionSummary,
    Stored,
    default_rel_dir,
)

_INT32_MAX = 2**31 - 1
_RACES = 3
"""How often an operation runs again when another process inserted its key first."""

_ENTRY_COLUMNS = ", ".join(f"e.{name}" for name in COLUMN_NAMES)
_SELECT_TEXT = "SELECT entry_json FROM session_entries WHERE agent_id = $1 AND session_key = $2"
_SELECT_STORED = (
    f"SELECT e.entry_json, i.source_state, {_ENTRY_COLUMNS} "
    "FROM session_entries AS e JOIN session_indexes AS i ON i.agent_id = e.agent_id "
    "WHERE e.agent_id = $1 AND e.session_key = $2 FOR UPDATE OF e"
)
_INSERT_IMPORTED = (
    "INSERT INTO session_entries (agent_id, session_key, position, entry_json, problem, "
    + ", ".join(COLUMN_NAMES)
    + ") VALUES ($1, $2, $3, $4, $5, "
    + ", ".join(f"${i}" for i in range(6, 6 + len(COLUMN_NAMES)))
    + ")"
)
_INSERT_ENTRY = (
    _INSERT_IMPORTED + " ON CONFLICT (agent_id, session_key) DO NOTHING RETURNING entry_pk"
)
# Creates the agent's index when missing and takes the next position in one statement; the
# index row stays locked to the end of the transaction, so processes adding keys to one
# agent take turns, and each gets its own position.
_TAKE_POSITION = (
    "INSERT INTO session_indexes AS i (agent_id, rel_dir, source_state, next_position) "
    "VALUES ($1, $2, 'api', 1) ON CONFLICT (agent_id) DO UPDATE "
    "SET next_position = i.next_position + 1 "
    "RETURNING i.next_position - 1 AS position, i.source_state, i.rel_dir, i.source_error"
)
_MARK_CHANGED = (
    "UPDATE session_indexes SET source_bytes = NULL, source_state = 'api', source_error = NULL "
    "WHERE agent_id = $1 AND source_state = 'imported'"
)


# --- values in and out ----------------------------------------------------------------------


def number_of(value: Any) -> Any:
    """A `numeric` read back as the int or float it was bound as."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    return value


def _bound(name: str, value: Any) -> Any:
    if value.__class__ is float and name in NUMBER_COLUMNS:
        return Decimal(repr(value))
    if value.__class__ is str and "\x00" in value:
        return None
    return value


def _unstorable(value: object) -> bool:
    """A string no row can hold (NUL): a lookup by it finds nothing, without asking."""
    return isinstance(value, str) and "\x00" in value


def check_key(key: str) -> None:
    """A session key PostgreSQL's text can hold (no NUL), else InvalidEntryError."""
    if _unstorable(key):
        raise InvalidEntryError(
            f"invalid session key {key!r}: it holds a NUL character, which PostgreSQL text "
            "cannot store"
        )


# --- reads ------------------------------------------------------------------------------------


async def read_entry_text(conn: PgConnection, agent_id: str, key: str) -> str | None:
    if _unstorable(key):
        return None
    text = await conn.fetchval(_SELECT_TEXT, agent_id, key)
    return None if text is None else str(text)


async def get_entry(conn: PgConnection, agent_id: str, key: str) -> Entry | None:
    return rows.entry_of(await read_entry_text(conn, agent_id, key))


async def list_entries(
    conn: PgConnection, agent_id: str, where: ListFilter, limit: int | None, offset: int
) -> list[SessionSummary]:
    """Entries newest `updatedAt` first (entries without one last, as on SQLite), from
    indexed columns only."""
    condition, params = _condition(agent_id, where)
    sql = (
        f"SELECT {rows.SUMMARY_COLUMNS} FROM session_entries WHERE {condition} "
        "ORDER BY updated_at DESC NULLS LAST, position"
    )
    if limit is not None:
        params.append(min(limit, _INT32_MAX))
        sql += f" LIMIT ${len(params)}"
    if offset:
        params.append(min(offset, _INT32_MAX))
        sql += f" OFFSET ${len(params)}"
    summaries = []
    for r in await conn.fetch(sql, *params):
        values = list(r)
        values[2] = number_of(values[2])
        summaries.append(SessionSummary(*values))
    return summaries


async def count_entries(conn: PgConnection, agent_id: str, where: ListFilter) -> int:
    condition, params = _condition(agent_id, where)
    return int(
        await conn.fetchval(f"SELECT count(*) FROM session_entries WHERE {condition}", *params)
    )


def _condition(agent_id: str, where: ListFilter) -> tuple[str, list[Any]]:
    """`rows._condition` with `$n` parameters; a filter value PostgreSQL's text cannot hold
    matches nothing."""
    if where.matches_nothing(lambda v: storable(v) and not _unstorable(v)):
        return "false", []
    conditions = where.conditions()
    tests = [f"{test} ${n}" for n, (test, _) in enumerate(conditions, start=2)]
    return " AND ".join(["agent_id = $1", *tests]), [agent_id, *(v for _, v in conditions)]


async def list_agents(conn: PgConnection) -> list[str]:
    found = await conn.fetch("SELECT agent_id FROM session_indexes ORDER BY agent_id")
    return [r[0] for r in found]


async def render_sessions_json(conn: PgConnection, agent_id: str) -> bytes | None:
    """sessions.json of an agent, as `rows.render_sessions_json` makes it."""
    row = await conn.fetchrow(
        "SELECT source_bytes, EXISTS (SELECT 1 FROM session_directories d "
        "WHERE d.agent_id = i.agent_id) FROM session_indexes i WHERE agent_id = $1",
        agent_id,
    )
    if row is None:
        return None
    if row[0] is not None and not row[1]:
        return bytes(row[0])
    found = await conn.fetch(
        "SELECT session_key, entry_json FROM session_entries WHERE agent_id = $1 ORDER BY position",
        agent_id,
    )
    return rows.render_entries([(r[0], r[1]) for r in found], from_directory=bool(row[1]))


# --- writes -----------------------------------------------------------------------------------


async def _read_stored(conn: PgConnection, agent_id: str, key: str) -> Stored | None:
    """The entry as stored, its row locked to the end of the transaction."""
    check_key(key)
    row = await conn.fetchrow(_SELECT_STORED, agent_id, key)
    if row is None:
        return None
    columns = {
        name: number_of(value) if name in NUMBER_COLUMNS else value
        for name, value in zip(COLUMN_NAMES, list(row)[2:], strict=True)
    }
    return Stored(str(row[0]), row[1], columns)


async def check_writable(conn: PgConnection, agent_id: str) -> None:
    """`rows.check_writable` on PostgreSQL."""
    row = await conn.fetchrow(
        "SELECT source_state, rel_dir, source_error FROM session_indexes WHERE agent_id = $1",
        agent_id,
    )
    if row is not None and row[0] in DAMAGED_STATES:
        raise rows.damaged_index_error(agent_id, row[0], row[1], row[2])


async def _write(
    conn: PgConnection,
    agent_id: str,
    key: str,
    text: str,
    columns: dict[str, Any],
    old: Stored | None,
) -> bool:
    """Store the entry; False when `old` was None and another process inserted the key
    first (nothing written: the caller reads the entry again and starts over)."""
    if old is not None and old.index_state in DAMAGED_STATES:
        await check_writable(conn, agent_id)
    if old is None:
        index = await conn.fetchrow(_TAKE_POSITION, agent_id, default_rel_dir(agent_id))
        assert index is not None
        if index["source_state"] in DAMAGED_STATES:
            raise rows.damaged_index_error(
                agent_id, index["source_state"], index["rel_dir"], index["source_error"]
            )
        values = [_bound(name, columns[name]) for name in COLUMN_NAMES]
        inserted = await conn.fetchval(
            _INSERT_ENTRY, agent_id, key, index["position"], text, None, *values
        )
        if inserted is None:
            return False
        if index["source_state"] != "api":
            await conn.execute(_MARK_CHANGED, agent_id)
        return True
    changed = rows.changed_columns(old.columns, columns)
    names = list(changed)
    assignments = "".join(f", {name} = ${i}" for i, name in enumerate(names, start=4))
    await conn.execute(
        f"UPDATE session_entries SET entry_json = $3, problem = NULL{assignments} "
        "WHERE agent_id = $1 AND session_key = $2",
        agent_id,
        key,
        text,
        *(_bound(name, changed[name]) for name in names),
    )
    if old.index_state != "api":
        await conn.execute(_MARK_CHANGED, agent_id)
    return True


def _raced(agent_id: str, key: str) -> WriteFailedError:
    return WriteFailedError(
        f"session {key!r} of agent {agent_id!r} was created and removed by other writers "
        f"{_RACES} times while this write ran; it was not stored"
    )


async def patch_entry(conn: PgConnection, agent_id: str, key: str, patch: Mapping[str, Any]) -> str:
    """Merge `patch` into the entry and return the entry's new JSON text."""
    if not isinstance(patch, Mapping):
        raise InvalidEntryError(f"a patch must be a JSON object, got {type(patch).__name__}")
    for _ in range(_RACES):
        old = await _read_stored(conn, agent_id, key)
        text, columns = rows.patched_entry(agent_id, key, old, patch)
        if await _write(conn, agent_id, key, text, columns, old):
            return text
    raise _raced(agent_id, key)


async def put_entry(conn: PgConnection, agent_id: str, key: str, value: Entry) -> Entry:
    """Replace an entry whole (fields not in `value` are dropped)."""
    text, columns = rows.checked_entry(agent_id, key, dict(value))
    for _ in range(_RACES):
        old = await _read_stored(conn, agent_id, key)
        if await _write(conn, agent_id, key, text, columns, old):
            return value
    raise _raced(agent_id, key)


async def update_entry(
    conn: PgConnection, agent_id: str, key: str, mutator: Mutator
) -> Entry | None:
    """Read-modify-write as one step, the entry's row locked from the read to the commit:
    another process's write waits, and never slips between the read and the write."""
    for _ in range(_RACES):
        old = await _read_stored(conn, agent_id, key)
        current = rows.parse_stored(old)
        result = mutator(current)
        if result is None:
            return current
        if not isinstance(result, dict):
            raise InvalidEntryError(f"the mutator must return a dict or None, got {type(result)}")
        text, columns = rows.checked_entry(agent_id, key, result)
        if await _write(conn, agent_id, key, text, columns, old):
            return result
    raise _raced(agent_id, key)


async def delete_entry(conn: PgConnection, agent_id: str, key: str) -> bool:
    if _unstorable(key):
        return False
    deleted = await conn.fetchval(
        "DELETE FROM session_entries WHERE agent_id = $1 AND session_key = $2 RETURNING 1",
        agent_id,
        key,
    )
    if deleted is not None:
        await conn.execute(_MARK_CHANGED, agent_id)
    return deleted is not None


async def delete_entries(conn: PgConnection, agent_id: str, keys: Iterable[str]) -> int:
    """`delete_entry` for many keys in one statement; returns how many were there."""
    status = await conn.execute(
        "DELETE FROM session_entries WHERE agent_id = $1 AND session_key = ANY($2::text[])",
        agent_id,
        [key for key in keys if not _unstorable(key)],
    )
    deleted = int(status.split()[-1])
    if deleted:
        await conn.execute(_MARK_CHANGED, agent_id)
    return deleted


async def touch_entry(conn: PgConnection, agent_id: str, key: str, updated_at: int) -> None:
    """The updatedAt fast path: rewrites one number in the stored text, no JSON parse."""
    rows.check_touch(updated_at)
    if _unstorable(key):
        raise rows.not_found(agent_id, key)
    row = await conn.fetchrow(
        "SELECT e.entry_json, e.problem, i.source_state FROM session_entries AS e "
        "JOIN session_indexes AS i ON i.agent_id = e.agent_id "
        "WHERE e.agent_id = $1 AND e.session_key = $2 FOR UPDATE OF e",
        agent_id,
        key,
    )
    if row is None:
        raise rows.not_found(agent_id, key)
    new_text = rows.touched_text(str(row[0]), row[1], updated_at)
    if new_text is None:
        await patch_entry(conn, agent_id, key, {"updatedAt": updated_at})
        return
    await conn.execute(
        "UPDATE session_entries SET entry_json = $3, updated_at = $4, entry_bytes = $5 "
        "WHERE agent_id = $1 AND session_key = $2",
        agent_id,
        key,
        new_text,
        updated_at,
        len(new_text.encode("utf-8", "surrogatepass")),
    )
    if row[2] != "api":
        await conn.execute(_MARK_CHANGED, agent_id)


async def insert_imported_entries(
    conn: PgConnection,
    agent_id: str,
    entries: Iterable[tuple[str, int, str, Any, str | None]],
) -> int:
    """`rows.insert_imported_entries` on PostgreSQL (one pipelined statement per entry)."""
    batch = []
    last_position = -1
    for key, position, text, value, problem in entries:
        last_position = max(last_position, position)
        columns = entry_columns(value, text)
        batch.append(
            (
                agent_id,
                key,
                position,
                text,
                problem,
                *(_bound(name, columns[name]) for name in COLUMN_NAMES),
            )
        )
    if batch:
        await conn.executemany(_INSERT_IMPORTED, batch)
    await conn.execute(
        "UPDATE session_indexes SET next_position = greatest(next_position, $1) "
        "WHERE agent_id = $2",
        last_position + 1,
        agent_id,
    )
    return len(batch)

"""The session index: one entry per session key, per agent (docs/FORMATS.md §2).

Functions here run on a connection thread (the writer for changes, a pooled reader for
reads); `store.Store` submits them. Each entry is kept as the exact text sessions.json holds
for it (2-space JSON at depth 1) plus columns extracted from it for indexed queries. Every
change re-serialises the entry as JavaScript would after `{...entry, ...patch}`: existing
fields keep their places and spellings, new fields go last, `None` removes a field.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from store_sql.errors import DamagedIndexError, InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.formats.entry_patch import patch_entry_text
from store_sql.formats.sessions_dir import entry_file_name, key_refusal
from store_sql.formats.sessions_json import entry_text, js_key_order, render_index, validate_entry
from store_sql.formats.sqltext import storable
from store_sql.sessions.columns import COLUMN_NAMES, entry_columns, patched_columns

Entry = dict[str, Any]
Mutator = Callable[[Entry | None], Entry | None]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """The indexed columns of one entry: what listing returns without reading entry JSON."""

    key: str
    session_id: str | None
    updated_at: int | float | None
    label: str | None
    display_name: str | None
    chat_type: str | None
    channel: str | None
    model: str | None
    entry_bytes: int


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Filters for `list_entries`; every field is optional and they combine with AND."""

    updated_after: int | None = None
    updated_before: int | None = None
    label: str | None = None
    chat_type: str | None = None
    channel: str | None = None

    def conditions(self) -> list[tuple[str, Any]]:
        """Each filter that is set, as (a test of a session_entries column that ends where
        its value is bound, the value); both backends' SQL is built from these."""
        return [
            (test, value) for field, test in _TESTS if (value := getattr(self, field)) is not None
        ]

    def matches_nothing(self, held: Callable[[str], bool]) -> bool:
        """True when a text filter is a string no column holds (`held`: the strings the
        backend's text holds; no store writes any other), so no entry matches."""
        texts = (self.label, self.chat_type, self.channel)
        return any(isinstance(v, str) and not held(v) for v in texts)


_TESTS = (
    ("updated_after", "updated_at >"),
    ("updated_before", "updated_at <"),
    ("label", "label ="),
    ("chat_type", "chat_type ="),
    ("channel", "channel ="),
)


# --- statements ----------------------------------------------------------------------------

_ENTRY_COLUMNS = ", ".join(COLUMN_NAMES)
_KEY_IS = "agent_id = :agent_id AND session_key = :session_key"
_SELECT_TEXT = f"SELECT entry_json FROM session_entries WHERE {_KEY_IS}"
# The index's source_state comes along so a change to an index already rendered by the API
# skips the (no-op) _MARK_CHANGED statement: one statement of three on the hottest path.
_SELECT_STORED = (
    "SELECT e.entry_json, (SELECT i.source_state FROM session_indexes i "
    f"WHERE i.agent_id = e.agent_id), {', '.join(f'e.{name}' for name in COLUMN_NAMES)} "
    "FROM session_entries e WHERE e.agent_id = :agent_id AND e.session_key = :session_key"
)
_INSERT_ENTRY = (
    "INSERT INTO session_entries (agent_id, session_key, position, entry_json, problem, "
    f"{_ENTRY_COLUMNS}) VALUES (:agent_id, :session_key, :position, :entry_json, :problem, "
    f"{', '.join(f':{name}' for name in COLUMN_NAMES)})"
)
_DELETE_ENTRY = f"DELETE FROM session_entries WHERE {_KEY_IS}"
_ENSURE_INDEX = (
    "INSERT INTO session_indexes (agent_id, rel_dir, source_state) "
    "VALUES (:agent_id, :rel_dir, 'api') ON CONFLICT (agent_id) DO NOTHING"
)
# Any change through the API drops the imported bytes of a readable index: from then on
# export renders the index the way the gateway would write it. An index whose file could not
# be read ('invalid', 'empty_file') is never changed this way: `check_writable` refuses.
_MARK_CHANGED = (
    "UPDATE session_indexes SET source_bytes = NULL, source_state = 'api', source_error = NULL "
    "WHERE agent_id = :agent_id AND source_state = 'imported'"
)
DAMAGED_STATES = frozenset({"invalid", "empty_file"})
"""`session_indexes.source_state` of an index whose imported file could not be read."""
_TAKE_POSITION = (
    "UPDATE session_indexes SET next_position = next_position + 1 "
    "WHERE agent_id = :agent_id RETURNING next_position - 1"
)

SUMMARY_COLUMNS = (
    "session_key, session_id, updated_at, label, display_name, chat_type, channel, model, "
    "entry_bytes"
)
"""The columns of a `SessionSummary`, in its fields' order."""


def default_rel_dir(agent_id: str) -> str:
    return f"agents/{agent_id}/sessions"


def check_writable(conn: sqlite3.Connection, agent_id: str) -> None:
    """Refuse a change to an index whose imported sessions.json could not be read.

    Its sessions are not in the store, only its bytes: the first change would make export
    write an index holding just that change, so every other session would be gone."""
    row = conn.execute(
        "SELECT source_state, rel_dir, source_error FROM session_indexes WHERE agent_id = ?",
        (agent_id,),
    ).fetchone()
    if row is not None and row[0] in DAMAGED_STATES:
        raise damaged_index_error(agent_id, row[0], row[1], row[2])


def damaged_index_error(
    agent_id: str, state: str, rel_dir: str, error: str | None
) -> DamagedIndexError:
    """The refusal of a change to a damaged index (`check_writable`)."""
    return DamagedIndexError(
        f"agent {agent_id!r}: {rel_dir}/sessions.json could not be read when it was imported "
        f"({error or state}), so its sessions are not in the store and a change would "
        "replace the whole file; nothing was changed. Run `store-sql sessions recover "
        f"--agent {agent_id}` (Python: store.sessions.recover({agent_id!r})) to keep its "
        "readable entries and its original bytes (exported as sessions.json.invalid-<time>), "
        "or repair the file and import it again"
    )


# --- reads ---------------------------------------------------------------------------------


def read_entry_text(conn: sqlite3.Connection, agent_id: str, key: str) -> str | None:
    row = conn.execute(_SELECT_TEXT, {"agent_id": agent_id, "session_key": key}).fetchone()
    return None if row is None else str(row[0])


def get_entry(conn: sqlite3.Connection, agent_id: str, key: str) -> Entry | None:
    return entry_of(read_entry_text(conn, agent_id, key))


def entry_of(text: str | None) -> Entry | None:
    """The entry a stored text holds (None: no text, or not a JSON object)."""
    if text is None:
        return None
    value = jsjson.loads(text)
    return value if isinstance(value, dict) else None


def list_entries(
    conn: sqlite3.Connection,
    agent_id: str,
    where: ListFilter,
    limit: int | None,
    offset: int,
) -> list[SessionSummary]:
    """Entries newest `updatedAt` first, from indexed columns only (no entry JSON read)."""
    condition, params = _condition(agent_id, where)
    sql = (
        f"SELECT {SUMMARY_COLUMNS} FROM session_entries WHERE {condition} "
        "ORDER BY updated_at DESC, position"
    )
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"  # LIMIT -1: no limit
        params += [-1 if limit is None else limit, offset]
    return [SessionSummary(*row) for row in conn.execute(sql, params)]


def count_entries(conn: sqlite3.Connection, agent_id: str, where: ListFilter) -> int:
    condition, params = _condition(agent_id, where)
    sql = f"SELECT count(*) FROM session_entries WHERE {condition}"
    return int(conn.execute(sql, params).fetchone()[0])


def _condition(agent_id: str, where: ListFilter) -> tuple[str, list[Any]]:
    if where.matches_nothing(storable):
        return "0", []  # a lone surrogate: sqlite3 could not even bind it
    conditions = where.conditions()
    sql = " AND ".join(["agent_id = ?", *(f"{test} ?" for test, _ in conditions)])
    return sql, [agent_id, *(value for _, value in conditions)]


def list_agents(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT agent_id FROM session_indexes ORDER BY agent_id")]


def render_sessions_json(conn: sqlite3.Connection, agent_id: str) -> bytes | None:
    """sessions.json of an agent: the imported bytes while untouched, else as JS writes it.

    An index imported from a sessions.d is rendered as the gateway's rollback writes it:
    keys in the order its loader reads the entry files (by file name), then JSON.stringify."""
    row = conn.execute(
        "SELECT source_bytes, EXISTS (SELECT 1 FROM session_directories d "
        "WHERE d.agent_id = i.agent_id) FROM session_indexes i WHERE agent_id = ?",
        (agent_id,),
    ).fetchone()
    if row is None:
        return None
    if row[0] is not None and not row[1]:
        return bytes(row[0])
    rows = conn.execute(
        "SELECT session_key, entry_json FROM session_entries WHERE agent_id = ? ORDER BY position",
        (agent_id,),
    ).fetchall()
    return render_entries(rows, from_directory=bool(row[1]))


def render_entries(rows: list[tuple[str, str]], *, from_directory: bool) -> bytes:
    """sessions.json from (key, entry text) rows in position order (`render_sessions_json`)."""
    if from_directory:
        rows = sorted(rows, key=lambda r: _directory_order(r[0]))
    texts = dict(rows)
    return render_index((key, texts[key]) for key in js_key_order(k for k, _ in rows))


def _directory_order(key: str) -> tuple[int, str]:
    """Where a sessions.d loader meets `key`: by entry file name (keys no file can hold last)."""
    if key_refusal(key) is not None:
        return 1, ""
    return 0, entry_file_name(key)


# --- writes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    """An entry as stored: its text and its extracted columns."""

    text: str
    index_state: str | None
    columns: dict[str, Any]


def _read_stored(conn: sqlite3.Connection, agent_id: str, key: str) -> Stored | None:
    row = conn.execute(_SELECT_STORED, {"agent_id": agent_id, "session_key": key}).fetchone()
    if row is None:
        return None
    return Stored(str(row[0]), row[1], dict(zip(COLUMN_NAMES, row[2:], strict=True)))


def parse_stored(stored: Stored | None) -> Entry | None:
    return None if stored is None else entry_of(stored.text)


def _store(
    conn: sqlite3.Connection, agent_id: str, key: str, value: Entry, old: Stored | None
) -> str:
    text, columns = checked_entry(agent_id, key, value)
    _write(conn, agent_id, key, text, columns, old)
    return text


def checked_entry(agent_id: str, key: str, value: Entry) -> tuple[str, dict[str, Any]]:
    """The stored text and columns of a whole new entry; InvalidEntryError when the gateway
    would not accept it."""
    problem = validate_entry(value)
    if problem is not None:
        raise InvalidEntryError(f"session {key!r} of agent {agent_id!r}: {problem}")
    text = entry_text(value)
    return text, entry_columns(value, text)


def changed_columns(before: dict[str, Any], columns: dict[str, Any]) -> dict[str, Any]:
    """The columns whose value differs from the stored one (same value, same type: kept)."""
    return {
        k: v
        for k, v in columns.items()
        if not (before[k] is v or (before[k] == v and before[k].__class__ is v.__class__))
    }


def _write(
    conn: sqlite3.Connection,
    agent_id: str,
    key: str,
    text: str,
    columns: dict[str, Any],
    old: Stored | None,
) -> None:
    where = {"agent_id": agent_id, "session_key": key}
    if old is None or old.index_state in DAMAGED_STATES:
        check_writable(conn, agent_id)
    if old is None:
        conn.execute(_ENSURE_INDEX, {"agent_id": agent_id, "rel_dir": default_rel_dir(agent_id)})
        position = conn.execute(_TAKE_POSITION, {"agent_id": agent_id}).fetchone()[0]
        params = {**where, **columns, "entry_json": text, "problem": None, "position": position}
        conn.execute(_INSERT_ENTRY, params)
    else:
        # Only columns whose value changed are written: SQLite rewrites every index that
        # covers a SET column, so setting unchanged indexed columns costs page writes.
        changed = changed_columns(old.columns, columns)
        assignments = ", ".join(f"{name} = :{name}" for name in changed)
        conn.execute(
            "UPDATE session_entries SET entry_json = :entry_json, problem = NULL"
            + (f", {assignments}" if assignments else "")
            + " WHERE agent_id = :agent_id AND session_key = :session_key",
            {**where, **changed, "entry_json": text},
        )
    if old is None or old.index_state != "api":
        conn.execute(_MARK_CHANGED, {"agent_id": agent_id})


def apply_patch(current: Entry | None, patch: Mapping[str, Any]) -> Entry:
    """`{...current, ...patch}` with `None` meaning "remove the field"."""
    merged: Entry = dict(current) if current else {}
    for field, value in patch.items():
        if not isinstance(field, str):
            raise InvalidEntryError(f"patch field names must be strings, got {field!r}")
        if value is None:
            merged.pop(field, None)
        else:
            merged[field] = value
    return merged


def patch_entry(conn: sqlite3.Connection, agent_id: str, key: str, patch: Mapping[str, Any]) -> str:
    """Merge `patch` into the entry and return the entry's new JSON text."""
    if not isinstance(patch, Mapping):
        raise InvalidEntryError(f"a patch must be a JSON object, got {type(patch).__name__}")
    old = _read_stored(conn, agent_id, key)
    text, columns = patched_entry(agent_id, key, old, patch)
    _write(conn, agent_id, key, text, columns, old)
    return text


def patched_entry(
    agent_id: str, key: str, old: Stored | None, patch: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The text and columns of `old` with `patch` merged in: in place when the stored text
    allows it (only the patched fields' columns then), else the whole entry re-rendered."""
    if not isinstance(patch, Mapping):
        raise InvalidEntryError(f"a patch must be a JSON object, got {type(patch).__name__}")
    in_place = patch_in_place(old, patch) if old is not None else None
    if in_place is not None:
        return in_place
    return checked_entry(agent_id, key, apply_patch(parse_stored(old), patch))


def patch_in_place(old: Stored, patch: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The patched text and columns without parsing the entry (formats/entry_patch.py), or
    None when only the full path can tell: the required fields or the channel change, or
    the stored entry is not a valid one."""
    columns = old.columns
    if columns["session_id"] is None or columns["updated_at"] is None:
        return None
    if "channel" in patch or "deliveryContext" in patch:
        return None  # the channel column may fall back to deliveryContext.channel
    required = {
        "sessionId": patch.get("sessionId", columns["session_id"]),
        "updatedAt": patch.get("updatedAt", columns["updated_at"]),
    }
    if validate_entry(required) is not None:
        return None  # the full path raises the precise error
    text = patch_entry_text(old.text, patch)
    if text is None:
        return None
    # Only the patched fields' columns can change (and the size): `_write` compares just
    # these with the stored ones.
    return text, patched_columns(patch, text)


def put_entry(conn: sqlite3.Connection, agent_id: str, key: str, value: Entry) -> Entry:
    """Replace an entry whole (fields not in `value` are dropped)."""
    _store(conn, agent_id, key, dict(value), _read_stored(conn, agent_id, key))
    return value


def update_entry(
    conn: sqlite3.Connection, agent_id: str, key: str, mutator: Mutator
) -> Entry | None:
    """Read-modify-write as one step: `mutator(entry or None)` returns the new entry, or
    None to leave the index unchanged. It runs inside the write transaction."""
    old = _read_stored(conn, agent_id, key)
    current = parse_stored(old)
    result = mutator(current)
    if result is None:
        return current
    if not isinstance(result, dict):
        raise InvalidEntryError(f"the mutator must return a dict or None, got {type(result)}")
    _store(conn, agent_id, key, result, old)
    return result


def delete_entry(conn: sqlite3.Connection, agent_id: str, key: str) -> bool:
    deleted = conn.execute(_DELETE_ENTRY, {"agent_id": agent_id, "session_key": key}).rowcount
    if deleted:
        conn.execute(_MARK_CHANGED, {"agent_id": agent_id})
    return bool(deleted)


def delete_entries(conn: sqlite3.Connection, agent_id: str, keys: Iterable[str]) -> int:
    """`delete_entry` for many keys in one statement (session maintenance); returns how many
    were there."""
    deleted = conn.execute(
        "DELETE FROM session_entries WHERE agent_id = ? "
        "AND session_key IN (SELECT value FROM json_each(?))",
        (agent_id, orjson.dumps(list(keys)).decode()),
    ).rowcount
    if deleted:
        conn.execute(_MARK_CHANGED, {"agent_id": agent_id})
    return int(deleted)


# A top-level field of an entry stored in canonical 2-space text sits on a line of its own,
# indented by exactly four spaces; nested fields are indented deeper, and a raw newline can
# never occur inside a JSON string. So this pattern finds the top-level updatedAt only.
_UPDATED_AT_LINE = re.compile(r'\n    "updatedAt": (-?[0-9][0-9.eE+-]*)(?=,?\n)')


def check_touch(updated_at: int) -> None:
    if isinstance(updated_at, bool) or not isinstance(updated_at, int):
        raise InvalidEntryError(f"updatedAt must be an integer (epoch ms), got {updated_at!r}")


def touched_text(text: str, problem: str | None, updated_at: int) -> str | None:
    """The stored text with its top-level updatedAt replaced, without a JSON parse; None
    when only a patch can tell (the entry is not in canonical form, or has a problem)."""
    # An imported entry with a problem (no sessionId, ...) must fail exactly as a patch does,
    # not be silently re-stamped: only valid entries take the fast path.
    fast = problem is None and text.startswith("{\n    ")
    found = list(_UPDATED_AT_LINE.finditer(text)) if fast else []
    if len(found) != 1:
        return None
    match = found[0]
    return f"{text[: match.start(1)]}{updated_at}{text[match.end(1) :]}"


def not_found(agent_id: str, key: str) -> NotFoundError:
    return NotFoundError(f"no session {key!r} for agent {agent_id!r}")


def touch_entry(conn: sqlite3.Connection, agent_id: str, key: str, updated_at: int) -> None:
    """The updatedAt fast path: rewrites one number in the stored text, no JSON parse."""
    check_touch(updated_at)
    row = conn.execute(
        "SELECT entry_json, problem FROM session_entries WHERE agent_id = ? AND session_key = ?",
        (agent_id, key),
    ).fetchone()
    if row is None:
        raise not_found(agent_id, key)
    new_text = touched_text(str(row[0]), row[1], updated_at)
    if new_text is None:
        patch_entry(conn, agent_id, key, {"updatedAt": updated_at})
        return
    conn.execute(
        "UPDATE session_entries SET entry_json = ?, updated_at = ?, entry_bytes = ? "
        "WHERE agent_id = ? AND session_key = ?",
        (new_text, updated_at, len(new_text.encode("utf-8", "surrogatepass")), agent_id, key),
    )
    conn.execute(_MARK_CHANGED, {"agent_id": agent_id})


def insert_imported_entries(
    conn: sqlite3.Connection,
    agent_id: str,
    entries: Iterable[tuple[str, int, str, Any, str | None]],
) -> int:
    """Bulk insert of (key, position, text, value, problem) rows from an imported file.

    The agent's `session_indexes` row must exist. Its `next_position` is moved past the
    imported positions, so a key the API adds later goes last, as in JavaScript (without
    this it took position 0 and rendered among the imported keys)."""
    count = 0
    last_position = -1
    for key, position, text, value, problem in entries:
        last_position = max(last_position, position)
        params = {
            "agent_id": agent_id,
            "session_key": key,
            "position": position,
            "entry_json": text,
            "problem": problem,
        }
        params.update(entry_columns(value, text))
        conn.execute(_INSERT_ENTRY, params)
        count += 1
    conn.execute(
        "UPDATE session_indexes SET next_position = max(next_position, ?) WHERE agent_id = ?",
        (last_position + 1, agent_id),
    )
    return count


def replace_imported_entry(
    conn: sqlite3.Connection, agent_id: str, key: str, text: str, value: Any, problem: str | None
) -> None:
    """Store one entry read from an imported file: its row is replaced in place (keeping its
    position), or added after every other key. The index is not marked as changed."""
    columns = entry_columns(value, text)
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    params = {"agent_id": agent_id, "session_key": key, "entry_json": text, "problem": problem}
    params.update(columns)
    updated = conn.execute(
        f"UPDATE session_entries SET entry_json = :entry_json, problem = :problem, {assignments} "
        "WHERE agent_id = :agent_id AND session_key = :session_key",
        params,
    ).rowcount
    if not updated:
        params["position"] = conn.execute(_TAKE_POSITION, {"agent_id": agent_id}).fetchone()[0]
        conn.execute(_INSERT_ENTRY, params)

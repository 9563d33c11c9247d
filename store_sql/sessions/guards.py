"""Compare-and-swap for the session index: writes that hold only if the entry is as expected.

The gateway's writes are read-modify-write: it reads an entry, decides, writes it back. With
an `Expect` the write checks, inside the same writer transaction, that the entry still is
what the caller read (its `sessionId`, its `updatedAt`, its version, or that it exists or
not) and raises `ConflictError` without writing when it is not. Several such writes can be
applied as one transaction (`apply_batch`): all of them or none.

An entry's version is a digest of its stored text, so any change to it (a patch of one
field, a touch) gives a new version; HTTP serves it as the entry's ETag.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from store_sql.errors import ConflictError, InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.sessions import rows as sessions
from store_sql.sessions.rows import Entry


def entry_version(text: str) -> str:
    """The version of an entry's stored text: 16 hex digits of its BLAKE2b digest."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Expect:
    """What the caller expects of an entry before its write; None leaves a part unchecked.

    `exists=False` means "only if there is no entry" (create once); any other part implies
    the entry exists."""

    session_id: str | None = None
    updated_at: int | float | None = None
    version: str | None = None
    exists: bool | None = None

    @property
    def requires_entry(self) -> bool:
        return bool(self.exists) or any(
            v is not None for v in (self.session_id, self.updated_at, self.version)
        )


@dataclass(frozen=True, slots=True)
class EntryText:
    """An entry as stored: its exact text (as sessions.json holds it) and its version."""

    text: str
    version: str

    def value(self) -> Entry:
        parsed: Entry = jsjson.loads(self.text)
        return parsed


def _same_number(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError, OverflowError):
        return False


def check_expect(conn: sqlite3.Connection, agent_id: str, key: str, expect: Expect) -> None:
    """Raise ConflictError unless the entry of `key` is as `expect` says."""
    row = conn.execute(
        "SELECT entry_json, session_id, updated_at FROM session_entries "
        "WHERE agent_id = ? AND session_key = ?",
        (agent_id, key),
    ).fetchone()
    check_stored(agent_id, key, expect, None if row is None else tuple(row))


def check_stored(
    agent_id: str, key: str, expect: Expect, stored: tuple[Any, Any, Any] | None
) -> None:
    """`check_expect` on the stored (entry_json, session_id, updated_at), None: no entry."""
    if stored is None:
        if expect.requires_entry:
            raise ConflictError(f"session {key!r} of agent {agent_id!r} does not exist")
        return
    if expect.exists is False:
        raise ConflictError(f"session {key!r} of agent {agent_id!r} exists already")
    text, session_id, updated_at = str(stored[0]), stored[1], stored[2]
    if expect.session_id is not None and session_id != expect.session_id:
        raise ConflictError(
            f"session {key!r} has sessionId {session_id!r}, not {expect.session_id!r}"
        )
    if expect.updated_at is not None and not _same_number(updated_at, expect.updated_at):
        raise ConflictError(f"session {key!r} has updatedAt {updated_at}, not {expect.updated_at}")
    if expect.version is not None:
        version = entry_version(text)
        if version != expect.version:
            raise ConflictError(f"session {key!r} is at version {version}, not {expect.version}")


def read_entry(conn: sqlite3.Connection, agent_id: str, key: str) -> EntryText | None:
    text = sessions.read_entry_text(conn, agent_id, key)
    return None if text is None else EntryText(text, entry_version(text))


def patch(
    conn: sqlite3.Connection,
    agent_id: str,
    key: str,
    changes: Mapping[str, Any],
    expect: Expect | None,
) -> EntryText:
    if expect is not None:
        check_expect(conn, agent_id, key, expect)
    text = sessions.patch_entry(conn, agent_id, key, changes)
    return EntryText(text, entry_version(text))


def put(
    conn: sqlite3.Connection, agent_id: str, key: str, entry: Entry, expect: Expect | None
) -> EntryText:
    if expect is not None:
        check_expect(conn, agent_id, key, expect)
    if not isinstance(entry, dict):
        raise InvalidEntryError(f"an entry must be a JSON object, got {type(entry).__name__}")
    sessions.put_entry(conn, agent_id, key, entry)
    stored = read_entry(conn, agent_id, key)
    assert stored is not None
    return stored


def delete(conn: sqlite3.Connection, agent_id: str, key: str, expect: Expect | None) -> bool:
    if expect is not None:
        check_expect(conn, agent_id, key, expect)
    return sessions.delete_entry(conn, agent_id, key)


def touch(
    conn: sqlite3.Connection, agent_id: str, key: str, updated_at: int, expect: Expect | None
) -> EntryText:
    if expect is not None:
        check_expect(conn, agent_id, key, expect)
    sessions.touch_entry(conn, agent_id, key, updated_at)
    stored = read_entry(conn, agent_id, key)
    if stored is None:  # pragma: no cover - touch_entry raised already
        raise NotFoundError(f"no session {key!r} for agent {agent_id!r}")
    return stored


OpName = Literal["patch", "put", "delete", "touch"]


@dataclass(frozen=True, slots=True)
class SessionOp:
    """One write of a batch: `patch` (merge `value`), `put` (replace by `value`), `delete`,
    or `touch` (`updated_at`), each with its own optional `expect`."""

    op: OpName
    key: str
    value: Mapping[str, Any] | None = None
    updated_at: int | None = None
    expect: Expect | None = None


@dataclass(frozen=True, slots=True)
class SessionOpResult:
    op: OpName
    key: str
    entry: EntryText | None
    """The entry after the write (None after a delete)."""
    deleted: bool = False


def apply_batch(
    conn: sqlite3.Connection, agent_id: str, ops: Sequence[SessionOp]
) -> list[SessionOpResult]:
    """Every op in order, in the caller's one transaction: the first that fails (a conflict,
    a missing key, a bad entry) raises and, the mutation being one savepoint, none of the
    batch is written. Later ops see the effects of earlier ones."""
    results: list[SessionOpResult] = []
    for op in ops:
        check_op(op)
        if op.op == "patch":
            entry = patch(conn, agent_id, op.key, op.value or {}, op.expect)
            results.append(SessionOpResult(op.op, op.key, entry))
        elif op.op == "put":
            assert op.value is not None
            entry = put(conn, agent_id, op.key, dict(op.value), op.expect)
            results.append(SessionOpResult(op.op, op.key, entry))
        elif op.op == "delete":
            deleted = delete(conn, agent_id, op.key, op.expect)
            results.append(SessionOpResult(op.op, op.key, None, deleted))
        else:
            assert op.updated_at is not None
            entry = touch(conn, agent_id, op.key, op.updated_at, op.expect)
            results.append(SessionOpResult(op.op, op.key, entry))
    return results


def check_op(op: SessionOp) -> None:
    """InvalidEntryError for an op of a batch that misses what it needs, or is unknown."""
    if op.op == "put" and op.value is None:
        raise InvalidEntryError(f"put of {op.key!r} needs an entry")
    if op.op == "touch" and op.updated_at is None:
        raise InvalidEntryError(f"touch of {op.key!r} needs updatedAt")
    if op.op not in ("patch", "put", "delete", "touch"):
        raise InvalidEntryError(f"unknown batch op {op.op!r}: use patch, put, delete or touch")

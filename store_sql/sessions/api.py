"""The async API of the session index: `store.sessions`.

Each method validates its arguments on the caller's side, then hands one function from
`sessions` to the writer (changes) or the reader pool (reads). On PostgreSQL the function
is its twin from `pg_rows` / `pg_guards` / `pg_recovery`, handed to the PostgreSQL engine
(`db.postgres`); which one is `db.dialect`'s choice, made by `Namespace` (its
`_read_rows` / `_write_rows`) and nowhere else. The twins load only for a store on
PostgreSQL (`postgres_twin`), and the transcript append path only for a turn."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from store_sql import addresses
from store_sql.addresses import LEAF
from store_sql.engine.namespace import Namespace, postgres_twin
from store_sql.formats import jsjson
from store_sql.sessions import guards
from store_sql.sessions import rows as sessions
from store_sql.sessions.guards import EntryText, Expect, SessionOp, SessionOpResult
from store_sql.sessions.recovery import IndexRecovery, recover_index
from store_sql.sessions.rows import Entry, ListFilter, Mutator, SessionSummary

if TYPE_CHECKING:
    from store_sql.sessions import pg_guards, pg_recovery, pg_rows, pg_turns
    from store_sql.sessions.turns import TurnResult
else:
    pg_guards = postgres_twin("store_sql.sessions.pg_guards")
    pg_recovery = postgres_twin("store_sql.sessions.pg_recovery")
    pg_rows = postgres_twin("store_sql.sessions.pg_rows")
    pg_turns = postgres_twin("store_sql.sessions.pg_turns")


def _filter(
    updated_after: int | None,
    updated_before: int | None,
    label: str | None,
    chat_type: str | None,
    channel: str | None,
) -> ListFilter:
    addresses.check_int("updated_after", updated_after)
    addresses.check_int("updated_before", updated_before)
    return ListFilter(updated_after, updated_before, label, chat_type, channel)


class SessionIndexAPI(Namespace):
    """Session entries per agent: get, list, patch, update, delete, touch, render."""

    def _key(self, key: str) -> None:
        addresses.check_session_key(key)
        if self._pg is not None:
            pg_rows.check_key(key)

    async def get(self, agent_id: str, key: str) -> Entry | None:
        """The entry of `key`, or None."""
        addresses.check_agent_id(agent_id)
        return await self._read_rows(sessions.get_entry, pg_rows.get_entry, agent_id, key)

    async def list_entries(
        self,
        agent_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        updated_after: int | None = None,
        updated_before: int | None = None,
        label: str | None = None,
        chat_type: str | None = None,
        channel: str | None = None,
    ) -> list[SessionSummary]:
        """Entries newest `updatedAt` first, read from indexed columns only."""
        addresses.check_agent_id(agent_id)
        addresses.check_int("limit", limit, minimum=0)
        addresses.check_int("offset", offset, minimum=0)
        where = _filter(updated_after, updated_before, label, chat_type, channel)
        return await self._read_rows(
            sessions.list_entries, pg_rows.list_entries, agent_id, where, limit, offset
        )

    async def count_entries(
        self,
        agent_id: str,
        *,
        updated_after: int | None = None,
        updated_before: int | None = None,
        label: str | None = None,
        chat_type: str | None = None,
        channel: str | None = None,
    ) -> int:
        """How many entries `list_entries` with the same filters would return, unpaged."""
        addresses.check_agent_id(agent_id)
        where = _filter(updated_after, updated_before, label, chat_type, channel)
        return await self._read_rows(sessions.count_entries, pg_rows.count_entries, agent_id, where)

    async def agents(self) -> list[str]:
        """Agents that have a session index."""
        return await self._read_rows(sessions.list_agents, pg_rows.list_agents)

    async def get_text(self, agent_id: str, key: str) -> EntryText | None:
        """The entry's exact stored text and its version (the ETag over HTTP), or None."""
        addresses.check_agent_id(agent_id)
        return await self._read_rows(guards.read_entry, pg_guards.read_entry, agent_id, key)

    async def patch(
        self, agent_id: str, key: str, patch: Mapping[str, Any], *, expect: Expect | None = None
    ) -> Entry:
        """Merge `patch` into the entry (`None` removes a field) and return the result.

        Creates the entry when missing; the result must have `sessionId` and `updatedAt`.
        With `expect`, ConflictError and nothing written unless the entry is as expected."""
        addresses.check_agent_id(agent_id)
        self._key(key)
        if expect is not None:
            return (await self.patch_text(agent_id, key, patch, expect=expect)).value()
        text = await self._write_rows(
            sessions.patch_entry, pg_rows.patch_entry, agent_id, key, patch
        )
        # Parsed here, not on the writer's thread: the writer is the one everybody waits for.
        entry: Entry = jsjson.loads(text)
        return entry

    async def patch_text(
        self, agent_id: str, key: str, patch: Mapping[str, Any], *, expect: Expect | None = None
    ) -> EntryText:
        """`patch`, answering with the stored text and version instead of a parsed entry."""
        addresses.check_agent_id(agent_id)
        self._key(key)
        return await self._write_rows(guards.patch, pg_guards.patch, agent_id, key, patch, expect)

    async def put(
        self, agent_id: str, key: str, entry: Entry, *, expect: Expect | None = None
    ) -> Entry:
        """Replace the entry whole."""
        addresses.check_agent_id(agent_id)
        self._key(key)
        if expect is not None:
            await self.put_text(agent_id, key, entry, expect=expect)
            return entry
        return await self._write_rows(sessions.put_entry, pg_rows.put_entry, agent_id, key, entry)

    async def put_text(
        self, agent_id: str, key: str, entry: Entry, *, expect: Expect | None = None
    ) -> EntryText:
        """`put`, answering with the stored text and version."""
        addresses.check_agent_id(agent_id)
        self._key(key)
        return await self._write_rows(guards.put, pg_guards.put, agent_id, key, entry, expect)

    async def update(self, agent_id: str, key: str, mutator: Mutator) -> Entry | None:
        """Atomic read-modify-write: `mutator(entry or None) -> new entry or None`.

        The mutator runs on the writer thread inside the transaction, so it must be quick and
        must not touch the store itself; returning None leaves the index unchanged. On
        PostgreSQL the entry's row is locked from the read to the commit, so the step is
        atomic across processes too (compare-and-swap)."""
        addresses.check_agent_id(agent_id)
        self._key(key)
        return await self._write_rows(
            sessions.update_entry, pg_rows.update_entry, agent_id, key, mutator
        )

    async def delete(self, agent_id: str, key: str, *, expect: Expect | None = None) -> bool:
        """Remove the entry; True if it existed."""
        addresses.check_agent_id(agent_id)
        if self._pg is not None:
            return await self._pg.write(lambda c: pg_guards.delete(c, agent_id, key, expect))
        if expect is not None:
            return await self._db.write(lambda c: guards.delete(c, agent_id, key, expect))
        return await self._db.write(lambda c: sessions.delete_entry(c, agent_id, key))

    async def touch(
        self, agent_id: str, key: str, updated_at: int, *, expect: Expect | None = None
    ) -> None:
        """Set `updatedAt` only: the fast path for the gateway's most frequent write."""
        addresses.check_agent_id(agent_id)
        addresses.check_int("updatedAt", updated_at)
        if expect is not None:
            await self.touch_text(agent_id, key, updated_at, expect=expect)
            return
        await self._write_rows(sessions.touch_entry, pg_rows.touch_entry, agent_id, key, updated_at)

    async def recover(self, agent_id: str) -> IndexRecovery:
        """Make the index of an agent whose imported sessions.json could not be read
        writable again: store the entries that read whole, keep the original bytes as
        `sessions.json.invalid-<time>` beside it (export writes them), and report what could
        not be read. Until then every change to that index raises `DamagedIndexError`.

        Raises NotFoundError when the agent has no index, InvalidEntryError when its index
        is not damaged."""
        addresses.check_agent_id(agent_id)
        return await self._write_rows(recover_index, pg_recovery.recover_index, agent_id)

    async def touch_text(
        self, agent_id: str, key: str, updated_at: int, *, expect: Expect | None = None
    ) -> EntryText:
        """`touch`, answering with the entry's stored text and version."""
        addresses.check_agent_id(agent_id)
        addresses.check_int("updatedAt", updated_at)
        return await self._write_rows(
            guards.touch, pg_guards.touch, agent_id, key, updated_at, expect
        )

    async def batch(self, agent_id: str, ops: Sequence[SessionOp]) -> list[SessionOpResult]:
        """Several patches, puts, deletes and touches (each with its own `expect`) as one
        transaction: all are written, or (the first failure raised) none."""
        addresses.check_agent_id(agent_id)
        for op in ops:
            self._key(op.key)
        ops = list(ops)
        return await self._write_rows(guards.apply_batch, pg_guards.apply_batch, agent_id, ops)

    async def turn(
        self,
        agent_id: str,
        key: str,
        entries: Sequence[Mapping[str, Any]],
        *,
        updated_at: int | None = None,
        fields: Mapping[str, Any] | None = None,
        expect_session_id: str | None = None,
        parent_id: str | None = LEAF,
    ) -> TurnResult:
        """One gateway turn in one transaction: append `entries` to the live transcript of
        the session `key` names and merge `{**fields, "updatedAt": updated_at}` (now, in
        epoch ms, unless given) into its entry. With `expect_session_id`, ConflictError and
        nothing written when the key was rebound to another session meanwhile."""
        addresses.check_agent_id(agent_id)
        self._key(key)
        stamp = int(time.time() * 1000) if updated_at is None else updated_at
        if self._pg is not None:
            return await self._pg.write(
                pg_turns.PgTurnMutation(
                    agent_id,
                    key,
                    entries,
                    {**(fields or {}), "updatedAt": stamp},
                    expect_session_id=expect_session_id,
                    parent_id=parent_id,
                )
            )
        # A turn appends: the transcript append path loads with the first one.
        from store_sql.sessions.turns import TurnMutation

        mutation = TurnMutation(
            agent_id,
            key,
            entries,
            {**(fields or {}), "updatedAt": stamp},
            expect_session_id=expect_session_id,
            parent_id=parent_id,
        )
        return await self._db.write(mutation)

    async def render_json(self, agent_id: str) -> bytes | None:
        """The agent's sessions.json exactly as export writes it (None: no index)."""
        addresses.check_agent_id(agent_id)
        return await self._read_rows(
            sessions.render_sessions_json, pg_rows.render_sessions_json, agent_id
        )

"""One gateway turn as one transaction on PostgreSQL: the twin of `sessions/turns.py`.

The session's entry is read `FOR UPDATE` first, so the key cannot be rebound by another
process between the check of `expect_session_id` and the entry's update; the append is the
transcripts twin's (`PgAppendMutation`, which locks the transcript's row), the entry's
update `pg_rows.patch_entry`. A turn in one process and a turn in another lock the entry
before the transcript alike; an append queued in the same group as a turn may lock the
transcript first, and a deadlock that makes is rerun by the writer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from store_sql.engine.pg.connection import PgConnection
from store_sql.sessions import pg_rows
from store_sql.sessions.guards import EntryText, entry_version
from store_sql.sessions.turns import TurnMutation, TurnResult
from store_sql.transcripts.pg_appends import PgAppendMutation


class PgTurnMutation:
    """A turn as a PostgreSQL writer mutation; the entries are checked and serialised on
    the caller's side when it is built, as on SQLite."""

    __slots__ = ("append", "turn")

    def __init__(
        self,
        agent_id: str,
        key: str,
        entries: Sequence[Mapping[str, Any]],
        fields: Mapping[str, Any],
        *,
        expect_session_id: str | None,
        parent_id: str | None,
    ) -> None:
        # The turn's rules (fields, the session check) without its SQLite entries; the
        # entries go to the append, whose target is the session the key names when it runs.
        self.turn = TurnMutation(
            agent_id, key, (), fields, expect_session_id=expect_session_id, parent_id=parent_id
        )
        self.append = PgAppendMutation(agent_id, "", entries, parent_id)

    async def __call__(self, conn: PgConnection) -> TurnResult:
        turn = self.turn
        row = await conn.fetchrow(
            "SELECT session_id FROM session_entries WHERE agent_id = $1 AND session_key = $2 "
            "FOR UPDATE",
            turn.agent_id,
            turn.key,
        )
        session_id = turn.bound_session(row)
        self.append.target = session_id
        appended = await self.append(conn)
        text = await pg_rows.patch_entry(conn, turn.agent_id, turn.key, turn.fields)
        return TurnResult(session_id, appended, EntryText(text, entry_version(text)))

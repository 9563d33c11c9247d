"""One gateway turn as one transaction: append to the session's transcript, update its entry.

After a turn the gateway appends the turn's messages to the transcript and stamps the
session's entry (`updatedAt`, token counts, model, ...). Done as two writes, a reader can see
the transcript ahead of its entry, and a reset between them (the key rebound to a new
session id) makes the entry describe a transcript the messages never reached. Here both
happen in one writer mutation, and `expect_session_id` refuses the turn (ConflictError,
nothing written) when the key no longer names the session the caller worked on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from store_sql.errors import ConflictError, InvalidEntryError, NotFoundError
from store_sql.sessions import rows as sessions
from store_sql.sessions.guards import EntryText, entry_version
from store_sql.transcripts.appends import Appended, append_entries
from store_sql.transcripts.entry_lines import EntryTemplate, prepare_entry
from store_sql.transcripts.rows import require_live


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What a turn wrote: the appended entries and the session's entry after it."""

    session_id: str
    appended: list[Appended]
    entry: EntryText


class TurnMutation:
    """A turn as a writer mutation; the entries are checked and serialised on the caller's
    side when it is built, so a bad entry is refused before anything is queued."""

    __slots__ = ("agent_id", "entries", "expect_session_id", "fields", "key", "parent_id")

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
        if "sessionId" in fields:
            raise InvalidEntryError(
                "a turn cannot change sessionId: reset the session or patch the entry instead"
            )
        self.agent_id = agent_id
        self.key = key
        self.entries: list[EntryTemplate] = [prepare_entry(e) for e in entries]
        self.fields = dict(fields)
        self.expect_session_id = expect_session_id
        self.parent_id = parent_id

    def bound_session(self, row: Any) -> str:
        """The session id the key names (`row`: its session_id column, None: no entry),
        checked against `expect_session_id`."""
        if row is None:
            raise NotFoundError(f"no session {self.key!r} for agent {self.agent_id!r}")
        session_id = row[0]
        if self.expect_session_id is not None and session_id != self.expect_session_id:
            raise ConflictError(
                f"session {self.key!r} is now bound to sessionId {session_id!r}, "
                f"not {self.expect_session_id!r}"
            )
        if not isinstance(session_id, str):
            raise InvalidEntryError(f"session {self.key!r} has no sessionId to append to")
        return session_id

    def __call__(self, conn: sqlite3.Connection) -> TurnResult:
        row = conn.execute(
            "SELECT session_id FROM session_entries WHERE agent_id = ? AND session_key = ?",
            (self.agent_id, self.key),
        ).fetchone()
        session_id = self.bound_session(row)
        info = require_live(conn, self.agent_id, session_id)
        appended = append_entries(conn, info, self.entries, parent_id=self.parent_id)
        text = sessions.patch_entry(conn, self.agent_id, self.key, self.fields)
        return TurnResult(session_id, appended, EntryText(text, entry_version(text)))

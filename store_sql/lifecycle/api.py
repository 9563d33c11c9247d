"""The async API of session life cycles: `store.lifecycle`.

Reset and delete are one writer mutation each. Purging an agent is a sequence of short
mutations (the index first, then each transcript a chunk of lines at a time) so reads and
other writes keep being served while a large agent is removed; running it again after an
interruption finishes the job. On PostgreSQL the functions are the twins in
lifecycle/pg_rows.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from store_sql.addresses import check_agent_id, check_session_key
from store_sql.engine.namespace import Namespace, postgres_twin
from store_sql.lifecycle import rows as lc
from store_sql.lifecycle.rows import DeleteResult, PurgeResult, ResetResult
from store_sql.sessions.guards import Expect, check_expect

if TYPE_CHECKING:
    from store_sql.engine.pg.connection import PgConnection
    from store_sql.lifecycle import pg_rows as pg_lc
    from store_sql.sessions import pg_guards
else:
    pg_lc = postgres_twin("store_sql.lifecycle.pg_rows")
    pg_guards = postgres_twin("store_sql.sessions.pg_guards")


class LifecycleAPI(Namespace):
    """Reset and delete sessions (archiving their transcripts); purge whole agents."""

    async def reset(
        self,
        agent_id: str,
        key: str,
        *,
        cwd: str | None = None,
        keep_fields: Iterable[str] = (),
        expect: Expect | None = None,
    ) -> ResetResult:
        """New `sessionId`/`sessionStartedAt` and an empty transcript for `key`; the old
        transcript becomes `<file>.reset.<time>`. NotFoundError when the key is missing;
        with `expect`, ConflictError and nothing changed unless the entry is as expected."""
        check_agent_id(agent_id)
        check_session_key(key)
        extra = tuple(keep_fields)
        if self._pg is not None:

            async def reset_pg(c: PgConnection) -> ResetResult:
                if expect is not None:
                    await pg_guards.check_expect(c, agent_id, key, expect)
                return await pg_lc.reset_session(c, agent_id, key, cwd=cwd, keep_fields=extra)

            return await self._pg.write(reset_pg)

        def reset(c: sqlite3.Connection) -> ResetResult:
            if expect is not None:
                check_expect(c, agent_id, key, expect)
            return lc.reset_session(c, agent_id, key, cwd=cwd, keep_fields=extra)

        return await self._db.write(reset)

    async def delete(
        self, agent_id: str, key: str, *, archive: bool = True, expect: Expect | None = None
    ) -> DeleteResult:
        """Remove the entry; archive its transcript as `<file>.deleted.<time>` unless another
        entry still uses the session id. With `expect`, ConflictError and nothing changed
        unless the entry is as expected."""
        check_agent_id(agent_id)
        if self._pg is not None:

            async def delete_pg(c: PgConnection) -> DeleteResult:
                if expect is not None:
                    await pg_guards.check_expect(c, agent_id, key, expect)
                return await pg_lc.delete_session(c, agent_id, key, archive=archive)

            return await self._pg.write(delete_pg)

        def delete(c: sqlite3.Connection) -> DeleteResult:
            if expect is not None:
                check_expect(c, agent_id, key, expect)
            return lc.delete_session(c, agent_id, key, archive=archive)

        return await self._db.write(delete)

    async def delete_transcript(
        self, transcript_id: int, *, chunk_lines: int = lc.DELETE_CHUNK_LINES
    ) -> int:
        """Delete one transcript for good, a chunk of lines per transaction; returns the
        number of lines deleted."""
        total = 0
        while True:
            if self._pg is not None:
                deleted, done = await self._pg.write(
                    lambda c: pg_lc.delete_transcript_chunk(c, transcript_id, chunk_lines)
                )
            else:
                deleted, done = await self._db.write(
                    lambda c: lc.delete_transcript_chunk(c, transcript_id, chunk_lines)
                )
            total += deleted
            if done:
                return total

    async def purge_agent(
        self, agent_id: str, *, chunk_lines: int = lc.DELETE_CHUNK_LINES
    ) -> PurgeResult:
        """Remove every entry, transcript, snapshot and kept file of one agent."""
        check_agent_id(agent_id)
        start = await self._write_rows(lc.purge_agent_rows, pg_lc.purge_agent_rows, agent_id)
        lines = 0
        for transcript_id in start.transcript_ids:
            lines += await self.delete_transcript(transcript_id, chunk_lines=chunk_lines)
        return PurgeResult(
            agent_id, start.entries, len(start.transcript_ids), lines, start.snapshots,
            start.files,
        )  # fmt: skip

"""The async API of transcripts: `store.transcripts`.

A transcript is addressed by agent and session id (its live transcript) or by its
`transcript_id` (any transcript: archives, snapshots, old versions). Appends go through the
single writer, so concurrent appends to one transcript always form a chain; reads go to the
reader pool and use SQL walks, never a full load.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from store_sql.addresses import LEAF, Target, check_agent_id, check_int, check_session_id
from store_sql.engine.namespace import Namespace, postgres_twin
from store_sql.errors import ConflictError, InvalidEntryError
from store_sql.formats.js_values import js_trim
from store_sql.sessions.rows import default_rel_dir
from store_sql.transcripts import context as context_mod
from store_sql.transcripts import legacy as legacy
from store_sql.transcripts import reads as reads
from store_sql.transcripts import rows as tx
from store_sql.transcripts.appends import Appended, AppendMutation
from store_sql.transcripts.file_bytes import transcript_blocks
from store_sql.transcripts.reads import Changes, Cursor, StoredEntry, TranscriptCounts, TreeNode
from store_sql.transcripts.rows import TranscriptInfo
from store_sql.transcripts.upgrade import migrate_to_v3

if TYPE_CHECKING:
    import asyncpg

    from store_sql.transcripts import pg_appends, pg_reads, pg_rows, pg_upgrade
else:
    pg_appends = postgres_twin("store_sql.transcripts.pg_appends")
    pg_reads = postgres_twin("store_sql.transcripts.pg_reads")
    pg_rows = postgres_twin("store_sql.transcripts.pg_rows")
    pg_upgrade = postgres_twin("store_sql.transcripts.pg_upgrade")


T = TypeVar("T")
"""A session id (its live transcript) or a transcript_id."""

PgRead = Callable[["asyncpg.Connection", TranscriptInfo], Awaitable[T]]
"""A PostgreSQL read of a resolved transcript (the twin of a SQLite read)."""


def _resolve(conn: sqlite3.Connection, agent_id: str, target: Target) -> TranscriptInfo:
    return tx.resolve_target(conn, agent_id, target)


def _drop_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    # JSON.stringify leaves out `undefined` fields; optional arguments left at None do too.
    return {k: v for k, v in fields.items() if v is not None}


class TranscriptAPI(Namespace):
    """Create, append to and read transcripts.

    Every read and write names its SQLite function and its PostgreSQL twin side by side
    (`pg_rows`, `pg_reads`, `pg_appends`); the database's dialect picks one."""

    async def _read(
        self,
        agent_id: str,
        target: Target,
        fn: Callable[[sqlite3.Connection, int], T],
        pg: PgRead[T],
    ) -> T:
        check_agent_id(agent_id)
        if self._pg is not None:

            async def read_pg(conn: asyncpg.Connection) -> T:
                return await pg(conn, await pg_rows.resolve_target(conn, agent_id, target))

            return await self._pg.read(read_pg)
        return await self._db.read(lambda c: fn(c, _resolve(c, agent_id, target).transcript_id))

    async def _read_tree(
        self,
        agent_id: str,
        target: Target,
        stored: Callable[[sqlite3.Connection, TranscriptInfo], T],
        migrated: Callable[[legacy.MigratedTranscript], T],
        pg: PgRead[T],
    ) -> T:
        """A read of the entry tree: of the stored lines for a v3 transcript, of pi's
        in-memory migration for a v1/v2 one (legacy.py)."""
        check_agent_id(agent_id)
        if self._pg is not None:

            async def read_pg(conn: asyncpg.Connection) -> T:
                info = await pg_rows.resolve_target(conn, agent_id, target)
                if legacy.is_legacy(info):
                    return migrated(await pg_reads.migrated(conn, info))
                return await pg(conn, info)

            return await self._pg.read(read_pg)

        def read(conn: sqlite3.Connection) -> T:
            info = _resolve(conn, agent_id, target)
            if legacy.is_legacy(info):
                return migrated(legacy.load_migrated(conn, info))
            return stored(conn, info)

        return await self._db.read(read)

    # --- identities -----------------------------------------------------------------------

    async def create(
        self,
        agent_id: str,
        session_id: str,
        *,
        cwd: str,
        parent_session: str | None = None,
        timestamp: str | None = None,
    ) -> TranscriptInfo:
        """Start the live transcript of a session with a v3 header, as the gateway would."""
        check_agent_id(agent_id)
        check_session_id(session_id)
        return await self._write_rows(
            tx.create_transcript,
            pg_rows.create_transcript,
            agent_id,
            session_id,
            rel_dir=default_rel_dir(agent_id),
            cwd=cwd,
            parent_session=parent_session,
            timestamp=timestamp,
        )

    async def info(self, agent_id: str, target: Target) -> TranscriptInfo:
        """Identity, leaf and counters of a transcript (no lines read)."""
        check_agent_id(agent_id)
        return await self._read_rows(tx.resolve_target, pg_rows.resolve_target, agent_id, target)

    async def find(self, agent_id: str, session_id: str) -> TranscriptInfo | None:
        """The live transcript of a session, or None."""
        check_agent_id(agent_id)
        return await self._read_rows(tx.find_live, pg_rows.find_live, agent_id, session_id)

    async def list_transcripts(
        self, agent_id: str, *, session_id: str | None = None
    ) -> list[TranscriptInfo]:
        """Every transcript of an agent (or of one session): live, archives, versions."""
        check_agent_id(agent_id)
        return await self._read_rows(
            tx.list_transcripts, pg_rows.list_transcripts, agent_id, session_id=session_id
        )

    # --- appends --------------------------------------------------------------------------

    async def append(
        self,
        agent_id: str,
        target: Target,
        entries: Sequence[Mapping[str, Any]],
        *,
        parent_id: str | None = LEAF,
    ) -> list[Appended]:
        """Append entries as a chain below the leaf (or below `parent_id`; None: a new root).

        Each entry is `{"type": ..., <fields>}`; the store adds `id`, `parentId` and
        `timestamp` (unless given) where pi puts them. A message whose
        `message.idempotencyKey` is already present is not written again."""
        check_agent_id(agent_id)
        if self._pg is not None:
            pg_mutation = pg_appends.PgAppendMutation(agent_id, target, list(entries), parent_id)
            return await self._pg.write(pg_mutation)
        mutation = AppendMutation(agent_id, target, list(entries), parent_id)
        return await self._db.write(mutation)

    async def _append_one(
        self, agent_id: str, target: Target, fields: dict[str, Any], parent_id: str | None = LEAF
    ) -> Appended:
        # `append` of one entry, one coroutine frame shorter: the convenience appends are
        # the gateway's hot path (tools/bench concurrent appends).
        check_agent_id(agent_id)
        if self._pg is not None:
            mutation = pg_appends.PgAppendMutation(agent_id, target, (fields,), parent_id)
            return (await self._pg.write(mutation))[0]
        return (await self._db.write(AppendMutation(agent_id, target, (fields,), parent_id)))[0]

    async def append_message(
        self, agent_id: str, target: Target, message: Mapping[str, Any]
    ) -> Appended:
        """A `message` entry (user, assistant, toolResult, bashExecution, custom, ...)."""
        return await self._append_one(agent_id, target, {"type": "message", "message": message})

    async def append_model_change(
        self, agent_id: str, target: Target, provider: str, model_id: str
    ) -> Appended:
        fields = {"type": "model_change", "provider": provider, "modelId": model_id}
        return await self._append_one(agent_id, target, fields)

    async def append_thinking_level_change(
        self, agent_id: str, target: Target, thinking_level: str
    ) -> Appended:
        fields = {"type": "thinking_level_change", "thinkingLevel": thinking_level}
        return await self._append_one(agent_id, target, fields)

    async def append_compaction(
        self,
        agent_id: str,
        target: Target,
        summary: str,
        first_kept_entry_id: str,
        tokens_before: int,
        *,
        details: Any = None,
        from_hook: bool | None = None,
    ) -> Appended:
        fields = {
            "type": "compaction",
            "summary": summary,
            "firstKeptEntryId": first_kept_entry_id,
            "tokensBefore": tokens_before,
            "details": details,
            "fromHook": from_hook,
        }
        return await self._append_one(agent_id, target, _drop_none(fields))

    async def append_branch_summary(
        self,
        agent_id: str,
        target: Target,
        from_id: str | None,
        summary: str,
        *,
        details: Any = None,
        from_hook: bool | None = None,
    ) -> Appended:
        """pi's branchWithSummary: the summary becomes a child of `from_id` (None: a root)."""
        fields = {
            "type": "branch_summary",
            "fromId": from_id if from_id is not None else "root",
            "summary": summary,
            "details": details,
            "fromHook": from_hook,
        }
        return await self._append_one(agent_id, target, _drop_none(fields), parent_id=from_id)

    async def append_custom(
        self, agent_id: str, target: Target, custom_type: str, data: Any = None
    ) -> Appended:
        fields = _drop_none({"type": "custom", "customType": custom_type, "data": data})
        return await self._append_one(agent_id, target, fields)

    async def append_custom_message(
        self,
        agent_id: str,
        target: Target,
        custom_type: str,
        content: str | list[Any],
        display: bool,
        details: Any = None,
    ) -> Appended:
        fields = {
            "type": "custom_message",
            "customType": custom_type,
            "content": content,
            "display": display,
            "details": details,
        }
        return await self._append_one(agent_id, target, _drop_none(fields))

    async def append_label(
        self, agent_id: str, target: Target, target_id: str, label: str | None
    ) -> Appended:
        """Set (or with None/"" clear) the label of an entry."""
        fields = _drop_none({"type": "label", "targetId": target_id, "label": label})
        return await self._append_one(agent_id, target, fields)

    async def append_session_info(self, agent_id: str, target: Target, name: str) -> Appended:
        fields = {"type": "session_info", "name": js_trim(name)}
        return await self._append_one(agent_id, target, fields)

    async def migrate_to_v3(self, agent_id: str, target: Target) -> TranscriptInfo:
        """Write the v3 form of a v1/v2 transcript as a new version; the original is kept."""
        check_agent_id(agent_id)
        if self._pg is not None:

            async def migrate_pg(conn: asyncpg.Connection) -> TranscriptInfo:
                info = await pg_rows.resolve_target(conn, agent_id, target)
                return await pg_upgrade.migrate_to_v3(conn, info.transcript_id)

            return await self._pg.write(migrate_pg)
        return await self._db.write(
            lambda c: migrate_to_v3(c, _resolve(c, agent_id, target).transcript_id)
        )

    # --- reads ----------------------------------------------------------------------------

    # Reads of the tree of a v1/v2 transcript see it as pi does after migrating it, without
    # writing anything: v1 entries carry derived ids (legacy.derived_id).

    async def entry(self, agent_id: str, target: Target, entry_id: str) -> StoredEntry:
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: reads.entry_by_id(c, i.transcript_id, entry_id),
            lambda m: m.entry(entry_id),
            lambda c, i: pg_reads.entry_by_id(c, i.transcript_id, entry_id),
        )

    async def children(self, agent_id: str, target: Target, entry_id: str) -> list[StoredEntry]:
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: reads.children(c, i.transcript_id, entry_id),
            lambda m: m.children(entry_id),
            lambda c, i: pg_reads.children(c, i.transcript_id, entry_id),
        )

    async def leaf(self, agent_id: str, target: Target) -> StoredEntry | None:
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: reads.leaf(c, i.transcript_id),
            lambda m: m.leaf,
            pg_reads.leaf,
        )

    async def active_path(
        self, agent_id: str, target: Target, to_entry_id: str | None = None
    ) -> list[StoredEntry]:
        """Root -> leaf (or -> `to_entry_id`)."""
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: reads.active_path(c, i, to_entry_id),
            lambda m: m.path(to_entry_id),
            lambda c, i: pg_reads.active_path(c, i, to_entry_id),
        )

    async def tree(self, agent_id: str, target: Target) -> list[TreeNode]:
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: reads.tree(c, i.transcript_id),
            lambda m: m.tree(),
            lambda c, i: pg_reads.tree(c, i.transcript_id),
        )

    async def labels(self, agent_id: str, target: Target) -> dict[str, str]:
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: reads.labels(c, i.transcript_id),
            lambda m: m.labels(),
            lambda c, i: pg_reads.labels(c, i.transcript_id),
        )

    async def session_name(self, agent_id: str, target: Target) -> str | None:
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: reads.session_name(c, i.transcript_id),
            lambda m: m.session_name(),
            lambda c, i: pg_reads.session_name(c, i.transcript_id),
        )

    async def context(
        self, agent_id: str, target: Target, leaf_id: str | None = None
    ) -> context_mod.SessionContext:
        """The model context, as pi's buildSessionContext builds it."""
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: context_mod.build_context(c, i.transcript_id, leaf_id),
            lambda m: m.context(leaf_id),
            lambda c, i: pg_reads.context(c, i, leaf_id),
        )

    async def recent(
        self,
        agent_id: str,
        target: Target,
        *,
        limit: int = 50,
        max_bytes: int | None = None,
        types: frozenset[str] | None = None,
    ) -> list[StoredEntry]:
        """The last `limit` (<= 1000) entries of the active path within `max_bytes`."""
        check_int("limit", limit, minimum=0)
        check_int("max_bytes", max_bytes, minimum=0)
        if self._pg is not None and type(target) is str:
            check_agent_id(agent_id)
            session_id: str = target
            return await self._pg.read(
                lambda c: pg_reads.recent_of_session(
                    c, agent_id, session_id, limit=limit, max_bytes=max_bytes, types=types
                ),
                single_statement=True,
            )
        return await self._read_tree(
            agent_id,
            target,
            lambda c, i: reads.recent_entries(c, i, limit=limit, max_bytes=max_bytes, types=types),
            lambda m: m.recent(limit=limit, max_bytes=max_bytes, types=types),
            lambda c, i: pg_reads.recent_entries(
                c, i, limit=limit, max_bytes=max_bytes, types=types
            ),
        )

    async def page(
        self,
        agent_id: str,
        target: Target,
        *,
        after_pos: int | None = None,
        before_pos: int | None = None,
        limit: int = 100,
    ) -> list[StoredEntry]:
        """Lines in file order after or before a position."""
        check_int("after_pos", after_pos)
        check_int("before_pos", before_pos)
        check_int("limit", limit, minimum=0)
        return await self._read(
            agent_id,
            target,
            lambda c, t: reads.page(c, t, after_pos=after_pos, before_pos=before_pos, limit=limit),
            lambda c, i: pg_reads.page(
                c, i.transcript_id, after_pos=after_pos, before_pos=before_pos, limit=limit
            ),
        )

    async def changes_since(
        self, agent_id: str, session_id: str, cursor: Cursor | None, *, limit: int = 1000
    ) -> Changes:
        """Lines added to the session's live transcript since `cursor`; `replaced` tells the
        caller the transcript was reset, migrated or re-imported and to start over."""
        check_agent_id(agent_id)
        if cursor is not None and not isinstance(cursor, Cursor):
            raise InvalidEntryError(
                f"cursor must be None or the Cursor of an earlier call, got {cursor!r}"
            )
        check_int("limit", limit, minimum=0)
        if self._pg is not None:

            async def changes_pg(conn: asyncpg.Connection) -> Changes:
                live = await pg_rows.require_live(conn, agent_id, session_id)
                return await pg_reads.changes_since(conn, live, cursor, limit)

            return await self._pg.read(changes_pg)
        return await self._db.read(
            lambda c: reads.changes_since(
                c, tx.require_live(c, agent_id, session_id), cursor, limit
            )
        )

    async def counts(self, agent_id: str, target: Target) -> TranscriptCounts:
        return await self._read(
            agent_id, target, reads.counts, lambda c, i: pg_reads.counts(c, i.transcript_id)
        )

    async def file_chunks(
        self, agent_id: str, target: Target, *, chunk_lines: int = 4096
    ) -> AsyncIterator[bytes]:
        """The transcript as its JSONL file, read `chunk_lines` lines per snapshot: the
        bytes `file_bytes` returned when the first chunk was read, in flat memory.

        Stored lines never change and appends only add lines after them, so later chunks
        read the same lines the first snapshot saw. A transcript replaced or deleted
        meanwhile (its generation moved) raises ConflictError before any further byte."""
        info = await self.info(agent_id, target)
        tid, generation = info.transcript_id, info.generation
        last = info.line_count - 1
        wrote = False
        low = 0
        while low <= last:
            high = min(low + chunk_lines - 1, last)

            def check(now: TranscriptInfo) -> None:
                if now.generation != generation:
                    raise ConflictError(
                        f"transcript {info.file_name} was replaced while it was read; read again"
                    )

            def chunk(c: sqlite3.Connection, low: int = low, high: int = high) -> list[bytes]:
                check(tx.get_info(c, tid))
                return list(transcript_blocks(c, tid, from_pos=low, upto_pos=high, newline=False))

            async def chunk_pg(
                c: asyncpg.Connection, low: int = low, high: int = high
            ) -> list[bytes]:
                check(await pg_rows.get_info(c, tid))
                blocks = pg_reads.transcript_blocks(c, tid, from_pos=low, upto_pos=high,
                                                    newline=False)  # fmt: skip
                return [block async for block in blocks]

            if self._pg is not None:
                blocks: list[bytes] = await self._pg.read(chunk_pg)
            else:
                blocks = await self._db.read(chunk)
            if blocks:
                if wrote:
                    yield b"\n"
                for block in blocks:
                    yield block
                wrote = True
            low = high + 1
        if wrote and info.ends_with_newline:
            yield b"\n"

    async def file_bytes(self, agent_id: str, target: Target) -> bytes:
        """The transcript as its JSONL file (exactly as export writes it)."""

        async def read_pg(conn: asyncpg.Connection, info: TranscriptInfo) -> bytes:
            blocks = pg_reads.transcript_blocks(conn, info.transcript_id)
            return b"".join([block async for block in blocks])

        return await self._read(
            agent_id, target, lambda c, t: b"".join(transcript_blocks(c, t)), read_pg
        )

"""`store.search`: the async API of full-text search, and rebuilding the index.

Queries run on a pooled reader (`search.search_entries`); a rebuild empties entry_text_fts
and refills it through the writer one batch at a time, so appends go on in between.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from store_sql.engine.namespace import postgres_twin
from store_sql.search.indexer import catch_up, clear_index, index_pending
from store_sql.search.query import (
    DEFAULT_LIMIT,
    REBUILD_BATCH,
    RebuildReport,
    SearchQuery,
    SearchResult,
    normalize_since,
    search_entries,
)

if TYPE_CHECKING:
    from store_sql.engine.database import Database
    from store_sql.search import pg_indexer, pg_query
else:
    pg_indexer = postgres_twin("store_sql.search.pg_indexer")
    pg_query = postgres_twin("store_sql.search.pg_query")


# --- rebuilding ------------------------------------------------------------------------------


async def rebuild_index(
    db: Database,
    *,
    batch_size: int = REBUILD_BATCH,
    progress: Callable[[RebuildReport], None] | None = None,
) -> RebuildReport:
    """Empty entry_text_fts and index every line again, one writer step at a time, so
    appends go on in between. Searches meanwhile scan the lines not indexed yet (up to
    `BACKLOG_LIMIT`; past it they report what they could not search)."""
    report = RebuildReport()
    async with db.indexing_paused():
        report.upto_line_pk = await db.write(_clear)
        while True:
            step = await db.write(
                partial(index_pending, batch_size=batch_size, count_unreadable=True)
            )
            report.batches += 1
            report.lines_read += step.lines_read
            report.rows_indexed += step.rows_indexed
            report.unreadable += step.unreadable
            if progress is not None:
                progress(report)
            if step.lines_read < batch_size:
                return report


def _clear(conn: sqlite3.Connection) -> int:
    clear_index(conn)
    row = conn.execute("SELECT coalesce(max(line_pk), 0) FROM transcript_lines").fetchone()
    return int(row[0])


# --- the async API ---------------------------------------------------------------------------


class SearchAPI:
    """Full-text search over entries: `store.search`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pg = db.postgres if db.dialect == "postgresql" else None

    async def find(
        self,
        text: str,
        *,
        agent_id: str | None = None,
        session: str | None = None,
        role: str | None = None,
        since: str | None = None,
        active_path_only: bool = False,
        kinds: Sequence[str] = (),
        limit: int = DEFAULT_LIMIT,
        raw: bool = False,
    ) -> SearchResult:
        """Entries whose text contains `text` (case-insensitive), newest first.

        `session` is a session key or a session id; `since` an ISO time; `kinds` limits the
        transcript kinds (live, reset, deleted, ...); `active_path_only` keeps entries on the
        active path of their transcript; `raw` takes `text` as an FTS5 query."""
        query = SearchQuery(
            text=text,
            agent_id=agent_id,
            session=session,
            role=role,
            since=since,
            active_path_only=active_path_only,
            kinds=tuple(kinds),
            limit=limit,
            raw=raw,
        )
        if query.since is not None:
            normalize_since(query.since)  # fail on the caller's side, before the hop
        if self._pg is not None:
            return await self._pg.read(lambda c: pg_query.search_entries(c, query))
        return await self._db.read(lambda c: search_entries(c, query))

    async def catch_up(self) -> int:
        """Index every line written so far now, rather than in the writer's idle time (after
        a large import, before a burst of searches); returns the lines indexed. The
        background indexer waits meanwhile, so the two never take turns on the same lines.
        On PostgreSQL the steps claim the queued lines no other process is indexing."""
        if self._pg is not None:
            async with self._db.indexing_paused():
                return await pg_indexer.catch_up(self._pg.write)
        async with self._db.indexing_paused():
            return await catch_up(self._db.write)

    async def rebuild(
        self,
        *,
        batch_size: int = REBUILD_BATCH,
        progress: Callable[[RebuildReport], None] | None = None,
    ) -> RebuildReport:
        """Rebuild the full-text index from the stored lines (see `rebuild_index`; on
        PostgreSQL `rebuild_on_postgres`)."""
        if self._pg is not None:
            return await self._rebuild_on_postgres(batch_size, progress)
        return await rebuild_index(self._db, batch_size=batch_size, progress=progress)

    async def _rebuild_on_postgres(
        self, batch_size: int, progress: Callable[[RebuildReport], None] | None
    ) -> RebuildReport:
        """Empty `search_text` and queue every entry line in one writer transaction, then
        index the queue one writer step at a time, so appends go on in between. Searches
        meanwhile compute the text of the queued lines (up to `BACKLOG_LIMIT`; past it they
        report what they could not search), as on SQLite."""
        assert self._pg is not None
        pg = self._pg
        report = RebuildReport()
        async with self._db.indexing_paused():
            await pg.write(pg_indexer.queue_every_line)
            while True:
                step = await pg.write(partial(pg_indexer.index_step, batch_size=batch_size))
                report.batches += 1
                report.lines_read += step.lines_read
                report.rows_indexed += step.rows_indexed
                if progress is not None:
                    progress(report)
                if step.lines_read < batch_size:
                    break
            counts = await pg.read(pg_query.index_counts)
        report.unreadable = counts.unreadable
        report.upto_line_pk = counts.upto_line_pk
        return report

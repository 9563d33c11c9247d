"""`store.search`: the async API of full-text search, and rebuilding the index.

Queries run on a pooled reader (`search.search_entries`); a rebuild empties entry_text_fts
and refills it through the writer one batch at a time, so appends go on in between.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from store_sql.search import pg_query
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
        On PostgreSQL every line is indexed as it is written: 0 at once."""
        if self._pg is not None:
            return 0
        async with self._db.indexing_paused():
            return await catch_up(self._db.write)

    async def rebuild(
        self,
        *,
        batch_size: int = REBUILD_BATCH,
        progress: Callable[[RebuildReport], None] | None = None,
    ) -> RebuildReport:
        """Rebuild the full-text index from the stored lines (see `rebuild_index`). On
        PostgreSQL one REINDEX in one writer transaction (`batch_size` does not apply)."""
        if self._pg is not None:
            report = await self._pg.write(pg_query.rebuild_index)
            if progress is not None:
                progress(report)
            return report
        return await rebuild_index(self._db, batch_size=batch_size, progress=progress)

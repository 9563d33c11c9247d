"""The facade: opening a database, wiring the writer and the readers, the async API.

Every public coroutine here does its SQLite work on a connection thread: changes go to the
single writer (group commit), reads to the pool of read-only connections. Nothing blocks the
caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from store_sql.checkpoints.api import CheckpointAPI
from store_sql.engine.damage import corruption_error, is_corruption
from store_sql.engine.opening import OpenReport, prepare
from store_sql.engine.pragmas import EngineSettings, Synchronous, configure_writer
from store_sql.engine.readers import ReaderPool
from store_sql.engine.thread_conn import ThreadConnection
from store_sql.engine.wal import file_size, truncate_wal_file, wal_path
from store_sql.engine.writer import Writer
from store_sql.errors import StoreClosedError, WriteFailedError
from store_sql.lifecycle.api import LifecycleAPI
from store_sql.maintenance.api import MaintenanceAPI
from store_sql.maintenance.steps import free_pages, vacuum_step
from store_sql.search.api import SearchAPI
from store_sql.search.indexer import BackgroundIndexer, lines_waiting
from store_sql.sessions.api import SessionIndexAPI
from store_sql.transcripts.api import TranscriptAPI

T = TypeVar("T")

DEFAULT_DB_ENV = "STORE_SQL_DB"


class Store:
    """A store_sql database opened for use by one process.

    Open with `await Store.open(path)` (or `async with await Store.open(path) as store`);
    `close()` commits everything already submitted, then releases the connections."""

    def __init__(
        self,
        path: Path,
        writer: Writer,
        readers: ReaderPool,
        report: OpenReport,
        *,
        full_text: bool = True,
        lines_waiting: bool = True,
    ) -> None:
        self.path = path
        self.open_report = report
        self.full_text = full_text
        """Whether the background indexer keeps the full-text index current (`Store.open`)."""
        self._writer = writer
        self._readers = readers
        self._closed = False
        self._indexer: BackgroundIndexer | None = None
        if full_text:
            self._indexer = BackgroundIndexer(
                partial(writer.submit, background=True), writer.idle_for, writer.callers_waiting
            )
            self._indexer.start(lines_waiting=lines_waiting)
        self.sessions = SessionIndexAPI(self)
        """The session index (sessions.json) of every agent."""
        self.transcripts = TranscriptAPI(self)
        """Transcripts: appends, tree and context reads."""
        self.checkpoints = CheckpointAPI(self)
        """Compaction checkpoints: persist, list, get, branch, restore."""
        self.lifecycle = LifecycleAPI(self)
        """Session reset and delete (archiving transcripts), agent purge."""
        self.maintenance = MaintenanceAPI(self)
        """Cleanup by the gateway's policy: prune, cap, archive, disk budget, vacuum."""
        self.search = SearchAPI(self)
        """Full-text search over entries, and rebuilding its index."""

    # --- life cycle ----------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        readers: int = 4,
        upgrade: bool = True,
        backup_before_upgrade: bool = True,
        busy_timeout_ms: int = 5000,
        full_text: bool = True,
        settings: EngineSettings | None = None,
        create: bool = True,
    ) -> Store:
        """Open (creating or upgrading as needed) the database at `path`.

        `path` must be a regular file or missing: a directory, FIFO or device is refused
        and left alone. `create=False` refuses a missing (or 0-byte) file instead of
        creating a database there (for callers that only read).

        Refuses, without modifying it, a file that is not a store_sql database, is corrupt,
        or has a newer schema revision than this code (`DatabaseRefusedError`).

        Lines are indexed for full-text search behind the writes, in the writer's idle time
        (search/indexer.py); `full_text=False` turns that indexing off for this process, for a
        gateway that never searches. Searches still find recent lines by scanning what is
        not indexed yet, up to `search.indexer.BACKLOG_LIMIT` lines (they say so past it);
        `store.search.catch_up()` or `store-sql search --catch-up` indexes the rest."""
        db_path = Path(os.path.abspath(path))  # noqa: ASYNC240 - a getcwd, no disk I/O
        cfg = settings or EngineSettings(
            synchronous=synchronous, readers=readers, busy_timeout_ms=busy_timeout_ms
        )
        report = await asyncio.to_thread(
            prepare, db_path, upgrade=upgrade, backup=backup_before_upgrade, create=create
        )
        conn = await ThreadConnection.open(
            str(db_path), uri=False, setup=lambda c: configure_writer(c, cfg)
        )
        try:
            pool = await ReaderPool.open(str(db_path), cfg)
        except BaseException:
            await conn.close()
            raise
        writer = Writer(conn, wal_path(db_path), cfg)
        writer.start()
        try:
            waiting = full_text and await pool.run(lines_waiting)
        except BaseException:
            await writer.close()
            await pool.close()
            raise
        return cls(db_path, writer, pool, report, full_text=full_text, lines_waiting=waiting)

    async def close(self) -> None:
        """Drain the write queue, checkpoint, and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._indexer is not None:
            await self._indexer.close()
        # Pages freed while open (index merges, deleted rows) are reused by later writes;
        # on close they go back to the file system, so a closed store takes no more disk
        # than its data. At most one step's worth: a close stays short.
        # Checked on a reader first: the step needs the write lock, and another process
        # holding it must not cost a closing store a busy_timeout when there is nothing
        # to give back.
        with contextlib.suppress(Exception):
            if await self._readers.run(free_pages):
                await self._writer.submit(vacuum_step, background=True)
        await self._writer.close()
        await self._readers.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the two doors to SQLite (used by every module of the API) ------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the writer's next group transaction (advanced use)."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        try:
            result = await self._writer.submit(fn)
        except WriteFailedError as exc:
            if exc.__cause__ is not None and is_corruption(exc.__cause__):
                raise corruption_error(self.path, exc.__cause__) from exc
            raise
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                raise corruption_error(self.path, exc) from exc
            raise
        # Only a write that committed brings lines to index: after a refused one (another
        # process holding the lock) an indexing step would only wait busy_timeout again.
        if self._indexer is not None:
            self._indexer.poke()
        return result

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on a pooled read-only connection, in one snapshot."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        try:
            return await self._readers.run(fn)
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                raise corruption_error(self.path, exc) from exc
            raise

    async def truncate_wal(self, timeout_s: float = 0.25) -> bool:
        """Fold the WAL into the database and truncate it to 0 bytes, waiting at most
        `timeout_s` for readers (new writes wait meanwhile); True when it completed."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        return await asyncio.to_thread(truncate_wal_file, self.path, timeout_s)

    @property
    def write_queue_depth(self) -> int:
        """Writes queued for the writer now (a server answers BUSY past its limit)."""
        return self._writer.queue_depth

    @property
    def indexer(self) -> BackgroundIndexer | None:
        """The background full-text indexer (None with `full_text=False`)."""
        return self._indexer

    def indexing_paused(self) -> contextlib.AbstractAsyncContextManager[None]:
        """No background indexing step runs inside (bulk imports, index rebuilds)."""
        if self._indexer is None:
            return contextlib.nullcontext()
        return self._indexer.paused()

    def metrics(self) -> dict[str, Any]:
        """Queue depth, batch sizes, transaction times, WAL size and checkpoints; with the
        background indexer on, its steps, lines read and failures (the last error kept)."""
        m = self._writer.metrics.as_dict(self._writer.queue_depth)
        m["readers"] = self._readers.size
        m["readers_busy"] = self._readers.busy
        m["reads"] = self._readers.reads
        if self._indexer is not None:
            m["index_steps"] = self._indexer.steps
            m["index_lines"] = self._indexer.lines_indexed
            m["index_failures"] = self._indexer.failures
            m["index_last_error"] = self._indexer.last_error
        m["wal_bytes"] = file_size(wal_path(self.path))
        return m

"""The facade: opening a database, wiring the writer and the readers, the async API.

Every public coroutine here does its SQLite work on a connection thread: changes go to the
single writer (group commit), reads to the pool of read-only connections. Nothing blocks the
caller's event loop.

`Store.open("postgresql://...")` opens the same store on PostgreSQL (engine/pg/): the
namespaces listed in `POSTGRES_NAMESPACES` run there through their PostgreSQL twins; the
others raise `BackendNotSupportedError` on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from store_sql.engine.damage import corruption_error, is_corruption
from store_sql.engine.opening import OpenReport, prepare
from store_sql.engine.pg.url import is_postgres_url
from store_sql.engine.pragmas import EngineSettings, Synchronous, configure_writer
from store_sql.engine.readers import ReaderPool
from store_sql.engine.thread_conn import ThreadConnection
from store_sql.engine.vacuum import free_pages, vacuum_step
from store_sql.engine.wal import file_size, truncate_wal_file, wal_path
from store_sql.engine.writer import Writer
from store_sql.errors import BackendNotSupportedError, StoreClosedError, WriteFailedError
from store_sql.search.indexer import BackgroundIndexer, lines_waiting

if TYPE_CHECKING:
    from store_sql.checkpoints.api import CheckpointAPI
    from store_sql.engine.pg.database import PgDatabase
    from store_sql.lifecycle.api import LifecycleAPI
    from store_sql.maintenance.api import MaintenanceAPI
    from store_sql.search.api import SearchAPI
    from store_sql.search.pg_indexer import PgSearchIndexer
    from store_sql.sessions.api import SessionIndexAPI
    from store_sql.transcripts.api import TranscriptAPI

T = TypeVar("T")

Dialect = Literal["sqlite", "postgresql"]

POSTGRES_NAMESPACES = frozenset(
    {"sessions", "transcripts", "search", "lifecycle", "maintenance", "checkpoints"}
)
"""The namespaces that run on PostgreSQL; the others raise BackendNotSupportedError there."""


class _NotOnPostgres:
    """Stands in for a namespace not on PostgreSQL yet: any use raises, naming it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise BackendNotSupportedError.not_yet(f"store.{self._name}")


class Store:
    """A store_sql database opened for use by one process.

    Open with `await Store.open(path)` (or `async with await Store.open(path) as store`);
    `close()` commits everything already submitted, then releases the connections.
    `await Store.open("postgresql://...")` opens the store on PostgreSQL instead."""

    def __init__(
        self,
        path: Path | None,
        writer: Writer | None,
        readers: ReaderPool | None,
        report: OpenReport,
        *,
        full_text: bool = True,
        lines_waiting: bool = True,
        postgres: PgDatabase | None = None,
    ) -> None:
        self._path = path
        self._postgres = postgres
        self.dialect: Dialect = "postgresql" if postgres is not None else "sqlite"
        """Which database the store is on: "sqlite" or "postgresql"."""
        self.location: str = postgres.location if postgres is not None else str(path)
        """Where the store is: the SQLite file's path, or the URL with its password masked."""
        self.open_report = report
        self.full_text = full_text
        """Whether the background indexer keeps the full-text index current (`Store.open`)."""
        self._writer = writer
        self._readers = readers
        self._closed = False
        self._indexer: BackgroundIndexer | PgSearchIndexer | None = None
        if self.full_text and postgres is not None:
            from store_sql.search.pg_indexer import PgSearchIndexer

            pg_indexer = PgSearchIndexer(postgres.connect, postgres.idle_for)
            postgres.on_write = pg_indexer.poke
            pg_indexer.start()
            self._indexer = pg_indexer
        elif self.full_text and writer is not None and readers is not None:
            self._indexer = BackgroundIndexer(
                partial(writer.submit, background=True), readers.run, writer.idle_for
            )
            self._indexer.start(lines_waiting=lines_waiting)

    # --- the namespaces, each imported and made on first use ------------------------------

    @cached_property
    def sessions(self) -> SessionIndexAPI:
        """The session index (sessions.json) of every agent."""
        from store_sql.sessions.api import SessionIndexAPI

        return self._namespace("sessions", SessionIndexAPI)

    @cached_property
    def transcripts(self) -> TranscriptAPI:
        """Transcripts: appends, tree and context reads."""
        from store_sql.transcripts.api import TranscriptAPI

        return self._namespace("transcripts", TranscriptAPI)

    @cached_property
    def checkpoints(self) -> CheckpointAPI:
        """Compaction checkpoints: persist, list, get, branch, restore."""
        from store_sql.checkpoints.api import CheckpointAPI

        return self._namespace("checkpoints", CheckpointAPI)

    @cached_property
    def lifecycle(self) -> LifecycleAPI:
        """Session reset and delete (archiving transcripts), agent purge."""
        from store_sql.lifecycle.api import LifecycleAPI

        return self._namespace("lifecycle", LifecycleAPI)

    @cached_property
    def maintenance(self) -> MaintenanceAPI:
        """Cleanup by the gateway's policy: prune, cap, archive, disk budget, vacuum."""
        from store_sql.maintenance.api import MaintenanceAPI

        return self._namespace("maintenance", MaintenanceAPI)

    @cached_property
    def search(self) -> SearchAPI:
        """Full-text search over entries, and rebuilding its index."""
        from store_sql.search.api import SearchAPI

        return self._namespace("search", SearchAPI)

    def _namespace(self, name: str, api: Callable[[Store], T]) -> T:
        if self.dialect == "postgresql" and name not in POSTGRES_NAMESPACES:
            return cast(T, _NotOnPostgres(name))
        return api(self)

    @property
    def path(self) -> Path:
        """The SQLite database file (a store on PostgreSQL has none: see `location`)."""
        if self._path is None:
            raise BackendNotSupportedError.not_yet("store.path (a file)")
        return self._path

    @property
    def postgres(self) -> PgDatabase:
        """The PostgreSQL engine (`write`/`read` of async functions on an asyncpg
        connection) of a store opened on a `postgresql://` URL."""
        if self._postgres is None:
            raise BackendNotSupportedError("store.postgres: this store is on SQLite")
        return self._postgres

    # --- life cycle ----------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        location: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        readers: int = 4,
        upgrade: bool = True,
        backup_before_upgrade: bool = True,
        busy_timeout_ms: int = 5000,
        full_text: bool = True,
        settings: EngineSettings | None = None,
        create: bool = True,
        backup_dir: str | os.PathLike[str] | None = None,
    ) -> Store:
        """Open (creating or upgrading as needed) the database at `location`: a path to a
        SQLite file, or a `postgresql://` URL (libpq's URI form) of a PostgreSQL database.

        `location` as a path must be a regular file or missing: a directory, FIFO or device
        is refused and left alone. `create=False` refuses a missing (or 0-byte) file instead of
        creating a database there (for callers that only read).

        Refuses, without modifying it, a file that is not a store_sql database, is corrupt,
        or has a newer schema revision than this code (`DatabaseRefusedError`).

        Lines are indexed for full-text search behind the writes, in the writer's idle time
        (search/indexer.py; on PostgreSQL search/pg_indexer.py, where every store process
        indexes the lines any process queued); `full_text=False` turns that indexing off for
        this process, for a gateway that never searches. Searches still find recent lines
        by scanning what is not indexed yet, up to `search.indexer.BACKLOG_LIMIT` lines
        (they say so past it);
        `store.search.catch_up()` or `store-sql search --catch-up` indexes the rest.

        On PostgreSQL the database must be UTF-8 with the C collation and either empty or a
        store_sql schema; the same revision rules apply. An upgrade there is preceded by a
        `pg_dump` backup into `backup_dir` (default `$STORE_SQL_BACKUP_DIR`, else
        `~/.local/state/store-sql/backups`), skipped with a logged reason where pg_dump is
        missing or older than the server (`open_report.backup_skipped`; docs/GUARANTEES.md).
        `synchronous` FULL or EXTRA waits for each commit's WAL flush
        (`synchronous_commit=on`), NORMAL and OFF do not."""
        cfg = settings or EngineSettings(
            synchronous=synchronous, readers=readers, busy_timeout_ms=busy_timeout_ms
        )
        if is_postgres_url(location):
            from store_sql.engine.pg.database import PgDatabase

            pg = await PgDatabase.open(
                str(location),
                cfg,
                upgrade=upgrade,
                create=create,
                backup=backup_before_upgrade,
                backup_dir=None if backup_dir is None else Path(backup_dir),
            )
            return cls(None, None, None, pg.open_report, full_text=full_text, postgres=pg)
        db_path = Path(os.path.abspath(location))  # noqa: ASYNC240 - a getcwd, no disk I/O
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
        writer = Writer(conn, db_path, cfg)
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
        if self._postgres is not None:
            if self._indexer is not None:
                await self._indexer.close()
            await self._postgres.close()
            return
        assert self._writer is not None
        assert self._readers is not None
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

    def _sqlite(self, what: str) -> tuple[Writer, ReaderPool]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        if self._writer is None or self._readers is None:
            raise BackendNotSupportedError.not_yet(what)
        return self._writer, self._readers

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the writer's next group transaction (advanced use;
        SQLite only: on PostgreSQL, `store.postgres.write` takes async functions)."""
        writer, _ = self._sqlite("store.write of a sqlite3 function")
        try:
            result = await writer.submit(fn)
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
        """Run `fn(connection)` on a pooled read-only connection, in one snapshot (SQLite
        only: on PostgreSQL, `store.postgres.read` takes async functions)."""
        _, readers = self._sqlite("store.read of a sqlite3 function")
        try:
            return await readers.run(fn)
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                raise corruption_error(self.path, exc) from exc
            raise

    async def truncate_wal(self, timeout_s: float = 0.25) -> bool:
        """Fold the WAL into the database and truncate it to 0 bytes, waiting at most
        `timeout_s` for readers (new writes wait meanwhile); True when it completed."""
        self._sqlite("store.truncate_wal")
        return await asyncio.to_thread(truncate_wal_file, self.path, timeout_s)

    @property
    def write_queue_depth(self) -> int:
        """Writes queued for the writer now (a server answers BUSY past its limit)."""
        if self._postgres is not None:
            return self._postgres.write_queue_depth
        assert self._writer is not None
        return self._writer.queue_depth

    @property
    def indexer(self) -> BackgroundIndexer | PgSearchIndexer | None:
        """The background full-text indexer (None with `full_text=False`)."""
        return self._indexer

    def indexing_paused(self) -> contextlib.AbstractAsyncContextManager[None]:
        """No background indexing step runs inside (bulk imports, index rebuilds)."""
        if self._indexer is None:
            return contextlib.nullcontext()
        return self._indexer.paused()

    def metrics(self) -> dict[str, Any]:
        """Queue depth, batch sizes, transaction times, WAL size and checkpoints; with the
        background indexer on, its steps, lines read and failures (the last error kept).
        On PostgreSQL: the writer's groups, retries and reconnects, and the readers."""
        if self._postgres is not None:
            m = self._postgres.metrics()
        else:
            assert self._writer is not None
            assert self._readers is not None
            m = self._writer.metrics.as_dict(self._writer.queue_depth)
            m["readers"] = self._readers.size
            m["readers_busy"] = self._readers.busy
            m["reads"] = self._readers.reads
        if self._indexer is not None:
            m["index_steps"] = self._indexer.steps
            m["index_lines"] = self._indexer.lines_indexed
            m["index_preempted"] = self._indexer.preempted
            m["index_failures"] = self._indexer.failures
            m["index_last_error"] = self._indexer.last_error
        if self._postgres is None:
            m["wal_bytes"] = file_size(wal_path(self.path))
        return m

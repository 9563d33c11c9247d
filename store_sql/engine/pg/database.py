"""An open store on PostgreSQL: the process's writer, its read connections, its location."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from store_sql.engine.opening import OpenReport
from store_sql.engine.pg import opening
from store_sql.engine.pg.connection import PgConnection
from store_sql.engine.pg.readers import PgReaders
from store_sql.engine.pg.url import mask_password
from store_sql.engine.pg.writer import PgWriter
from store_sql.engine.pragmas import EngineSettings
from store_sql.errors import StoreClosedError

T = TypeVar("T")

# SQLite's `synchronous` in PostgreSQL's terms: FULL and EXTRA wait for the commit's WAL
# flush (nothing acknowledged is ever lost); NORMAL and OFF acknowledge before it, so a
# crash of the server or the machine may lose the last fraction of a second of commits,
# never consistency (docs/GUARANTEES.md).
_SYNCHRONOUS_COMMIT = {"OFF": "off", "NORMAL": "off", "FULL": "on", "EXTRA": "on"}


class PgDatabase:
    """The PostgreSQL engine of an open `Store` (`store.postgres`)."""

    dialect: Literal["postgresql"] = "postgresql"

    def __init__(
        self,
        url: str,
        writer: PgWriter,
        readers: PgReaders,
        report: OpenReport,
        connect: Callable[[], Awaitable[PgConnection]],
    ) -> None:
        self._url = url
        self.connect = connect
        """Open another connection with the writer's settings (the search indexer's)."""
        self.on_write: Callable[[], None] | None = None
        """Called after each write that committed (the search indexer's `poke`)."""
        self.location = mask_password(url)
        """The URL with its password masked."""
        self.open_report = report
        self._writer = writer
        self._readers = readers
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        settings: EngineSettings,
        *,
        upgrade: bool = True,
        create: bool = True,
        backup: bool = True,
        backup_dir: Path | None = None,
    ) -> PgDatabase:
        """Check and prepare the database at `url` (opening.py), then connect the writer."""
        report = await opening.prepare(
            url, upgrade=upgrade, create=create, backup=backup, backup_dir=backup_dir
        )
        write_settings = {
            "synchronous_commit": _SYNCHRONOUS_COMMIT[settings.synchronous],
            # Another process's group holds a row lock for one transaction; a wait longer
            # than busy_timeout means something is stuck, as on SQLite.
            "lock_timeout": str(int(settings.busy_timeout_ms)),
            # The writer runs the same few prepared statements over and over, most with
            # `unnest` arrays whose plan does not depend on their values; planning each
            # execution anew cost as much as running a one-line append.
            "plan_cache_mode": "force_generic_plan",
        }
        connect_writer = functools.partial(opening.connect, url, **write_settings)
        connect_reader = functools.partial(opening.connect, url, default_transaction_read_only="on")
        conn = await connect_writer()
        writer = PgWriter(conn, connect_writer)
        writer.start()
        readers = PgReaders(connect_reader, settings.readers)
        return cls(url, writer, readers, report, connect_writer)

    async def write(self, fn: Callable[[PgConnection], Awaitable[T]]) -> T:
        """Await `fn(connection)` in the writer's next group transaction."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        result: T = await self._writer.submit(fn)
        if self.on_write is not None:
            self.on_write()
        return result

    async def read(
        self, fn: Callable[[PgConnection], Awaitable[T]], *, single_statement: bool = False
    ) -> T:
        """Await `fn(connection)` on a read connection, in one REPEATABLE READ READ ONLY
        transaction (one snapshot). `single_statement`: `fn` runs one statement, which is
        its own snapshot, so no transaction is opened around it; an `fn` that needs more
        statements opens `snapshot(conn)` itself."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        return await self._readers.run(fn, single_statement=single_statement)

    async def close(self) -> None:
        """Commit everything already submitted, then close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._writer.close()
        await self._readers.close()

    @property
    def write_queue_depth(self) -> int:
        return self._writer.queue_depth

    def idle_for(self) -> float:
        """Seconds since the writer's last group, 0.0 while one is queued or running."""
        return self._writer.idle_for()

    def metrics(self) -> dict[str, Any]:
        m = self._writer.metrics.as_dict(self._writer.queue_depth)
        m["readers"] = self._readers.size
        m["readers_busy"] = self._readers.busy
        m["reads"] = self._readers.reads
        return m

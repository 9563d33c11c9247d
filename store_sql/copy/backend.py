"""A store copy's two ends, one class per backend, with the same async methods.

`stream` reads every copied table from ONE snapshot of the source and hands batches to
`put` (which waits when the writer is behind, so memory stays bounded): on SQLite the
reading runs in the reader's thread and each batch crosses to the event loop; on
PostgreSQL it is a cursor per table inside one REPEATABLE READ transaction. Every other
method writes the destination, one transaction each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from store_sql.copy import rows as lite
from store_sql.copy.tables import COPIED, CopiedTable
from store_sql.engine.database import Database
from store_sql.engine.namespace import postgres_twin

if TYPE_CHECKING:
    from store_sql.copy import pg_rows as pg
    from store_sql.engine.pg.database import PgDatabase
else:
    pg = postgres_twin("store_sql.copy.pg_rows")

Row = tuple[object, ...]
Batch = tuple[CopiedTable, list[Row], int]
Put = Callable[[Batch], Coroutine[Any, Any, None]]
Link = tuple[object, int, object]


class CopyEnd(Protocol):
    async def existing(self) -> set[str]: ...

    async def non_empty(self, tables: list[CopiedTable]) -> list[str]: ...

    async def stream(
        self, tables: list[CopiedTable], counted: Callable[[dict[str, int]], None], put: Put
    ) -> None:
        """Count each table's rows (`counted`), then `put` every batch, in one snapshot."""
        ...

    async def clear(self, tables: list[CopiedTable]) -> None: ...

    async def insert(self, table: CopiedTable, rows: list[Row]) -> None: ...

    async def set_deferred(self, table: CopiedTable, links: list[Link]) -> None: ...

    async def finish(self, tables: list[CopiedTable]) -> None: ...


def end_for(store: Database) -> CopyEnd:
    if store.dialect == "postgresql":
        return PostgresEnd(store.postgres)
    return SqliteEnd(store)


class SqliteEnd:
    def __init__(self, store: Database) -> None:
        self._store = store

    async def existing(self) -> set[str]:
        return await self._store.read(lambda conn: lite.existing(conn, COPIED))

    async def non_empty(self, tables: list[CopiedTable]) -> list[str]:
        return await self._store.read(lambda conn: lite.non_empty(conn, tables))

    async def stream(
        self, tables: list[CopiedTable], counted: Callable[[dict[str, int]], None], put: Put
    ) -> None:
        loop = asyncio.get_running_loop()

        def run(conn: Any) -> None:
            counts = lite.counts(conn, tables)
            loop.call_soon_threadsafe(counted, counts)
            for table in tables:
                for rows, size in lite.batches(conn, table):
                    asyncio.run_coroutine_threadsafe(put((table, rows, size)), loop).result()

        await self._store.read(run)

    async def clear(self, tables: list[CopiedTable]) -> None:
        await self._store.write(lambda conn: lite.clear(conn, tables))

    async def insert(self, table: CopiedTable, rows: list[Row]) -> None:
        await self._store.write(lambda conn: lite.insert(conn, table, rows))

    async def set_deferred(self, table: CopiedTable, links: list[Link]) -> None:
        await self._store.write(lambda conn: lite.set_deferred(conn, table, links))

    async def finish(self, tables: list[CopiedTable]) -> None:
        """Nothing to rebuild: the full-text index catches up in the store's idle time."""


class PostgresEnd:
    def __init__(self, store: PgDatabase) -> None:
        self._store = store
        self._fit: dict[str, Callable[[Row], Row]] = {}

    async def existing(self) -> set[str]:
        found: set[str] = await self._store.read(lambda conn: pg.existing(conn, COPIED))
        return found

    async def non_empty(self, tables: list[CopiedTable]) -> list[str]:
        found: list[str] = await self._store.read(lambda conn: pg.non_empty(conn, tables))
        return found

    async def stream(
        self, tables: list[CopiedTable], counted: Callable[[dict[str, int]], None], put: Put
    ) -> None:
        async def run(conn: Any) -> None:
            counted(await pg.counts(conn, tables))
            for table in tables:
                async for rows, size in pg.batches(conn, table):
                    await put((table, rows, size))

        await self._store.read(run)

    async def clear(self, tables: list[CopiedTable]) -> None:
        await self._store.write(lambda conn: pg.clear(conn, tables))

    async def insert(self, table: CopiedTable, rows: list[Row]) -> None:
        fit = self._fit.get(table.name)
        if fit is None:
            types = await self._store.read(lambda conn: pg.column_types(conn, table))
            fit = self._fit[table.name] = pg.fitter(table, types)
        await self._store.write(lambda conn: pg.insert(conn, table, rows, fit))

    async def set_deferred(self, table: CopiedTable, links: list[Link]) -> None:
        await self._store.write(lambda conn: pg.set_deferred(conn, table, links))

    async def finish(self, tables: list[CopiedTable]) -> None:
        await self._store.write(lambda conn: pg.finish(conn, tables))

"""The exporter's reads, one class per backend, with the same async methods.

The plan (`plan.assemble_plan`) and the file writing (`formats.in_tree`) are shared; only
reading what the store holds differs. A file's bytes reach the code that consumes them
(writing a file, comparing one, hashing one) as a plain iterator of chunks, consumed in a
worker thread: on SQLite inside the reader's thread, on PostgreSQL pulled block by block
from the engine's read connection while the thread writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from store_sql.engine.database import Database
from store_sql.engine.namespace import postgres_twin
from store_sql.exporter.plan import ExportPlan, IndexLayout, PlannedFile, file_chunks, plan_export

if TYPE_CHECKING:
    from store_sql.engine.pg.database import PgDatabase
    from store_sql.exporter import pg_rows as pg
else:
    pg = postgres_twin("store_sql.exporter.pg_rows")

T = TypeVar("T")
FileConsumer = Callable[[PlannedFile, Iterator[bytes]], T]
"""Runs in a worker thread with one planned file and its bytes as chunks."""


class ExportSource(Protocol):
    async def plan(self, agent: str | None, layout: IndexLayout | None) -> ExportPlan: ...

    async def each_file(self, items: list[PlannedFile], fn: FileConsumer[T]) -> list[T]:
        """`fn(item, chunks)` for each of `items`, all read from one snapshot."""
        ...


def source_for(store: Database) -> ExportSource:
    """The exporter's reads for `store`'s backend."""
    if store.dialect == "postgresql":
        return PostgresExport(store.postgres)
    return SqliteExport(store)


class SqliteExport:
    def __init__(self, store: Database) -> None:
        self._store = store

    async def plan(self, agent: str | None, layout: IndexLayout | None) -> ExportPlan:
        return await self._store.read(lambda conn: plan_export(conn, agent, layout))

    async def each_file(self, items: list[PlannedFile], fn: FileConsumer[T]) -> list[T]:
        return await self._store.read(
            lambda conn: [fn(item, file_chunks(conn, item)) for item in items]
        )


class PostgresExport:
    def __init__(self, store: PgDatabase) -> None:
        self._store = store

    async def plan(self, agent: str | None, layout: IndexLayout | None) -> ExportPlan:
        plan: ExportPlan = await self._store.read(lambda conn: pg.plan_export(conn, agent, layout))
        return plan

    async def each_file(self, items: list[PlannedFile], fn: FileConsumer[T]) -> list[T]:
        async def run(conn: Any) -> list[T]:
            loop = asyncio.get_running_loop()
            results = []
            for item in items:
                chunks = pg.file_chunks(conn, item)
                try:
                    results.append(await asyncio.to_thread(fn, item, _pulled(chunks, loop)))
                finally:
                    await chunks.aclose()  # type: ignore[attr-defined]
            return results

        done: list[T] = await self._store.read(run)
        return done


def _pulled(chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """`chunks` as a blocking iterator for a worker thread: each step runs on `loop`."""

    async def step() -> bytes | None:
        return await anext(chunks, None)

    while (block := asyncio.run_coroutine_threadsafe(step(), loop).result()) is not None:
        yield block

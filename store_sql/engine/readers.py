"""The pool of read-only connections.

Each read is one function run on a pooled connection's thread inside one deferred
transaction, so it sees a single consistent snapshot while the writer goes on (WAL).
Connections are opened `mode=ro` and `query_only`, so a read can never write, and never
checkpoints: the writer alone does that.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from store_sql.engine.lookups import lone_surrogate_lookup
from store_sql.engine.pragmas import EngineSettings, configure_reader
from store_sql.engine.thread_conn import ThreadConnection
from store_sql.errors import StoreClosedError

T = TypeVar("T")


def read_only_uri(path: str) -> str:
    """A `file:` URI that opens `path` read-only (percent-escaping what URIs reserve)."""
    from urllib.parse import quote

    return f"file:{quote(path)}?mode=ro"


class ReaderPool:
    """A fixed set of read-only connections handed out one read at a time."""

    def __init__(self, conns: list[ThreadConnection]) -> None:
        self._all = conns
        self._free: asyncio.Queue[ThreadConnection] = asyncio.Queue()
        for conn in conns:
            self._free.put_nowait(conn)
        self._closed = False
        self.reads = 0

    @classmethod
    async def open(cls, path: str, settings: EngineSettings) -> ReaderPool:
        conns: list[ThreadConnection] = []
        try:
            for _ in range(max(1, settings.readers)):
                conns.append(
                    await ThreadConnection.open(
                        read_only_uri(path),
                        uri=True,
                        setup=lambda c: configure_reader(c, settings),
                    )
                )
        except BaseException:
            for conn in conns:
                await conn.close()
            raise
        return cls(conns)

    @property
    def size(self) -> int:
        return len(self._all)

    @property
    def busy(self) -> int:
        return len(self._all) - self._free.qsize()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in one read transaction on a free pooled connection."""
        if self._closed:
            raise StoreClosedError("the store is closed; reads are no longer served")
        conn = await self._free.get()
        try:
            self.reads += 1
            return await conn.run(lambda c: _in_snapshot(c, fn))
        except UnicodeEncodeError as exc:
            if (not_found := lone_surrogate_lookup(exc)) is not None:
                raise not_found from exc
            raise
        finally:
            self._free.put_nowait(conn)

    async def close(self) -> None:
        self._closed = True
        for _ in self._all:
            conn = await self._free.get()
            await conn.close()


def _in_snapshot(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")

"""One sqlite3 connection living on its own aiosqlite thread.

aiosqlite's public API costs one thread hop per statement (~25 µs each, measured on the
target machine), so a BEGIN + statement + COMMIT costs three. store_sql instead runs a whole
transaction as one function on the connection's thread, through aiosqlite's own queue
(`Connection._execute`). That method is private, so aiosqlite is pinned exactly in
pyproject.toml and tests/test_engine.py checks the method is still there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")


class ThreadConnection:
    """A sqlite3 connection whose every use runs on its dedicated thread, off the event loop."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(
        cls, database: str, *, uri: bool, setup: Callable[[sqlite3.Connection], None]
    ) -> ThreadConnection:
        """Connect in autocommit mode (we issue BEGIN ourselves) and run `setup` there."""
        pending = aiosqlite.connect(
            database, uri=uri, isolation_level=None, check_same_thread=False
        )
        # A store the caller forgot to close must not keep the interpreter alive at exit;
        # dying mid-transaction is safe (SQLite rolls an uncommitted group back).
        pending._thread.daemon = True
        conn = await pending
        self = cls(conn)
        try:
            await self.run(setup)
        except BaseException:
            await conn.close()
            raise
        return self

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the connection's thread and return its result."""
        raw: sqlite3.Connection = self._conn._conn
        result: Any = await self._conn._execute(fn, raw)  # type: ignore[no-untyped-call]
        return result  # type: ignore[no-any-return]

    async def interrupt(self) -> None:
        """Abort the statement running on the thread now (used on shutdown only)."""
        await self._conn.interrupt()

    async def close(self) -> None:
        await self._conn.close()

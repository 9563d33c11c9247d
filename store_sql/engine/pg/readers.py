"""Read connections on PostgreSQL: each read is one REPEATABLE READ READ ONLY transaction
(one snapshot, as a read on SQLite is), on a connection of a small pool opened on demand.

A read of one statement needs no transaction: a statement is its own snapshot. Such a read
(`single_statement=True`) runs without BEGIN and COMMIT, two round trips fewer; one that
turns out to need more statements opens its own snapshot transaction first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from store_sql.engine.lookups import lone_surrogate_lookup, unstorable_lookup
from store_sql.engine.pg.connection import PgConnection, snapshot
from store_sql.engine.pg.writer import connection_lost

T = TypeVar("T")


class PgReaders:
    """At most `size` read connections; a read waits for a free one."""

    def __init__(self, connect: Callable[[], Awaitable[PgConnection]], size: int) -> None:
        self._connect = connect
        self.size = max(1, size)
        self._free: list[PgConnection] = []
        self._open = 0
        self._slots = asyncio.Semaphore(self.size)
        self.busy = 0
        self.reads = 0

    async def run(
        self, fn: Callable[[PgConnection], Awaitable[T]], *, single_statement: bool = False
    ) -> T:
        async with self._slots:
            conn = self._free.pop() if self._free else await self._connect()
            self.busy += 1
            broken = False
            try:
                if single_statement:
                    return await fn(conn)
                async with snapshot(conn):
                    return await fn(conn)
            except Exception as exc:
                # A string the driver could not encode failed the statement half sent: the
                # server may still hold it open, so the connection is not reused.
                broken = connection_lost(exc) or lone_surrogate_lookup(exc) is not None
                if (not_found := unstorable_lookup(exc)) is not None:
                    raise not_found from exc
                raise
            except BaseException:
                # Cancelled (a caller that went away) with BEGIN, a statement or COMMIT on
                # the wire: what the server did with it is unknown.
                broken = True
                raise
            finally:
                self.busy -= 1
                self.reads += 1
                # A connection still inside a transaction would run the next read as a
                # savepoint of this read's snapshot, blind to every commit since.
                if broken or conn.is_closed() or conn.is_in_transaction():
                    conn.terminate()
                else:
                    self._free.append(conn)

    async def close(self) -> None:
        free, self._free = self._free, []
        for conn in free:
            with contextlib.suppress(Exception):
                await conn.close()

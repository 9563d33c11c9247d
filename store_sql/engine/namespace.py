"""The base of every domain namespace (`store.sessions`, `store.transcripts`, ...): the one
place where a SQLite function or its PostgreSQL twin is chosen.

A namespace keeps its SQLite functions (`rows.py`) beside their async PostgreSQL twins
(`pg_rows.py`), taking the same arguments after the connection. A method names both and
the arguments once (`self._read_rows(rows.get, pg_rows.get, agent_id, key)`); the store's
dialect picks which one runs, through which engine's door. Reads that compose several
functions differently on each side test `self._pg` themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from store_sql.engine.database import Database
    from store_sql.engine.pg.connection import PgConnection
    from store_sql.engine.pg.database import PgDatabase

P = ParamSpec("P")
T = TypeVar("T")


class Namespace:
    """Holds the store's database and, on PostgreSQL, its engine (`_pg`)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pg: PgDatabase | None = db.postgres if db.dialect == "postgresql" else None
        """The PostgreSQL engine (its doors take async functions of an asyncpg
        connection), or None on SQLite."""

    async def _read_rows(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        pg: Callable[Concatenate[PgConnection, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(connection, *args, **kwargs)` in one read snapshot; `pg` on PostgreSQL."""
        if self._pg is not None:
            return await self._pg.read(lambda c: pg(c, *args, **kwargs))
        return await self._db.read(lambda c: fn(c, *args, **kwargs))

    async def _write_rows(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        pg: Callable[Concatenate[PgConnection, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(connection, *args, **kwargs)` in the writer's next group; `pg` on
        PostgreSQL."""
        if self._pg is not None:
            return await self._pg.write(lambda c: pg(c, *args, **kwargs))
        return await self._db.write(lambda c: fn(c, *args, **kwargs))

"""The base of every domain namespace (`store.sessions`, `store.transcripts`, ...): the one
place where a SQLite function or its PostgreSQL twin is chosen.

A namespace keeps its SQLite functions (`rows.py`) beside their async PostgreSQL twins
(`pg_rows.py`), taking the same arguments after the connection. A method names both and
the arguments once (`self._read_rows(rows.get, pg_rows.get, agent_id, key)`); the store's
dialect picks which one runs, through which engine's door. Reads that compose several
functions differently on each side test `self._pg` themselves.

A store on SQLite never loads a twin: an API module names its twin modules through
`postgres_twin`, which imports one when a function of it is first called, and imports the
real module for the type checker only:

    if TYPE_CHECKING:
        from store_sql.sessions import pg_rows
    else:
        pg_rows = postgres_twin("store_sql.sessions.pg_rows")
"""

from __future__ import annotations

import importlib
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

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


def postgres_twin(module: str) -> Any:
    """The PostgreSQL twin module `module`, imported when one of its functions (or classes)
    is first called: `twin.fn` is a stand-in for `fn` that imports the module and calls it.

    Only calls go through a stand-in, so a twin is used for its functions alone: its
    constants, exceptions and types are the SQLite side's (the twins import those)."""
    return _Twin(module)


class _Twin:
    __slots__ = ("_module",)

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        module = self._module

        def twin(*args: Any, **kwargs: Any) -> Any:
            loaded = sys.modules.get(module) or importlib.import_module(module)
            return getattr(loaded, name)(*args, **kwargs)

        twin.__qualname__ = twin.__name__ = name
        return twin

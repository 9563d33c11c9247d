"""What the domain APIs need of an open database: two doors to SQLite and its upkeep.

`store.sessions`, `store.transcripts` and the other namespaces, the importer and the
exporter hold a `Database`, never the `Store` facade: they depend on the engine, the facade
depends on them, and a second backend only has to offer these few members.

On PostgreSQL, `dialect` is "postgresql" and `postgres` is the engine (engine/pg/): its
`write` and `read` take async functions of an asyncpg connection. A domain API picks its
SQLite function or its PostgreSQL twin (`pg_rows.py`) by `dialect`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from store_sql.engine.pg.database import PgDatabase

T = TypeVar("T")


class Database(Protocol):
    """An open store: one serialized writer, a pool of read-only snapshots."""

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        """Which database the store is on."""
        ...

    @property
    def location(self) -> str:
        """The SQLite file's path, or the PostgreSQL URL with its password masked."""
        ...

    @property
    def path(self) -> Path:
        """The database file (SQLite only)."""
        ...

    @property
    def postgres(self) -> PgDatabase:
        """The PostgreSQL engine (PostgreSQL only)."""
        ...

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the writer's next group transaction."""
        ...

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on a pooled read-only connection, in one snapshot."""
        ...

    def indexing_paused(self) -> AbstractAsyncContextManager[None]:
        """No background indexing step runs inside (bulk imports, index rebuilds)."""
        ...

    async def truncate_wal(self, timeout_s: float) -> bool:
        """Fold the WAL into the database and truncate it, waiting at most `timeout_s` for
        readers; True when it completed."""
        ...

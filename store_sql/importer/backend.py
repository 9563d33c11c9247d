"""The importer's database side, one class per backend, with the same async methods.

Everything an import decides (plan, chunks, which lines are new, what a sessions.d changed)
is shared; only the statements differ. On SQLite each method runs a synchronous function of
`importer.rows` (and its neighbours) on the writer's or a reader's thread; on PostgreSQL the
async twin of `importer.pg_rows` on the engine's connection. One base class runs them all;
each backend's class names its row functions (`rows`) and composes the one write that differs
in shape (`import_archive`). `backend_for(store)` picks one by the store's `dialect`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from store_sql.engine.database import Database
from store_sql.engine.namespace import postgres_twin
from store_sql.engine.pg.connection import PgConnection
from store_sql.formats.import_archive import ArchivedFile
from store_sql.formats.in_tree import TreeFile
from store_sql.importer import database_rows as origin_db
from store_sql.importer import rows as db
from store_sql.importer.chunks import LineChunk, LineStats
from store_sql.importer.session_directory import DirectoryOutcome, DirectorySource
from store_sql.importer.session_directory import import_directory as _import_directory
from store_sql.importer.session_directory import known_files as _known_files
from store_sql.importer.session_index import IndexOutcome, IndexSource
from store_sql.importer.session_index import import_index as _import_index
from store_sql.importer.session_index import stored_index as _stored_index

if TYPE_CHECKING:
    from store_sql.importer import pg_rows as pg
else:
    pg = postgres_twin("store_sql.importer.pg_rows")
Opener = Callable[[], BinaryIO]
StoredIndex = tuple[str, str, str | None]
Target = db.NewTranscript | db.Continuation


class ImportBackend(Protocol):
    """What an import reads from and writes to the store; each write is one transaction."""

    async def current_transcript(
        self, agent_id: str, rel_dir: str, file_name: str
    ) -> db.StoredSource | None: ...

    async def write_chunk(self, target: Target, chunk: LineChunk) -> int: ...

    async def import_compressed(
        self, new: db.NewTranscript, source: Opener, stats: LineStats
    ) -> int: ...

    async def opaque_sha256(self, agent_id: str, rel_dir: str, name: str) -> str | None: ...

    async def store_opaque(
        self, agent_id: str, rel_dir: str, name: str, kind: str, source: bytes | Opener
    ) -> None: ...

    async def stored_index(self, agent_id: str) -> StoredIndex | None: ...

    async def import_index(self, source: IndexSource) -> IndexOutcome: ...

    async def known_files(self, agent_id: str) -> dict[str, tuple[str, str]]: ...

    async def import_directory(self, source: DirectorySource, write: bool) -> DirectoryOutcome: ...

    async def stored_with_origin(
        self, agent_id: str, rel_dir: str, file_name: str
    ) -> tuple[db.StoredSource | None, origin_db.Origin | None]: ...

    async def record_origin(
        self, transcript_id: int, agent_id: str, session_id: str, origin: origin_db.Origin
    ) -> None: ...

    async def write_events_chunk(
        self, target: Target, chunk: LineChunk, update: origin_db.OriginUpdate
    ) -> tuple[int, int]: ...

    async def record_database(
        self, agent_id: str, rel_path: str, schema_version: int, app_version: str | None
    ) -> None: ...

    async def import_archive(
        self,
        new: db.NewTranscript,
        data: bytes,
        compressed: bool,
        stats: LineStats,
        origin: tuple[str, str, origin_db.Origin],
    ) -> int:
        """An archive read from OpenClaw's database: `data` is the file it is published as
        (kept as exact bytes when `compressed`), with its origin (agent, session, origin)."""
        ...

    async def store_archived(
        self, agent_id: str, rel_dir: str, file: TreeFile, what: ArchivedFile
    ) -> None:
        """A file of OpenClaw's migration archive, opened through the tree (`TreeFile.open`:
        never through a symlink), with the name it had before."""
        ...


def backend_for(store: Database) -> ImportBackend:
    """The importer's statements for `store`'s backend."""
    if store.dialect == "postgresql":
        return PostgresImport(store.postgres)
    return SqliteImport(store)


class _Engine(Protocol):
    """The store's engine as the importer uses it: a function of a connection run in the
    writer's next group, or in one read snapshot."""

    async def read(self, fn: Callable[[Any], Any]) -> Any: ...

    async def write(self, fn: Callable[[Any], Any]) -> Any: ...


class _SqliteRows:
    """The SQLite functions of `importer.rows` and its neighbours, under the names their
    PostgreSQL twins have in `importer.pg_rows`."""

    current_transcript = staticmethod(db.current_transcript)
    write_chunk = staticmethod(db.write_chunk)
    opaque_sha256 = staticmethod(db.opaque_sha256)
    store_opaque = staticmethod(db.store_opaque)
    stored_index = staticmethod(_stored_index)
    import_index = staticmethod(_import_index)
    known_files = staticmethod(_known_files)
    import_directory = staticmethod(_import_directory)
    stored_with_origin = staticmethod(origin_db.stored_with_origin)
    record_origin = staticmethod(origin_db.record_origin)
    write_events_chunk = staticmethod(origin_db.write_events_chunk)
    record_database = staticmethod(origin_db.record_database)

    @staticmethod
    def import_compressed(
        conn: sqlite3.Connection, new: db.NewTranscript, source: Opener, stats: LineStats
    ) -> int:
        return db.import_compressed(conn, new, source, stats=stats)

    @staticmethod
    def store_archived(
        conn: sqlite3.Connection, agent_id: str, rel_dir: str, file: TreeFile, what: ArchivedFile
    ) -> None:
        name = file.parts[-1]
        db.store_opaque(conn, agent_id, rel_dir, name, "pre_migration", file.open)
        origin_db.record_pre_migration(
            conn, agent_id, rel_dir, name, what.original_name, what.role, what.session_id
        )


class _Import:
    """`ImportBackend` over one engine: each method runs the function of its name from
    `rows` (the backend's row functions, synchronous on SQLite, async on PostgreSQL) in the
    writer's group (writes) or a read snapshot (reads)."""

    rows: Any

    def __init__(self, store: _Engine) -> None:
        self._store = store

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._store.read(lambda conn: fn(conn, *args))

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._store.write(lambda conn: fn(conn, *args))

    async def current_transcript(
        self, agent_id: str, rel_dir: str, file_name: str
    ) -> db.StoredSource | None:
        found: db.StoredSource | None = await self._read(
            self.rows.current_transcript, agent_id, rel_dir, file_name
        )
        return found

    async def write_chunk(self, target: Target, chunk: LineChunk) -> int:
        return int(await self._write(self.rows.write_chunk, target, chunk))

    async def import_compressed(
        self, new: db.NewTranscript, source: Opener, stats: LineStats
    ) -> int:
        return int(await self._write(self.rows.import_compressed, new, source, stats))

    async def opaque_sha256(self, agent_id: str, rel_dir: str, name: str) -> str | None:
        sha: str | None = await self._read(self.rows.opaque_sha256, agent_id, rel_dir, name)
        return sha

    async def store_opaque(
        self, agent_id: str, rel_dir: str, name: str, kind: str, source: bytes | Opener
    ) -> None:
        await self._write(self.rows.store_opaque, agent_id, rel_dir, name, kind, source)

    async def stored_index(self, agent_id: str) -> StoredIndex | None:
        found: StoredIndex | None = await self._read(self.rows.stored_index, agent_id)
        return found

    async def import_index(self, source: IndexSource) -> IndexOutcome:
        outcome: IndexOutcome = await self._write(self.rows.import_index, source)
        return outcome

    async def known_files(self, agent_id: str) -> dict[str, tuple[str, str]]:
        files: dict[str, tuple[str, str]] = await self._read(self.rows.known_files, agent_id)
        return files

    async def import_directory(self, source: DirectorySource, write: bool) -> DirectoryOutcome:
        run = self._write if write else self._read
        outcome: DirectoryOutcome = await run(self.rows.import_directory, source, write)
        return outcome

    async def stored_with_origin(
        self, agent_id: str, rel_dir: str, file_name: str
    ) -> tuple[db.StoredSource | None, origin_db.Origin | None]:
        found: tuple[db.StoredSource | None, origin_db.Origin | None] = await self._read(
            self.rows.stored_with_origin, agent_id, rel_dir, file_name
        )
        return found

    async def record_origin(
        self, transcript_id: int, agent_id: str, session_id: str, origin: origin_db.Origin
    ) -> None:
        await self._write(self.rows.record_origin, transcript_id, agent_id, session_id, origin)

    async def write_events_chunk(
        self, target: Target, chunk: LineChunk, update: origin_db.OriginUpdate
    ) -> tuple[int, int]:
        done: tuple[int, int] = await self._write(
            self.rows.write_events_chunk, target, chunk, update
        )
        return done

    async def record_database(
        self, agent_id: str, rel_path: str, schema_version: int, app_version: str | None
    ) -> None:
        await self._write(
            self.rows.record_database, agent_id, rel_path, schema_version, app_version
        )

    async def store_archived(
        self, agent_id: str, rel_dir: str, file: TreeFile, what: ArchivedFile
    ) -> None:
        await self._write(self.rows.store_archived, agent_id, rel_dir, file, what)


class SqliteImport(_Import):
    """`ImportBackend` on SQLite: the functions of `importer.rows` and its neighbours, each
    run on the writer's or a reader's thread."""

    rows = _SqliteRows

    async def import_archive(
        self,
        new: db.NewTranscript,
        data: bytes,
        compressed: bool,
        stats: LineStats,
        origin: tuple[str, str, origin_db.Origin],
    ) -> int:
        def run(conn: sqlite3.Connection) -> int:
            if compressed:
                tid = db.import_compressed_bytes(conn, new, data, stats=stats)
            else:
                tid = db.import_whole(conn, new, data, stats)
            origin_db.record_origin(conn, tid, *origin)
            return tid

        return int(await self._store.write(run))


class PostgresImport(_Import):
    """`ImportBackend` on PostgreSQL: the async twins of `importer.pg_rows`, each run in the
    engine's writer group (writes) or a read-only snapshot (reads)."""

    rows = pg

    async def import_archive(
        self,
        new: db.NewTranscript,
        data: bytes,
        compressed: bool,
        stats: LineStats,
        origin: tuple[str, str, origin_db.Origin],
    ) -> int:
        async def run(conn: PgConnection) -> int:
            if compressed:
                tid = await pg.import_compressed_bytes(conn, new, data, stats)
            else:
                tid = await pg.import_whole(conn, new, data, stats)
            await pg.record_origin(conn, tid, *origin)
            return tid

        return int(await self._store.write(run))

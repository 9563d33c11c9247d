"""Deciding whether a PostgreSQL database may be used, and building or upgrading its schema.

The rules mirror the SQLite file's (docs/GUARANTEES.md): a database holding someone else's
tables, or a schema revision newer than this code, is refused and never written to; an empty
one gets the schema; an older revision is backed up with pg_dump (backup.py) and upgraded
through the same Alembic history. The database must store UTF-8 and sort with the C
collation (bytewise, as SQLite's BINARY): the store's order and its byte-exact text depend
on both. Processes opening one database at
once take turns through an advisory lock, so the schema is built or upgraded once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from store_sql.engine.opening import OpenReport
from store_sql.engine.pg.backup import Backup, dump_before_upgrade
from store_sql.engine.pg.url import mask_password
from store_sql.errors import DatabaseRefusedError
from store_sql.schema.revision import APPLICATION_ID, SCHEMA_REVISION

_C_COLLATIONS = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"})
"""Collations that order text by its bytes (code points, for UTF-8)."""

CREATE_ADVICE = (
    "create it with: CREATE DATABASE name ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
    "TEMPLATE template0"
)


async def connect(url: str, **settings: str) -> asyncpg.Connection[asyncpg.Record]:
    """A connection to `url`; a server that cannot be reached is a DatabaseRefusedError."""
    try:
        return await asyncpg.connect(
            url, server_settings={"application_name": "store_sql", **settings}
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise DatabaseRefusedError(f"{mask_password(url)}: cannot connect: {exc}") from exc


async def prepare(
    url: str,
    *,
    upgrade: bool = True,
    create: bool = True,
    backup: bool = True,
    backup_dir: Path | None = None,
) -> OpenReport:
    """Make the database at `url` a current store_sql database, or refuse it untouched.

    An upgrade is preceded by a pg_dump backup into `backup_dir` (backup.py says where by
    default and when it is skipped); `backup=False` upgrades without one."""
    shown = mask_password(url)
    conn = await connect(url)
    try:
        await _check_text_rules(conn, shown)
        await conn.execute("SELECT pg_advisory_lock($1)", APPLICATION_ID)
        try:
            revision, has_tables = await _state(conn)
            if revision == SCHEMA_REVISION:
                return OpenReport(created=False, upgraded_from=None, backup_path=None)
            if revision is None:
                if has_tables:
                    raise DatabaseRefusedError(
                        f"{shown}: the database holds tables that are not a store_sql schema "
                        "(no alembic_version); store_sql opens only empty databases or its own"
                    )
                if not create:
                    raise DatabaseRefusedError(
                        f"{shown}: no store_sql schema in this database (nothing was created; "
                        "create it with `store-sql migrate` or `store-sql import`)"
                    )
                await upgrade_to_head(url)
                return OpenReport(created=True, upgraded_from=None, backup_path=None)
            if not _is_known_revision(revision):
                raise DatabaseRefusedError(
                    f"{shown}: schema revision {revision!r} is newer than this store_sql "
                    f"(which knows up to {SCHEMA_REVISION!r}); upgrade store_sql to open it"
                )
            if not upgrade:
                raise DatabaseRefusedError(
                    f"{shown}: schema revision {revision!r} is older than {SCHEMA_REVISION!r}; "
                    "run `store-sql migrate` to upgrade it"
                )
            made = Backup(None, None)
            if backup:
                made = await dump_before_upgrade(url, conn, revision, backup_dir)
            await upgrade_to_head(url)
            return OpenReport(
                created=False,
                upgraded_from=revision,
                backup_path=made.path,
                backup_skipped=made.skipped,
            )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", APPLICATION_ID)
    finally:
        await conn.close()


async def _check_text_rules(conn: asyncpg.Connection[asyncpg.Record], shown: str) -> None:
    # Read through to_jsonb: the provider columns exist from PostgreSQL 15 on (and 17
    # renamed daticulocale to datlocale); a missing key reads as NULL.
    row = await conn.fetchrow(
        "SELECT pg_encoding_to_char(d.encoding) AS encoding_name, d.datcollate, "
        "coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') AS provider, "
        "coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale') AS locale "
        "FROM pg_database AS d WHERE d.datname = current_database()"
    )
    assert row is not None
    if row["encoding_name"] != "UTF8":
        raise DatabaseRefusedError(
            f"{shown}: the database's encoding is {row['encoding_name']}, not UTF8; {CREATE_ADVICE}"
        )
    # PostgreSQL 15 and later may take the default collation from ICU (provider 'i')
    # whatever datcollate says; only libc's C (and 17's builtin C) order bytewise.
    provider = row["provider"]
    collation = row["datcollate"] if provider == "c" else row["locale"] or provider
    if provider not in ("c", "b") or row["datcollate"] not in _C_COLLATIONS:
        raise DatabaseRefusedError(
            f"{shown}: the database's collation is {collation!r}, not C (bytewise "
            f"order, as on SQLite); {CREATE_ADVICE}"
        )


async def _state(conn: asyncpg.Connection[asyncpg.Record]) -> tuple[str | None, bool]:
    """The schema revision (None: no alembic_version row) and whether any table exists."""
    has_tables = bool(
        await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
    )
    if await conn.fetchval("SELECT to_regclass('alembic_version') IS NULL"):
        return None, has_tables
    revision = await conn.fetchval("SELECT version_num FROM alembic_version LIMIT 1")
    return revision, has_tables


def _is_known_revision(revision: str) -> bool:
    from store_sql.engine.migrate import known_revisions

    return revision in known_revisions()


async def upgrade_to_head(url: str) -> None:
    """Upgrade the database at `url` to the newest revision, each revision in one
    transaction (Alembic on SQLAlchemy's asyncpg dialect)."""
    await _alembic(url, "upgrade", "head")


async def downgrade_to(url: str, revision: str) -> None:
    """Downgrade the database at `url` to `revision`; for maintainers and tests."""
    await _alembic(url, "downgrade", revision)


async def _alembic(url: str, direction: str, revision: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from store_sql.engine.migrate import run_alembic

    async def creator() -> Any:
        return await connect(url)

    engine = create_async_engine("postgresql+asyncpg://", async_creator=creator, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(lambda sync_conn: run_alembic(sync_conn, direction, revision))
            await conn.commit()
    finally:
        await engine.dispose()

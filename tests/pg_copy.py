"""The same data on both backends: every row of a SQLite store copied into a PostgreSQL
store of the same schema, so a test can ask both the same question (views, search, console).

Rows go over as they are stored: a BLOB line becomes `line_bytes` with `line` NULL (the
PostgreSQL schema's split, docs/POSTGRES.md), row ids are kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
from sqlalchemy import Integer, LargeBinary
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from store_sql.schema import pg_views
from store_sql.schema.tables import SCHEMA_REVISION, metadata

_LINE_BYTES = (
    "ALTER TABLE transcript_lines ALTER COLUMN line DROP NOT NULL",
    "ALTER TABLE transcript_lines ADD COLUMN line_bytes bytea",
    "ALTER TABLE transcript_lines ADD CONSTRAINT line_text_or_bytes "
    "CHECK ((line IS NULL) <> (line_bytes IS NULL))",
)


async def create_schema(url: str) -> None:
    """The store's tables, views and search index on an empty PostgreSQL database."""
    conn = await asyncpg.connect(url)
    try:
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        for table in metadata.sorted_tables:
            ddl = str(CreateTable(table).compile(dialect=dialect))
            if table.name == "transcript_lines":
                ddl = ddl.replace("line BYTEA NOT NULL", "line TEXT NOT NULL")
            ddl = ddl.replace(" SERIAL", " BIGSERIAL").replace(" INTEGER", " BIGINT")
            await conn.execute(ddl)
            for index in table.indexes:
                await conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
        await conn.execute(
            "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
            f"INSERT INTO alembic_version VALUES ('{SCHEMA_REVISION}')"
        )
        for statement in (
            *_LINE_BYTES,
            *pg_views.VIEW_STATEMENTS,
            *pg_views.SEARCH_STATEMENTS,
            pg_views.READER_ROLE_GRANTS,
        ):
            await conn.execute(statement)
    finally:
        await conn.close()


async def copy_store(sqlite_path: Path, url: str) -> None:
    """Copy every row of the SQLite store at `sqlite_path` into the PostgreSQL store at `url`."""
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    dst = await asyncpg.connect(url)
    try:
        for table in metadata.sorted_tables:
            names = [c.name for c in table.columns]
            rows = src.execute(f"SELECT {', '.join(names)} FROM {table.name}").fetchall()
            if table.name == "transcript_lines":
                at = names.index("line")
                names.append("line_bytes")
                rows = [
                    (*r[:at], None, *r[at + 1 :], r[at]) if isinstance(r[at], bytes) else (*r, None)
                    for r in rows
                ]
            else:
                binary = [isinstance(c.type, LargeBinary) for c in table.columns]
                rows = [tuple(v.encode() if b and isinstance(v, str) else v
                              for v, b in zip(r, binary, strict=True)) for r in rows]  # fmt: skip
            if rows:
                await dst.copy_records_to_table(table.name, records=rows, columns=names)
            for key in table.primary_key.columns:
                if not isinstance(key.type, Integer):
                    continue
                # Row ids were copied: the next id a store hands out comes after them.
                await dst.execute(
                    f"SELECT setval(s, (SELECT max({key.name}) FROM {table.name})) "
                    f"FROM pg_get_serial_sequence('{table.name}', '{key.name}') AS s "
                    f"WHERE s IS NOT NULL AND EXISTS (SELECT 1 FROM {table.name})"
                )
        await dst.execute("ANALYZE")
    finally:
        src.close()
        await dst.close()

"""The same data on both backends: every row of a SQLite store copied into a PostgreSQL
store of the same schema, so a test can ask both the same question (views, search, console).

Rows go over as they are stored: a BLOB line becomes `line_bytes` with `line` NULL (the
PostgreSQL schema's split, docs/POSTGRES.md), row ids are kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
from sqlalchemy import Integer, LargeBinary

from store_sql import Store
from store_sql.schema.tables import metadata


async def create_schema(url: str) -> None:
    """The store's schema (tables, views, search index, reader role) on an empty PostgreSQL
    database, as `Store.open` creates it."""
    store = await Store.open(url)
    await store.close()


async def copy_store(sqlite_path: Path, url: str) -> None:
    """Copy every row of the SQLite store at `sqlite_path` into the PostgreSQL store at `url`."""
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    dst = await asyncpg.connect(url)
    try:
        for table in metadata.sorted_tables:
            if table.name == "search_index_state":
                continue  # the store made its own (unused on PostgreSQL)
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

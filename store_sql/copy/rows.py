"""A store copy's statements on SQLite: reading a table in batches, writing a batch, and
the checks around them. Plain functions of a `sqlite3.Connection` (see `copy.pg_rows`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from store_sql.copy.tables import BATCH_BYTES, BATCH_ROWS, CopiedTable, row_bytes

Row = tuple[object, ...]


def existing(conn: sqlite3.Connection, tables: tuple[CopiedTable, ...]) -> set[str]:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {t.name for t in tables if t.name in names}


def counts(conn: sqlite3.Connection, tables: list[CopiedTable]) -> dict[str, int]:
    return {t.name: conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in tables}


def non_empty(conn: sqlite3.Connection, tables: list[CopiedTable]) -> list[str]:
    return [
        t.name
        for t in tables
        if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t.name})").fetchone()[0]
    ]


def batches(conn: sqlite3.Connection, table: CopiedTable) -> Iterator[tuple[list[Row], int]]:
    """The table's rows in key order, as (rows, bytes) batches (`tables.BATCH_*`)."""
    cursor = conn.execute(
        f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY {table.key}"
    )
    batch: list[Row] = []
    size = 0
    while rows := cursor.fetchmany(256):
        for row in rows:
            batch.append(tuple(row))
            size += row_bytes(table, row)
            if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
                yield batch, size
                batch, size = [], 0
    if batch:
        yield batch, size


def insert(conn: sqlite3.Connection, table: CopiedTable, rows: list[Row]) -> None:
    """Insert a batch; the deferred self-references go in as NULL (`set_deferred`)."""
    if table.deferred:
        rows = [_without(row, table.deferred) for row in rows]
    marks = ", ".join("?" * len(table.columns))
    conn.executemany(
        f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})", rows
    )


def _without(row: Row, deferred: tuple[int, ...]) -> Row:
    return tuple(None if i in deferred else v for i, v in enumerate(row))


def set_deferred(
    conn: sqlite3.Connection, table: CopiedTable, links: list[tuple[object, int, object]]
) -> None:
    """Set the deferred columns: (key, column index, value) each."""
    for key, index, value in links:
        conn.execute(
            f"UPDATE {table.name} SET {table.columns[index]} = ? WHERE {table.key} = ?",
            (value, key),
        )


def clear(conn: sqlite3.Connection, tables: list[CopiedTable]) -> None:
    """Empty the copied tables (children first) and restart the full-text index's mark."""
    for table in reversed(tables):
        conn.execute(f"DELETE FROM {table.name}")
    conn.execute("UPDATE search_index_state SET indexed_upto = 0")

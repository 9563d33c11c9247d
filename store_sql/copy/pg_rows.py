"""A store copy's statements on PostgreSQL: the async twins of `copy.rows`.

Rows are read through a server-side cursor in key order and written by binary COPY
(`copy_records_to_table`). Values are fitted to the destination's column types on the way
in: SQLite's loosely typed values (a whole number read back as a float, text in a bytea
column) become what the PostgreSQL column holds, and a line becomes `line` or `line_bytes`
(`copy.tables`). Keys copied as they are would leave an identity column's sequence behind
them, so `finish` moves each sequence past the largest key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

from store_sql.copy.tables import BATCH_BYTES, BATCH_ROWS, CopiedTable, row_bytes
from store_sql.engine.pg.connection import PgConnection as Connection
from store_sql.errors import CopyFailedError
from store_sql.sessions.pg_rows import number_of

Row = tuple[object, ...]
_LINES = "transcript_lines"
_INTEGERS = frozenset({"bigint", "integer", "smallint"})


async def existing(conn: Connection, tables: tuple[CopiedTable, ...]) -> set[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    names = {r[0] for r in rows}
    return {t.name for t in tables if t.name in names}


async def counts(conn: Connection, tables: list[CopiedTable]) -> dict[str, int]:
    return {t.name: int(await conn.fetchval(f"SELECT count(*) FROM {t.name}")) for t in tables}


async def non_empty(conn: Connection, tables: list[CopiedTable]) -> list[str]:
    return [
        t.name for t in tables if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {t.name})")
    ]


def _select_columns(table: CopiedTable) -> str:
    if table.name == _LINES:
        return ", ".join("line, line_bytes" if c == "line" else c for c in table.columns)
    return ", ".join(table.columns)


async def batches(conn: Connection, table: CopiedTable) -> AsyncIterator[tuple[list[Row], int]]:
    """The table's rows in key order, as (rows, bytes) batches; inside a transaction."""
    line_at = table.columns.index("line") if table.name == _LINES else -1
    batch: list[Row] = []
    size = 0
    async for record in conn.cursor(
        f"SELECT {_select_columns(table)} FROM {table.name} ORDER BY {table.key}", prefetch=512
    ):
        values = tuple(number_of(v) if v.__class__ is Decimal else v for v in record)
        if line_at >= 0:
            text, data = values[line_at], values[line_at + 1]
            values = (*values[:line_at], text if text is not None else data, *values[line_at + 2 :])
        batch.append(values)
        size += row_bytes(table, values)
        if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
            yield batch, size
            batch, size = [], 0
    if batch:
        yield batch, size


async def column_types(conn: Connection, table: CopiedTable) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1",
        table.name,
    )
    return {r[0]: r[1] for r in rows}


def fitter(table: CopiedTable, types: dict[str, str]) -> Callable[[Row], Row]:
    """A function turning a row into the destination's record (`_copy_columns` order)."""
    casts: list[Callable[[Any], Any] | None] = []
    for name in table.columns:
        kind = types.get(name, "text")
        casts.append(
            _integer(table.name, name)
            if kind in _INTEGERS
            else _bytea
            if kind == "bytea"
            else float
            if kind in ("double precision", "real")
            else _numeric
            if kind == "numeric"
            else None
        )
    line_at = table.columns.index("line") if table.name == _LINES else -1
    deferred = set(table.deferred)

    def fit(row: Row) -> Row:
        out: list[Any] = []
        for i, value in enumerate(row):
            if i in deferred:
                out.append(None)
            elif i == line_at:
                if isinstance(value, str) and "\x00" not in value:
                    out += (value, None)
                else:
                    out += (None, value.encode("utf-8") if isinstance(value, str) else value)
            else:
                cast = casts[i]
                out.append(value if value is None or cast is None else cast(value))
        return tuple(out)

    return fit


def _integer(table: str, column: str) -> Callable[[Any], int]:
    def cast(value: Any) -> int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise CopyFailedError(
            f"{table}.{column} holds {value!r}, which the PostgreSQL column (an integer) "
            "cannot hold: nothing more was copied"
        )

    return cast


def _numeric(value: Any) -> Any:
    """A float by its shortest decimal spelling, as every numeric column binds it."""
    return Decimal(repr(value)) if value.__class__ is float else value


def _bytea(value: Any) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)


def copy_columns(table: CopiedTable) -> tuple[str, ...]:
    """The destination's columns in record order."""
    if table.name == _LINES:
        return tuple(
            c
            for name in table.columns
            for c in (("line", "line_bytes") if name == "line" else (name,))
        )
    return table.columns


async def insert(
    conn: Connection, table: CopiedTable, rows: list[Row], fit: Callable[[Row], Row]
) -> None:
    await conn.copy_records_to_table(
        table.name, records=[fit(row) for row in rows], columns=copy_columns(table)
    )


async def set_deferred(
    conn: Connection, table: CopiedTable, links: list[tuple[object, int, object]]
) -> None:
    by_column: dict[int, list[tuple[object, object]]] = {}
    for key, index, value in links:
        by_column.setdefault(index, []).append((key, value))
    for index, pairs in by_column.items():
        await conn.execute(
            f"UPDATE {table.name} t SET {table.columns[index]} = u.v "
            f"FROM unnest($1::bigint[], $2::bigint[]) AS u(k, v) WHERE t.{table.key} = u.k",
            [k for k, _ in pairs],
            [v for _, v in pairs],
        )


async def finish(conn: Connection, tables: list[CopiedTable]) -> None:
    """Move identity sequences past the copied keys; rebuild `idempotency_keys`."""
    for table in tables:
        sequence = await conn.fetchval(
            "SELECT pg_get_serial_sequence($1, $2)", table.name, table.key
        )
        if sequence is not None:
            await conn.execute(
                f"SELECT setval($1, (SELECT coalesce(max({table.key}), 0) + 1 FROM {table.name}), "
                "false)",
                sequence,
            )
    if await conn.fetchval("SELECT to_regclass('idempotency_keys') IS NOT NULL"):
        await conn.execute(
            "INSERT INTO idempotency_keys (transcript_id, key, pos) "
            "SELECT transcript_id, idempotency_key, min(pos) FROM transcript_lines "
            "WHERE idempotency_key IS NOT NULL GROUP BY transcript_id, idempotency_key "
            "ON CONFLICT DO NOTHING"
        )


async def clear(conn: Connection, tables: list[CopiedTable]) -> None:
    names = [t.name for t in tables]
    for derived in ("idempotency_keys", "search_pending", "search_text"):
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", derived):
            names.append(derived)
    await conn.execute(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")

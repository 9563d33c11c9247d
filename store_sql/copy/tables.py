"""What a store copy moves: every table of `schema.tables`, as rows in one form for both
backends. No SQL here.

A row is the table's columns in `schema.tables` order. `transcript_lines.line` holds the
line as SQLite keeps it: a str for a line that is text, bytes for one that is not;
PostgreSQL keeps the same line in `line` (text) or `line_bytes` (bytea), and its twin turns
one form into the other. Derived tables are not copied but rebuilt by the destination:
`search_index_state` (the destination's full-text index catches up by itself) and, on
PostgreSQL, `idempotency_keys` (the first occurrence of each key, from the lines).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table

from store_sql.schema.tables import metadata

DERIVED = frozenset({"search_index_state", "idempotency_keys"})
"""Tables the destination rebuilds from the copied ones instead of receiving them."""

BATCH_ROWS = 2000
BATCH_BYTES = 4 << 20
"""A batch ends at this many rows or bytes of its large values, whichever comes first, so
the copy holds a few batches in memory at a time whatever the store's size."""


@dataclass(frozen=True, slots=True)
class CopiedTable:
    """One table as the copy moves it."""

    name: str
    columns: tuple[str, ...]
    key: str
    """The single-column primary key: rows are read in its order."""
    large: tuple[int, ...]
    """Indexes of the columns whose size counts towards a batch's bytes."""
    deferred: tuple[int, ...]
    """Indexes of columns referring to the same table (`transcripts.superseded_by`): copied
    as NULL, then set once every row is there, since they may point to a later row."""


def _copied(table: Table) -> CopiedTable:
    columns = tuple(c.name for c in table.columns)
    (key,) = [c.name for c in table.primary_key.columns]
    large = tuple(
        i
        for i, c in enumerate(table.columns)
        if c.type.__class__.__name__ == "LargeBinary"
        or c.name in ("entry_json", "source_error", "damage")
    )
    deferred = tuple(
        i
        for i, c in enumerate(table.columns)
        if any(fk.column.table is table for fk in c.foreign_keys)
    )
    return CopiedTable(table.name, columns, key, large, deferred)


COPIED: tuple[CopiedTable, ...] = tuple(
    _copied(t) for t in metadata.sorted_tables if t.name not in DERIVED
)
"""Every copied table, parents before children (foreign keys)."""


def row_bytes(table: CopiedTable, row: tuple[object, ...]) -> int:
    """What a row weighs in a batch: the size of its large values, plus a little per row."""
    size = 64
    for i in table.large:
        value = row[i]
        if isinstance(value, (bytes, str)):
            size += len(value)
    return size

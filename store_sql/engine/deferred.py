"""Inserts a mutation hands to the writer to run once, just before its group commits.

Some writes are cheaper in bulk than one by one. The full-text index is the case in point:
FTS5 flushes its pending terms into a new index segment at every savepoint release, so
inserting a message's text inside each mutation's savepoint cost ~120 µs per append and
~18 WAL pages per commit (tools/bench). Deferred, the texts of a whole batch go in with one
`executemany` after the last savepoint, still inside the same transaction: a commit makes
lines and their index visible together, and a rolled-back mutation's rows are dropped.

Outside a writer batch (a script using a plain connection) `insert` runs immediately.
"""

from __future__ import annotations

import sqlite3
from typing import Any

# Keyed by id(connection): a sqlite3.Connection cannot carry attributes, and each writer
# connection has exactly one batch open at a time, on its own thread.
_open: dict[int, list[tuple[str, tuple[Any, ...]]]] = {}


def insert(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    """Run `sql` with `params` at the end of the current batch (or now, outside one)."""
    pending = _open.get(id(conn))
    if pending is None:
        conn.execute(sql, params)
    else:
        pending.append((sql, params))


def open_batch(conn: sqlite3.Connection) -> None:
    _open[id(conn)] = []


def mark(conn: sqlite3.Connection) -> int:
    """A point to roll back to when the next mutation fails."""
    return len(_open.get(id(conn), ()))


def rollback_to(conn: sqlite3.Connection, point: int) -> None:
    pending = _open.get(id(conn))
    if pending is not None:
        del pending[point:]


def flush(conn: sqlite3.Connection) -> None:
    """Run everything deferred so far, consecutive rows of one statement as one executemany."""
    pending = _open.get(id(conn))
    if not pending:
        return
    start = 0
    for index in range(1, len(pending) + 1):
        if index == len(pending) or pending[index][0] != pending[start][0]:
            conn.executemany(pending[start][0], [params for _, params in pending[start:index]])
            start = index
    pending.clear()


def close_batch(conn: sqlite3.Connection) -> None:
    _open.pop(id(conn), None)

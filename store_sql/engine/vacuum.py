"""Giving free pages back to the file system, a bounded step at a time.

A closing store runs one step (store.py) and a cleanup runs steps until the file is small
(maintenance/api.py)."""

from __future__ import annotations

import sqlite3
from typing import Final

VACUUM_THRESHOLD_PAGES: Final = 1024
"""Free pages (4 MiB at 4 KiB pages) above which a cleanup gives space back to the file
system with `incremental_vacuum`; below it the pages are simply reused by later writes."""
VACUUM_STEP_PAGES: Final = 2048
"""Pages freed per writer transaction: a step short enough that other writes interleave."""


def free_pages(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def vacuum_step(conn: sqlite3.Connection, max_pages: int = VACUUM_STEP_PAGES) -> int:
    """Return up to `max_pages` free pages to the file system; the pages still free after.

    Python's sqlite3 steps `PRAGMA incremental_vacuum(N)` once, which frees one page, and
    leaves the statement open (a later RELEASE then fails); so one page per statement, each
    cursor closed at once."""
    for _ in range(min(max_pages, free_pages(conn))):
        conn.execute("PRAGMA incremental_vacuum(1)").close()
    return free_pages(conn)

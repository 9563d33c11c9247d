"""A damaged database file: telling SQLite's corruption errors apart, and what to say.

A flipped page (a bad disk, a copy taken mid-write, a tool that wrote into the file) makes
SQLite raise "database disk image is malformed" (SQLITE_CORRUPT) or "file is not a
database" (SQLITE_NOTADB) when, and only when, a statement reaches that page. Every door to
SQLite turns those into `DatabaseCorruptError`, one line naming the file and the next step,
so the damage is reported the same way whichever command met it first.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from store_sql.errors import DatabaseCorruptError

_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


def is_corruption(exc: BaseException | None) -> bool:
    """True for SQLite's errors about a damaged file (any extended SQLITE_CORRUPT code)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", None) or ""
    return "_".join(name.split("_")[:2]) in _CODES or "malformed" in str(exc)


def next_steps(path: Path | str, *, doctor: bool = True) -> str:
    """What to do about a damaged database, in one sentence (`doctor=False`: for doctor's
    own report, which is that first step)."""
    repair = (
        "restore a backup, or copy the file with its -wal and -shm and rebuild it with "
        f"`sqlite3 {path} .recover`"
    )
    if not doctor:
        return repair
    return f"run `store-sql doctor --db {path}` to see what is damaged, then {repair}"


def corruption_error(path: Path | str, exc: BaseException) -> DatabaseCorruptError:
    """The one-line error for a corruption `exc` met while using the database at `path`."""
    return DatabaseCorruptError(
        f"{path}: the database file is damaged ({exc}); nothing was changed. {next_steps(path)}"
    )

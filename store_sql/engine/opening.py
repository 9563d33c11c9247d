"""Deciding whether a file may be opened, creating it, and upgrading it.

Runs synchronously (callers use a worker thread). The rules, in docs/GUARANTEES.md:
a file that is not SQLite, is corrupt, belongs to another application or carries a schema
revision newer than this code is refused and never written to; an older revision is backed
up with VACUUM INTO beside the file and then upgraded; a new database is built in a temporary
file and renamed into place, so a crash never leaves a half-created database behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from store_sql.engine.damage import is_corruption, next_steps
from store_sql.engine.file_modes import create_private_file, make_private_dirs
from store_sql.engine.readers import read_only_uri
from store_sql.errors import DatabaseRefusedError
from store_sql.schema.revision import APPLICATION_ID, SCHEMA_REVISION

_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True, slots=True)
class OpenReport:
    """What opening did to the file."""

    created: bool
    upgraded_from: str | None
    backup_path: Path | None
    backup_skipped: str | None = None
    """Why an upgrade made no backup although one was asked for (PostgreSQL: no pg_dump on
    PATH, or one older than the server)."""


@dataclass(frozen=True, slots=True)
class FileState:
    """What an existing file is, read without writing to it."""

    application_id: int
    revision: str | None
    has_tables: bool


def prepare(
    path: Path, *, upgrade: bool = True, backup: bool = True, create: bool = True
) -> OpenReport:
    """Make `path` a current store_sql database, or refuse it without touching it.

    `create=False`: a missing (or 0-byte) file is refused, and nothing is created."""
    if _is_new(path):
        if not create:
            raise DatabaseRefusedError(
                f"{path}: no such database (nothing was created; check --db or "
                "$STORE_SQL_DB, or create it with `store-sql import` or `store-sql migrate`)"
            )
        # Two processes may open a new path at once. Were both to build a database and rename
        # it into place, the second rename would replace a file the first already holds and
        # writes to. Creation is serialised by a lock on the directory and re-checked under it.
        with _directory_lock(path.parent):
            if _is_new(path):
                _create(path)
                return OpenReport(created=True, upgraded_from=None, backup_path=None)
    state = inspect_file(path)
    if state.revision == SCHEMA_REVISION:
        return OpenReport(created=False, upgraded_from=None, backup_path=None)
    if state.revision is not None and not _is_known_revision(state.revision):
        raise DatabaseRefusedError(
            f"{path}: schema revision {state.revision!r} is newer than this store_sql "
            f"(which knows up to {SCHEMA_REVISION!r}); upgrade store_sql to open it"
        )
    # A file of ours without a revision (no alembic_version row: its schema was never built,
    # or Alembic downgraded it to base) is upgraded too; the report names it "base", as
    # Alembic does, so callers can tell an upgrade from "already current" (the CLI said
    # "is up to date" after building the whole schema).
    older = state.revision if state.revision is not None else "base"
    if not upgrade:
        raise DatabaseRefusedError(
            f"{path}: schema revision {older!r} is older than {SCHEMA_REVISION!r}; "
            "run `store-sql migrate` to upgrade it"
        )
    backup_path = _backup(path, state.revision) if backup else None
    run_migrations(path)
    return OpenReport(created=False, upgraded_from=older, backup_path=backup_path)


def inspect_file(path: Path) -> FileState:
    """Read the header, application id and revision of an existing file, read-only."""
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise DatabaseRefusedError(f"{path}: cannot read the file: {exc}") from exc
    if not head.startswith(_SQLITE_MAGIC):
        raise DatabaseRefusedError(f"{path}: not a SQLite database (refusing to touch it)")
    uri = read_only_uri(str(path))
    if not Path(f"{path}-wal").exists():
        # A read-only connection to a WAL-mode file creates -wal and -shm beside it and,
        # unable to write, never removes them: refusing a foreign or corrupt file left two
        # new files next to it. With no -wal everything committed is in the main file, so
        # `immutable=1` reads it without creating anything.
        uri += "&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise DatabaseRefusedError(f"{path}: cannot open: {exc}") from exc
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        revision = None
        if "alembic_version" in names:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
    except sqlite3.DatabaseError as exc:
        advice = f"; {next_steps(path)}" if is_corruption(exc) else ""
        raise DatabaseRefusedError(
            f"{path}: the database is corrupt or unreadable: {exc}{advice}"
        ) from exc
    finally:
        conn.close()
    if app_id != APPLICATION_ID:
        raise DatabaseRefusedError(
            f"{path}: a SQLite database of another application (application_id={app_id}); "
            "store_sql opens only its own databases"
        )
    return FileState(application_id=app_id, revision=revision, has_tables=bool(names))


def run_migrations(path: Path, *, durable: bool = True) -> None:
    """Upgrade `path` to the head revision with Alembic, each revision in one transaction
    (`durable=False`: no sync per revision, for a file its creator syncs once at the end)."""
    from store_sql.engine.migrate import upgrade_to_head

    upgrade_to_head(path, durable=durable)


def _create(path: Path) -> None:
    make_private_dirs(path.parent)
    # A creator killed midway leaves its temporary file (and -journal) behind. Creation runs
    # under `_directory_lock`, so any such file seen here is a leftover.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.creating-*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}-{time.monotonic_ns()}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA page_size = 4096")
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")  # makes page_size and auto_vacuum take effect on an empty file
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        finally:
            conn.close()
        # Nobody sees the temporary file until it is linked into place, so the revisions skip
        # their syncs and the finished file is synced once before it is installed.
        run_migrations(tmp, durable=False)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        _fsync(tmp)
        _install(tmp, path)
        _fsync(path.parent)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            if leftover.exists():
                leftover.unlink()


def _install(tmp: Path, path: Path) -> None:
    """Put the new database at `path`: a hard link never replaces whatever appeared there
    meanwhile; only the 0-byte regular file `_is_new` accepted is replaced."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        if not _is_new(path):
            raise DatabaseRefusedError(
                f"{path}: another file appeared there while the database was being created; "
                "it was left alone"
            ) from None
        os.replace(tmp, path)
    except OSError:  # a file system without hard links
        if path.exists() and not _is_new(path):
            raise DatabaseRefusedError(f"{path}: exists; it was left alone") from None
        os.replace(tmp, path)


def _backup(path: Path, revision: str | None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.backup-{revision or 'none'}-{stamp}")
    serial = 1
    while target.exists():  # two upgrades within one second must not overwrite a backup
        serial += 1
        target = path.with_name(f"{path.name}.backup-{revision or 'none'}-{stamp}-{serial}")
    # Written under a temporary name and renamed: a crash during VACUUM INTO must not leave
    # a partial file that looks like a complete backup.
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    # VACUUM INTO writes into an existing empty file, so the backup is 0600 from its first
    # byte rather than the umask's mode until the copy ends.
    create_private_file(partial)
    conn = sqlite3.connect(path)
    try:
        conn.execute("VACUUM INTO ?", (str(partial),))
    finally:
        conn.close()
    os.replace(partial, target)
    return target


def _is_known_revision(revision: str) -> bool:
    from store_sql.engine.migrate import known_revisions

    return revision in known_revisions()


def _is_new(path: Path) -> bool:
    """True for a missing or 0-byte file; refuses anything but a regular file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise DatabaseRefusedError(f"{path}: cannot examine the file: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise DatabaseRefusedError(
            f"{path}: not a regular file ({file_kind(st.st_mode)}); a database is a regular "
            "file, and store_sql never replaces anything else: check --db or $STORE_SQL_DB"
        )
    return st.st_size == 0 and not _sidecar_exists(path)


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages ("a FIFO", "a directory", ...)."""
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on `directory` itself (no lock file is left behind)."""
    make_private_dirs(directory)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _sidecar_exists(path: Path) -> bool:
    # A 0-byte database with a -wal beside it may hold committed data in the WAL.
    return Path(f"{path}-wal").exists()


def _fsync(path: Path) -> None:
    """Sync a file's data, or a directory's entries (a rename or link in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

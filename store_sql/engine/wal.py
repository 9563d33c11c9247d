"""The write-ahead log: its size, and checkpoints that keep it bounded.

Every WAL rule of the engine is here. SQLite's own auto-checkpoint (PASSIVE, every 1,000
pages) runs on commit; `WalPacer` adds the forced TRUNCATE checkpoint the writer runs after
a group when readers never pause; `truncate_wal_file` is the explicit one maintenance asks
for; `WalSyncer` bounds what a power cut can take at synchronous=NORMAL.
docs/GUARANTEES.md states what follows for durability and readers.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Protocol

from store_sql.engine.pragmas import EngineSettings


class WalCounters(Protocol):
    checkpoints: int
    wal_bytes: int
    max_wal_bytes: int


def wal_path(db_path: str | os.PathLike[str]) -> Path:
    """The WAL beside a database file."""
    return Path(f"{os.fspath(db_path)}-wal")


def file_size(path: str | os.PathLike[str]) -> int:
    """Bytes in `path`, 0 when it does not exist."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class WalPacer:
    """Keeps the WAL bounded even when readers never pause.

    SQLite's auto-checkpoint (PASSIVE) cannot move past pages a reader still needs, so
    under constant reads the WAL only grows. Past
    `wal_truncate_bytes` the writer itself waits for readers (TRUNCATE) so the WAL
    restarts from empty; pooled reads are single short transactions, so the wait is short.

    The wait is `checkpoint_wait_ms`, not busy_timeout: a foreign reader holding an old
    snapshot (a `store-sql sql` query, a sqlite3 shell left open) must not stall every
    write. After a checkpoint that could not finish, the next attempt waits until the WAL
    has grown by another quarter of `wal_truncate_bytes`.
    """

    def __init__(self, wal: str | os.PathLike[str], settings: EngineSettings) -> None:
        self._wal = os.fspath(wal)
        self._settings = settings
        self._force_at = settings.wal_truncate_bytes

    def pace(self, conn: sqlite3.Connection, counters: WalCounters) -> None:
        """After a group's commit, on the writer's connection (outside any transaction)."""
        try:
            size = os.stat(self._wal).st_size
        except OSError:
            return
        counters.max_wal_bytes = max(counters.max_wal_bytes, size)
        bound = self._settings.wal_truncate_bytes
        if size >= self._force_at:
            finished = checkpoint_truncate(conn, self._settings)
            counters.checkpoints += 1
            # After a failed attempt, try again once the WAL has grown by a quarter of the
            # bound, not a whole one: under constant pooled reads an attempt fails only for
            # want of a gap between reads, and the next gap is near.
            self._force_at = bound if finished else size + max(1, bound // 4)
            size = file_size(self._wal)
        elif size < bound:
            self._force_at = bound  # the WAL was reset (auto-checkpoint, restart)
        counters.wal_bytes = size


def checkpoint_truncate(conn: sqlite3.Connection, settings: EngineSettings) -> bool:
    """A TRUNCATE checkpoint waiting at most `checkpoint_wait_ms` for readers; True if done."""
    conn.execute(f"PRAGMA busy_timeout = {int(settings.checkpoint_wait_ms)}")
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
    return not busy


def truncate_wal_file(db_path: Path, timeout_s: float) -> bool:
    """Fold the WAL into the database and truncate it to 0 bytes, from a short-lived
    connection: the writer's own connection is inside a transaction whenever it runs a
    mutation, and a checkpoint cannot run there. True when it completed."""
    conn = sqlite3.connect(db_path, timeout=timeout_s, isolation_level=None)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return bool(busy == 0)
    finally:
        conn.close()


class WalSyncer:
    """At synchronous=NORMAL, commits reach the WAL file without an fsync: a process crash
    loses nothing, a power cut loses the commits still in the OS cache. The syncer bounds
    that window: once a commit is older than `sync_interval_s` and not synced, the writer
    fsyncs the WAL file, which makes every commit before it durable (committed frames are
    in the WAL; a checkpoint syncs the WAL before it copies them). One fsync per interval
    instead of one per group commit."""

    def __init__(self, wal: str | os.PathLike[str], settings: EngineSettings) -> None:
        self._wal = os.fspath(wal)
        self._interval = settings.sync_interval_s if settings.synchronous == "NORMAL" else 0.0
        self._fd: int | None = None
        self._unsynced_since: float | None = None

    def committed(self, now: float) -> None:
        """A group committed at `now` (time.monotonic())."""
        if self._interval > 0 and self._unsynced_since is None:
            self._unsynced_since = now

    def due_in(self, now: float) -> float | None:
        """Seconds until a sync is due (<= 0: due now); None when everything is synced."""
        if self._unsynced_since is None:
            return None
        return self._unsynced_since + self._interval - now

    def sync(self, conn: sqlite3.Connection | None = None) -> bool:
        """fsync the WAL file (on the writer's thread); True when it was done."""
        self._unsynced_since = None
        if self._fd is None:
            try:
                self._fd = os.open(self._wal, os.O_RDONLY)
            except OSError:
                return False  # no WAL file: nothing was written through one
        try:
            os.fsync(self._fd)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

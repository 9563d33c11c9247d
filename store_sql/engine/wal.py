"""The write-ahead log: its size, and checkpoints that keep it bounded.

Every WAL rule of the engine is here. SQLite's own auto-checkpoint (PASSIVE, every
`wal_autocheckpoint_pages`) runs on commit; `WalPacer` adds the forced TRUNCATE
checkpoint the writer runs after a group when readers never pause; `truncate_wal_file` is
the explicit one maintenance asks for; `WalUpkeep` bounds what a power cut can take at
synchronous=NORMAL and checkpoints off the writer's path.
docs/GUARANTEES.md states what follows for durability and readers.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

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


class WalUpkeep:
    """Fsyncs and checkpoints the WAL on a thread of its own, so that neither sits in a
    write's path.

    At synchronous=NORMAL commits reach the WAL without an fsync: a process crash loses
    nothing, a power cut loses the commits still in the OS cache. Once a commit is older
    than `sync_interval_s` and not synced, the upkeep thread fsyncs the WAL file, which
    makes every commit before it durable (committed frames are in the WAL; a checkpoint
    syncs the WAL before it copies them). One fsync per interval instead of one per group
    commit, and the writer goes on committing while it runs.

    Every `checkpoint_interval_s` after a commit it also runs a PASSIVE checkpoint from its
    own connection: it copies committed pages into the database file while the writer keeps
    writing (a WAL checkpoint never blocks writers), and once it has copied all of them the
    writer's next transaction starts the WAL over. SQLite's auto-checkpoint, which runs on
    the writer inside a commit and makes that commit wait for the copy and two fsyncs, then
    finds the WAL short or already copied.

    The loop side (`committed`, `take_due`) runs on the event loop; `run` on the thread."""

    def __init__(self, db_path: str | os.PathLike[str], settings: EngineSettings) -> None:
        self._db = os.fspath(db_path)
        self._wal = os.fspath(wal_path(db_path))
        self._sync_interval = settings.sync_interval_s if settings.synchronous == "NORMAL" else 0.0
        self._checkpoint_interval = settings.checkpoint_interval_s
        self._fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._unsynced_since: float | None = None
        self._unchecked_since: float | None = None
        self.syncs = 0
        self.checkpoints = 0

    def committed(self, now: float) -> None:
        """A group committed at `now` (time.monotonic())."""
        if self._sync_interval > 0 and self._unsynced_since is None:
            self._unsynced_since = now
        if self._checkpoint_interval > 0 and self._unchecked_since is None:
            self._unchecked_since = now

    def due_in(self, now: float) -> float | None:
        """Seconds until the next sync or checkpoint is due (<= 0: due now); None when
        nothing waits for one."""
        due = [
            since + interval - now
            for since, interval in (
                (self._unsynced_since, self._sync_interval),
                (self._unchecked_since, self._checkpoint_interval),
            )
            if since is not None
        ]
        return min(due) if due else None

    def take_due(self, now: float) -> tuple[bool, bool]:
        """(sync, checkpoint): what is due now, marked as done; the caller then runs
        `run(sync, checkpoint)` on the upkeep thread."""
        sync = (
            self._unsynced_since is not None and self._unsynced_since + self._sync_interval <= now
        )
        checkpoint = (
            self._unchecked_since is not None
            and self._unchecked_since + self._checkpoint_interval <= now
        )
        if sync:
            self._unsynced_since = None
        if checkpoint:
            self._unchecked_since = None
        return sync, checkpoint

    def run(self, sync: bool, checkpoint: bool) -> None:
        """On the upkeep thread. A failed fsync or checkpoint is tried again after a later
        commit; the writer never learns of it."""
        if sync and self._fsync():
            self.syncs += 1
        if checkpoint:
            with contextlib.suppress(sqlite3.Error):
                if self._conn is None:
                    # mode=rw: a database that went away is never created again here.
                    self._conn = sqlite3.connect(
                        f"file:{quote(self._db)}?mode=rw",
                        uri=True,
                        isolation_level=None,
                        check_same_thread=False,
                        timeout=0,
                    )
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.checkpoints += 1

    def _fsync(self) -> bool:
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
        """On the upkeep thread, after its last `run`."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

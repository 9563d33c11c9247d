"""Connection settings: one place that says how every connection is configured.

Durability and concurrency promises that follow from these are written down in
docs/GUARANTEES.md.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

Synchronous = Literal["NORMAL", "FULL"]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Tunables of the engine. The defaults suit a gateway on a small machine."""

    synchronous: Synchronous = "NORMAL"
    """NORMAL: a commit survives a process crash; on power loss the commits of the last
    `sync_interval_s` may roll back. FULL: every acknowledged commit survives power loss, at
    one fsync per group commit (docs/GUARANTEES.md, "Power loss")."""
    sync_interval_s: float = 1.0
    """At NORMAL, the writer fsyncs the WAL once a commit is this old and unsynced, so a power
    cut loses at most about this much of the latest writes. 0: only checkpoints sync.
    The fsync runs on a thread of its own (engine/wal.py, `WalUpkeep`): no write waits for it."""
    checkpoint_interval_s: float = 1.0
    """This long after a commit, a PASSIVE checkpoint runs on that same thread, copying
    committed pages into the database while the writer goes on; the writer's own
    auto-checkpoint, inside a commit, then rarely has work left. 0: only the writer's."""
    busy_timeout_ms: int = 5000
    """How long a connection waits for another process's lock before failing clearly."""
    readers: int = 4
    """Size of the read-only connection pool."""
    max_batch: int = 512
    """Most mutations committed in one group transaction."""
    journal_size_limit: int = 16 * 1024 * 1024
    """The WAL file is truncated back to this size after a checkpoint resets it."""
    wal_autocheckpoint_pages: int = 2000
    """Passive checkpoint once the WAL holds this many pages (run by the writer only)."""
    wal_truncate_bytes: int = 64 * 1024 * 1024
    """Above this WAL size the writer forces a TRUNCATE checkpoint, waiting for readers,
    so constant reads cannot grow the WAL without bound."""
    checkpoint_wait_ms: int = 250
    """How long that forced checkpoint waits for readers. Pooled reads are short; a reader
    that keeps an old snapshot (another process's long query) makes it give up after this
    long rather than stall the writer for busy_timeout (docs/GUARANTEES.md)."""
    cache_size_kib: int = 16384


def configure_writer(conn: sqlite3.Connection, settings: EngineSettings) -> None:
    """Settings of the one write connection."""
    conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"could not switch the database to WAL (mode is {mode})")
    conn.execute(f"PRAGMA synchronous = {settings.synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA journal_size_limit = {int(settings.journal_size_limit)}")
    conn.execute(f"PRAGMA wal_autocheckpoint = {int(settings.wal_autocheckpoint_pages)}")
    conn.execute(f"PRAGMA cache_size = -{int(settings.cache_size_kib)}")
    conn.execute("PRAGMA temp_store = MEMORY")


def configure_reader(conn: sqlite3.Connection, settings: EngineSettings) -> None:
    """Settings of a pooled read-only connection: it can never write, so never checkpoint."""
    conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
    conn.execute("PRAGMA query_only = 1")
    conn.execute(f"PRAGMA cache_size = -{int(settings.cache_size_kib)}")
    conn.execute("PRAGMA temp_store = MEMORY")

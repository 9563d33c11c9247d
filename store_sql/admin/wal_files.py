"""What the files beside a WAL database say, read without SQLite (for `store-sql doctor`).

Two probes: which processes hold POSIX locks on the database or its `-shm` (so: have it
open), from /proc/locks; and how far the WAL is checkpointed, from the `-shm` header.

The first opens nothing. The second opens `-shm` with a plain file read, which is only safe
in a process holding no SQLite connection to that database: closing any descriptor of a
file drops every POSIX lock the process holds on it, which would silently unlock a live
connection's wal-index. Callers inside the gateway's process must not use it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path


def lock_holders(paths: list[Path]) -> set[int] | None:
    """Process ids holding POSIX locks on any of `paths` (from /proc/locks, which is read
    without opening the files). None when the system has no /proc/locks."""
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    wanted = set()
    for file in paths:
        try:
            st = os.stat(file)
        except OSError:
            continue
        wanted.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    pids: set[int] = set()
    for line in table.splitlines():
        # "1: POSIX  ADVISORY  READ 1234 fe:00:2155638 128 128" ("->" marks a waiter)
        parts = [p for p in line.split() if p != "->"]
        if len(parts) < 6:
            continue
        try:
            major, minor, inode = parts[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
            pid = int(parts[4])
        except ValueError:
            continue
        if key in wanted:
            pids.add(pid)
    return pids


def read_wal_index(shm: Path) -> dict[str, int] | None:
    """Frames in the WAL and frames already copied into the database, from the -shm header
    (two copies of WalIndexHdr, then nBackfill at byte 96, in native byte order). None
    when the header is missing or being rewritten."""
    try:
        with shm.open("rb") as f:
            head = f.read(136)
    except OSError:
        return None
    if len(head) < 136 or head[0:48] != head[48:96] or not head[12]:
        return None
    max_frame = struct.unpack_from("=I", head, 16)[0]
    backfilled = struct.unpack_from("=I", head, 96)[0]
    return {"wal_frames": max_frame, "wal_frames_checkpointed": backfilled}

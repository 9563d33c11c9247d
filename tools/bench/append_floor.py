"""The least an append can do: the ceiling of the concurrent-append rows.

issue 3 asks 100 concurrent appenders to reach half of plain sqlite3 inserting the same rows
100 per transaction. The baseline inserts finished rows from one thread; an append must also
do what the issue's own contract asks, on the gateway's event loop, through one serialized
writer thread. `FloorAppender` does only that, as directly as it can be written:

- on the caller's side, the entry's payload is written JSON.stringify-exact (jsjson, as the
  store does) and queued with a future; no validation, no API layers;
- one thread takes everything queued as one group: BEGIN IMMEDIATE, resolve the sessions'
  live transcripts and read their leaves (one query), look up the idempotency keys (one
  query), draw the 8-hex ids and check them against the stored ones (one query), insert
  every line (one executemany), move each leaf and counter (one executemany), COMMIT, then
  wake the callers with one call_soon_threadsafe.

It leaves out what the store adds besides: checking entries and ids, a savepoint rerun so a
failing append fails alone, cancellation, metrics, WAL pacing, and transcripts addressed by
id. So the store cannot beat it, and `concurrent_append_*_floor` says how high the issue's
ratio can go on this machine. Its rows are inserted exactly like the store's (same columns,
same statement shape), into a copy of the same database.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from store_sql.engine.pragmas import EngineSettings, configure_writer
from store_sql.formats import jsjson
from store_sql.transcripts.rows import now_iso

_INSERT = (
    "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
    "parent_pos, type, role, timestamp, idempotency_key, byte_size) "
    "VALUES (?, ?, CAST(? AS TEXT), 'entry', ?, ?, ?, 'message', ?, ?, ?, ?)"
)
_LIVE = (
    "SELECT session_id, transcript_id, line_count, byte_size, leaf_id, leaf_pos "
    "FROM transcripts WHERE agent_id = ? AND kind = 'live' AND superseded_by IS NULL "
    "AND session_id IN (SELECT value FROM json_each(?))"
)
_PAIRS = (
    "SELECT l.transcript_id, l.{column}, l.entry_id, l.pos FROM json_each(?) AS j "
    "CROSS JOIN transcript_lines AS l ON l.transcript_id = json_extract(j.value, '$[0]') "
    "AND l.{column} = json_extract(j.value, '$[1]')"
)
_ADVANCE = (
    "UPDATE transcripts SET line_count = ?, entry_count = entry_count + ?, byte_size = ?, "
    "leaf_id = ?, leaf_pos = ? WHERE transcript_id = ?"
)

# A queued append: (session_id, payload bytes after the tree fields, role, key, future).
_Job = tuple[str, bytes, Any, Any, "asyncio.Future[str]"]


class FloorAppender:
    """Appends message entries to live transcripts through one thread, in groups."""

    def __init__(self, path: Path, agent_id: str) -> None:
        self._agent = agent_id
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        configure_writer(self._conn, EngineSettings())
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._pending: list[_Job] = []
        self._busy = False
        self._kick_soon = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    async def append_message(self, session_id: str, message: dict[str, Any]) -> str:
        tail = b"," + jsjson.dumps_bytes({"message": message})[1:]
        future: asyncio.Future[str] = self._loop.create_future()
        self._pending.append(
            (session_id, tail, message.get("role"), message.get("idempotencyKey"), future)
        )
        if not self._busy and not self._kick_soon:
            # After the callbacks already due: every caller woken with this one joins the group.
            self._kick_soon = True
            self._loop.call_soon(self._kick)
        return await future

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        self._conn.close()

    # --- the loop's side: one group in flight, the next one gathering -----------------------

    def _kick(self) -> None:
        self._kick_soon = False
        if not self._busy and self._pending:
            self._busy = True
            group, self._pending = self._pending, []
            self._jobs.put(group)

    def _done(self, group: list[_Job], ids: list[str]) -> None:
        for job, entry_id in zip(group, ids, strict=True):
            job[4].set_result(entry_id)
        self._busy = False
        if not self._kick_soon:
            self._kick_soon = True
            self._loop.call_soon(self._kick)

    # --- the thread's side -------------------------------------------------------------------

    def _serve(self) -> None:
        while (group := self._jobs.get()) is not None:
            self._conn.execute("BEGIN IMMEDIATE")
            ids = self._write(group)
            self._conn.execute("COMMIT")
            self._loop.call_soon_threadsafe(self._done, group, ids)

    def _write(self, group: list[_Job]) -> list[str]:
        conn = self._conn
        sessions = orjson.dumps(sorted({job[0] for job in group})).decode()
        # session_id -> [transcript_id, line_count, byte_size, leaf_id, leaf_pos, added]
        live = {row[0]: [*row[1:], 0] for row in conn.execute(_LIVE, (self._agent, sessions))}
        keys = [(live[job[0]][0], job[3]) for job in group if job[3] is not None]
        stored = {
            (tid, key): entry_id
            for tid, key, entry_id, _ in conn.execute(
                _PAIRS.format(column="idempotency_key"), (orjson.dumps(keys).decode(),)
            )
        }
        now = now_iso()
        stamp = b',"timestamp":"' + now.encode() + b'"'
        params: list[tuple[Any, ...]] = []
        ids: list[str] = []
        for session_id, tail, role, key, _ in group:
            chain = live[session_id]
            tid, pos, leaf_id, leaf_pos = chain[0], chain[1], chain[3], chain[4]
            if key is not None and (tid, key) in stored:
                ids.append(stored[(tid, key)])
                continue
            entry_id = os.urandom(4).hex()
            parent = b"null" if leaf_id is None else b'"' + leaf_id.encode() + b'"'
            line = b'{"type":"message","id":"%s","parentId":%s' % (entry_id.encode(), parent)
            line += stamp + tail
            params.append((tid, pos, line, entry_id, leaf_id, leaf_pos, role, now, key, len(line)))
            ids.append(entry_id)
            if key is not None:
                stored[(tid, key)] = entry_id
            chain[1:] = [pos + 1, chain[2] + len(line) + 1, entry_id, pos, chain[5] + 1]
        drawn = orjson.dumps([(p[0], p[3]) for p in params]).decode()
        taken = conn.execute(_PAIRS.format(column="entry_id") + " LIMIT 1", (drawn,)).fetchone()
        if taken is not None:  # about 1 in 40,000 per id at 100,000 entries; never in a bench
            raise RuntimeError(f"id {taken[2]!r} drawn twice")
        conn.executemany(_INSERT, params)
        conn.executemany(
            _ADVANCE,
            [(c[1], c[5], c[2], c[3], c[4], c[0]) for c in live.values() if c[5]],
        )
        return ids


def check_floor_lines(path: Path) -> int:
    """Assert the floor did an append's whole job: every line it wrote is what jsjson writes
    for the parsed entry (so JSON.stringify-exact, pi's field order), and each transcript's
    entries form one chain in file order. Returns the lines checked."""
    conn = sqlite3.connect(path)
    try:
        previous: dict[int, str | None] = {}
        checked = 0
        for tid, line, entry_id, parent_id in conn.execute(
            "SELECT transcript_id, line, entry_id, parent_id FROM transcript_lines "
            "WHERE kind = 'entry' ORDER BY transcript_id, pos"
        ):
            raw = line if isinstance(line, bytes) else line.encode()
            entry = orjson.loads(raw)
            assert jsjson.dumps_bytes(entry) == raw, raw[:200]
            assert (entry["id"], entry["parentId"]) == (entry_id, parent_id)
            assert parent_id == previous.get(tid), (tid, entry_id)
            previous[tid] = entry_id
            checked += 1
        return checked
    finally:
        conn.close()

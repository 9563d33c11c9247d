"""Disk full: what docs/GUARANTEES.md "Disk full and I/O errors" promises.

A real child process runs the store with RLIMIT_FSIZE (no file may grow past a limit;
SIGXFSZ is ignored, so the write fails with EFBIG the way a full disk fails it with ENOSPC;
no privileges needed, unlike a small tmpfs). Checked:
- a write that does not fit raises WriteFailedError to its own caller; writes committed in
  the same group succeed (the group is retried one by one);
- the store stays usable: later small writes and reads succeed; when nothing fits any more,
  every write fails clearly and reads still work; once space is back, writes succeed again
  on the same open store;
- nothing acknowledged is lost and the file is consistent when reopened without the limit.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from crash_child import Child  # noqa: E402

from store_sql import Store  # noqa: E402

LIMIT_HEADROOM = 1_000_000
"""Bytes the child's files may grow by: room for small writes, not for a 3 MB one."""


async def test_a_write_that_does_not_fit_fails_alone_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "full.sqlite"
    async with await Store.open(db) as store:
        await store.transcripts.create("main", "s0", cwd="/")
        for n in range(20):
            await store.transcripts.append_message(
                "main", "s0", {"role": "user", "content": "x" * 1000, "idempotencyKey": f"p{n}"}
            )
    limit = db.stat().st_size + LIMIT_HEADROOM
    lines = Child(["diskfull", str(db), str(limit)], tmp_path / "full.err").finish()

    acked = {p[2]: p[3] for p in (line.split(" ", 3) for line in lines) if p[0] == "A"}
    events = {line.partition(" ")[0]: line.partition(" ")[2] for line in lines if line[0] != "A"}
    retries, big_error = events["BIGFAILED"].split(" ", 1)
    assert int(retries) >= 1, "the big write did not share a group with the small ones"
    assert big_error.startswith("SQLite refused the write")
    assert "this write was not stored, earlier ones are intact" in big_error
    assert {"small-0", "small-1", "after-big", "space-back"} <= set(acked)
    full_error = events["FULL"]
    assert "SQLITE_FULL" in full_error or "SQLITE_IOERR" in full_error, full_error
    assert "CLOSED" in events
    assert any(k.startswith("fill-") for k in acked), "the store stopped writing too early"

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = dict(
            conn.execute(
                "SELECT idempotency_key, entry_id FROM transcript_lines "
                "WHERE idempotency_key IS NOT NULL"
            ).fetchall()
        )
        counts = conn.execute(
            "SELECT line_count, (SELECT count(*) FROM transcript_lines) FROM transcripts"
        ).fetchone()
    finally:
        conn.close()
    assert counts[0] == counts[1]
    assert {k: stored.get(k) for k in acked} == acked, "an acknowledged write was lost"
    assert "big" not in stored
    assert set(stored) - set(acked) == {f"p{n}" for n in range(20)}, "a failed write was kept"
    async with await Store.open(db) as store:  # and the library opens it and writes again
        await store.transcripts.append_message("main", "s0", {"role": "user", "content": "ok"})
    print(
        f"limit {limit} bytes per file: big write failed alone ({big_error[:60]}...); "
        f"{len(acked)} writes acknowledged, all kept; when full: {full_error[:70]}..."
    )

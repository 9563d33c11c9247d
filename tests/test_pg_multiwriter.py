"""Several store processes appending to one PostgreSQL database at once, one killed -9.

PostgreSQL only: it is the backend several processes may write (on SQLite a second writing
process waits for the first; tests/test_multiprocess.py). Four real processes of
tests/pg_writer_child.py run 25 tasks each, appending to three shared transcripts and to
one transcript of their own, with keys every process uses and retries of their own keys;
one process is killed with SIGKILL halfway. Then every transcript must be one chain (each
entry's parent is the entry before it: no fork, no lost link) and every acknowledged
append must be there exactly once, under the id it was acknowledged with.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from store_sql import Store

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pg_writer_child as child  # noqa: E402

CHILD = HERE / "pg_writer_child.py"
PROCESSES = 4


async def _create(url: str, sessions: list[str]) -> None:
    store = await Store.open(url)
    try:
        for sid in sessions:
            await store.transcripts.create(child.AGENT, sid, cwd="/work")
    finally:
        await store.close()


def _run(url: str, tmp_path: Path, seconds: float) -> None:
    sessions = [*child.SHARED, *(child.own_session(p) for p in range(PROCESSES))]
    asyncio.run(_create(url, sessions))
    acks = tmp_path / "acks.txt"
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), url, str(p), str(seconds), str(acks)],
            stdout=subprocess.PIPE,
            stderr=(tmp_path / f"child{p}.err").open("wb"),
        )
        for p in range(PROCESSES)
    ]
    for p, proc in enumerate(procs):
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"READY\n", (tmp_path / f"child{p}.err").read_text()
    time.sleep(seconds / 2)
    victim = procs[1]
    victim.send_signal(signal.SIGKILL)
    for p, proc in enumerate(procs):
        code = proc.wait(seconds + 120)
        err = (tmp_path / f"child{p}.err").read_text(errors="replace")
        if proc is victim:
            assert code in (-signal.SIGKILL, 0), err
        else:
            assert code == 0, err
    asyncio.run(_check(url, sessions, acks.read_bytes()))


async def _check(url: str, sessions: list[str], acks: bytes) -> None:
    acked: dict[tuple[str, str], set[str]] = {}
    for line in acks.split(b"\n")[:-1]:  # a torn last line was never acknowledged
        session, key, entry_id, _existed = line.decode().split(" ")
        acked.setdefault((session, key), set()).add(entry_id)
    assert len(acked) > 100, f"only {len(acked)} appends acknowledged"
    store = await Store.open(url)
    try:
        for sid in sessions:
            data = await store.transcripts.file_bytes(child.AGENT, sid)
            entries = [json.loads(raw) for raw in data.split(b"\n")[1:-1]]
            previous = None
            for entry in entries:
                assert entry["parentId"] == previous, f"{sid}: the chain forks or breaks"
                previous = entry["id"]
            keys = Counter(e["message"]["idempotencyKey"] for e in entries)
            assert max(keys.values(), default=1) == 1, f"{sid}: a key was written twice"
            by_key = {e["message"]["idempotencyKey"]: e["id"] for e in entries}
            info = await store.transcripts.info(child.AGENT, sid)
            assert (info.line_count, info.leaf_id) == (len(entries) + 1, previous)
            assert info.byte_size == len(data)
            for (session, key), ids in acked.items():
                if session == sid:
                    assert ids == {by_key.get(key)}, f"{sid}: acknowledged {key} {ids} missing"
        await _check_search(store, acked)
    finally:
        await store.close()


_SEARCH_STATE = (
    "SELECT (SELECT count(*) FROM transcript_lines WHERE kind = 'entry' "
    "AND entry_search_text(line) IS NOT NULL) AS with_text, "
    "(SELECT count(*) FROM search_text) AS indexed, "
    "(SELECT count(*) FROM search_pending AS p JOIN transcript_lines AS l USING (line_pk) "
    "WHERE entry_search_text(l.line) IS NOT NULL) AS queued, "
    "(SELECT count(*) FROM search_text JOIN search_pending USING (line_pk)) AS twice"
)


async def _check_search(store: Store, acked: dict[tuple[str, str], set[str]]) -> None:
    """Four indexers (one killed) shared the queue: every entry line with text is indexed
    or queued, never both; acknowledged appends are found before and after a catch-up."""
    state = await store.postgres.read(lambda c: c.fetchrow(_SEARCH_STATE))
    assert state["twice"] == 0
    assert state["indexed"] + state["queued"] == state["with_text"], dict(state)
    sample = sorted(acked)[:: max(1, len(acked) // 20)]

    async def find_all() -> None:
        for session, key in sample:
            hits = (await store.search.find(f"{key} from", limit=5)).hits
            assert {h.entry_id for h in hits if h.session_id == session} == acked[(session, key)], (
                f"{session} {key} not found"
            )

    await find_all()
    await store.search.catch_up()
    state = await store.postgres.read(lambda c: c.fetchrow(_SEARCH_STATE))
    assert (state["indexed"], state["queued"]) == (state["with_text"], 0), dict(state)
    await find_all()


def test_four_writer_processes_keep_every_chain_whole(pg_url: str, tmp_path: Path) -> None:
    _run(pg_url, tmp_path, 4.0)


@pytest.mark.slow
def test_four_writer_processes_for_30_seconds(pg_url: str, tmp_path: Path) -> None:
    _run(pg_url, tmp_path, 30.0)

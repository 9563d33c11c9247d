"""The full-text index on PostgreSQL is kept behind the writes by every store process:
appends queue their entry lines (`search_pending`), background indexers move them into
`search_text`. A line appended by one process is found by another's search before and after
any indexer came by; a process killed after its append, or in the middle of an indexing
step, leaves its lines queued and findable, and another process indexes them.

PostgreSQL only: on SQLite one writer process indexes its own lines (tests/test_search.py,
tests/test_search_index.py cover its mark and backlog).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from store_sql import Store
from store_sql.search.pg_indexer import index_step, queued

ROOT = Path(__file__).resolve().parents[1]

# Process A: appends one message with the indexer off (so nothing indexes it in A), says
# DONE, then waits to be told to leave or to be killed.
_APPENDER = """
import asyncio, sys
from store_sql import Store

async def main(url):
    store = await Store.open(url, full_text=False)
    await store.transcripts.append_message(
        "main", "s-a", {"role": "user", "content": sys.argv[2]})
    print("DONE", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await store.close()

asyncio.run(main(sys.argv[1]))
"""

# A process that claims every queued line in an indexing step and dies before committing.
_DYING_INDEXER = """
import asyncio, sys
import asyncpg
from store_sql.search.pg_indexer import index_step

async def main(url):
    conn = await asyncpg.connect(url)
    tx = conn.transaction()
    await tx.start()
    step = await index_step(conn, 1000)
    print(f"CLAIMED {step.lines_read}", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

asyncio.run(main(sys.argv[1]))
"""


@contextmanager
def _child(code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)


def _ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.communicate(timeout=60)[1]
    return line.strip()


async def _where(store: Store, text: str) -> tuple[int, int]:
    """(queued, indexed): how many lines holding `text` are in the queue and in the index."""
    row = await store.postgres.read(
        lambda c: c.fetchrow(
            "SELECT (SELECT count(*) FROM search_pending AS p JOIN transcript_lines AS l "
            "USING (line_pk) WHERE strpos(l.line, $1) > 0) AS queued, "
            "(SELECT count(*) FROM search_text WHERE strpos(text, $1) > 0) AS indexed",
            text,
        )
    )
    return int(row["queued"]), int(row["indexed"])


async def _found(store: Store, text: str) -> list[str | None]:
    return [hit.session_id for hit in (await store.search.find(text)).hits]


async def _until_indexed(store: Store, seconds: float = 60.0) -> None:
    """Wait for the store's background indexer to empty the queue (a bound, not a timing
    claim: a loaded machine may take long, a broken indexer never gets there)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while await store.postgres.read(queued):
        assert loop.time() < deadline, f"still queued: {store.metrics()}"
        await asyncio.sleep(0.05)


async def test_an_append_of_one_process_is_found_by_another_before_and_after_indexing(
    pg_url: str,
) -> None:
    await _create(pg_url)
    searcher = await Store.open(pg_url, full_text=False)
    try:
        with _child(_APPENDER, pg_url, "zebra crossing from A") as appender:
            assert _ready(appender) == "DONE"
            assert await _where(searcher, "zebra crossing") == (1, 0)
            assert await _found(searcher, "ZEBRA CROSSING") == ["s-a"]
            assert await searcher.search.catch_up() == 1
            assert await _where(searcher, "zebra crossing") == (0, 1)
            assert await _found(searcher, "zebra crossing") == ["s-a"]
            assert appender.stdin is not None
            appender.stdin.write("\n")
            appender.stdin.flush()
            assert appender.wait(60) == 0
    finally:
        await searcher.close()


async def _create(url: str) -> None:
    store = await Store.open(url, full_text=False)
    try:
        await store.transcripts.create("main", "s-a", cwd="/w")
    finally:
        await store.close()


async def test_a_process_killed_after_its_append_leaves_the_line_findable_and_indexed_later(
    pg_url: str,
) -> None:
    await _create(pg_url)
    with _child(_APPENDER, pg_url, "okapi sighting before the crash") as appender:
        assert _ready(appender) == "DONE"
        appender.send_signal(signal.SIGKILL)
        assert appender.wait(60) == -signal.SIGKILL
    searcher = await Store.open(pg_url, full_text=False)
    try:
        assert await _where(searcher, "okapi sighting") == (1, 0)
        assert await _found(searcher, "okapi sighting") == ["s-a"]
    finally:
        await searcher.close()
    # A store with its background indexer takes the line the dead process left queued.
    indexing = await Store.open(pg_url)
    try:
        await _until_indexed(indexing)
        assert await _where(indexing, "okapi sighting") == (0, 1)
        assert await _found(indexing, "okapi sighting") == ["s-a"]
        assert indexing.metrics()["index_failures"] == 0
    finally:
        await indexing.close()


async def test_claimed_lines_are_skipped_by_others_and_return_when_the_claimer_dies(
    pg_url: str,
) -> None:
    store = await Store.open(pg_url, full_text=False)
    try:
        await store.transcripts.create("main", "s-b", cwd="/w")
        for n in range(5):
            await store.transcripts.append_message(
                "main", "s-b", {"role": "user", "content": f"gnu herd {n}"}
            )
        with _child(_DYING_INDEXER, pg_url) as claimer:
            assert _ready(claimer) == "CLAIMED 5"  # the header is not an entry line
            # Another indexer skips the claimed lines instead of waiting or taking them twice.
            step = await store.postgres.write(lambda c: index_step(c, 100))
            assert (step.lines_read, step.rows_indexed) == (0, 0)
            assert len(await _found(store, "gnu herd")) == 5  # still queued: computed
            claimer.send_signal(signal.SIGKILL)
            assert claimer.wait(60) == -signal.SIGKILL
        # The server rolls the dead session's step back once it sees the connection gone;
        # the lines are then free to take, once.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        taken = 0
        while taken < 5:
            assert loop.time() < deadline
            taken += await store.search.catch_up()
            await asyncio.sleep(0.05)
        assert taken == 5
        assert await _where(store, "gnu herd") == (0, 5)
        assert len(await _found(store, "gnu herd")) == 5
    finally:
        await store.close()

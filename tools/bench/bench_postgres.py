"""The store on PostgreSQL against the same store on SQLite, in the same run.

    tools/bench/run --only postgres [--quick]

The module starts its own throwaway PostgreSQL server (tools/pg_server.py, fsync on, a unix
socket) and stops it at the end; where none can start, it returns one row saying why.
Every row's baseline is the store on SQLite (a file in the bench folder) measured a few
seconds apart in this run; ratio orientation as in harness.py (> 1: PostgreSQL did better).

Transcripts:
- `postgres.append_single`: one `append_message` awaited alone (median µs), to a transcript
  of a few hundred entries.
- `postgres.append_concurrent`: 100 tasks in one process, each appending to its own
  session's transcript: appends/s.
- `postgres.recent50`: `recent(limit=50)` of a 1,000-entry transcript (median µs).
- `postgres.four_writers`: 4 writer processes on PostgreSQL, 25 appenders each (100 in
  all, one session each), against 1 process on SQLite with the same 100 appenders:
  appends/s over the same number of seconds. The issue's goal: more than the single SQLite
  writer (ratio > 1).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import pg_server  # noqa: E402
from harness import Row, bench_dir, row, run_async  # noqa: E402

from store_sql import Store  # noqa: E402

AGENT = "main"
APPENDERS = 100
WRITERS = 4


def _message(n: int) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "text", "text": f"message {n} " + "lorem ipsum " * 30}],
        "idempotencyKey": uuid.uuid4().hex,
    }


async def _new_database(server_url: str) -> str:
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    head, _, query = server_url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}?{query}"


# --- one process -----------------------------------------------------------------------------


async def _single_and_reads(store: Store, quick: bool) -> tuple[float, float]:
    """(median µs of one append awaited alone, median µs of recent(limit=50))."""
    await store.transcripts.create(AGENT, "single", cwd="/w")
    await store.transcripts.create(AGENT, "reads", cwd="/w")
    for start in range(0, 1000, 100):
        entries = [{"type": "message", "message": _message(n)} for n in range(start, start + 100)]
        await store.transcripts.append(AGENT, "reads", entries)
    single: list[float] = []
    for n in range(100 if quick else 400):
        began = time.perf_counter()
        await store.transcripts.append_message(AGENT, "single", _message(n))
        single.append(time.perf_counter() - began)
    reads: list[float] = []
    for _ in range(100 if quick else 400):
        began = time.perf_counter()
        recent = await store.transcripts.recent(AGENT, "reads", limit=50)
        reads.append(time.perf_counter() - began)
        assert len(recent) == 50
    return statistics.median(single) * 1e6, statistics.median(reads) * 1e6


async def _concurrent(store: Store, quick: bool, prefix: str) -> float:
    """Appends/s of 100 tasks appending to one session each."""
    sessions = [f"{prefix}{t}" for t in range(APPENDERS)]
    for sid in sessions:
        await store.transcripts.create(AGENT, sid, cwd="/w")
    per_task = 20 if quick else 60

    async def appender(sid: str) -> None:
        for n in range(per_task):
            await store.transcripts.append_message(AGENT, sid, _message(n))

    began = time.perf_counter()
    await asyncio.gather(*(appender(sid) for sid in sessions))
    return APPENDERS * per_task / (time.perf_counter() - began)


async def _one_process(url: str, quick: bool) -> list[Row]:
    sqlite_path = bench_dir() / f"postgres_baseline_{uuid.uuid4().hex[:8]}.sqlite"
    results: dict[str, dict[str, float]] = {}
    for name, where in (("sqlite", sqlite_path), ("postgresql", url)):
        async with await Store.open(where) as store:
            single, reads = await _single_and_reads(store, quick)
            concurrent = await _concurrent(store, quick, "c")
        results[name] = {"single": single, "reads": reads, "concurrent": concurrent}
    pg, lite = results["postgresql"], results["sqlite"]
    return [
        row("postgres.append_single", pg["single"], lite["single"], "us/op", False),
        row("postgres.append_concurrent", pg["concurrent"], lite["concurrent"], "ops/s", True),
        row("postgres.recent50", pg["reads"], lite["reads"], "us/op", False),
    ]


# --- several processes -----------------------------------------------------------------------


async def _writer(where: str, first: int, tasks: int, seconds: float) -> None:
    """A writer process: `tasks` appenders on sessions w<first>..., each appending for
    `seconds` once the parent says go; prints the number of appends acknowledged."""
    target: str | Path = where if "://" in where else Path(where)
    async with await Store.open(target) as store:
        sessions = [f"w{first + t}" for t in range(tasks)]
        print("READY", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        deadline = time.monotonic() + seconds
        done = 0

        async def appender(sid: str) -> None:
            nonlocal done
            n = 0
            while time.monotonic() < deadline:
                await store.transcripts.append_message(AGENT, sid, _message(n))
                n += 1
                done += 1

        await asyncio.gather(*(appender(sid) for sid in sessions))
    print(json.dumps({"appends": done}), flush=True)


async def _writers(where: str, processes: int, seconds: float) -> float:
    """Appends/s of `processes` writer processes sharing 100 appenders."""
    target: str | Path = where if "://" in where else Path(where)
    async with await Store.open(target) as store:
        for t in range(APPENDERS):
            await store.transcripts.create(AGENT, f"w{t}", cwd="/w")
    per = APPENDERS // processes
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--writer", where, str(p * per), str(per), str(seconds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for p in range(processes)
    ]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if line != b"READY\n":
            raise RuntimeError(f"a writer process failed to start: {line!r}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    total = 0
    for proc in procs:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 120)
        total += json.loads(out.decode().strip().splitlines()[-1])["appends"]
    return total / seconds


async def _four_writers(server_url: str, quick: bool) -> list[Row]:
    seconds = 5.0 if quick else 15.0
    sqlite_path = bench_dir() / f"postgres_writers_{uuid.uuid4().hex[:8]}.sqlite"
    lite = await _writers(str(sqlite_path), 1, seconds)
    pg = await _writers(await _new_database(server_url), WRITERS, seconds)
    return [row("postgres.four_writers", pg, lite, "ops/s", True, target=1.0)]


async def _main(server_url: str, quick: bool) -> list[Row]:
    rows = await _one_process(await _new_database(server_url), quick)
    rows.extend(await _four_writers(server_url, quick))
    return rows


def run(quick: bool) -> list[Row]:
    server = pg_server.ThrowawayPostgres(durable=True)
    try:
        server_url = server.start()
    except pg_server.Unavailable as exc:
        return [
            {"metric": "postgres", "store": 0, "baseline": 0, "ratio": 0, "unit": "skipped",
             "skipped": f"no PostgreSQL server can be started here: {exc}"}
        ]  # fmt: skip
    try:
        return run_async(lambda: _main(server_url, quick))
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--writer"]:
        where, first, tasks, seconds = sys.argv[2:6]
        asyncio.run(_writer(where, int(first), int(tasks), float(seconds)))
    else:
        for result in run("--quick" in sys.argv):
            print(json.dumps(result))

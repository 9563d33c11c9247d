"""The store on PostgreSQL against the same store on SQLite, in the same run.

    tools/bench/run --only postgres [--quick]

The server is `STORE_SQL_TEST_PG` when set, else a throwaway one (tools/pg_server.py, fsync
on, a unix socket) stopped at the end; where none can start, it returns one row saying why.
Every row's baseline is the store on SQLite (a file in the bench folder) measured a few
seconds apart in this run; ratio orientation as in harness.py (> 1: PostgreSQL did better).

Sessions:
- `postgres.sessions_patch`: median µs of one awaited `store.sessions.patch` (the gateway's
  after-turn patch: updatedAt and token counters) of one of 1,000 entries, the backends
  taking turns call by call.

Transcripts:
- `postgres.append_single`: one `append_message` awaited alone (median µs), to a transcript
  of a few hundred entries.
- `postgres.append_concurrent`: 100 tasks in one process, each appending to its own
  session's transcript: appends/s.
- `postgres.recent50`: `recent(limit=50)` of a 1,000-entry transcript (median µs).
- `postgres.four_writers`: 4 writer processes on PostgreSQL, 25 appenders each (100 in
  all, one session each), against 1 process on SQLite with the same 100 appenders:
  appends/s over the same number of seconds. The issue's goal: more than the single SQLite
  writer (ratio > 1). The row also says where the CPU went during the timed seconds: each
  writer process's own CPU seconds (`writer_cpu_s`), the server's (`server_cpu_s`: the
  postmaster and every backend, read from /proc), the SQLite process's (`sqlite_cpu_s`), the
  load averages before and after, and how many lines the search indexers left queued
  (`queued_after`: indexing that waits for a quiet moment, as on SQLite).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import Row, bench_dir, error_row, gc_paused, row, run_async

from store_sql import Store

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "tools"))

import pg_server  # noqa: E402

ENTRIES = 1_000


async def _fresh_database(server_url: str) -> str:
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")
    finally:
        await admin.close()
    return pg_server.database_url(server_url, name)


async def _drop_database(server_url: str, url: str) -> None:
    import asyncpg

    name = url.partition("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


def _entry(i: int) -> dict[str, Any]:
    return {
        "sessionId": f"{uuid.UUID(int=i)}",
        "updatedAt": 1_770_000_000_000 + i,
        "chatType": "direct",
        "deliveryContext": {"channel": "telegram", "to": f"user{i}", "accountId": "default"},
        "origin": {"provider": "telegram", "surface": "telegram", "chatType": "direct"},
        "model": "gpt-5",
        "inputTokens": i,
        "outputTokens": 2 * i,
        "totalTokens": 3 * i,
        "label": f"session {i}",
    }


async def _seed(store: Store) -> None:
    await asyncio.gather(
        *(store.sessions.put("main", f"agent:main:s{i}", _entry(i)) for i in range(ENTRIES))
    )


async def _rounds(
    fns: dict[str, Callable[[int], Awaitable[object]]], calls: int
) -> dict[str, list[float]]:
    """Per-call seconds of each function, the backends taking turns call by call."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(calls):
        for name, fn in fns.items():
            with gc_paused():
                start = time.perf_counter()
                await fn(i)
                times[name].append(time.perf_counter() - start)
    return times


async def sessions_patch_rows(server_url: str, quick: bool) -> list[Row]:
    """`postgres.sessions_patch`: median µs per awaited patch, PostgreSQL vs SQLite."""
    url = await _fresh_database(server_url)
    folder = bench_dir() / f"postgres-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        async with (
            await Store.open(url) as on_pg,
            await Store.open(folder / "store.sqlite") as on_sqlite,
        ):
            await _seed(on_pg)
            await _seed(on_sqlite)

            def patcher(store: Store) -> Callable[[int], Awaitable[object]]:
                def patch(i: int) -> Awaitable[object]:
                    key = f"agent:main:s{(i * 7919) % ENTRIES}"
                    fields = {"updatedAt": 1_780_000_000_000 + i, "inputTokens": i,
                              "totalTokens": 3 * i}  # fmt: skip
                    return store.sessions.patch("main", key, fields)

                return patch

            fns = {"postgresql": patcher(on_pg), "sqlite": patcher(on_sqlite)}
            await _rounds(fns, 50)  # warm both: caches, prepared statements
            times = await _rounds(fns, 300 if quick else 2_000)
        pg_us = statistics.median(times["postgresql"]) * 1e6
        sqlite_us = statistics.median(times["sqlite"]) * 1e6
        return [row("postgres.sessions_patch", pg_us, sqlite_us, "us/op", False)]
    finally:
        await _drop_database(server_url, url)


AGENT = "main"
APPENDERS = 100
INDEXER_ENV = "STORE_SQL_BENCH_PG_INDEXER"
"""`off`: the writer processes (both backends) run without their search indexers, to
measure what the appends alone cost (by hand; the row's own runs keep them on)."""
WRITERS = 4


def _message(n: int) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "text", "text": f"message {n} " + "lorem ipsum " * 30}],
        "idempotencyKey": uuid.uuid4().hex,
    }


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


async def transcripts_rows(server_url: str, quick: bool) -> list[Row]:
    """`postgres.append_single`, `postgres.append_concurrent`, `postgres.recent50`."""
    url = await _fresh_database(server_url)
    try:
        return await _one_process(url, quick)
    finally:
        await _drop_database(server_url, url)


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
    full_text = os.environ.get(INDEXER_ENV) != "off"
    async with await Store.open(target, full_text=full_text) as store:
        sessions = [f"w{first + t}" for t in range(tasks)]
        print("READY", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        deadline = time.monotonic() + seconds
        cpu_before = _own_cpu()
        done = 0

        async def appender(sid: str) -> None:
            nonlocal done
            n = 0
            while time.monotonic() < deadline:
                await store.transcripts.append_message(AGENT, sid, _message(n))
                n += 1
                done += 1

        await asyncio.gather(*(appender(sid) for sid in sessions))
        cpu = _own_cpu() - cpu_before
        print(json.dumps({"appends": done, "cpu_s": cpu}), flush=True)
        # The store (and its server backends) stays open until the parent has read the
        # server's CPU time.
        await asyncio.to_thread(sys.stdin.readline)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) each of the processes `pids` has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _server_pids(postmaster: int) -> list[int]:
    """The postmaster `postmaster` and all its children now."""
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                pids.append(int(entry.name))
    return pids


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def _writers(where: str, processes: int, seconds: float) -> dict[str, Any]:
    """Appends/s of `processes` writer processes sharing 100 appenders, and where the CPU
    went meanwhile."""
    target: str | Path = where if "://" in where else Path(where)
    postmaster = 0
    async with await Store.open(target) as store:
        for t in range(APPENDERS):
            await store.transcripts.create(AGENT, f"w{t}", cwd="/w")
        if store.dialect == "postgresql":
            backend = await store.postgres.read(lambda c: c.fetchval("SELECT pg_backend_pid()"))
            postmaster = _parent(backend)
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
    load_before = _load()
    server = _server_pids(postmaster) if postmaster else []
    server_before = _cpu_of(server)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    total = 0
    cpu: list[float] = []
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), seconds + 120)
        result = json.loads(line.decode())
        total += result["appends"]
        cpu.append(round(result["cpu_s"], 2))
    # Every writer has stopped and still holds its connections, whose backends are read
    # here (a backend that started meanwhile, an indexer's, counts from 0).
    server_after = _cpu_of(_server_pids(postmaster) if postmaster else [])
    server_cpu = sum(used - server_before.get(pid, 0.0) for pid, used in server_after.items())
    load_after = _load()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"done\n")
        await proc.stdin.drain()
    for proc in procs:
        await asyncio.wait_for(proc.communicate(), 120)
    return {
        "rate": total / seconds,
        "writer_cpu_s": cpu,
        "server_cpu_s": round(server_cpu, 2),
        "load": [load_before, load_after],
    }


async def _queued(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT to_regclass('search_pending') IS NOT NULL"):
            return 0  # a schema without the queue (before revision 0008)
        return int(await conn.fetchval("SELECT count(*) FROM search_pending"))
    finally:
        await conn.close()


async def four_writers_rows(server_url: str, quick: bool) -> list[Row]:
    """`postgres.four_writers`: 4 processes on PostgreSQL vs 1 on SQLite, appends/s."""
    seconds = 5.0 if quick else 15.0
    sqlite_path = bench_dir() / f"postgres_writers_{uuid.uuid4().hex[:8]}.sqlite"
    lite = await _writers(str(sqlite_path), 1, seconds)
    url = await _fresh_database(server_url)
    try:
        pg = await _writers(url, WRITERS, seconds)
        queued_after = await _queued(url)
    finally:
        await _drop_database(server_url, url)
    return [
        {
            **row("postgres.four_writers", pg["rate"], lite["rate"], "ops/s", True, target=1.0),
            "writer_cpu_s": pg["writer_cpu_s"],
            "server_cpu_s": pg["server_cpu_s"],
            "sqlite_cpu_s": lite["writer_cpu_s"][0],
            "load": pg["load"],
            "sqlite_load": lite["load"],
            "queued_after": queued_after,
        }
    ]


def run(quick: bool) -> list[Row]:
    async def main() -> list[Row]:
        rows: list[Row] = []
        try:
            with pg_server.server_for_run(durable=True) as server_url:
                only = os.environ.get("STORE_SQL_BENCH_PG_ROWS", "")
                for metric in (sessions_patch_rows, transcripts_rows, four_writers_rows):
                    if only and metric.__name__ not in only.split(","):
                        continue
                    try:
                        rows.extend(await metric(server_url, quick))
                    except Exception as exc:
                        rows.append(error_row(f"postgres.{metric.__name__}", exc))
        except Exception as exc:  # no server can be started here
            rows.append(error_row("postgres", exc))
        return rows

    return run_async(main)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--writer"]:
        where, first, tasks, seconds = sys.argv[2:6]
        asyncio.run(_writer(where, int(first), int(tasks), float(seconds)))
    else:
        for result in run("--quick" in sys.argv):
            print(json.dumps(result))

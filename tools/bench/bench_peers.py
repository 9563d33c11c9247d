"""store_sql against the session stores of other agent frameworks, each with its defaults,
on the same workloads in the same run (issue 20). The peers are the optional `bench`
dependency group (`python3 tools/dev.py bench` installs it); a peer that is not installed
becomes a row that says so, and the store's own rows still run.

Peers: openai-agents `SQLiteSession` (WAL, synchronous=FULL, stdlib json, one thread hop
per call) and google-adk `SqliteSessionService` (aiosqlite, rollback journal, pydantic
events). The workload is the one a user comparing stores runs first: one session, messages
of ~1 KB of English prose and code (slices of Python's own pydoc text, so the trigram index
sees realistic text), appended one at a time, each awaited before the next.

Metrics (ratio orientation in harness.py: > 1 means the store did better):
- `peers.lone_append_p99_ms`: p99 of one awaited `append_message` over the session's
  appends, full text on, default settings, vs the issue's budget of 2 ms. target >= 1.
- `peers.lone_append_p99_vs_sqlitesession`: the same p99 vs SQLiteSession.add_items'.
- `peers.lone_append_median_full_vs_sqlitesession`: the median append with the store at
  synchronous=FULL (what every peer defaults to) vs SQLiteSession's. target >= 1.
- `peers.lone_append_median_vs_sqlitesession`: the same with the store's default durability.
- `peers.durability_full_vs_normal`: the store's own median append at FULL vs at NORMAL: what
  an fsync per commit costs here (docs/GUARANTEES.md, "Durability").
- `peers.recent50_parsed_vs_sqlitesession`: the last 50 messages of a 10,000-message session,
  parsed (`recent(limit=50)` and `StoredEntry.value()` of each) vs `get_items(limit=50)`.
  target >= 1.
- `peers.disk_vs_jsonl`: bytes on disk after the lone appends, fully indexed and closed, vs
  1.5x the bytes of the same transcript as JSONL. target >= 1.
- `peers.disk_vs_sqlitesession`: the same bytes vs SQLiteSession's file for those messages.
- `peers.lone_append_median_vs_adk`, `peers.recent50_parsed_vs_adk`: against ADK's
  SqliteSessionService (`append_event`, `get_session(num_recent_events=50)`), on a shorter
  session: ADK takes milliseconds per event.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import Row, bench_dir, gc_paused, row, run_async

from store_sql import Store

AGENT = "main"
P99_BUDGET_MS = 2.0
MESSAGE_CHARS = 1000


def run(quick: bool) -> list[Row]:
    return run_async(lambda: _main(quick))


def _prose(seed: int, count: int) -> list[str]:
    """`count` ~1 KB texts cut from Python's own documentation (prose and code)."""
    from pydoc_data.topics import topics

    text = "\n".join(topics.values())
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        start = rng.randrange(len(text) - MESSAGE_CHARS)
        out.append(text[start : start + MESSAGE_CHARS])
    return out


def _missing(name: str) -> Row:
    return {
        "metric": f"peers.{name}: not installed",
        "store": None,
        "baseline": None,
        "ratio": None,
        "unit": "skipped",
        "note": "install the bench group: python3 tools/dev.py bench",
    }


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _latencies(call: Callable[[int], Awaitable[object]], count: int) -> list[float]:
    """Seconds each of `count` awaited calls took, one after another (GC paused)."""
    out: list[float] = []
    with gc_paused():
        for n in range(count):
            began = time.perf_counter()
            await call(n)
            out.append(time.perf_counter() - began)
    return out


def _user_message(text: str, n: int) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}], "timestamp": n}


# --- the store ---------------------------------------------------------------------------------


class _StoreAppender:
    """A store appending to one session."""

    def __init__(self, store: Store, texts: list[str]) -> None:
        self.store = store
        self._texts = texts

    @classmethod
    async def open(cls, db: Path, texts: list[str], **options: Any) -> _StoreAppender:
        store = await Store.open(db, **options)
        await store.transcripts.create(AGENT, "lone", cwd="/home/u/project")
        return cls(store, texts)

    async def append(self, n: int) -> None:
        message = _user_message(self._texts[n % len(self._texts)], n)
        await self.store.transcripts.append_message(AGENT, "lone", message)


def _disk_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())


async def _store_recent(db: Path, texts: list[str], rounds: int) -> float:
    async with await Store.open(db) as store:
        await store.transcripts.create(AGENT, "long", cwd="/home/u/project")
        for start in range(0, len(texts), 100):
            await asyncio.gather(
                *(
                    store.transcripts.append_message(AGENT, "long", _user_message(texts[n], n))
                    for n in range(start, min(start + 100, len(texts)))
                )
            )
        await store.search.catch_up()

        async def recent50() -> list[Any]:
            entries = await store.transcripts.recent(AGENT, "long", limit=50)
            return [e.value() for e in entries]

        assert len(await recent50()) == 50
        return await _best_call(recent50, rounds)


async def _best_call(call: Callable[[], Awaitable[object]], rounds: int) -> float:
    """The fastest of `rounds` rounds of 20 calls, seconds per call."""
    best = float("inf")
    for _ in range(rounds):
        with gc_paused():
            began = time.perf_counter()
            for _ in range(20):
                await call()
            best = min(best, (time.perf_counter() - began) / 20)
    return best


# --- openai-agents SQLiteSession ---------------------------------------------------------------


class _SQLiteSessionAppender:
    def __init__(self, db: Path, texts: list[str]) -> None:
        from agents.memory import SQLiteSession

        self.session = SQLiteSession("lone", str(db))
        self._texts = texts

    async def append(self, n: int) -> None:
        text = self._texts[n % len(self._texts)]
        await self.session.add_items([{"role": "user", "content": text}])


async def _sqlitesession_recent(db: Path, texts: list[str], rounds: int) -> float:
    from agents.memory import SQLiteSession

    session = SQLiteSession("long", str(db))
    try:
        for start in range(0, len(texts), 100):
            await session.add_items(
                [{"role": "user", "content": t} for t in texts[start : start + 100]]
            )

        async def recent50() -> list[Any]:
            return await session.get_items(limit=50)

        assert len(await recent50()) == 50
        return await _best_call(recent50, rounds)
    finally:
        session.close()


# --- google-adk SqliteSessionService -----------------------------------------------------------


async def _adk(db: Path, texts: list[str], rounds: int) -> tuple[list[float], float]:
    from google.adk.events import Event
    from google.adk.sessions.base_session_service import GetSessionConfig
    from google.adk.sessions.sqlite_session_service import SqliteSessionService
    from google.genai import types

    service = SqliteSessionService(str(db))
    try:
        session = await service.create_session(app_name="bench", user_id="u", session_id="s")

        async def append(n: int) -> None:
            event = Event(
                invocation_id=uuid.uuid4().hex,
                author="user",
                content=types.Content(role="user", parts=[types.Part(text=texts[n])]),
            )
            await service.append_event(session, event)

        lat = await _latencies(append, len(texts))
        config = GetSessionConfig(num_recent_events=50)

        async def recent50() -> Any:
            return await service.get_session(
                app_name="bench", user_id="u", session_id="s", config=config
            )

        got = await recent50()
        assert got is not None
        assert len(got.events) == 50
        return lat, await _best_call(recent50, rounds)
    finally:
        await service.close()


# --- the rows ----------------------------------------------------------------------------------


async def _take_turns(
    appenders: dict[str, Callable[[int], Awaitable[None]]], count: int
) -> dict[str, list[float]]:
    """Seconds each append took, per system: the systems take turns call by call (in a
    rotating order), so each meets the same machine. It is shared, and its disk's fsync
    time swings by 10x from one second to the next: rounds of a few hundred appends per
    system compared different disks, not different stores."""
    names = list(appenders)
    lat: dict[str, list[float]] = {name: [] for name in names}
    with gc_paused():
        for n in range(count):
            for k in range(len(names)):
                name = names[(n + k) % len(names)]
                began = time.perf_counter()
                await appenders[name](n)
                lat[name].append(time.perf_counter() - began)
    return lat


async def _main(quick: bool) -> list[Row]:
    work = bench_dir() / "peers"
    work.mkdir(exist_ok=True)
    appends = 500 if quick else 2000
    long_session = 2000 if quick else 10_000
    rounds = 3 if quick else 7
    texts = _prose(20, max(appends, long_session))
    lone = texts[:appends]
    have_agents = importlib.util.find_spec("agents") is not None
    have_adk = importlib.util.find_spec("google.adk") is not None
    rows: list[Row] = []
    ms = 1000.0

    normal_db = work / "normal" / "s.sqlite"
    normal = await _StoreAppender.open(normal_db, lone)
    full = await _StoreAppender.open(work / "full" / "s.sqlite", lone, synchronous="FULL")
    bare = await _StoreAppender.open(work / "bare" / "s.sqlite", lone, full_text=False)
    peer = _SQLiteSessionAppender(work / "agents_lone.sqlite", lone) if have_agents else None
    try:
        systems = {"normal": normal.append, "full": full.append, "bare": bare.append}
        if peer is not None:
            systems["peer"] = peer.append
        lat = await _take_turns(systems, appends)
        await normal.store.search.catch_up()
        jsonl = len(await normal.store.transcripts.file_bytes(AGENT, "lone"))
    finally:
        for appender in (normal, full, bare):
            await appender.store.close()
        if peer is not None:
            peer.session.close()
    disk = _disk_bytes(normal_db)
    rows.append(row("peers.lone_append_p99_ms", _p99(lat["normal"]) * ms, P99_BUDGET_MS, "ms",
                    False, target=1.0))  # fmt: skip
    rows.append(row("peers.lone_append_p99_no_full_text_ms", _p99(lat["bare"]) * ms, P99_BUDGET_MS,
                    "ms", False))  # fmt: skip
    rows.append(row("peers.durability_full_vs_normal", statistics.median(lat["full"]) * ms,
                    statistics.median(lat["normal"]) * ms, "ms", False))  # fmt: skip
    rows.append(row("peers.disk_vs_jsonl", disk, 1.5 * jsonl, "bytes", False, target=1.0))
    store_recent = await _store_recent(work / "recent" / "s.sqlite", texts[:long_session], rounds)

    if have_agents:
        peer_disk = _disk_bytes(work / "agents_lone.sqlite")
        rows.append(row("peers.lone_append_p99_vs_sqlitesession", _p99(lat["normal"]) * ms,
                        _p99(lat["peer"]) * ms, "ms", False))  # fmt: skip
        rows.append(row("peers.lone_append_median_full_vs_sqlitesession",
                        statistics.median(lat["full"]) * ms,
                        statistics.median(lat["peer"]) * ms, "ms", False, target=1.0))  # fmt: skip
        rows.append(row("peers.lone_append_median_vs_sqlitesession",
                        statistics.median(lat["normal"]) * ms,
                        statistics.median(lat["peer"]) * ms, "ms", False))  # fmt: skip
        peer_recent = await _sqlitesession_recent(
            work / "agents_long.sqlite", texts[:long_session], rounds
        )
        rows.append(row("peers.recent50_parsed_vs_sqlitesession", store_recent * 1e6,
                        peer_recent * 1e6, "us/op", False, target=1.0))  # fmt: skip
        rows.append(row("peers.disk_vs_sqlitesession", disk, peer_disk, "bytes", False))
    else:
        rows.append(_missing("openai-agents SQLiteSession"))
    if have_adk:
        adk_lat, adk_recent = await _adk(work / "adk.sqlite", lone[: appends // 4], rounds)
        rows.append(row("peers.lone_append_median_vs_adk", statistics.median(lat["normal"]) * ms,
                        statistics.median(adk_lat) * ms, "ms", False))  # fmt: skip
        rows.append(row("peers.recent50_parsed_vs_adk", store_recent * 1e6, adk_recent * 1e6,
                        "us/op", False))  # fmt: skip
    else:
        rows.append(_missing("google-adk SqliteSessionService"))
    return rows

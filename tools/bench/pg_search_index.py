#!/usr/bin/env python3
"""What the PostgreSQL search index costs an append, and what it saves a search.

    .venv/bin/python tools/bench/pg_search_index.py [--quick] [--json]

A throwaway server (tools/pg_server.py) holds `transcript_lines` as the store creates it
(text lines, `entry_search_text`, schema/pg_views.py). Rows:

- `append group of 100` / `append 1 line`: µs per inserted line when a group of 100 lines
  (one `INSERT ... SELECT FROM unnest`, the shape of a combined append group) or a single
  line is inserted and committed, with each way of keeping the search index: `queue` (the
  store's: the insert trigger that queues entry lines for the background indexer,
  schema/pg_views.py), `gin` (revision 0006's GIN index over the expression, kept in the
  insert) and `gin, pending list 1 GB` (the same with `gin_pending_list_limit` raised so
  the insert only appends to GIN's pending list); the baseline is the same table without
  any of them. Ratio = baseline / with it (below 1: it costs).
- `entry_search_text()`: µs per line to compute the searchable text alone.
- `search 'needle'` / `search 'stack trace'`: ms of the store's search statement (all hits,
  newest first) over N indexed lines (in `search_text`, the queue empty) with the index
  against the same statement with index scans off (a scan of every stored text). Ratio =
  scan / index (above 1: the index saves).

Lines are messages of 5-120 words, one in 500 holding the needle; "stack trace" is in about
a third of them (the cost of a search grows with its matches: each is checked by text).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from store_sql.schema import pg_views  # noqa: E402
from store_sql.search import pg_query  # noqa: E402
from store_sql.search.pg_indexer import index_step  # noqa: E402
from store_sql.search.query import SearchQuery  # noqa: E402
from store_sql.search.terms import literal  # noqa: E402

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "the",
    "build",
    "fails",
    "with",
    "an",
    "error",
    "in",
    "the",
    "config",
    "loader",
    "so",
    "we",
    "deploy",
    "again",
    "and",
    "read",
    "the",
    "stack",
    "trace",
]

_TABLES = """
CREATE TABLE transcripts (transcript_id bigint PRIMARY KEY, agent_id text, session_id text,
    kind text, file_name text, leaf_pos bigint, superseded_by bigint);
CREATE TABLE session_entries (agent_id text, session_key text, session_id text,
    updated_at bigint);
CREATE TABLE transcript_lines (line_pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transcript_id bigint, pos bigint, line text, kind text, entry_id text, parent_pos bigint,
    type text, role text, timestamp text);
INSERT INTO transcripts VALUES (1, 'main', 's', 'live', 's.jsonl', NULL, NULL);
"""


def _line(rng: random.Random, i: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 120))]
    if i % 500 == 0:
        words.insert(rng.randrange(len(words)), "needle")
    return json.dumps(
        {"type": "message", "id": f"{i:08x}", "parentId": None,
         "timestamp": f"2026-02-10T10:{i // 6000 % 60:02d}:{i // 100 % 60:02d}.000Z",
         "message": {"role": rng.choice(["user", "assistant"]),
                     "content": [{"type": "text", "text": " ".join(words)}]}}
    )  # fmt: skip


_WAYS = ("queue", "gin", "gin, pending list 1 GB")


async def _fresh(conn: asyncpg.Connection[Any], way: str | None) -> None:
    await conn.execute(
        "DROP TABLE IF EXISTS transcript_lines, transcripts, session_entries, search_pending, "
        "search_text CASCADE"
    )
    await conn.execute(_TABLES)
    await conn.execute(pg_views.LINE_JSON_FUNCTION)
    await conn.execute(pg_views.TRGM_EXTENSION)
    await conn.execute(pg_views.SEARCH_TEXT_FUNCTION)
    if way == "gin":
        await conn.execute(pg_views.SEARCH_INDEX)
    elif way == "gin, pending list 1 GB":
        await conn.execute(
            pg_views.SEARCH_INDEX.replace("WHERE", "WITH (gin_pending_list_limit = 1048576) WHERE")
        )
    elif way == "queue":
        # The store's queue, trigger and search table (its revision's statements that fill
        # search_text from stored lines and drop 0006's index have nothing to do here).
        for statement in pg_views.SEARCH_QUEUE_STATEMENTS:
            if not statement.startswith(("INSERT", "DROP")):
                await conn.execute(statement)


async def _append_us(conn: asyncpg.Connection[Any], way: str | None, group: int, n: int) -> float:
    await _fresh(conn, way)
    rng = random.Random(7)
    times = []
    pos = 0
    for _ in range(n):
        lines = [_line(rng, pos + i) for i in range(group)]
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO transcript_lines (transcript_id, pos, line, kind, type, role) "
            "SELECT 1, p, l, 'entry', 'message', 'user' "
            "FROM unnest($1::bigint[], $2::text[]) AS u(p, l)",
            list(range(pos, pos + group)),
            lines,
        )
        times.append(time.perf_counter() - started)
        pos += group
    return statistics.median(times) * 1e6 / group


async def _search_ms(conn: asyncpg.Connection[Any], text: str, *, use_index: bool) -> float:
    query = SearchQuery(text=text, limit=20)
    sql, args = pg_query.search_sql(query, literal(query.text))
    best = float("inf")
    async with conn.transaction():
        if not use_index:
            await conn.execute("SET LOCAL enable_bitmapscan = off")
            await conn.execute("SET LOCAL enable_indexscan = off")
        for _ in range(3):
            started = time.perf_counter()
            await conn.fetch(sql, *args)
            best = min(best, time.perf_counter() - started)
    return best * 1000


async def run(url: str, quick: bool) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    rows: list[dict[str, Any]] = []
    try:
        for group, n in ((100, 10 if quick else 40), (1, 50 if quick else 300)):
            bare = await _append_us(conn, None, group, n)
            for way in _WAYS:
                kept = await _append_us(conn, way, group, n)
                rows.append({"metric": f"append {'group of 100' if group > 1 else '1 line'}, {way}",
                             "store": round(kept, 1), "baseline": round(bare, 1),
                             "unit": "us/line", "ratio": round(bare / kept, 3)})  # fmt: skip
        rng = random.Random(3)
        sample = [_line(rng, i) for i in range(2000)]
        started = time.perf_counter()
        await conn.fetchval("SELECT count(entry_search_text(l)) FROM unnest($1::text[]) AS u(l)",
                            sample)  # fmt: skip
        rows.append({"metric": "entry_search_text()", "unit": "us/line",
                     "store": round((time.perf_counter() - started) * 1e6 / 2000, 1)})  # fmt: skip
        total = 20_000 if quick else 100_000
        await _fresh(conn, "queue")
        rng = random.Random(11)
        for start in range(0, total, 5000):
            await conn.execute(
                "INSERT INTO transcript_lines (transcript_id, pos, line, kind, type, role, "
                "timestamp) SELECT 1, p, l, 'entry', 'message', 'user', t "
                "FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(p, l, t)",
                list(range(start, start + 5000)),
                [_line(rng, i) for i in range(start, start + 5000)],
                [f"2026-02-10T{i:012d}" for i in range(start, start + 5000)],
            )
        while (await index_step(conn, 5000)).lines_read:
            pass
        await conn.execute("ANALYZE transcript_lines")
        await conn.execute("ANALYZE search_text")
        for text in ("needle", "stack trace"):
            scan = await _search_ms(conn, text, use_index=False)
            indexed_ms = await _search_ms(conn, text, use_index=True)
            rows.append({"metric": f"search {text!r} in {total} lines",
                         "store": round(indexed_ms, 2), "baseline": round(scan, 2), "unit": "ms",
                         "ratio": round(scan / indexed_ms, 1)})  # fmt: skip
    finally:
        await conn.close()
    return rows


def main(argv: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("pg_server", ROOT / "tools" / "pg_server.py")
    assert spec is not None
    assert spec.loader is not None
    pg_server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pg_server)
    with pg_server.ThrowawayPostgres() as server:
        rows = asyncio.run(run(server.url, "--quick" in argv))
    if "--json" in argv:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        base = f"  baseline {r['baseline']}  ratio {r['ratio']}" if "baseline" in r else ""
        print(f"{r['metric']:<32} {r['store']:>10} {r['unit']}{base}")


if __name__ == "__main__":
    main(sys.argv[1:])

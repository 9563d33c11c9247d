"""The path walk of transcript_reads (`path_rows`): windows of lines read by range scans,
the recursive CTE where a path hops between branches, and the entries built from them.

The walk only follows the stored `parent_pos` (the tree rules decide it at write time and
are tested in test_tree_rules.py), so these tests store lines with chosen `parent_pos`
directly: long transcripts of every shape, including lines missing from the middle."""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspection_data import scratch_connection

from store_sql import Store
from store_sql.schema.tables import NAVIGATION_LINES
from store_sql.transcripts import reads as transcript_reads
from store_sql.transcripts import rows as transcripts

A = "main"
_counter = itertools.count()


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    yield from scratch_connection(tmp_path_factory, "reads")


def entry_type(pos: int) -> str:
    return "custom" if pos % 3 == 0 else "message"


def line_text(pos: int) -> str:
    return f'{{"type":"{entry_type(pos)}","id":"{pos:08x}","n":"\u00e9{"x" * (pos % 7)}"}}'


def store_lines(
    conn: sqlite3.Connection,
    parents: dict[int, int | None],
    *,
    missing: frozenset[int] = frozenset(),
) -> int:
    """A transcript whose entry at each pos of `parents` has that `parent_pos`; the other
    positions up to the last are damaged lines; `missing` positions are not stored at all.
    The leaf is the last entry."""
    n = next(_counter)
    conn.execute("BEGIN")
    tid = transcripts.insert_transcript(
        conn, agent_id=A, rel_dir="agents/main/sessions", session_id=f"r{n}", kind="live",
        file_name=f"r{n}.jsonl", version=3,
    )  # fmt: skip
    last = max(parents, default=0)
    rows: list[tuple[Any, ...]] = []
    for pos in range(1, last + 1):
        if pos in missing:
            continue
        text = line_text(pos)
        if pos in parents:
            rows.append((tid, pos, text, "entry", f"{pos:08x}", None, parents[pos], entry_type(pos),
                         "user" if pos % 2 else None, None, len(text.encode()), None))  # fmt: skip
        else:
            rows.append((tid, pos, text, "damaged", None, None, None, None, None, None,
                         len(text.encode()), "glued records"))  # fmt: skip
    conn.executemany(
        "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
        "parent_pos, type, role, timestamp, byte_size, damage) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.execute(
        "UPDATE transcripts SET leaf_pos = ? WHERE transcript_id = ?",
        (last if parents else None, tid),
    )
    conn.execute("COMMIT")
    return tid


def expected_path(
    parents: dict[int, int | None], start: int, missing: frozenset[int] = frozenset()
) -> list[int]:
    """Leaf first: follow parents until there is none, or its line is not stored."""
    path: list[int] = []
    at: int | None = start
    while at is not None and at not in missing:
        path.append(at)
        at = parents[at]
    return path


def shaped_parents(rng: random.Random, count: int, chain: float) -> dict[int, int | None]:
    """`count` lines, most of them entries: each entry continues the previous entry with
    probability `chain`, else hangs off a random earlier entry (a branch) or is a root."""
    parents: dict[int, int | None] = {}
    for pos in range(1, count + 1):
        if rng.random() < 0.05:
            continue  # a damaged line
        earlier = list(parents)
        if earlier and rng.random() < chain:
            parents[pos] = earlier[-1]
        elif earlier and rng.random() < 0.9:
            parents[pos] = rng.choice(earlier)
        else:
            parents[pos] = None
    return parents


def walked(conn: sqlite3.Connection, tid: int, start: int, expect: int | None) -> list[int]:
    return [row[0] for row in transcript_reads.path_rows(conn, tid, start, expect=expect)]


def statements(conn: sqlite3.Connection, fn: Any) -> list[str]:
    """The SQL statements `fn()` runs on `conn`."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        conn.set_trace_callback(None)
    return seen


# --- the walk --------------------------------------------------------------------------------


def cte_positions(conn: sqlite3.Connection, transcript_id: int, start_pos: int) -> list[int]:
    """Positions from `start_pos` to its root (leaf first) by the recursive CTE the reads
    fall back to (transcript_reads._WALK), for comparing the two walks."""
    rows = conn.execute(
        transcript_reads._WALK + " SELECT pos FROM walk",
        {"start": start_pos, "tid": transcript_id, "max_depth": 1 << 62},
    ).fetchall()
    return [r[0] for r in rows]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(min_value=0, max_value=700),
    chain=st.sampled_from([0.0, 0.3, 0.6, 0.9, 1.0]),
    seed=st.integers(min_value=0, max_value=2**32),
    gaps=st.integers(min_value=0, max_value=3),
)
def test_the_walk_follows_parent_pos_whatever_the_window(
    conn: sqlite3.Connection, count: int, chain: float, seed: int, gaps: int
) -> None:
    rng = random.Random(seed)
    parents = shaped_parents(rng, count, chain)
    missing = frozenset(rng.sample(sorted(parents), min(gaps, len(parents) // 2)))
    tid = store_lines(conn, parents, missing=missing)
    starts = [p for p in parents if p not in missing]
    for start in [*starts[-1:], *rng.sample(starts, min(3, len(starts)))]:
        want = expected_path(parents, start, missing)
        for expect in (None, 1, 2, 5, 50):
            assert walked(conn, tid, start, expect) == want, (start, expect)
        # What the recursive CTE finds (its last position may name a missing line).
        cte = cte_positions(conn, tid, start)
        assert cte[: len(want)] == want
        assert set(cte[len(want) :]) <= missing


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(min_value=1, max_value=400),
    chain=st.sampled_from([0.2, 0.8, 1.0]),
    seed=st.integers(min_value=0, max_value=2**32),
    limit=st.sampled_from([1, 3, 50, 1000]),
)
def test_recent_and_active_path_are_the_walk(
    conn: sqlite3.Connection, count: int, chain: float, seed: int, limit: int
) -> None:
    parents = shaped_parents(random.Random(seed), count, chain)
    tid = store_lines(conn, parents)
    path = expected_path(parents, max(parents)) if parents else []
    assert [e.pos for e in transcript_reads.active_path(conn, tid)] == path[::-1]
    recent = transcript_reads.recent_entries(conn, tid, limit=limit)
    assert [e.pos for e in recent] == path[:limit][::-1]
    # The filters read ahead in windows of their own; same walk, then the rules.
    customs = transcript_reads.recent_entries(conn, tid, limit=limit, types=frozenset({"custom"}))
    assert [e.pos for e in customs] == [p for p in path if p % 3 == 0][:limit][::-1]
    # One byte short of the newest three: the newest two fit (the newest always does).
    budget = sum(len(line_text(p).encode()) for p in path[:3]) - 1
    fit = min(limit, 2 if len(path) >= 3 else 1)
    bounded = transcript_reads.recent_entries(conn, tid, limit=limit, max_bytes=budget)
    assert [e.pos for e in bounded] == path[:fit][::-1]


def test_a_linear_tail_is_one_range_scan(conn: sqlite3.Connection) -> None:
    parents: dict[int, int | None] = {pos: pos - 1 if pos > 1 else None for pos in range(1, 501)}
    tid = store_lines(conn, parents)
    info = transcripts.get_info(conn, tid)
    got: list[Any] = []
    sql = statements(
        conn, lambda: got.extend(transcript_reads.recent_entries(conn, info, limit=50))
    )
    assert [e.pos for e in got] == list(range(451, 501))
    # Besides the walk, one probe of a partial index: does the transcript follow today's
    # tree rules (transcripts/navigation.py)?
    walks = [s for s in sql if NAVIGATION_LINES not in s]
    assert len(walks) == 1
    assert "RECURSIVE" not in walks[0]


def test_a_path_hopping_between_branches_is_left_to_the_cte(conn: sqlite3.Connection) -> None:
    # Each turn was retried twice: the path takes every third line, so a window of lines
    # holds a third of path entries and the walk goes on with the recursive CTE.
    parents: dict[int, int | None] = {}
    for turn in range(400):
        base = turn * 3
        for retry in (1, 2, 3):
            parents[base + retry] = base if turn else None
    tid = store_lines(conn, parents)
    path = expected_path(parents, max(parents))
    assert len(path) == 400
    got: list[Any] = []
    sql = statements(conn, lambda: got.extend(transcript_reads.active_path(conn, tid)))
    assert [e.pos for e in got] == path[::-1]
    assert any("RECURSIVE" in s for s in sql)


def test_one_abandoned_branch_does_not_give_up_the_range_scans(
    conn: sqlite3.Connection,
) -> None:
    # trunk 1..300, abandoned 301..900, active 901..1000: the first window (256 lines) is
    # mostly the abandoned branch, the next ones are all trunk.
    parents: dict[int, int | None] = {1: None}
    parents.update((pos, pos - 1) for pos in range(2, 301))
    parents.update((pos, 300 if pos == 301 else pos - 1) for pos in range(301, 901))
    parents.update((pos, 300 if pos == 901 else pos - 1) for pos in range(901, 1001))
    tid = store_lines(conn, parents)
    got: list[Any] = []
    sql = statements(conn, lambda: got.extend(transcript_reads.active_path(conn, tid)))
    assert [e.pos for e in got] == [*range(1, 301), *range(901, 1001)]
    assert not any("RECURSIVE" in s for s in sql)


# --- entries ---------------------------------------------------------------------------------


def test_an_entry_keeps_its_exact_bytes_and_reads_as_stored(conn: sqlite3.Connection) -> None:
    tid = store_lines(conn, {1: None, 2: 1})
    invalid = b'{"type":"message","id":"00000003","parentId":"00000002","c":"\xff"}'
    conn.execute(
        "INSERT INTO transcript_lines (transcript_id, pos, line, kind, entry_id, parent_id, "
        "parent_pos, type, byte_size) VALUES (?, 3, ?, 'entry', '00000003', '00000002', 2, "
        "'message', ?)",
        (tid, transcripts.stored_line(invalid), len(invalid)),
    )
    conn.execute("UPDATE transcripts SET leaf_pos = 3 WHERE transcript_id = ?", (tid,))
    text, blob = transcript_reads.entry_at(conn, tid, 2), transcript_reads.entry_at(conn, tid, 3)
    assert text is not None
    assert blob is not None
    assert text.raw == line_text(2).encode()
    assert text.line == line_text(2)
    assert text.size == len(text.raw)
    assert text.value()["n"] == "\u00e9xx"
    assert blob.raw == invalid
    assert blob.line == invalid
    assert blob.size == len(invalid)
    path = transcript_reads.active_path(conn, tid)
    assert [e.raw for e in path] == [line_text(1).encode(), line_text(2).encode(), invalid]


async def test_the_api_reads_a_branchy_transcript_like_the_walk(
    backend_location: str | Path,
) -> None:
    # A trunk, an abandoned branch longer than the first window, then the active branch.
    store = await Store.open(backend_location)
    try:
        await store.transcripts.create(A, "s", cwd="/")
        entries = [{"type": "custom", "customType": "n", "data": n} for n in range(300)]
        trunk = await store.transcripts.append(A, "s", entries)
        await store.transcripts.append(A, "s", entries, parent_id=trunk[-1].id)
        active = await store.transcripts.append(A, "s", entries[:120], parent_id=trunk[-1].id)
        want = [a.id for a in trunk + active]
        assert [e.id for e in await store.transcripts.active_path(A, "s")] == want
        assert [e.id for e in await store.transcripts.recent(A, "s", limit=200)] == want[-200:]
        middle = await store.transcripts.active_path(A, "s", trunk[150].id)
        assert [e.id for e in middle] == want[:151]
    finally:
        await store.close()

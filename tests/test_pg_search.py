"""Search on PostgreSQL finds what it finds on SQLite, in the same order, for the same data:
the inspection sample copied row for row into a PostgreSQL store, asked the same queries
(literal and raw, short terms, archives, every filter)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from inspection_data import Sample, cli, copy_db
from pg_copy import copy_store, create_schema

from store_sql import Store
from store_sql.search import pg_query
from store_sql.search.pg_indexer import queued
from store_sql.search.query import SearchQuery, SearchResult, search_entries
from store_sql.search.terms import InvalidSearchError


@pytest.fixture
async def both(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> tuple[Path, str, Sample]:
    db, sample = copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("pgsearch"))
    await create_schema(pg_url)
    await copy_store(db, pg_url)
    return db, pg_url, sample


def _entry_lines(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(
            conn.execute("SELECT count(*) FROM transcript_lines WHERE kind = 'entry'").fetchone()[0]
        )
    finally:
        conn.close()


def _queued(url: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return await queued(conn)
        finally:
            await conn.close()

    return asyncio.run(count())


def _on_sqlite(db: Path, query: SearchQuery) -> SearchResult:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return search_entries(conn, query)
    finally:
        conn.close()


async def _on_postgresql(url: str, query: SearchQuery) -> SearchResult:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await pg_query.search_entries(conn, query)
    finally:
        await conn.close()


QUERIES: list[dict[str, Any]] = [
    {"text": "needle"},
    {"text": "NEEDLE"},  # case folds
    {"text": "needle", "limit": 2},  # `more`
    {"text": "ok"},  # shorter than a trigram: a scan
    {"text": "日本語"},  # no ASCII trigram
    {"text": "テキスト final"},
    {"text": "ls -la"},  # bash command
    {"text": "summary of"},  # compaction summary
    {"text": "bash"},  # a tool name
    {"text": "100%"},  # LIKE's own characters are literal
    {"text": "a_b"},
    {"text": "needle", "kinds": ("reset",)},
    {"text": "needle", "agent_id": "ops"},
    {"text": "needle", "role": "assistant"},
    {"text": "needle", "session": "agent:main:main"},
    {"text": "needle", "session": "s-main"},
    {"text": "needle", "since": "2026-02-10T10:00:02.500Z"},
    {"text": "needle", "active_path_only": True},
    {"text": "needle NOT kept", "raw": True},
    {"text": '"needle reply" OR ops', "raw": True},
    {"text": "(kept OR abandoned) AND reply", "raw": True},
    {"text": "needle OR ok", "raw": True},  # a short alternative: every line is a candidate
    {"text": "needle NOT ls", "raw": True},
    {"text": "nothing like this"},
]


@pytest.mark.parametrize("given", QUERIES, ids=lambda q: " ".join(f"{k}={v}" for k, v in q.items()))
async def test_the_same_hits_in_the_same_order_on_both_backends(
    both: tuple[Path, str, Sample], given: dict[str, Any]
) -> None:
    db, url, _ = both
    query = SearchQuery(**given)
    expected = _on_sqlite(db, query)
    got = await _on_postgresql(url, query)
    assert [asdict(h) for h in got.hits] == [asdict(h) for h in expected.hits]
    assert (got.more, got.mode, got.unsearched) == (expected.more, expected.mode, 0)
    assert (got.notice is None) == (expected.notice is None)


async def test_the_sample_has_hits_for_the_queries_that_mean_to_find_something(
    both: tuple[Path, str, Sample],
) -> None:
    _, url, _ = both
    found = await _on_postgresql(url, SearchQuery(text="needle", limit=100))
    assert len(found.hits) == 6
    assert found.hits[0].timestamp >= found.hits[-1].timestamp  # newest first
    archived = [h for h in found.hits if h.transcript_kind == "reset"]
    assert len(archived) == 1
    assert "[needle]" in archived[0].snippet
    short = await _on_postgresql(url, SearchQuery(text="ok"))
    assert short.mode == "like"
    assert short.notice is not None
    assert "ILIKE" in short.notice


@pytest.mark.parametrize(
    "given",
    [
        {"text": "   "},
        {"text": "a\0b"},
        {"text": "a\ud800b"},
        {"text": "needle NEAR x", "raw": True},
        {"text": '"open', "raw": True},
        {"text": "needle", "since": "yesterday"},
        {"text": "needle", "limit": "5"},
    ],
)
async def test_bad_queries_are_refused_the_same_way(
    both: tuple[Path, str, Sample], given: dict[str, Any]
) -> None:
    db, url, _ = both
    query = SearchQuery(**given)
    with pytest.raises(InvalidSearchError) as on_sqlite:
        _on_sqlite(db, query)
    with pytest.raises(InvalidSearchError) as on_postgresql:
        await _on_postgresql(url, query)
    assert str(on_postgresql.value) == str(on_sqlite.value)


def test_the_search_command_prints_the_same_on_both_backends(
    both: tuple[Path, str, Sample],
) -> None:
    db, url, _ = both
    for args in (["needle", "--json"], ["needle", "--kind", "reset"], ["nothing like this"]):
        on_sqlite = cli("search", "--db", str(db), *args)
        on_postgresql = cli("search", "--db", url, *args)
        assert on_postgresql.returncode == on_sqlite.returncode, on_postgresql.stderr
        assert on_postgresql.stdout == on_sqlite.stdout
    caught_up = cli("search", "--db", url, "--catch-up", "--json")
    assert caught_up.returncode == 0, caught_up.stderr
    # The copied lines wait in the queue; the command's own background indexer may take
    # some of them first, so the count is at most all of them.
    assert 0 <= json.loads(caught_up.stdout)["caught_up"] <= _entry_lines(db)
    assert _queued(url) == 0


async def test_rebuild_reindexes_and_counts_the_entry_lines(both: tuple[Path, str, Sample]) -> None:
    db, url, _ = both
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            report = await pg_query.rebuild_index(conn)
        lines = await conn.fetchval("SELECT count(*) FROM transcript_lines WHERE kind = 'entry'")
    finally:
        await conn.close()
    sqlite_conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        with_text = sqlite_conn.execute("SELECT count(*) FROM entry_search_text").fetchone()[0]
    finally:
        sqlite_conn.close()
    assert (report.lines_read, report.rows_indexed, report.unreadable) == (lines, with_text, 1)
    found = await _on_postgresql(url, SearchQuery(text="needle"))
    assert len(found.hits) == 6


async def test_store_search_on_postgresql_is_the_same_api(both: tuple[Path, str, Sample]) -> None:
    db, url, _ = both
    on_sqlite = await Store.open(db)
    on_postgresql = await Store.open(url)
    try:
        assert on_postgresql.dialect == "postgresql"
        for given in ({"text": "needle"}, {"text": "ok"}, {"text": "kept OR ops", "raw": True}):
            expected = await on_sqlite.search.find(**given)
            got = await on_postgresql.search.find(**given)
            assert [asdict(h) for h in got.hits] == [asdict(h) for h in expected.hits]
        await on_postgresql.search.catch_up()
        assert await on_postgresql.postgres.read(queued) == 0
        seen: list[int] = []
        report = await on_postgresql.search.rebuild(
            batch_size=8, progress=lambda r: seen.append(r.lines_read)
        )
        assert report.rows_indexed > 10
        assert len(seen) == report.batches > 1
        assert seen[-1] == report.lines_read
        assert len((await on_postgresql.search.find("needle")).hits) == 6
    finally:
        await on_sqlite.close()
        await on_postgresql.close()

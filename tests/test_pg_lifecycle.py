"""The life-cycle SQL on PostgreSQL (archiving, deleting a transcript chunk by chunk, purging
an agent) leaves the same rows as on SQLite, run on the same data (the inspection sample
copied into PostgreSQL)."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from inspection_data import Sample

from store_sql import Store
from store_sql.errors import ConflictError
from store_sql.lifecycle import pg_rows
from store_sql.lifecycle import rows as lc
from store_sql.sessions.guards import Expect

WHEN = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)

TABLES = {
    "transcripts": "SELECT transcript_id, kind, file_name, archived_at FROM transcripts",
    "lines": "SELECT transcript_id, count(*), max(pos) FROM transcript_lines GROUP BY 1",
    "entries": "SELECT agent_id, session_key FROM session_entries",
    "indexes": "SELECT agent_id FROM session_indexes",
    "snapshots": "SELECT snapshot_pk FROM checkpoint_snapshots",
}


def _sqlite_state(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(conn.execute(sql).fetchall()) for name, sql in TABLES.items()}


async def _pg_state(conn: asyncpg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(tuple(r) for r in await conn.fetch(sql)) for name, sql in TABLES.items()}


async def test_archive_delete_and_purge_leave_the_same_rows(
    both: tuple[Path, str, Sample],
) -> None:
    db, url, s = both
    lite = sqlite3.connect(db, isolation_level=None)
    pg = await asyncpg.connect(url)
    try:
        # archive a session's transcript (not when another entry still uses it)
        names = ["s-main.jsonl", "s-other.jsonl", "missing.jsonl"]
        expected = lc.archive_transcripts(lite, "main", names, "deleted", WHEN)
        async with pg.transaction():
            got = await pg_rows.archive_transcripts(pg, "main", names, "deleted", WHEN)
        assert sorted(got) == sorted(expected)
        assert len(got) == 2
        assert await pg_rows.session_referenced(pg, "main", "s-main")
        assert not await pg_rows.session_referenced(
            pg, "main", "s-main", except_key="agent:main:main"
        )
        assert (
            await pg_rows.archive_session(
                pg, "main", "s-weird", None, "reset", WHEN, except_key=None
            )
            == lc.archive_session(lite, "main", "s-weird", None, "reset", WHEN)
            == []
        )
        assert await _pg_state(pg) == _sqlite_state(lite)

        # delete a transcript three lines at a time
        steps_lite, steps_pg = [], []
        while True:
            done = lc.delete_transcript_chunk(lite, s.main_transcript, 3)
            steps_lite.append(done)
            if done[1]:
                break
        while True:
            async with pg.transaction():
                done = await pg_rows.delete_transcript_chunk(pg, s.main_transcript, 3)
            steps_pg.append(done)
            if done[1]:
                break
        assert steps_pg == steps_lite
        assert len(steps_pg) > 2
        assert await _pg_state(pg) == _sqlite_state(lite)

        # purge an agent
        start_lite = lc.purge_agent_rows(lite, "ops")
        async with pg.transaction():
            start_pg = await pg_rows.purge_agent_rows(pg, "ops")
        assert start_pg == start_lite
        assert start_pg.entries == 1
        assert await _pg_state(pg) == _sqlite_state(lite)
    finally:
        lite.close()
        await pg.close()


def _unstamped(name: str) -> str:
    """An archive's name without its time stamp (each backend archived at its own time)."""
    return re.sub(r"\.(deleted|reset)\..*$", r".\1", name)


async def test_the_lifecycle_api_on_postgresql(both: tuple[Path, str, Sample]) -> None:
    db, url, s = both
    on_sqlite, on_postgresql = await Store.open(db), await Store.open(url)
    try:
        for store in (on_sqlite, on_postgresql):
            with pytest.raises(ConflictError):
                await store.lifecycle.delete(
                    "main", "agent:main:other", expect=Expect(session_id="not-it")
                )
        results = [
            await store.lifecycle.delete("main", "agent:main:other")
            for store in (on_sqlite, on_postgresql)
        ]
        assert results[1].deleted
        assert results[0].deleted
        assert (
            [_unstamped(n) for n in results[1].archived]
            == [_unstamped(n) for n in results[0].archived]
            == ["s-other.jsonl.deleted"]
        )
        assert (await on_postgresql.lifecycle.delete("main", "agent:main:other")).deleted is False
        purged = [await store.lifecycle.purge_agent("ops", chunk_lines=1)
                  for store in (on_sqlite, on_postgresql)]  # fmt: skip
        assert purged[1] == purged[0]
        assert purged[1].lines == 2
        assert await on_postgresql.sessions.agents() == await on_sqlite.sessions.agents()
        resets = [await store.lifecycle.reset("main", "agent:main:main", cwd="/w")
                  for store in (on_sqlite, on_postgresql)]  # fmt: skip
        assert (
            [_unstamped(n) for n in resets[1].archived]
            == [_unstamped(n) for n in resets[0].archived]
            == ["s-main.jsonl.reset"]
        )
        assert list(resets[1].entry) == list(resets[0].entry)
        for store, reset in zip((on_sqlite, on_postgresql), resets, strict=True):
            fresh = await store.transcripts.info("main", reset.session_id)
            assert (fresh.kind, fresh.line_count) == ("live", 1)
    finally:
        await on_sqlite.close()
        await on_postgresql.close()
    lite = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    pg = await asyncpg.connect(url)
    try:
        expected = _sqlite_state(lite)
        got = await _pg_state(pg)
    finally:
        lite.close()
        await pg.close()
    for rows, reset in ((expected, resets[0]), (got, resets[1])):
        # the reset's new transcript has a fresh uuid and the next id each backend gives
        # (SQLite reuses a purged row's id, a sequence does not): compared above
        new = reset.transcript_id
        rows["transcripts"] = sorted((t, k, _unstamped(n), a is not None)
                                     for t, k, n, a in rows["transcripts"] if t != new)  # fmt: skip
        rows["lines"] = [r for r in rows["lines"] if r[0] != new]
    assert got == expected
    assert s.main_transcript in {t[0] for t in got["transcripts"]}

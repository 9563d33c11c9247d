"""Upgrading a PostgreSQL store to revision 0008 queues its stored lines for the background
indexers instead of computing their text in the upgrade's transaction. Until the indexers
have caught up, searches find the queued lines through revision 0006's index over the
lines' text, which the indexer drops once few enough lines wait; the stored lines are
found before, during and after.

PostgreSQL only: the queue and the interim index are PostgreSQL's (SQLite's revision 0006
indexed the stored lines in its own transaction; test_side_append.py and
test_long_line_search_text.py upgrade SQLite stores holding data).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from store_sql import Store, import_path
from store_sql.admin.pg_doctor import check_full_text
from store_sql.engine.pg import opening as pg_opening
from store_sql.schema.pg_views import LINE_INDEX_NAME
from store_sql.search import pg_indexer, pg_query
from store_sql.search.pg_indexer import queued

LINES = 30
LIMIT = 5
"""The lines a search reads itself, lowered here so that 30 lines are a big queue."""


def _state(root: Path) -> Path:
    folder = root / "agents/main/sessions"
    folder.mkdir(parents=True)
    for s in range(3):
        lines = [{"type": "session", "version": 3, "id": f"s{s}", "timestamp": "t", "cwd": "/"}]
        for m in range(LINES // 3):
            n = s * 100 + m
            message = {"role": "user", "content": f"about the wren{n}x here"}
            parent = f"e{n - 1}" if m else None
            stamp = f"2026-01-01T00:00:{m:02d}Z"
            lines.append({"type": "message", "id": f"e{n}", "parentId": parent,
                          "timestamp": stamp, "message": message})  # fmt: skip
        (folder / f"s{s}.jsonl").write_text("".join(json.dumps(v) + "\n" for v in lines))
    return root


_WORDS = [f"wren{s * 100 + m}x" for s in range(3) for m in range(LINES // 3)]


async def _found(store: Store) -> dict[str, list[str | None]]:
    return {w: [h.entry_id for h in (await store.search.find(w)).hits] for w in _WORDS}


async def _line_index(store: Store) -> bool:
    return bool(
        await store.postgres.read(
            lambda c: c.fetchval("SELECT to_regclass($1) IS NOT NULL", LINE_INDEX_NAME)
        )
    )


async def test_an_upgraded_store_finds_its_lines_while_and_after_they_are_indexed(
    pg_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_store_url
    async with await Store.open(url) as store:
        await import_path(store, _state(tmp_path / "state"))
        await store.search.catch_up()
        before = await _found(store)
    assert all(len(hits) == 1 for hits in before.values())
    await pg_opening.downgrade_to(url, "0007")

    monkeypatch.setattr(pg_query, "BACKLOG_LIMIT", LIMIT)
    monkeypatch.setattr(pg_indexer, "BACKLOG_LIMIT", LIMIT)
    # No indexer in this process: the lines stay queued as the upgrade left them.
    async with await Store.open(url, full_text=False) as store:
        assert store.open_report.upgraded_from == "0007"
        assert await store.postgres.read(queued) == LINES
        assert (
            await store.postgres.read(lambda c: c.fetchval("SELECT count(*) FROM search_text")) == 0
        )
        assert await _line_index(store)
        assert await _found(store) == before
        result = await store.search.find("wren1")
        assert result.unsearched == 0
        assert len(result.hits) == 11
        await store.transcripts.append_message(
            "main", "s1", {"role": "user", "content": "a late wren999x"}
        )
        assert len((await store.search.find("wren999x")).hits) == 1
        # The doctor shows the catch-up: the lines waiting, the interim index kept.
        check = await store.postgres.read(check_full_text)
        assert check.details["lines_not_indexed"] == LINES + 1
        assert check.details["line_index"] is True
        assert "31 lines waiting" in check.summary
        # A text the trigram index cannot look up leaves the queue out, and says so.
        short = await store.search.find("xh")
        assert short.unsearched == LINES + 1
        assert short.notice is not None

    async with await Store.open(url) as store:
        await store.search.catch_up()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while await _line_index(store):  # the background indexer drops it after its round
            assert loop.time() < deadline, store.metrics()
            await asyncio.sleep(0.05)
        assert await store.postgres.read(queued) == 0
        assert await _found(store) == before
        assert len((await store.search.find("wren999x")).hits) == 1
        assert (await store.search.find("xh")).unsearched == 0
        check = await store.postgres.read(check_full_text)
        assert check.details["lines_not_indexed"] == 0
        assert check.details["line_index"] is False

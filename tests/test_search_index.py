"""The background full-text indexer (search_index.py): lines are indexed behind the appends,
searches scan what is not indexed yet, and the mark survives deletes and a busy database."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from inspection_data import fts_rows

from store_sql import Store
from store_sql.search import indexer as search_index
from store_sql.search import query as search


def mark_and_max(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        mark = conn.execute("SELECT indexed_upto FROM search_index_state").fetchone()[0]
        top = conn.execute("SELECT coalesce(max(line_pk), 0) FROM transcript_lines").fetchone()
        return int(mark), int(top[0])
    finally:
        conn.close()


async def wait_until_indexed(db: Path) -> None:
    """Until the indexer's mark reaches the last line (at most 10 s)."""
    async with asyncio.timeout(10):
        while True:
            mark, top = mark_and_max(db)
            if mark >= top:
                return
            await asyncio.sleep(0.01)


async def say(store: Store, session: str, text: str) -> str:
    return (
        await store.transcripts.append_message("main", session, {"role": "user", "content": text})
    ).id


async def test_the_indexer_indexes_appended_lines_without_being_asked(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite") as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        ids = [await say(store, "s1", f"message number {i} about otters") for i in range(300)]
        await wait_until_indexed(store.path)
        texts = fts_rows(store.path)
        assert sorted(texts.values()) == sorted(
            f"message number {i} about otters" for i in range(300)
        )
        found = await store.search.find("otters", limit=1000)
        assert sorted(h.entry_id or "" for h in found.hits) == sorted(ids)
        assert found.unsearched == 0


async def test_a_search_merges_indexed_lines_with_the_lines_above_the_mark(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite", full_text=False) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        old = await say(store, "s1", "an old badger story")
        assert await store.search.catch_up() == 2
        new = await say(store, "s1", "a new badger story")
        other = await say(store, "s1", "nothing to see")
        assert mark_and_max(store.path)[0] < mark_and_max(store.path)[1]
        result = await store.search.find("badger")
        assert [h.entry_id for h in result.hits] == [new, old]  # newest first, from both
        assert "[badger]" in result.hits[0].snippet
        assert (await store.search.find("badger", limit=1)).more
        assert other not in [h.entry_id for h in (await store.search.find("story")).hits]
        # Filters apply to the scanned lines as to the indexed ones.
        assert (await store.search.find("badger", role="assistant")).hits == []
        short = await store.search.find("ba")  # LIKE mode: scanned lines too
        assert {h.entry_id for h in short.hits} >= {new, old}


async def test_deleting_the_highest_lines_lowers_the_mark_so_reused_numbers_are_indexed(
    tmp_path: Path,
) -> None:
    async with await Store.open(tmp_path / "s.sqlite", full_text=False) as store:
        await store.transcripts.create("main", "keep", cwd="/w")
        await say(store, "keep", "stays put")
        await store.transcripts.create("main", "gone", cwd="/w")
        await say(store, "gone", "walrus one")
        await store.search.catch_up()
        mark, top = mark_and_max(store.path)
        assert mark == top
        await store.write(lambda c: c.execute("DELETE FROM transcripts WHERE session_id = 'gone'"))
        lowered, top_after = mark_and_max(store.path)
        assert lowered == top_after < mark
        # The next line takes a number the deleted lines had: it must be above the mark.
        fresh = await say(store, "keep", "walrus two")
        assert mark_and_max(store.path)[1] <= mark
        assert [h.entry_id for h in (await store.search.find("walrus")).hits] == [fresh]
        await store.search.catch_up()
        assert "walrus two" in fts_rows(store.path).values()
        assert "walrus one" not in fts_rows(store.path).values()


async def test_past_the_backlog_limit_a_search_says_what_it_did_not_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "BACKLOG_LIMIT", 3)
    async with await Store.open(tmp_path / "s.sqlite", full_text=False) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        for i in range(4):
            await say(store, "s1", f"heron {i}")
        result = await store.search.find("heron")
        assert result.hits == []
        assert result.unsearched == 5
        assert result.notice is not None
        assert "5 lines" in result.notice
        assert "--catch-up" in result.notice
        await store.search.catch_up()
        result = await store.search.find("heron")
        assert len(result.hits) == 4
        assert result.unsearched == 0
        assert result.notice is None


async def test_the_indexer_outlives_a_busy_database_and_catches_up_later(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    async with await Store.open(db, busy_timeout_ms=50) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        await wait_until_indexed(db)
        await say(store, "s1", "a line the indexer wants")
        # Another process takes the write lock before the indexer's quiet period ends, so
        # the step that committed write asked for finds the database locked.
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            for _ in range(100):
                if store.metrics()["index_failures"]:
                    break
                await asyncio.sleep(0.02)
            metrics = store.metrics()
            assert metrics["index_failures"] >= 1
            assert "locked" in metrics["index_last_error"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        appended = await say(store, "s1", "a lynx after the lock")
        await wait_until_indexed(db)
        assert "a lynx after the lock" in fts_rows(db).values()
        assert [h.entry_id for h in (await store.search.find("lynx")).hits] == [appended]


async def test_index_pending_moves_the_mark_past_lines_without_text(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite", full_text=False) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        await say(store, "s1", "")  # no searchable text
        await say(store, "s1", "some text")
        step = await store.write(lambda c: search_index.index_pending(c, batch_size=2))
        assert (step.lines_read, step.rows_indexed) == (2, 0)  # header, empty message
        step = await store.write(lambda c: search_index.index_pending(c, batch_size=2))
        assert (step.lines_read, step.rows_indexed) == (1, 1)
        assert step.upto == mark_and_max(store.path)[1]
        assert await store.write(search_index.backlog) == 0


async def test_cli_catch_up_indexes_the_waiting_lines(tmp_path: Path) -> None:
    from inspection_data import cli

    db = tmp_path / "s.sqlite"
    async with await Store.open(db, full_text=False) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        await say(store, "s1", "an ibex on the ridge")
    raw = cli("search", "--db", str(db), "--raw", "--json", "ibex")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["unsearched"] == 0  # the waiting lines were scanned
    assert mark_and_max(db)[0] < mark_and_max(db)[1]
    proc = cli("search", "--db", str(db), "--catch-up", "--json", "--raw", "ibex")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["caught_up"] == 2
    assert len(out["hits"]) == 1
    assert out["unsearched"] == 0
    assert mark_and_max(db)[0] == mark_and_max(db)[1]


async def test_stats_report_the_lines_waiting_for_the_index(tmp_path: Path) -> None:
    from store_sql.admin import stats as stats

    db = tmp_path / "s.sqlite"
    async with await Store.open(db, full_text=False) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        await say(store, "s1", "a quail")
    assert stats.stats_file(db).full_text_waiting == 2
    async with await Store.open(db) as store:
        await wait_until_indexed(db)
    assert stats.stats_file(db).full_text_waiting == 0


def test_cli_import_says_how_many_lines_wait_for_the_index(tmp_path: Path) -> None:
    from inspection_data import cli

    state = Path(__file__).resolve().parent.parent / "samples" / "state"
    db = tmp_path / "s.sqlite"
    proc = cli("import", str(state), "--db", str(db), "--json")
    assert proc.returncode == 0, proc.stderr
    waiting = json.loads(proc.stdout)["full_text_waiting"]
    assert 0 < waiting <= mark_and_max(db)[1]  # the indexer is paused while importing
    # Into a fresh database again: a re-import of unchanged files writes nothing, and the
    # indexer of that second process may index the waiting lines before the import starts.
    text = cli("import", str(state), "--db", str(tmp_path / "text.sqlite"))
    assert "lines to index" in text.stdout
    assert "--catch-up" in text.stdout
    caught = cli("search", "--db", str(db), "--catch-up", "--json")
    assert json.loads(caught.stdout)["caught_up"] > 0
    assert mark_and_max(db)[0] == mark_and_max(db)[1]


async def test_a_search_of_waiting_lines_finds_text_a_writer_escaped(tmp_path: Path) -> None:
    # Go's encoder writes <, > and & as \u003c, \u003e, \u0026 and some writers escape / as
    # \/: a text holding them is not matched against the raw line but read from the JSON.
    from store_sql import import_path

    sid = "0a286f5e-b0ec-47de-a951-2b95f2b21bb3"
    folder = tmp_path / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    header = (
        b'{"type":"session","version":3,"id":"' + sid.encode() + b'","timestamp":"t","cwd":"/"}'
    )
    entry = (
        b'{"type":"message","id":"aaaa0001","parentId":null,"timestamp":"t","message":'
        b'{"role":"user","content":"if a \\u003c b and c\\/d then"}}'
    )
    (folder / f"{sid}.jsonl").write_bytes(header + b"\n" + entry + b"\n")
    async with await Store.open(tmp_path / "s.sqlite", full_text=False) as store:
        assert (await import_path(store, tmp_path)).ok
        assert await store.write(search_index.backlog) == 2
        for text in ("a < b", "c/d", "A < B AND C/D"):
            found = await store.search.find(text)
            assert [h.entry_id for h in found.hits] == ["aaaa0001"], text
        assert (await store.search.find("a < c")).hits == []

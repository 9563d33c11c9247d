"""Revision 0009: on SQLite a long line's searchable text is computed with the line parsed
once (extra_sql.line_search_text_sql). A database at 0008 holding indexed long lines
upgrades with its full-text index still whole and the same search answers; on PostgreSQL
the revision changes nothing, and the same answers hold."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from store_sql import Store, import_path
from store_sql.engine import migrate
from store_sql.engine.pg import opening as pg_opening
from store_sql.schema import extra_sql

HEADER = {"type": "session", "version": 3, "id": "s1", "timestamp": "t", "cwd": "/"}
CAP = extra_sql.SEARCH_TEXT_CHARS


def _message(eid: str, parent: str | None, content: Any) -> bytes:
    entry = {
        "type": "message",
        "id": eid,
        "parentId": parent,
        "timestamp": f"2026-01-01T00:00:0{eid[-1]}Z",
        "message": {"role": "assistant", "content": content},
    }
    return json.dumps(entry, ensure_ascii=False).encode()


def _state(root: Path) -> Path:
    """One transcript: long lines (a long text block, many blocks, a summary whose key is
    there twice, which the two forms of the text read differently) and a short one."""
    folder = root / "agents/main/sessions"
    folder.mkdir(parents=True)
    padding = "é" * (extra_sql.LONG_LINE_BYTES // 2)
    twice = (
        b'{"type":"compaction","id":"e5","parentId":"d4","summary":"first osprey '
        + padding.encode()
        + b'","summary":"second grebe","timestamp":"2026-01-01T00:00:05Z"}'
    )
    lines = [
        json.dumps(HEADER).encode(),
        _message(
            "a1",
            None,
            [
                {"type": "toolCall", "name": "plover"},
                {"type": "text", "text": "kestrel " + padding + " heron"},
                {"type": "thinking", "thinking": "not searched " + padding},
            ],
        ),
        _message(
            "b2",
            "a1",
            [{"type": "text", "text": f"block {n} " + "é" * 4000} for n in range(16)]
            + [{"type": "text", "text": "curlew"}, {"type": "thinking", "thinking": padding}],
        ),
        _message("c3", "b2", "a short line about a dunlin"),
        _message("d4", "c3", "😀" * (CAP - 4) + " sanderling"),
        twice,
    ]
    assert all(len(line) > extra_sql.LONG_LINE_BYTES for line in lines[1:3] + lines[4:])
    (folder / "s1.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return root


_MATCH = "SELECT count(*) FROM entry_text_fts WHERE entry_text_fts MATCH '{trigrams}'"


def _sqlite(location: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(location)
    try:
        # FTS5 checks that the index holds exactly the view's text of every indexed line.
        conn.execute("INSERT INTO entry_text_fts (entry_text_fts) VALUES ('integrity-check')")
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


async def _answers(store: Store) -> dict[str, list[str | None]]:
    words = ("kestrel", "heron", "plover", "curlew", "block 7", "dunlin", "sanderling",
             "osprey", "grebe")  # fmt: skip
    return {word: [hit.entry_id for hit in (await store.search.find(word)).hits] for word in words}


async def test_a_0008_database_upgrades_with_its_index_whole_and_the_same_answers(
    backend_location: str | Path, tmp_path: Path
) -> None:
    location = backend_location
    async with await Store.open(location) as store:
        await import_path(store, _state(tmp_path / "state"))
        await store.search.catch_up()
        answers = await _answers(store)
    assert answers["kestrel"] == answers["plover"] == ["a1"]
    assert answers["heron"] == []  # past the cap
    assert answers["curlew"] == answers["block 7"] == ["b2"]
    assert answers["dunlin"] == ["c3"]
    assert answers["sanderling"] == []  # past the cap, counted in characters

    if isinstance(location, Path):
        migrate.downgrade_to(location, "0008")
        [(view,)] = _sqlite(location, "SELECT sql FROM sqlite_master WHERE name = "
                            "'entry_search_text'")  # fmt: skip
        assert "json_tree" not in view
        # The index as store_sql at 0008 built it, from that revision's view: there the
        # text of the line with `summary` twice is the first one's.
        conn = sqlite3.connect(location)
        with conn:
            conn.execute("INSERT INTO entry_text_fts (entry_text_fts) VALUES ('delete-all')")
            conn.execute("INSERT INTO entry_text_fts (rowid, text) "
                         "SELECT line_pk, text FROM entry_search_text")  # fmt: skip
        conn.close()
        assert _sqlite(location, _MATCH.format(trigrams='"osp"')) == [(1,)]
        assert _sqlite(location, _MATCH.format(trigrams='"gre"')) == [(0,)]
    else:
        await pg_opening.downgrade_to(location, "0008")

    async with await Store.open(location) as store:
        assert store.open_report.upgraded_from == "0008"
        upgraded = await _answers(store)
        if isinstance(location, Path):
            [(view,)] = _sqlite(location, "SELECT sql FROM sqlite_master WHERE name = "
                                "'entry_search_text'")  # fmt: skip
            assert "json_tree" in view
        twice = {word: upgraded.pop(word) for word in ("osprey", "grebe")}
        assert upgraded == {k: v for k, v in answers.items() if k not in twice}
        assert ["e5"] in twice.values()  # one of the two summaries, as each form reads it
        for info in await store.transcripts.list_transcripts("main", session_id="s1"):
            await store.lifecycle.delete_transcript(info.transcript_id)
        assert await _answers(store) == {key: [] for key in answers}
    if isinstance(location, Path):
        # Every line left the index with the text it was indexed with: no trigram is left.
        trigrams = '"kes" OR "cur" OR "osp" OR "gre" OR "dun"'
        assert _sqlite(location, _MATCH.format(trigrams=trigrams)) == [(0,)]

"""Revision 0007 on both backends. transcript_lines.side_append: every writer sets it to the
substring test the navigation index's condition made on the line, and the revision fills it
for a database written before it, keeping the index's answers. And the searchable text is
cut at SEARCH_TEXT_CHARS: the revision takes a longer line's text out of the index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from store_sql import Store, import_path
from store_sql.engine import migrate
from store_sql.engine.pg import opening as pg_opening
from store_sql.schema.extra_sql import SEARCH_TEXT_CHARS
from store_sql.schema.tables import NAVIGATION_LINES, SIDE_APPEND_MARK, side_append

SID = "11111111-2222-4333-8444-555555555555"

# The condition the index had up to revision 0006, in each dialect.
_OLD_CONDITION = {
    "sqlite": "kind = 'entry' AND (type IN ('leaf', 'reset') OR "
    'instr(line, \'"appendMode":"side"\') > 0)',
    "postgresql": "kind = 'entry' AND (type IN ('leaf', 'reset') OR "
    'strpos(line, \'"appendMode":"side"\') > 0)',
}


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _state(root: Path) -> Path:
    """Three transcripts: one with a side append and a leaf control, one whose only mark is
    a nested object's (a substring is a substring; in a string it is escaped), one with
    none; damaged lines holding the mark (one with a NUL, kept as bytes on PostgreSQL; one
    not UTF-8)."""
    folder = root / "agents/main/sessions"
    folder.mkdir(parents=True)

    def header(sid: str) -> bytes:
        return _line({"type": "session", "version": 3, "id": sid, "timestamp": "t", "cwd": "/"})

    def message(eid: str, parent: str | None, text: str = "hi", **extra: Any) -> bytes:
        return _line({"type": "message", "id": eid, "parentId": parent, **extra,
                      "message": {"role": "user", "content": text}})  # fmt: skip

    side = [
        header(SID),
        message("a1", None),
        message("b2", "a1", appendMode="side"),
        _line({"type": "leaf", "id": "c3", "parentId": "a1", "targetId": "a1"}),
        b'{"damaged ' + SIDE_APPEND_MARK + b"\x00",
        b'{"not utf-8 \xff' + SIDE_APPEND_MARK,
        message("d4", "a1"),
    ]
    nested = [header("s2"), message("a1", None, meta={"appendMode": "side"}), message("b2", "a1")]
    plain = [header("s3"), message("a1", None), message("b2", "a1", appendMode="main")]
    for name, lines in ((SID, side), ("s2", nested), ("s3", plain)):
        (folder / f"{name}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return root


async def _rows(location: str | Path, sql: str) -> list[tuple[Any, ...]]:
    if isinstance(location, Path):
        import sqlite3

        conn = sqlite3.connect(location)
        try:
            return [tuple(r) for r in conn.execute(sql)]
        finally:
            conn.close()
    conn_pg = await pg_opening.connect(location)
    try:
        return [tuple(r) for r in await conn_pg.fetch(sql)]
    finally:
        await conn_pg.close()


def _dialect(location: str | Path) -> str:
    return "sqlite" if isinstance(location, Path) else "postgresql"


def _bytes_sql(location: str | Path) -> str:
    """The line's bytes, in the location's dialect."""
    if isinstance(location, Path):
        return "CAST(line AS BLOB)"
    return "coalesce(convert_to(line, 'UTF8'), line_bytes)"


async def _navigating(location: str | Path, condition: str) -> list[tuple[Any, ...]]:
    """The lines `condition` selects, read through the navigation index on SQLite."""
    indexed = "INDEXED BY ix_transcript_lines_navigation " if isinstance(location, Path) else ""
    return await _rows(
        location,
        f"SELECT transcript_id, pos FROM transcript_lines {indexed}"
        f"WHERE transcript_id > 0 AND {condition} ORDER BY transcript_id, pos",
    )


async def _columns(location: str | Path) -> list[str]:
    if isinstance(location, Path):
        found = await _rows(location, "SELECT name FROM pragma_table_info('transcript_lines')")
    else:
        found = await _rows(
            location,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'transcript_lines' ORDER BY ordinal_position",
        )
    return [name for (name,) in found]


async def test_every_writer_sets_the_column_the_line_gives(
    backend_location: str | Path, tmp_path: Path
) -> None:
    async with await Store.open(backend_location) as store:
        await import_path(store, _state(tmp_path / "state"))
        await store.transcripts.append("main", SID, [{"type": "custom", "appendMode": "side"}])
        await store.transcripts.append_message("main", "s3", {"role": "user", "content": "x"})
        created = await store.transcripts.create("main", "s4", cwd="/")
        quoted = {"type": "custom", "note": '"appendMode":"side"'}  # escaped: not the mark
        nested = {"type": "custom", "data": {"appendMode": "side"}}
        await store.transcripts.append("main", created.transcript_id, [quoted, nested])
    stored = await _rows(
        backend_location,
        f"SELECT {_bytes_sql(backend_location)}, side_append FROM transcript_lines "
        "ORDER BY line_pk",
    )
    assert [flag for _, flag in stored] == [side_append(bytes(line)) for line, _ in stored]
    assert sum(flag for _, flag in stored) == 6


async def test_a_0006_database_upgrades_with_the_column_filled_and_the_same_answers(
    backend_location: str | Path, tmp_path: Path
) -> None:
    location = backend_location
    async with await Store.open(location) as store:
        await import_path(store, _state(tmp_path / "state"))
        await store.transcripts.append("main", SID, [{"type": "custom", "appendMode": "side"}])
        await store.transcripts.append_message("main", "s3", {"role": "user", "content": _LONG})
        await store.search.catch_up()
    flags = await _rows(location, "SELECT line_pk, side_append FROM transcript_lines ORDER BY 1")
    answers = await _navigating(location, NAVIGATION_LINES)
    assert len(answers) == 4  # the side append, the leaf control, the nested mark, the appended

    # What store_sql wrote before revision 0007: no column, the index on a text search.
    if isinstance(location, Path):
        migrate.downgrade_to(location, "0006")
    else:
        await pg_opening.downgrade_to(location, "0006")
    assert "side_append" not in await _columns(location)
    assert await _navigating(location, _OLD_CONDITION[_dialect(location)]) == answers
    assert await _searchable(location, "heron") == 1  # the whole text, as before 0007

    async with await Store.open(location) as store:
        assert store.open_report.upgraded_from == "0006"
        if isinstance(location, Path):
            assert store.open_report.backup_path is not None
            assert "side_append" not in await _columns(store.open_report.backup_path)
        assert await _rows(location, "SELECT line_pk, side_append FROM transcript_lines "
                           "ORDER BY 1") == flags  # fmt: skip
        assert await _navigating(location, NAVIGATION_LINES) == answers
        assert await _searchable(location, "kestrel") == 1
        assert await _searchable(location, "heron") == 0  # past the cap now
        assert len((await store.search.find("kestrel")).hits) == 1
        assert (await store.search.find("heron")).hits == []
        for info in await store.transcripts.list_transcripts("main", session_id="s3"):
            await store.lifecycle.delete_transcript(info.transcript_id)
    assert await _searchable(location, "kestrel") == 0  # forgotten with its indexed text


_LONG = "é" * (SEARCH_TEXT_CHARS - 20) + "kestrel" + "y" * 20 + "heron"


async def _searchable(location: str | Path, term: str) -> int:
    """Lines the search index holds `term` for, read from the index alone: FTS5's trigrams
    on SQLite (which also checks its own consistency), the view's text on PostgreSQL."""
    if isinstance(location, Path):
        import sqlite3

        conn = sqlite3.connect(location)
        try:
            conn.execute("INSERT INTO entry_text_fts (entry_text_fts) VALUES ('integrity-check')")
            match = " AND ".join(f'"{term[i : i + 3]}"' for i in range(len(term) - 2))
            sql = "SELECT count(*) FROM entry_text_fts WHERE entry_text_fts MATCH ?"
            found = conn.execute(sql, (match,)).fetchone()[0]
            conn.rollback()
            return int(found)
        finally:
            conn.close()
    [(found,)] = await _rows(
        location, f"SELECT count(*) FROM entry_search_text WHERE text LIKE '%{term}%'"
    )
    return int(found)


@pytest.mark.parametrize("piece", [1, 7, 19, 1 << 20])
def test_a_spooled_line_finds_the_mark_across_its_pieces(piece: int) -> None:
    from store_sql.importer.spooled_line import SpooledLine

    for at in range(0, 40):
        data = b"x" * at + SIDE_APPEND_MARK + b"y" * 5
        line = SpooledLine(1)
        for i in range(0, len(data), piece):
            line.add(data[i : i + piece])
        assert line.has_side_mark
        line.close()
    line = SpooledLine(1)
    line.add(SIDE_APPEND_MARK[:-1])
    line.add(b"x" + SIDE_APPEND_MARK[-1:])
    assert not line.has_side_mark
    line.close()

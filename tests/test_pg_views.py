"""The maintainer views on PostgreSQL answer the rows they answer on SQLite, for the same data:
the inspection sample (damaged, BLOB and non-JSON lines, an archive, a superseded version,
labels set and cleared, usage totals) copied row for row into a PostgreSQL store.

Values compare as Python values: PostgreSQL's `numeric` against SQLite's integers and reals,
its booleans against SQLite's 1/0 (docs/SCHEMA.md, "PostgreSQL")."""

from __future__ import annotations

import re
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from inspection_data import Sample, copy_db
from pg_copy import copy_store, create_schema

from store_sql import Store
from store_sql.schema.extra_sql import VIEWS


@pytest.fixture
async def both(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> tuple[Path, str, Sample]:
    db, sample = copy_db(tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("pgviews"))
    await create_schema(pg_url)
    await copy_store(db, pg_url)
    return db, pg_url, sample


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _sqlite_rows(db: Path, name: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cursor = conn.execute(f"SELECT * FROM {name}")
        columns = [d[0] for d in cursor.description]
        return columns, [tuple(_plain(v) for v in row) for row in cursor]
    finally:
        conn.close()


async def _pg_rows(url: str, name: str) -> tuple[list[str], list[dict[str, Any]]]:
    conn = await asyncpg.connect(url)
    try:
        records = await conn.fetch(f"SELECT * FROM {name}")
        stmt = await conn.prepare(f"SELECT * FROM {name}")
        columns = [a.name for a in stmt.get_attributes()]
        return columns, [{k: _plain(v) for k, v in r.items()} for r in records]
    finally:
        await conn.close()


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, type(v).__name__, v) for v in row)


@pytest.mark.parametrize("name", list(VIEWS))
async def test_each_view_answers_the_same_rows_on_both_backends(
    both: tuple[Path, str, Sample], name: str
) -> None:
    db, url, _ = both
    columns, expected = _sqlite_rows(db, name)
    pg_columns, pg_records = await _pg_rows(url, name)
    if name == "active_path":
        # SQLite's `line` holds text or bytes; PostgreSQL splits them into line/line_bytes.
        assert pg_columns == [*columns, "line_bytes"]
        for record in pg_records:
            if record["line"] is None:
                record["line"] = record["line_bytes"]
    else:
        assert pg_columns == columns
    got = [tuple(record[c] for c in columns) for record in pg_records]
    assert expected, f"the sample gives {name} no rows: the comparison would prove nothing"
    assert sorted(got, key=_sort_key) == sorted(expected, key=_sort_key)


async def test_the_search_text_is_the_same_on_both_backends(
    both: tuple[Path, str, Sample],
) -> None:
    db, url, _ = both
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        expected = dict(conn.execute("SELECT line_pk, text FROM entry_search_text"))
    finally:
        conn.close()
    pg = await asyncpg.connect(url)
    try:
        got = dict(await pg.fetch("SELECT line_pk, text FROM entry_search_text"))
    finally:
        await pg.close()
    assert len(expected) > 10
    assert got == expected


LINES = {
    "nul": ('{"type":"label","label":"a\\u0000b"}', "a\ufffdb"),
    "surrogate pair": ('{"type":"label","label":"a\\ud83d\\ude00b"}', "a\U0001f600b"),
    "lone surrogate": ('{"type":"label","label":"a\\ud800b"}', None),
    "NaN": ('{"type":"label","label":NaN}', None),
    "not json": ("not json at all", None),
    "array": ("[1, 2]", None),
    "scalar": ("5", None),
    "content not a list": ('{"type":"message","message":{"role":"user","content":{"a":1}}}', None),
    "bash, output not text": (
        '{"type":"message","message":{"role":"bashExecution","command":"ls","output":5}}',
        "ls",
    ),
    "name null wins over label": ('{"type":"session_info","name":null,"label":"x"}', None),
}


@pytest.mark.parametrize("case", list(LINES))
async def test_a_line_that_is_not_plain_json_never_fails_a_query(pg_url: str, case: str) -> None:
    """The search indexer computes the text of each queued line: a line it cannot read gets
    no text, never an error (which would leave the queue stuck behind it)."""
    line, text = LINES[case]
    store = await Store.open(pg_url, full_text=False)
    try:
        info = await store.transcripts.create("main", "s-odd", cwd="/w")
        await store.postgres.write(
            lambda c: c.execute(
                "INSERT INTO transcript_lines (transcript_id, pos, line, kind, byte_size) "
                "VALUES ($1, 1000, $2, 'entry', 1)",
                info.transcript_id,
                line,
            )
        )
        assert (
            await store.postgres.read(lambda c: c.fetchval("SELECT entry_search_text($1)", line))
            == text
        )
        assert await store.search.catch_up() >= 1
        indexed = await store.postgres.read(
            lambda c: c.fetchval(
                "SELECT count(s.text) FROM transcript_lines AS l "
                "LEFT JOIN search_text AS s ON s.line_pk = l.line_pk WHERE l.pos = 1000"
            )
        )
        assert indexed == (0 if text is None else 1)
    finally:
        await store.close()


SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "SCHEMA.md"
SQLITE_ONLY = re.compile(r"entry_text_fts|typeof\(|json_extract\(|json_each\(")


async def test_every_sql_example_of_the_schema_doc_runs_on_postgresql(
    both: tuple[Path, str, Sample],
) -> None:
    """The examples of docs/SCHEMA.md that use no SQLite-only function, and its PostgreSQL
    examples (the SQLite ones run in tests/test_schema_doc.py)."""
    _, url, _ = both
    text = SCHEMA_DOC.read_text(encoding="utf-8")
    shared = [s for s in re.findall(r"```sql\n(.*?)```", text, re.S) if not SQLITE_ONLY.search(s)]
    own = re.findall(r"```postgresql\n(.*?)```", text, re.S)
    assert len(shared) > 10
    assert len(own) >= 4
    conn = await asyncpg.connect(url)
    try:
        results = [await conn.fetch(sql) for sql in (*shared, *own)]
    finally:
        await conn.close()
    assert results[len(shared)], "the PostgreSQL search example finds the sample's needle"


async def test_the_views_and_the_search_text_work_where_the_server_would_go_parallel(
    both: tuple[Path, str, Sample],
) -> None:
    """entry_line_json catches errors (a subtransaction), which a parallel worker may not
    start: the functions are not PARALLEL SAFE, so the planner keeps them in one process."""
    _, url, _ = both
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for setting in ("parallel_setup_cost", "parallel_tuple_cost"):
                await conn.execute(f"SET LOCAL {setting} = 0")
            await conn.execute("SET LOCAL min_parallel_table_scan_size = 0")
            forced = await conn.fetchval(
                "SELECT name FROM pg_settings "
                "WHERE name IN ('debug_parallel_query', 'force_parallel_mode')"
            )
            await conn.execute(f"SET LOCAL {forced} = on")
            for name in (*VIEWS, "entry_search_text"):
                assert await conn.fetch(f"SELECT * FROM {name}")
            assert await conn.fetchval(
                "SELECT count(*) FROM transcript_lines WHERE entry_search_text(line) ILIKE '%e%'"
            )
    finally:
        await conn.close()

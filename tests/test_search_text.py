"""The searchable text has two definitions that must agree: `entry_search_text` in Python and
the `entry_search_text` view in SQL, which the external-content index reads and its delete
trigger recomputes. And the raw query language of `store-sql search --raw` (terms.py)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store_sql.formats import jsjson
from store_sql.schema import extra_sql
from store_sql.search.entry_text import entry_search_text
from store_sql.search.terms import InvalidSearchError, literal, raw_query, trigram_match

# Text without lone surrogates (SQLite's JSON functions and Python differ on those only in
# how the bad code point is stored) and without U+0000 (SQLite ends a JSON string there:
# test_text_after_a_nul_character_is_not_searchable).
_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), _text)
_block = st.one_of(
    _scalar,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "toolCall", "image", 1])},
        optional={"text": _scalar, "name": _scalar},
    ),
)
_content = st.one_of(_scalar, st.lists(_block, max_size=4))
_message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "toolResult", "bashExecution", 3]),
        "content": _content,
        "command": _scalar,
        "output": _scalar,
    },
)
_TYPES = ("message", "compaction", "branch_summary", "custom_message", "session_info", "label",
          "model_change", 7)  # fmt: skip
_entry = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "message",
                "compaction",
                "branch_summary",
                "custom_message",
                "session_info",
                "label",
                "model_change",
                7,
            ]
        )
    },
    optional={
        "message": st.one_of(_message, _scalar, st.lists(_scalar, max_size=2)),
        "summary": _scalar,
        "content": _content,
        "name": _scalar,
        "label": _scalar,
    },
)


@pytest.fixture(scope="module")
def conn() -> Any:
    db = sqlite3.connect(":memory:")
    yield db
    db.close()


def _sql_text(db: sqlite3.Connection, line: str | bytes) -> str | None:
    row = db.execute(f"SELECT {extra_sql.search_text_sql('?1')}", (line,)).fetchone()
    return None if row[0] is None else str(row[0])


@settings(max_examples=400, deadline=None)
@given(entry=_entry)
def test_the_view_computes_what_python_computes(conn: sqlite3.Connection, entry: Any) -> None:
    line = jsjson.dumps(entry)
    assert _sql_text(conn, line) == entry_search_text(orjson.loads(line))


@settings(max_examples=300, deadline=None)
@given(entry=_entry, chars=st.sampled_from([None, extra_sql.SEARCH_TEXT_CHARS, 5]))
def test_long_lines_get_the_same_text_with_the_line_parsed_once(
    conn: sqlite3.Connection, entry: Any, chars: int | None
) -> None:
    line = jsjson.dumps(entry)
    one_pass = conn.execute(
        f"SELECT {extra_sql.one_pass_search_text_sql('?1', chars)}", (line,)
    ).fetchone()[0]
    assert (
        one_pass
        == conn.execute(f"SELECT {extra_sql.search_text_sql('?1', chars)}", (line,)).fetchone()[0]
    )


def test_the_text_of_a_long_line_is_cut_where_the_short_form_cuts_it(
    conn: sqlite3.Connection,
) -> None:
    cap = extra_sql.SEARCH_TEXT_CHARS
    blocks = [{"type": "text", "text": "é" * (cap - 3)}, {"type": "toolCall", "name": "bash"},
              "skipped", {"type": "text", "text": "😀" * cap}]  # fmt: skip
    entries = [
        {"type": "message", "message": {"role": "assistant", "content": blocks}},
        {
            "type": "message",
            "message": {"role": "bashExecution", "command": "x" * cap, "output": "y"},
        },
        {"type": "custom_message", "content": blocks[::-1]},
        {"type": "compaction", "summary": "s" * (3 * cap)},
        {
            "type": "message",
            "message": {"content": [{"type": "text", "text": str(n)} for n in range(12)]},
        },
    ]
    for entry in entries:
        line = jsjson.dumps(entry)
        assert len(line) > extra_sql.LONG_LINE_BYTES or entry["type"] == "message"
        expected = entry_search_text(orjson.loads(line))
        assert _sql_text(conn, line) == expected
        by_size = extra_sql.line_search_text_sql("?1", "?2")
        for size in (len(line), 0):  # the one-pass form, the per-reference form
            assert conn.execute(f"SELECT {by_size}", (line, size)).fetchone()[0] == expected


def test_text_after_a_nul_character_is_not_searchable(conn: sqlite3.Connection) -> None:
    # SQLite's json_extract (3.40) ends a string at an escaped U+0000: the index and the
    # search both read the text through it, so they agree; the Python rule keeps the rest.
    line = '{"type":"compaction","summary":"before\\u0000after"}'
    assert _sql_text(conn, line) == "before"
    assert entry_search_text(orjson.loads(line)) == "before\x00after"


def test_lines_that_are_not_json_text_have_no_text(conn: sqlite3.Connection) -> None:
    assert _sql_text(conn, '{"type":"message","message":{"content":"x"') is None
    assert _sql_text(conn, b'{"type":"message","message":{"content":"\xff"}}') is None
    assert _sql_text(conn, '{"type":"message","message":{"content":"ok"}}') == "ok"


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("needle AND reset", "the needle of the reset", True),
        ("needle AND reset", "the needle", False),
        ("needle reset", "RESET the NEEDLE", True),
        ("needle OR haystack", "a haystack", True),
        ("needle NOT haystack", "a needle in a haystack", False),
        ("needle NOT haystack", "a needle alone", True),
        ('"needle in"', "a needle in it", True),
        ('"needle in"', "a needle, in it", False),
        ('"say ""hi"""', 'they say "hi" loud', True),
        ("(alpha OR beta) gamma", "beta and gamma", True),
        ("(alpha OR beta) gamma", "alpha and beta", False),
        ("xx OR yy NOT zz", "yy zz", False),
        ("xx OR yy NOT zz", "xx zz", True),
    ],
)
def test_raw_queries_combine_substrings(query: str, text: str, expected: bool) -> None:
    assert raw_query(query).matches(text) is expected


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('"unbalanced', "FTS5"),
        ("(needle", "FTS5"),
        ("needle OR", "FTS5"),
        ("NEAR(a b)", "positions"),
        ("text:needle", "positions"),
        ("need*", "positions"),
        ("  ", "search text"),
    ],
)
def test_raw_queries_that_cannot_be_used_are_refused(query: str, problem: str) -> None:
    with pytest.raises(InvalidSearchError, match=problem):
        raw_query(query)


def test_candidates_come_from_trigrams_and_short_parts_give_up_the_index() -> None:
    assert trigram_match("Abcd") == '"abc" AND "bcd"'
    assert trigram_match('a"b') == '"a""b"'
    assert trigram_match("ab") is None
    assert literal("ab").match is None
    assert raw_query("ab OR needle").match is None  # any line may hold "ab"
    assert raw_query("ab needle").match == '("nee" AND "eed" AND "edl" AND "dle")'
    assert raw_query("needle NOT ab").match == '"nee" AND "eed" AND "edl" AND "dle"'
    many = trigram_match("x" * 5 + "abcdefghijklmnopqrstuvwxyz")
    assert many is not None
    assert many.count("AND") == 11  # at most 12 trigrams are asked of the index


async def test_an_indexed_line_leaves_the_index_when_deleted_or_rewritten(tmp_path: Any) -> None:
    from inspection_data import fts_rows

    from store_sql.store import Store

    db = tmp_path / "s.sqlite"
    async with await Store.open(db) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        for word in ("alpha", "bravo", "charlie"):
            await store.transcripts.append_message(
                "main", "s1", {"role": "user", "content": f"the {word} line"}
            )
        await store.search.catch_up()
        assert sorted(fts_rows(db).values()) == [
            "the alpha line",
            "the bravo line",
            "the charlie line",
        ]
        await store.write(
            lambda c: c.execute(
                "UPDATE transcript_lines SET line = replace(line, 'bravo', 'delta') "
                "WHERE line LIKE '%bravo%'"
            )
        )
        await store.write(
            lambda c: c.execute("DELETE FROM transcript_lines WHERE line LIKE '%charlie%'")
        )
        assert sorted(fts_rows(db).values()) == ["the alpha line", "the delta line"]
        assert (await store.search.find("bravo")).hits == []
        assert len((await store.search.find("delta")).hits) == 1
        assert (await store.search.find("charlie")).hits == []
    check = sqlite3.connect(db)
    try:
        # No trigram of a forgotten text is left behind.
        gone = check.execute(
            "SELECT count(*) FROM entry_text_fts WHERE entry_text_fts MATCH ?",
            (trigram_match("charlie"),),
        ).fetchone()[0]
        assert gone == 0
    finally:
        check.close()

"""sessions.json: parse keeping each entry's source text, render back byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store_sql.formats import jsjson
from store_sql.formats.sessions_json import (
    IndexFileError,
    entry_text,
    js_key_order,
    parse_index,
    render_index,
    validate_entry,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
INDEXES = sorted((CORPUS / "sample-state").glob("agents/*/sessions/sessions.json"))
NO_CORPUS = pytest.mark.skipif(not INDEXES, reason=f"sample-state indexes not found in {CORPUS}")
ENTRY = '{\n    "sessionId": "s1",\n    "updatedAt": 1770711804964\n  }'


def rendered(data: bytes) -> bytes:
    return render_index((e.key, e.text) for e in parse_index(data).entries)


# ------------------------------------------------------------------ real files


@NO_CORPUS
@pytest.mark.parametrize("path", INDEXES, ids=lambda p: p.parts[-3])
def test_gateway_index_is_canonical_and_renders_back_exactly(path: Path) -> None:
    data = path.read_bytes()
    parsed = parse_index(data)
    assert parsed.canonical
    assert parsed.warnings == []
    assert rendered(data) == data
    assert [e.key for e in parsed.entries][:2] == ["7", "42"]
    assert "__proto__x" in [e.key for e in parsed.entries]
    assert [e.position for e in parsed.entries] == list(range(len(parsed.entries)))
    assert all(e.problem is None for e in parsed.entries)


@NO_CORPUS
@pytest.mark.parametrize("path", INDEXES, ids=lambda p: p.parts[-3])
def test_entry_text_rewrites_every_gateway_entry_identically(path: Path) -> None:
    for entry in parse_index(path.read_bytes()).entries:
        assert entry_text(entry.value) == entry.text


# ------------------------------------------------------------------ shapes


def test_empty_index_is_two_bytes_both_ways() -> None:
    parsed = parse_index(b"{}")
    assert (parsed.entries, parsed.canonical) == ([], True)
    assert render_index([]) == b"{}"


def test_render_index_writes_json_stringify_layout() -> None:
    out = render_index([("7", "1"), ('a"\x01\u2028', ENTRY)])
    assert out == (b'{\n  "7": 1,\n  "a\\"\\u0001\xe2\x80\xa8": ' + ENTRY.encode() + b"\n}")


def test_duplicate_keys_are_reported_and_the_last_value_wins_in_the_first_place() -> None:
    data = b'{\n  "b": 1,\n  "a": 2,\n  "b": 3\n}'
    parsed = parse_index(data)
    assert [(e.key, e.text, e.position) for e in parsed.entries] == [("b", "3", 0), ("a", "2", 1)]
    assert parsed.warnings == [
        'duplicate key "b" at lines 2, 4: the last value (line 4) wins, as in JSON.parse'
    ]
    assert not parsed.canonical
    assert rendered(data) == b'{\n  "b": 3,\n  "a": 2\n}'


def test_integer_like_keys_move_first_as_in_javascript() -> None:
    data = b'{\n  "b": 1,\n  "10": 2,\n  "7": 3,\n  "07": 4\n}'
    parsed = parse_index(data)
    assert [e.key for e in parsed.entries] == ["7", "10", "b", "07"]
    assert not parsed.canonical
    assert parsed.warnings[0].startswith("integer-like keys are not first")


def test_other_layouts_parse_but_are_not_canonical() -> None:
    parsed = parse_index(b'{"k": {"sessionId": "s", "updatedAt": 1.0}}\n')
    assert not parsed.canonical
    (entry,) = parsed.entries
    assert entry.text == '{"sessionId": "s", "updatedAt": 1.0}'
    assert entry.value["updatedAt"].source == "1.0"  # jsjson keeps the odd spelling
    assert entry.problem is None


def test_two_space_nesting_inside_an_entry_still_finds_the_right_spans() -> None:
    # ",\n  \"" inside a value fools the layout split; the general scanner takes over.
    data = b'{\n  "a": {\n  "sessionId": "x",\n  "updatedAt": 2},\n  "b": 3\n}'
    parsed = parse_index(data)
    assert [(e.key, e.text) for e in parsed.entries] == [
        ("a", '{\n  "sessionId": "x",\n  "updatedAt": 2}'),
        ("b", "3"),
    ]
    assert parsed.canonical
    assert rendered(data) == data


@pytest.mark.parametrize(
    ("data", "reason", "line", "column"),
    [
        (b"", "file is empty (0 bytes): an empty index is the two bytes {}", None, None),
        (b"  \n", "file holds only whitespace: an empty index is the two bytes {}", None, None),
        (b"[]", "top-level value is an array, not an object", 1, 1),
        (b"null", "top-level value is null, not an object", 1, 1),
        (b'{\n  "a": {\n    "sessionId": "x', "Unterminated string (the file ends early: "
         "truncated write?)", 3, 18),
        (b'{\n  "a": 1,\n', "file ends where a session key in double quotes was expected "
         "(truncated?)", 3, 1),
        (b"\xef\xbb\xbf{}", "file starts with a UTF-8 byte order mark (EF BB BF), which "
         "JSON.parse in the gateway rejects: remove those three bytes", 1, 1),
        (b'{\n  "a": "\xff"\n}', "invalid UTF-8 at byte 10", 2, 9),
        (b'{\n  "a": NaN\n}', "NaN is not JSON", 2, 8),
        (b'{"a": 1,}', "expected a session key in double quotes, found '}'", 1, 9),
        (b'{"a": 1}{}', "unexpected data after the top-level object", 1, 9),
        (b'{"a" 1}', "expected ':' after the key, found '1'", 1, 6),
    ],
)  # fmt: skip
def test_unreadable_index_is_an_error_never_empty(
    data: bytes, reason: str, line: int | None, column: int | None
) -> None:
    with pytest.raises(IndexFileError) as caught:
        parse_index(data)
    assert (caught.value.reason, caught.value.line, caught.value.column) == (reason, line, column)


@pytest.mark.parametrize(
    ("keys", "order"),
    [
        (["b", "7", "a", "42", "0"], ["0", "7", "42", "b", "a"]),
        (["01", "-1", "1.5", "4294967295", "4294967294"], ["4294967294", "01", "-1", "1.5",
                                                           "4294967295"]),
        (["x", "x", "1", "1"], ["1", "x"]),
    ],
)  # fmt: skip
def test_js_key_order(keys: list[str], order: list[str]) -> None:
    assert js_key_order(keys) == order


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"sessionId": "s", "updatedAt": 1}, None),
        ({"sessionId": "s", "updatedAt": 1.5, "extra": None}, None),
        ([], "entry is not an object"),
        ({"updatedAt": 1}, "missing sessionId"),
        ({"sessionId": 5, "updatedAt": 1}, "sessionId is not a string"),
        ({"sessionId": "", "updatedAt": 1}, "sessionId is empty"),
        ({"sessionId": "s"}, "missing updatedAt"),
        ({"sessionId": "s", "updatedAt": "1"}, "updatedAt is not a number"),
        ({"sessionId": "s", "updatedAt": True}, "updatedAt is not a number"),
        (
            {"sessionId": "s", "updatedAt": jsjson.loads("1e400")},
            "updatedAt is not a finite number",
        ),
        ({}, "missing sessionId; missing updatedAt"),
    ],
)
def test_validate_entry(value: Any, problem: str | None) -> None:
    assert validate_entry(value) == problem


def test_invalid_entries_are_kept_with_their_problem() -> None:
    parsed = parse_index(b'{\n  "a": [],\n  "b": ' + ENTRY.encode() + b"\n}")
    assert [(e.key, e.problem) for e in parsed.entries] == [
        ("a", "entry is not an object"),
        ("b", None),
    ]
    assert parsed.canonical


# ------------------------------------------------------------------ properties

KEYS = st.text(max_size=8) | st.integers(0, 2**32).map(str) | st.sampled_from(
    ["__proto__", "constructor", "prototype", "agent:main:main", "01", "\ud800", "é\x00"]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
STORES = st.dictionaries(KEYS, VALUES, max_size=6)


@settings(max_examples=60, deadline=None)
@given(STORES)
def test_javascript_written_index_round_trips_exactly(store: dict[str, Any]) -> None:
    data = jsjson.dumps(store, indent=2).encode("utf-8")
    parsed = parse_index(data)
    assert parsed.canonical
    assert [e.key for e in parsed.entries] == js_key_order(store)
    assert render_index((e.key, e.text) for e in parsed.entries) == data
    assert render_index((e.key, entry_text(e.value)) for e in parsed.entries) == data


@settings(max_examples=40, deadline=None)
@given(STORES)
def test_layout_does_not_change_what_is_read(store: dict[str, Any]) -> None:
    pretty = parse_index(jsjson.dumps(store, indent=2).encode("utf-8"))
    compact = parse_index(jsjson.dumps(store).encode("utf-8"))
    assert [(e.key, entry_text(e.value)) for e in compact.entries] == [
        (e.key, e.text) for e in pretty.entries
    ]


# ------------------------------------------------------------------ Node as the oracle

# A hand-made file: compact layout, a duplicate key, integer keys late, __proto__, escapes.
# Numbers are spelled as JavaScript spells them (jsjson keeps other spellings on purpose).
ORACLE_SOURCE = (
    '{"b": {"sessionId": "s-b", "updatedAt": 1, "cost": 0.000009, "big": 1e+21},'
    ' "42": {"sessionId": "s-42", "updatedAt": 5, "label": "naïve \\u0001 \\ud800 🦞"},'
    ' "__proto__": {"sessionId": "p", "updatedAt": 0}, "b": {"sessionId": "s-b2",'
    ' "updatedAt": 2, "nested": {"10": true, "a": null, "2": [1, 2.5, {}]}},'
    ' "7": [], "a\\"\\\\\\n": {"sessionId": "q", "updatedAt": 1000}}'
)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (the oracle)")
def test_rendering_matches_what_node_writes_for_the_same_file(tmp_path: Path) -> None:
    source = tmp_path / "source.json"
    source.write_text(ORACLE_SOURCE, encoding="utf-8")
    script = (
        "const fs = require('fs'); const s = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));"
        "process.stdout.write(JSON.stringify(s, null, 2));"
    )
    expected = subprocess.run(
        ["node", "-e", script, str(source)], capture_output=True, check=True
    ).stdout
    parsed = parse_index(source.read_bytes())
    assert not parsed.canonical
    assert render_index((e.key, entry_text(e.value)) for e in parsed.entries) == expected
    again = parse_index(expected)
    assert again.canonical
    assert rendered(expected) == expected
    assert json.loads(expected)["b"]["sessionId"] == "s-b2"

"""Fuzzing the readers and the JavaScript-exact writer with hypothesis.

docs/GUARANTEES.md "Bad input" promises that no input crashes a reader: these properties
throw arbitrary and almost-valid bytes at them.
- transcript JSONL: `classify_line` never raises, whatever the bytes; streaming
  (`iter_raw_lines`, any chunk size) and `split_lines` agree; `join_lines` inverts them.
- sessions.json: `parse_index` raises nothing but `IndexFileError` on any bytes; on an index
  JavaScript wrote (Node is the oracle) it is canonical and `render_index` gives the bytes back.
- jsjson: `loads(dumps(v)) == v`; `loads` raises nothing but `JSONSyntaxError` on any text.

Bounded: about 10 s in the default run; `--long` (docs/TESTING.md) runs 20x the examples.
The Node oracle for `jsjson.dumps` itself is tests/test_jsjson.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store_sql.addresses import check_session_id
from store_sql.errors import InvalidEntryError
from store_sql.formats import jsjson
from store_sql.formats.sessions_json import IndexFileError, parse_index, render_index
from store_sql.formats.transcript_jsonl import (
    LineKind,
    classify_line,
    iter_raw_lines,
    join_lines,
    split_lines,
)

LONG = os.environ.get("STORE_SQL_LONG_TESTS") == "1"
SCALE = 20 if LONG else 1
fuzz = settings(
    max_examples=250 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- values and almost-JSON bytes --------------------------------------------------------------

_SPECIAL = '\x00\x1f"\\/\u2028\ufeff\ud800\udfff😀é'
texts = st.text(st.one_of(st.characters(), st.sampled_from(_SPECIAL)), max_size=20)
keys = st.one_of(texts, st.sampled_from(["__proto__", "constructor", "0", "7", "01", "-1", ""]))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def almost_json(draw: st.DrawFn) -> bytes:
    """Valid JSON, then damaged the ways real files are: cut, glued, spliced, re-encoded."""
    data = _encode(draw(json_values))
    how = draw(st.sampled_from(["none", "cut", "glue", "splice", "bom", "crlf", "byte"]))
    if how == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "glue":
        data += _encode(draw(json_values))
    elif how == "splice":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at:]
    elif how == "bom":
        data = b"\xef\xbb\xbf" + data
    elif how == "crlf":
        data = data.replace(b"\n", b"\r\n") + b"\r"
    elif how == "byte" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


any_bytes = st.one_of(st.binary(max_size=400), almost_json())

# --- transcript JSONL --------------------------------------------------------------------------


@fuzz
@given(raw=any_bytes, pos=st.integers(0, 3))
def test_classify_line_never_raises_and_keeps_the_bytes(raw: bytes, pos: int) -> None:
    line = b"".join(raw.split(b"\n"))  # one line: split_lines never yields a newline
    result = classify_line(line, pos)
    assert result.raw == line
    if result.kind is LineKind.DAMAGED:
        assert result.damage
        assert result.value is None
    elif result.kind in (LineKind.ENTRY, LineKind.HEADER):
        assert isinstance(result.value, dict)


@fuzz
@given(data=st.lists(any_bytes, max_size=6).map(b"\n".join), chunk=st.integers(1, 64))
def test_streaming_split_and_join_agree_and_invert(data: bytes, chunk: int) -> None:
    lines, ends_with_newline = split_lines(data)
    streamed = list(iter_raw_lines(io.BytesIO(data), chunk_size=chunk))
    assert [line for line, _ in streamed] == lines
    assert all(done for _, done in streamed[:-1])
    if streamed:
        assert streamed[-1][1] == ends_with_newline
    assert join_lines(lines, ends_with_newline) == data
    for n, line in enumerate(lines):
        classify_line(line, n)


# --- sessions.json -----------------------------------------------------------------------------


@fuzz
@given(data=st.one_of(any_bytes, json_values.map(lambda v: json.dumps(v, indent=2).encode())))
def test_parse_index_raises_only_index_file_error(data: bytes) -> None:
    try:
        parsed = parse_index(data)
    except IndexFileError as exc:  # anything else fails the test
        error: IndexFileError | None = exc
    else:
        error = None
    if error is not None:
        assert error.reason
        return
    for entry in parsed.entries:
        assert isinstance(entry.key, str)
    if parsed.canonical:
        assert render_index((e.key, e.text) for e in parsed.entries) == data


@pytest.fixture(scope="module")
def node_stringify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None:
        pytest.skip("node not on PATH: the index oracle needs Node's JSON.stringify")
    script = tmp_path_factory.mktemp("index-oracle") / "index.js"
    script.write_text(
        "const fs = require('fs');\n"
        "const stores = fs.readFileSync(process.argv[2], 'utf8').split('\\n').filter(Boolean)\n"
        "  .map(line => JSON.stringify(JSON.parse(line), null, 2));\n"
        "process.stdout.write(JSON.stringify(stores));\n"
    )
    return script


def _names_a_file(session_id: str) -> bool:
    """A session id the store accepts: it names `<sessionId>.jsonl`."""
    try:
        check_session_id(session_id)
    except InvalidEntryError:
        return False
    return True


session_entries = st.fixed_dictionaries(
    {"sessionId": texts.filter(_names_a_file), "updatedAt": st.integers(0, 2**53)},
    optional={"label": texts, "cost": st.floats(allow_nan=False, allow_infinity=False),
              "origin": json_values, "n": st.integers(-(2**53), 2**53)},
)  # fmt: skip
indexes = st.lists(st.dictionaries(keys, session_entries, max_size=6), min_size=1, max_size=20)


@settings(
    max_examples=5 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stores=indexes)
def test_an_index_written_by_javascript_parses_canonical_and_renders_back(
    node_stringify: Path, stores: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = tmp_path_factory.mktemp("stores") / "stores.jsonl"
    data.write_text("".join(json.dumps(s) + "\n" for s in stores))  # ASCII: surrogates escaped
    done = subprocess.run(
        ["node", str(node_stringify), str(data)], capture_output=True, check=True, timeout=120
    )
    for text in json.loads(done.stdout):
        written = text.encode("utf-8", "surrogatepass")
        parsed = parse_index(written)
        assert parsed.canonical, parsed.warnings
        assert render_index((e.key, e.text) for e in parsed.entries) == written
        assert not [e.problem for e in parsed.entries if e.problem]


# --- jsjson ------------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equality as JavaScript sees JSON values (-0 == 0; ints and floats are numbers)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return sorted(a) == sorted(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)  # one double in JavaScript
    return bool(a == b)


@fuzz
@given(value=json_values, indent=st.sampled_from([0, 2]))
def test_jsjson_loads_inverts_dumps(value: Any, indent: int) -> None:
    text = jsjson.dumps(value, indent=indent)
    back = jsjson.loads(text)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return  # beyond 2**53 JavaScript keeps a double; dumps writes every digit
    assert _same(back, value), (value, text, back)
    assert jsjson.dumps(back, indent=indent) == text


@fuzz
@given(data=any_bytes)
def test_jsjson_loads_raises_only_json_syntax_error(data: bytes) -> None:
    try:
        jsjson.loads(data)
    except jsjson.JSONSyntaxError as exc:  # anything else fails the test
        error: jsjson.JSONSyntaxError | None = exc
    else:
        error = None
    if error is not None:
        assert min(error.line, error.column) >= 1

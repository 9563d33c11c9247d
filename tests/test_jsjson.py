"""store_sql.formats.jsjson writes what JSON.stringify writes and reads what JSON.parse reads.

Expected strings in the tables come from Node 20; the oracle tests ask a Node process
directly, one process per batch of generated values (../shared/FORMATS.md section 4).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import json
import math
import pickle
import random
import shutil
import struct
import subprocess
import sys
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store_sql.formats.jsjson import (
    JSONSyntaxError,
    NumberLiteral,
    dumps,
    dumps_bytes,
    is_array_index,
    loads,
)

# ---------------------------------------------------------------- the Node oracle

_NODE_SCRIPT = r"""
const fs = require("fs");
const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l !== "");
const out = lines.map((line) => {
  const v = JSON.parse(line);
  return [
    JSON.stringify(v),
    JSON.stringify(v, null, 2),
    JSON.stringify(v, null, 4),
    JSON.stringify({ k: v }, null, 2),
  ];
});
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A script that prints JSON.stringify's views of every line of a file."""
    if shutil.which("node") is None:
        pytest.skip("node not on PATH: the oracle tests compare against Node's JSON.stringify")
    script = tmp_path_factory.mktemp("oracle") / "stringify.js"
    script.write_text(_NODE_SCRIPT)
    return script


def node_views(script: Path, values: list[Any]) -> list[list[str]]:
    """For each value: JSON.stringify(v), with indent 2, with indent 4, and {k: v} with 2.

    Python's json writes floats with repr (JSON.parse reads back the same double) and,
    with ensure_ascii, lone surrogates as \\udxxx escapes, so Node gets the same values.
    """
    data = script.parent / "values.jsonl"
    data.write_text("".join(json.dumps(v, allow_nan=False) + "\n" for v in values))
    run = subprocess.run(
        ["node", str(script), str(data)], capture_output=True, check=True, timeout=120
    )
    views: list[list[str]] = json.loads(run.stdout)
    assert len(views) == len(values)
    return views


_CHARS = "\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f\"\\/'\u2028\u2029\ufeff\ud800\udbff\udc00\udfff😀é"
_KEYS = ["__proto__", "constructor", "prototype", "toString", "0", "1", "2", "10", "01", "-1"]
_KEYS += ["1.5", "4294967294", "4294967295", "9007199254740993", "", " 1", "１"]
_FLOATS = [0.0, 5e-324, 2.2250738585072014e-308, 1e-7, 1.5e-7, 9.999999e-7, 1e-6, 0.000009]
_FLOATS += [1e-5, 9.99e-5, 0.0001, 0.1, 1.0, 2.0, 1e15, 1e15 + 0.5, 1e16, 1.5e16, 1e20]
_FLOATS += [9.999999999999999e20, 1e21, 1.7976931348623157e308, 123456789012345680000.0]

texts = st.text(st.one_of(st.characters(exclude_categories=()), st.sampled_from(_CHARS)))
keys = st.one_of(texts, st.sampled_from(_KEYS), st.integers(0, 2**33).map(str))
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(_FLOATS + [-x for x in _FLOATS]),
    st.integers(-(10**9), 10**9).map(lambda n: n / 10**6),  # cost-like amounts
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), floats, texts)
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=30,
)
batches = st.lists(json_values, min_size=1, max_size=40)
oracle_settings = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@oracle_settings
@given(values=batches)
def test_dumps_equals_node_json_stringify(node: Path, values: list[Any]) -> None:
    for value, (compact, indent2, indent4, embedded) in zip(
        values, node_views(node, values), strict=True
    ):
        assert dumps(value) == compact
        assert dumps(value, indent=2) == indent2
        assert dumps(value, indent=4) == indent4
        assert '{\n  "k": ' + dumps(value, indent=2, level=1) + "\n}" == embedded
        assert dumps_bytes(value) == compact.encode("utf-8")


@oracle_settings
@given(values=batches)
def test_js_written_text_round_trips_byte_for_byte(node: Path, values: list[Any]) -> None:
    for compact, indent2, _, _ in node_views(node, values):
        assert dumps(loads(compact)) == compact
        assert dumps(loads(compact), indent=2) == indent2
        assert dumps(loads(indent2)) == compact
        assert dumps(loads(compact.encode("utf-8"))) == compact


def _random_floats(count: int) -> list[float]:
    rng = random.Random(20260210)
    found: list[float] = []
    while len(found) < count:
        bits = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(bits):
            found.append(bits)
        found.append(rng.uniform(-1, 1) * 10.0 ** rng.randint(-9, 23))
        found.append(round(rng.uniform(0, 5), rng.randint(0, 8)))
    return found


def test_thousands_of_floats_equal_node(node: Path) -> None:
    values = _random_floats(3000)
    views = node_views(node, [values, *values[:300]])
    assert dumps(values) == views[0][0]
    assert dumps(values, indent=2) == views[0][1]
    assert [dumps(x) for x in values[:300]] == [view[0] for view in views[1:]]


def test_every_code_point_is_escaped_as_node_does(node: Path) -> None:
    # Chunks of consecutive code points: the surrogate chunk holds U+DBFF U+DC00, a pair.
    chunks = ["".join(map(chr, range(start, start + 4096))) for start in range(0, 0x110000, 4096)]
    assert [view[0] for view in node_views(node, [chunks])] == [dumps(chunks)]


# ---------------------------------------------------------------- dumps: tables from Node


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (-1e-6, "-0.000001"),
        (0.000009, "0.000009"),
        (4.35e-6, "0.00000435"),
        (3.3e-8, "3.3e-8"),
        (1.5e-7, "1.5e-7"),
        (-1.5e-7, "-1.5e-7"),
        (1e-5, "0.00001"),
        (0.0001, "0.0001"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (-2.5, "-2.5"),
        (2.0, "2"),
        (100.0, "100"),
        (0.0, "0"),
        (-0.0, "0"),
        (1e15, "1000000000000000"),
        (1e16, "10000000000000000"),
        (1.5e16, "15000000000000000"),
        (9007199254740992.0, "9007199254740992"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (9.999999999999999e20, "999999999999999900000"),
        (1e21, "1e+21"),
        (1e300, "1e+300"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (5e-324, "5e-324"),
        (math.nan, "null"),
        (math.inf, "null"),
        (-math.inf, "null"),
    ],
)
def test_floats_are_spelled_as_javascript_number_to_string(value: float, expected: str) -> None:
    assert dumps(value) == expected
    assert dumps([value]) == f"[{expected}]"
    assert dumps({"a": {"b": value}}, indent=2) == f'{{\n  "a": {{\n    "b": {expected}\n  }}\n}}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (-1, "-1"),
        (2**53, "9007199254740992"),
        (2**53 + 1, "9007199254740993"),  # exact, although a JavaScript reader rounds it
        (2**64, "18446744073709551616"),
        (-(2**70), "-1180591620717411303424"),
        (10**30, "1000000000000000000000000000000"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
    ],
)
def test_ints_are_written_with_all_digits_and_bools_are_not_ints(
    value: object, expected: str
) -> None:
    assert dumps(value) == expected
    assert dumps({"v": [value]}) == f'{{"v":[{expected}]}}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"', r'"\""'),
        ("\\", r'"\\"'),
        ("/", '"/"'),
        ("\b\f\n\r\t", r'"\b\f\n\r\t"'),
        ("\x00\x01\x0b\x1f", r'"\u0000\u0001\u000b\u001f"'),
        ("\x7f\u2028\u2029\ufeff", '"\x7f\u2028\u2029\ufeff"'),
        ("é日本😀", '"é日本😀"'),
        ("\ud800", r'"\ud800"'),
        ("\udc00", r'"\udc00"'),
        ("\ud83d\ude00", '"😀"'),  # a pair kept as two code points is one character to JS
        ("\udc00\ud800", r'"\udc00\ud800"'),
        ("a\ud800b\udfff", r'"a\ud800b\udfff"'),
        ("\ud800\ud800\udc00", '"\\ud800\U00010000"'),
    ],
)
def test_strings_escape_exactly_what_json_stringify_escapes(text: str, expected: str) -> None:
    assert dumps(text) == expected
    assert dumps({text: [text]}) == f"{{{expected}:[{expected}]}}"
    assert dumps_bytes(text) == expected.encode("utf-8")


def test_array_index_keys_come_first_in_ascending_order() -> None:
    value = {"b": 1, "4294967295": 2, "4294967294": 3, "01": 4, "-1": 5, "1.5": 6}
    value |= {"10": 7, "2": 8, "0": 9, "a": 10, "9007199254740993": 11}
    expected = (
        '{"0":9,"2":8,"10":7,"4294967294":3,"b":1,"4294967295":2,"01":4,"-1":5,"1.5":6,'
        '"a":10,"9007199254740993":11}'
    )
    assert dumps(value) == expected
    assert next(iter(value)) == "b"  # the caller's dict keeps its own order


def test_array_index_keys_are_ordered_at_every_depth_and_with_indent() -> None:
    value = {"k": {"10": 1, "9": [1.0, {"1": "x", "a": 2}]}}
    expected = (
        '{\n  "k": {\n    "9": [\n      1,\n      {\n        "1": "x",\n        "a": 2\n'
        '      }\n    ],\n    "10": 1\n  }\n}'
    )
    assert dumps(value, indent=2) == expected


def test_prototype_names_are_ordinary_keys() -> None:
    value = {"__proto__": {"x": 1}, "constructor": 2, "prototype": 3}
    assert dumps(value) == '{"__proto__":{"x":1},"constructor":2,"prototype":3}'


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("0", True),
        ("1", True),
        ("10", True),
        ("4294967294", True),
        ("4294967295", False),
        ("99999999999", False),
        ("01", False),
        ("00", False),
        ("-1", False),
        ("-0", False),
        ("1.5", False),
        ("1e3", False),
        ("", False),
        (" 1", False),
        ("１", False),  # fullwidth digit one
        ("٣", False),  # Arabic-Indic digit three
    ],
)
def test_is_array_index_accepts_only_canonical_decimals_up_to_2_to_the_32_minus_2(
    key: str, expected: bool
) -> None:
    assert is_array_index(key) is expected


def test_indent_two_matches_json_stringify_layout() -> None:
    value = {"a": [1, {}], "b": [], "c": {"d": "x", "e": [[]]}}
    expected = (
        '{\n  "a": [\n    1,\n    {}\n  ],\n  "b": [],\n  "c": {\n    "d": "x",\n    "e": [\n'
        "      []\n    ]\n  }\n}"
    )
    assert dumps(value, indent=2) == expected


def test_other_indents_and_the_javascript_clamp_to_ten() -> None:
    value = {"a": [1, {}], "b": [], "c": {"d": "x"}}
    expected_4 = (
        '{\n    "a": [\n        1,\n        {}\n    ],\n    "b": [],\n    "c": {\n'
        '        "d": "x"\n    }\n}'
    )
    assert dumps(value, indent=4) == expected_4
    ten = " " * 10
    assert dumps({"a": [1, {}]}, indent=20) == (
        f'{{\n{ten}"a": [\n{ten}{ten}1,\n{ten}{ten}{{}}\n{ten}]\n}}'
    )
    assert dumps({"a": [1]}, indent=-3) == '{"a":[1]}'


def test_empty_containers_and_scalars_ignore_indent() -> None:
    assert dumps({}, indent=2) == "{}"
    assert dumps([], indent=2, level=3) == "[]"
    assert dumps("x", indent=2, level=1) == '"x"'
    assert dumps({"a": {}, "b": []}, indent=2) == '{\n  "a": {},\n  "b": []\n}'


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, {"b": None}], "c": "d"},
        [2.0, {"1": 1e-7, "x": [True]}],
        {"s": "\ud800", "n": [1, [2, [3]]]},
        [NumberLiteral("1.0"), {"big": 2**70}],
    ],
)
def test_level_indents_a_value_embedded_in_a_larger_document(value: Any) -> None:
    embedded = '{\n  "k": ' + dumps(value, indent=2, level=1) + "\n}"
    assert embedded == dumps({"k": value}, indent=2)
    deeper = '{\n    "k": ' + dumps(value, indent=4, level=1) + "\n}"
    assert deeper == dumps({"k": value}, indent=4)


def test_no_trailing_newline() -> None:
    assert not dumps({"a": 1}, indent=2).endswith("\n")
    assert not dumps([1]).endswith("\n")


def test_dumps_bytes_is_the_utf8_of_dumps() -> None:
    for value in [{"é": "日本", "n": 2.0}, ["\ud800"], "x", 1.5, None]:
        assert dumps_bytes(value) == dumps(value).encode("utf-8")
        assert dumps_bytes(value, indent=2, level=1) == dumps(value, indent=2, level=1).encode()


def test_tuples_subclasses_enums_and_uuids_are_written_as_their_json_value() -> None:
    class Colour(enum.Enum):
        RED = 2.0

    class Size(enum.IntEnum):
        BIG = 3

    class Label(str):
        pass

    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = OrderedDict(t=(1, 2.0), c=Colour.RED, s=Size.BIG, l=Label("x"), u=ident)
    expected = '{"t":[1,2],"c":2,"s":3,"l":"x","u":"12345678-1234-5678-1234-567812345678"}'
    assert dumps(value) == expected
    assert dumps({"k": [Colour.RED, ident]}) == '{"k":[2,"12345678-1234-5678-1234-567812345678"]}'


@dataclasses.dataclass
class _Point:
    x: int


@pytest.mark.parametrize(
    ("value", "type_name", "path"),
    [
        ({1, 2}, "set", "$"),
        ({"a": [1, {"b c": {1}}]}, "set", '$.a[1]["b c"]'),
        ({"a": b"x"}, "bytes", "$.a"),
        ([object()], "object", "$[0]"),
        ({"when": datetime.date(2026, 2, 10)}, "date", "$.when"),
        ({"p": [_Point(1)]}, "_Point", "$.p[0]"),
        ({"x": 1.5, "y": [frozenset()]}, "frozenset", "$.y[0]"),
    ],
)
def test_unsupported_types_raise_type_error_naming_type_and_path(
    value: object, type_name: str, path: str
) -> None:
    with pytest.raises(TypeError) as raised:
        dumps(value)
    assert f"type {type_name} " in str(raised.value)
    assert f"(at {path})" in str(raised.value)


def test_non_string_keys_raise_type_error() -> None:
    with pytest.raises(TypeError, match=r"keys must be str, not int \(at \$\.a\)"):
        dumps({"a": {2: 1}})
    with pytest.raises(TypeError, match="not tuple"):
        dumps({(1,): 1}, indent=2)


def test_circular_structures_raise_value_error_like_javascript_throws() -> None:
    cycle: list[Any] = []
    cycle.append({"x": cycle})
    with pytest.raises(ValueError, match=r"circular.*\(at \$\[0\]\.x\)"):
        dumps(cycle)


def test_nesting_beyond_orjson_limit_is_still_written() -> None:
    value: list[Any] = []
    for _ in range(400):
        value = [value, 2.0]
    text = dumps(value)
    assert text == "[" * 400 + "[]" + ",2]" * 400
    assert loads(text) == value


def test_nesting_too_deep_to_write_raises_value_error_not_recursion_error() -> None:
    value: list[Any] = []
    for _ in range(10_000):
        value = [value]
    with pytest.raises(ValueError, match="nested too deeply"):
        dumps(value)


# ---------------------------------------------------------------- NumberLiteral


@pytest.mark.parametrize(
    "source",
    [
        *["1.0", "1E5", "1e5", "-0", "0.10", "12345678901234567890", "1e400", "-1e400"],
        *["1e21", "9007199254740993", "100000000000000000000000", "0.0000001", "1.5e3"],
        *["0E0", "1e-400", "-0.0", "1e+5", "1.50"],
    ],
)
def test_odd_number_spellings_survive_loads_and_dumps(source: str) -> None:
    parsed = loads(f'{{"n":[{source}],"x":1}}')
    literal = parsed["n"][0]
    assert type(literal) is NumberLiteral
    assert literal.source == source
    assert literal == float(source)
    assert dumps(parsed) == f'{{"n":[{source}],"x":1}}'
    assert dumps(parsed, indent=2) == f'{{\n  "n": [\n    {source}\n  ],\n  "x": 1\n}}'
    assert dumps(loads(source)) == source


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("0", 0),
        ("-1", -1),
        ("9007199254740992", 2**53),
        ("18014398509481984", 2**54),  # JavaScript writes this double back digit for digit
        ("123456789012345680000", 123456789012345680000),
        ("1.5", 1.5),
        ("0.000009", 0.000009),
        ("1e-7", 1e-7),
        ("1e+21", 1e21),
        ("-2.5e-8", -2.5e-8),
    ],
)
def test_numbers_in_javascript_spelling_load_as_plain_int_or_float(
    source: str, value: float
) -> None:
    parsed = loads(source)
    assert type(parsed) is type(value)
    assert parsed == value
    assert dumps(parsed) == source


def test_number_literal_is_the_float_javascript_reads() -> None:
    assert math.copysign(1.0, loads("-0")) == -1.0
    assert loads("1e400") == math.inf
    assert loads("12345678901234567890") == 12345678901234567890.0
    assert NumberLiteral("1.0") + 1 == 2.0


def test_number_literal_copies_pickles_and_reprs() -> None:
    literal = NumberLiteral("1.50")
    for clone in [copy.copy(literal), copy.deepcopy(literal), pickle.loads(pickle.dumps(literal))]:
        assert type(clone) is NumberLiteral
        assert clone.source == "1.50"
        assert clone == 1.5
    assert repr(literal) == "NumberLiteral('1.50')"


@pytest.mark.parametrize("source", ["", "1.", ".5", "+1", "01", "NaN", "Infinity", "1_0", " 1"])
def test_number_literal_rejects_text_that_is_not_a_json_number(source: str) -> None:
    with pytest.raises(ValueError, match="JSON number"):
        NumberLiteral(source)


# ---------------------------------------------------------------- loads


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("", 1, 1),
        ("   ", 1, 4),
        ("{", 1, 2),
        ("[1,]", 1, 4),
        ('{"a":1,}', 1, 8),
        ("NaN", 1, 1),
        ("[1,\n -Infinity]", 2, 2),
        ('{"a": Infinity}', 1, 7),
        ("{'a':1}", 1, 2),
        ('"\t"', 1, 2),
        ('"a\nb"', 1, 3),
        ("1 2", 1, 3),
        ("[1] // comment", 1, 5),
        ("/* comment */ 1", 1, 1),
        ("[1,\n/* c */ 2]", 2, 1),
        ("\ufeff1", 1, 1),
        ("01", 1, 2),
        ("1.", 1, 2),
        ("-", 1, 1),
        (".5", 1, 1),
        ("+1", 1, 1),
        ("[1 2]", 1, 4),
        ('{"a" 1}', 1, 6),
        ("tru", 1, 1),
        ('"\\x"', 1, 2),
        ('"\\u12"', 1, 3),
        ('"abc', 1, 1),
        ("[1]\n\n  x", 3, 3),
        ("1\u00a0", 1, 2),  # JSON whitespace is only space, tab, LF and CR
    ],
)
def test_loads_rejects_what_json_parse_rejects_with_line_and_column(
    text: str, line: int, column: int
) -> None:
    with pytest.raises(JSONSyntaxError) as raised:
        loads(text)
    assert (raised.value.line, raised.value.column) == (line, column)
    assert raised.value.reason
    assert f"line {line}, column {column}" in str(raised.value)
    assert raised.value.reason in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_loads_rejects_invalid_utf8_in_bytes_with_its_position() -> None:
    with pytest.raises(JSONSyntaxError, match="UTF-8") as raised:
        loads(b'{"a":\n "\xc3\xa9\xff"}')
    assert (raised.value.line, raised.value.column) == (2, 4)


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_very_deep_nesting_is_a_syntax_error_not_a_crash(depth: int) -> None:
    for text in ["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth]:
        with pytest.raises(JSONSyntaxError, match=f"nested {depth} levels") as raised:
            loads(text)
        assert raised.value.line == 1


def test_nesting_within_the_limit_parses() -> None:
    assert loads("[" * 500 + "]" * 500) == loads(dumps(loads("[" * 500 + "]" * 500)))


def test_deep_nesting_cannot_crash_even_with_a_raised_recursion_limit() -> None:
    # Python's own json.loads segfaults here (the C scanner overflows the C stack), so the
    # check runs in a child process.
    script = (
        "import sys; sys.setrecursionlimit(10**7)\n"
        "from store_sql.formats.jsjson import JSONSyntaxError, loads\n"
        "try:\n"
        "    loads('[' * 200_000 + ']' * 200_000)\n"
        "except JSONSyntaxError as error:\n"
        "    print(error.reason)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert b"nested 200000 levels" in run.stdout


def test_duplicate_keys_keep_the_last_value_at_the_first_position() -> None:
    parsed = loads('{"a":1,"b":2,"a":3}')
    assert list(parsed.items()) == [("a", 3), ("b", 2)]
    assert dumps(loads('{"b":1,"2":2,"1":3,"b":4}')) == '{"1":3,"2":2,"b":4}'


def test_escaped_surrogates_load_as_code_points() -> None:
    assert loads(r'"\ud800"') == "\ud800"
    assert loads(r'"\udc00\ud800"') == "\udc00\ud800"
    assert loads(r'"\ud83d\ude00"') == "😀"
    assert loads(r'"\uD83D\uDE00"') == "😀"
    assert dumps(loads(r'["\ud800",{"\udfff":1}]')) == r'["\ud800",{"\udfff":1}]'


def test_loads_accepts_str_and_bytes_alike() -> None:
    text = '{"é":["日本",1.5,null,true,false,{}],"__proto__":{"x":-1}}'
    assert loads(text) == loads(text.encode("utf-8"))
    assert loads(text) == {"é": ["日本", 1.5, None, True, False, {}], "__proto__": {"x": -1}}
    assert loads(bytearray(b" [1] ")) == [1]  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loads(1)  # type: ignore[arg-type]


def test_loads_allows_del_and_unicode_line_separators_in_strings() -> None:
    assert loads('"\x7f\u2028\u2029"') == "\x7f\u2028\u2029"


# ---------------------------------------------------------------- the shared corpus

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_every_gateway_written_line_and_index_in_the_corpus_is_rewritten_identically() -> None:
    lines = 0
    for path in sorted(CORPUS.rglob("*")):
        if path.name == "sessions.json":
            text = path.read_text(encoding="utf-8")
            assert dumps(loads(text), indent=2) == text, path
        elif ".jsonl" in path.name and path.suffix != ".zst" and path.is_file():
            for line in path.read_bytes().splitlines():
                try:
                    value = loads(line)
                except JSONSyntaxError:
                    continue  # damaged on purpose: glued or truncated records
                assert dumps_bytes(value) == line, (path, line[:200])
                lines += 1
    assert lines > 1000


def test_orjson_fragments_are_written_as_they_are_on_every_path() -> None:
    import orjson

    fragment = orjson.Fragment(b'{"x":1.0}')
    assert dumps({"a": fragment}) == '{"a":{"x":1.0}}'
    assert dumps({"a": fragment, "b": 2.0}) == '{"a":{"x":1.0},"b":2}'
    assert dumps({"a": fragment, "s": "\ud800"}) == '{"a":{"x":1.0},"s":"\\ud800"}'

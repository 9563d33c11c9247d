"""Transcript JSONL lines: byte-exact split/join, streaming, and what each line is."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store_sql.formats.transcript_jsonl import (
    LineKind,
    classify_line,
    iter_raw_lines,
    join_lines,
    read_header,
    split_lines,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SAMPLE_STATE = CORPUS / "sample-state"
PI_MONO = CORPUS / "openclaw" / "pi-mono"
TRANSCRIPTS = (
    sorted(p for p in CORPUS.rglob("*") if p.is_file() and ".jsonl" in p.name)
    if CORPUS.is_dir()
    else []
)
NO_CORPUS = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")


def corpus_params() -> list[object]:
    """One param per corpus transcript, or one visibly skipped param when there is none."""
    if not TRANSCRIPTS:
        reason = f"corpus not found at {CORPUS}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(p, id=str(p.relative_to(CORPUS))) for p in TRANSCRIPTS]


def lines_of(path: Path) -> list[bytes]:
    return split_lines(path.read_bytes())[0]


# ------------------------------------------------------------------ real files


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_file_round_trips_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    lines, ends_with_newline = split_lines(data)
    assert join_lines(lines, ends_with_newline) == data
    streamed = list(iter_raw_lines(io.BytesIO(data), chunk_size=4096))
    assert [line for line, _ in streamed] == lines
    assert all(terminated for _, terminated in streamed[:-1])
    assert streamed[-1][1] == ends_with_newline


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_file_lines_classify_with_a_header_first(path: Path) -> None:
    classified = [classify_line(raw, pos) for pos, raw in enumerate(lines_of(path))]
    assert classified[0].kind is LineKind.HEADER
    header = read_header(classified[0])
    assert header is not None
    assert header.id is not None
    assert all(line.kind is not LineKind.HEADER for line in classified[1:])
    for line in classified:
        assert (line.damage is not None) == (line.kind is LineKind.DAMAGED)
        assert (line.value is None) == (line.kind in (LineKind.DAMAGED, LineKind.BLANK))


@NO_CORPUS
def test_interleaved_write_line_440_is_two_glued_records() -> None:
    raw = lines_of(PI_MONO / "interleaved-write-session.jsonl")[439]
    line = classify_line(raw, 439)
    second = raw.index(b'}{"type"') + 1
    orjson.loads(raw[:second])  # both halves are whole records: the cut is right
    orjson.loads(raw[second:])
    assert line.kind is LineKind.DAMAGED
    assert line.damage == f"two JSON records glued together (second starts at byte {second})"
    assert line.raw == raw


@NO_CORPUS
def test_sample_state_damage_is_found_in_exactly_four_transcripts() -> None:
    damaged: dict[str, list[str]] = {}
    for path in sorted(SAMPLE_STATE.rglob("*.jsonl")):
        lines, ends_with_newline = split_lines(path.read_bytes())
        found = [
            f"line {pos + 1}: {line.kind}: {line.damage}"
            for pos, raw in enumerate(lines)
            if (line := classify_line(raw, pos)).kind in (LineKind.DAMAGED, LineKind.BLANK)
        ]
        if not ends_with_newline:
            found.append("no final newline")
        if found:
            damaged[path.stem] = found
    assert damaged == {
        "343009ae-9776-4a9d-ac95-3ff3b0f82251": ["no final newline"],
        "7a69d2f6-af35-4546-a1e6-425632eb3fca": ["line 2: blank: None"],
        "c0c711f6-a4c9-477b-ab5f-2ed7d60da03f": ["line 26: damaged: truncated JSON (torn line)"],
        "cc74ec10-a009-47c5-a17e-47a3d3f1c55e": [
            "line 20: damaged: two JSON records glued together (second starts at byte 287)"
        ],
    }


@NO_CORPUS
def test_v1_header_has_version_1_and_branched_from_as_parent() -> None:
    header = read_header(classify_line(lines_of(PI_MONO / "before-compaction.jsonl")[0], 0))
    assert header is not None
    assert header.version == 1
    assert header.parent_session is not None
    entries = [
        classify_line(raw, pos) for pos, raw in enumerate(lines_of(PI_MONO / "large-session.jsonl"))
    ]
    assert not any(line.has_parent_key for line in entries)
    assert {line.type for line in entries[1:]} == {
        "message",
        "thinking_level_change",
        "model_change",
    }


@NO_CORPUS
def test_v3_entries_carry_ids_roles_and_idempotency_keys() -> None:
    lines = [
        classify_line(raw, pos)
        for path in sorted(SAMPLE_STATE.rglob("*.jsonl"))
        for pos, raw in enumerate(lines_of(path))
    ]
    headers = [read_header(line) for line in lines if line.kind is LineKind.HEADER]
    assert {h.version for h in headers if h is not None} >= {1, 3}
    v3 = [line for line in lines if line.has_parent_key]
    assert v3
    assert all(line.entry_id is not None for line in v3)
    assert any(line.parent_id is None for line in v3)  # roots: "parentId": null
    assert any(line.idempotency_key for line in v3 if line.role == "user")


# ------------------------------------------------------------------ damage shapes

HEADER = (
    b'{"type":"session","version":3,"id":"s1","timestamp":"2026-02-10T10:00:00.000Z","cwd":"/w"}'
)
ENTRY = (
    b'{"type":"message","id":"a1b2c3d4","parentId":null,"timestamp":"t","message":{"role":"user"}}'
)


@pytest.mark.parametrize(
    ("raw", "pos", "kind", "damage"),
    [
        pytest.param(b"", 3, LineKind.BLANK, None, id="empty"),
        pytest.param(b" \t \r", 3, LineKind.BLANK, None, id="whitespace-only"),
        pytest.param(b"\xc2\xa0", 3, LineKind.DAMAGED, "JSON syntax error at column 1: "
                     "unexpected character '\\xa0'", id="nbsp-is-not-json-whitespace"),
        pytest.param(HEADER, 0, LineKind.HEADER, None, id="header"),
        pytest.param(HEADER, 5, LineKind.ENTRY, None, id="session-type-later-is-an-entry"),
        pytest.param(ENTRY + b"\r", 1, LineKind.ENTRY, None, id="crlf"),
        pytest.param(b"\xef\xbb\xbf" + HEADER, 0, LineKind.HEADER, None, id="bom-on-line-0"),
        pytest.param(b"\xef\xbb\xbf" + ENTRY, 1, LineKind.DAMAGED,
                     "JSON syntax error at column 1: unexpected byte order mark (U+FEFF)",
                     id="bom-on-a-later-line"),
        pytest.param(ENTRY + ENTRY, 1, LineKind.DAMAGED,
                     f"two JSON records glued together (second starts at byte {len(ENTRY)})",
                     id="glued"),
        pytest.param(b"\xef\xbb\xbf" + HEADER + ENTRY, 0, LineKind.DAMAGED,
                     f"two JSON records glued together (second starts at byte {3 + len(HEADER)})",
                     id="glued-after-bom-counts-bom-bytes"),
        pytest.param(ENTRY + ENTRY[:20], 1, LineKind.DAMAGED,
                     f"two JSON records glued together (second starts at byte {len(ENTRY)}); "
                     "the last one is truncated", id="glued-then-torn"),
        pytest.param(ENTRY * 3, 1, LineKind.DAMAGED,
                     f"3 JSON records glued together (they start at bytes 0, {len(ENTRY)}, "
                     f"{2 * len(ENTRY)})", id="three-glued"),
        pytest.param(ENTRY[:-7], 1, LineKind.DAMAGED, "truncated JSON (torn line)", id="torn"),
        pytest.param(b'{"a":"x\\u00', 1, LineKind.DAMAGED, "truncated JSON (torn line)",
                     id="torn-in-escape"),
        pytest.param(b'{"a":fal', 1, LineKind.DAMAGED, "truncated JSON (torn line)",
                     id="torn-in-literal"),
        pytest.param(b'{"a":1e', 1, LineKind.DAMAGED, "truncated JSON (torn line)",
                     id="torn-in-number"),
        pytest.param(b'{"a":"caf\xc3"}', 1, LineKind.DAMAGED, "invalid UTF-8 at byte 9",
                     id="invalid-utf8"),
        pytest.param(b'{"a":"\xed\xa0\x80"}', 1, LineKind.DAMAGED, "invalid UTF-8 at byte 6",
                     id="utf8-encoded-surrogate"),
        pytest.param(b"[1,2]", 1, LineKind.DAMAGED, "not a JSON object (array)", id="array"),
        pytest.param(b'"text"', 1, LineKind.DAMAGED, "not a JSON object (string)", id="string"),
        pytest.param(b"null", 1, LineKind.DAMAGED, "not a JSON object (null)", id="null"),
        pytest.param(b'"\\udc00"', 1, LineKind.DAMAGED, "not a JSON object (string)",
                     id="lone-surrogate-string"),
        pytest.param(b'{"a":NaN}', 1, LineKind.DAMAGED,
                     "JSON syntax error at column 6: unexpected character 'N'", id="nan"),
        pytest.param(b'{"a":1,}', 1, LineKind.DAMAGED, "JSON syntax error at column 8: "
                     "expected a property name in double quotes, found '}'",
                     id="trailing-comma"),
        pytest.param(b'{"a":"\x01"}', 1, LineKind.DAMAGED,
                     "JSON syntax error at column 7: control character U+0001 inside a string",
                     id="raw-control-character"),
        pytest.param(b'{"a":1}]', 1, LineKind.DAMAGED,
                     "JSON syntax error at column 8: unexpected data after the JSON value",
                     id="trailing-garbage"),
        pytest.param(b'{"a":"\\ud800"}', 1, LineKind.ENTRY, None, id="lone-surrogate-escape"),
        pytest.param(b'{"a":1e400}', 1, LineKind.ENTRY, None, id="number-beyond-double"),
        pytest.param(b'{"a":' + b"9" * 5000 + b"}", 1, LineKind.ENTRY, None,
                     id="integer-beyond-python-int-str-limit"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, 1, LineKind.DAMAGED,
                     "nested 10000 levels deep: valid JSON, but deeper than Python's JSON "
                     "parsers accept (about 1000 levels)", id="10000-level-nesting"),
    ],
)  # fmt: skip
def test_line_shape(raw: bytes, pos: int, kind: LineKind, damage: str | None) -> None:
    line = classify_line(raw, pos)
    assert (line.kind, line.damage) == (kind, damage)
    assert line.raw == raw


def test_crlf_line_keeps_its_carriage_return_and_parses_without_it() -> None:
    line = classify_line(ENTRY + b"\r", 4)
    assert line.raw.endswith(b"\r")
    assert (line.entry_id, line.parent_id, line.has_parent_key) == ("a1b2c3d4", None, True)
    data = HEADER + b"\r\n" + ENTRY + b"\r\n"
    assert join_lines(*split_lines(data)) == data


def test_bom_stays_in_raw_and_header_still_reads() -> None:
    line = classify_line(b"\xef\xbb\xbf" + HEADER, 0)
    assert line.raw.startswith(b"\xef\xbb\xbf")
    header = read_header(line)
    assert header is not None
    assert (header.id, header.version, header.cwd) == ("s1", 3, "/w")


def test_lone_surrogate_escape_is_kept_as_javascript_reads_it() -> None:
    line = classify_line(b'{"type":"custom","id":"x","data":"\\udc00"}', 2)
    assert line.value is not None
    assert line.value["data"] == "\udc00"


def test_deep_nesting_inside_an_entry_is_damaged_not_an_exception() -> None:
    raw = b'{"type":"custom","data":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    line = classify_line(raw, 1)
    assert line.kind is LineKind.DAMAGED
    assert line.damage is not None
    assert line.damage.startswith("nested 10001 levels deep")


def test_twelve_megabyte_lines_classify_and_stream() -> None:
    big = b'{"type":"message","id":"b1","parentId":"a1","message":{"role":"toolResult","content":"'
    big += b"x\\n\xc3\xa9" * (12 * 1024 * 1024 // 5) + b'"}}'
    assert classify_line(big, 7).kind is LineKind.ENTRY
    torn = classify_line(big[:-10], 7)
    assert (torn.kind, torn.damage) == (LineKind.DAMAGED, "truncated JSON (torn line)")
    data = HEADER + b"\n" + big + b"\n" + big[:-10]
    assert [line for line, _ in iter_raw_lines(io.BytesIO(data), chunk_size=1 << 16)] == [
        HEADER,
        big,
        big[:-10],
    ]


def test_header_fields() -> None:
    header = read_header(classify_line(b'{"type":"session","id":"f","parentSession":"p"}', 0))
    assert header is not None
    assert (header.version, header.parent_session) == (1, "p")
    assert read_header(classify_line(ENTRY, 1)) is None
    odd = read_header(classify_line(b'{"type":"session","version":"3"}', 0))
    assert odd is not None
    assert odd.version is None


def test_idempotency_key_and_role_come_from_the_message() -> None:
    raw = (
        b'{"type":"message","id":"i","parentId":"p",'
        b'"message":{"role":"user","idempotencyKey":"k1"}}'
    )
    line = classify_line(raw, 3)
    assert (line.role, line.idempotency_key, line.parent_id) == ("user", "k1", "p")
    other = classify_line(b'{"type":"custom","id":"c","message":{"role":"user"}}', 3)
    assert (other.role, other.idempotency_key, other.has_parent_key) == (None, None, False)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", ([], False)),
        (b"\n", ([b""], True)),
        (b"a", ([b"a"], False)),
        (b"a\n\nb", ([b"a", b"", b"b"], False)),
        (b"a\r\n", ([b"a\r"], True)),
    ],
)
def test_split_lines_shapes(data: bytes, expected: tuple[list[bytes], bool]) -> None:
    assert split_lines(data) == expected
    assert join_lines(*expected) == data


@pytest.mark.parametrize(
    ("lines", "ends_with_newline"),
    [([b"a\nb"], True), ([b"a", b""], False), ([], True)],
)
def test_join_lines_refuses_what_split_lines_never_produces(
    lines: list[bytes], ends_with_newline: bool
) -> None:
    with pytest.raises(ValueError):
        join_lines(lines, ends_with_newline)


def test_iter_raw_lines_refuses_a_zero_chunk_size() -> None:
    with pytest.raises(ValueError):
        list(iter_raw_lines(io.BytesIO(b"x"), chunk_size=0))


# ------------------------------------------------------------------ properties

LINE_BYTES = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"\n", b"\r", b"{", b"}", b"a", b"\xef\xbb\xbf", b"\xff"]), max_size=40
).map(b"".join)


@given(LINE_BYTES)
def test_split_join_is_the_identity_on_any_bytes(data: bytes) -> None:
    assert join_lines(*split_lines(data)) == data


@given(LINE_BYTES, st.integers(min_value=1, max_value=17))
def test_iter_raw_lines_equals_split_lines_for_any_chunk_size(data: bytes, chunk: int) -> None:
    lines, ends_with_newline = split_lines(data)
    streamed = list(iter_raw_lines(io.BytesIO(data), chunk_size=chunk))
    assert [line for line, _ in streamed] == lines
    assert [terminated for _, terminated in streamed] == [True] * (len(lines) - 1) + (
        [ends_with_newline] if lines else []
    )


JSONISH = st.lists(
    st.sampled_from(
        ['{', '}', '[', ']', '"', ":", ",", "\\", "u", "d800", "1", "-", ".", "e", "+", "true",
         "nul", " ", "\r", "\t", "é", "\x01", "\ufeff", '"id"', '"type"', '"session"']
    ),
    max_size=30,
).map(lambda parts: "".join(parts).encode("utf-8"))  # fmt: skip


@settings(max_examples=200)
@given(st.binary(max_size=200) | JSONISH, st.integers(min_value=0, max_value=2))
def test_classify_line_never_raises(raw: bytes, pos: int) -> None:
    line = classify_line(raw, pos)
    assert line.raw == raw
    assert (line.kind is LineKind.DAMAGED) == (line.damage is not None)


def python_reads_an_object(raw: bytes) -> bool:
    """The reference answer: the stdlib, strict like JSON.parse (no NaN/Infinity)."""

    def refuse(name: str) -> object:
        raise ValueError(name)

    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict)


@settings(max_examples=200)
@given(JSONISH)
def test_a_line_is_an_entry_exactly_when_it_holds_one_json_object(raw: bytes) -> None:
    assert (classify_line(raw, 1).kind is LineKind.ENTRY) == python_reads_an_object(raw)


# ------------------------------------------------------------------ Node as the oracle

ORACLE_LINES = [
    ENTRY,
    ENTRY + b"\r",
    ENTRY + ENTRY,
    ENTRY[:-3],
    b'{"a":"\\ud800"}',
    b'{"a":1e400}',
    b'{"a":-0,"b":1.0,"c":1E5}',
    b'{"a":NaN}',
    b'{"a":1,}',
    b'{"a":"\t"}',
    b"\xef\xbb\xbf" + ENTRY,
    b"[1]",
    b'{"__proto__":1}',
    b"  " + ENTRY + b"  ",
]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (the oracle)")
def test_json_parse_accepts_exactly_the_lines_that_are_not_damaged(tmp_path: Path) -> None:
    source = tmp_path / "lines.jsonl"
    source.write_bytes(b"\n".join(ORACLE_LINES))
    script = (
        "const lines = require('fs').readFileSync(process.argv[1], 'utf8').split('\\n');"
        "console.log(JSON.stringify(lines.map(l => { try { const v = JSON.parse(l);"
        " return v !== null && typeof v === 'object' && !Array.isArray(v); }"
        " catch { return false; } })));"
    )
    node = subprocess.run(
        ["node", "-e", script, str(source)], capture_output=True, check=True, text=True
    )
    accepted = json.loads(node.stdout)
    ours = [
        classify_line(raw, pos + 1).kind is LineKind.ENTRY for pos, raw in enumerate(ORACLE_LINES)
    ]
    assert ours == accepted

"""Lines too long to hold twice: read from their pieces, spooled, copied into their row.

A spooled line must be stored exactly as the same line read whole (same kind, fields,
damage reason, TEXT or BLOB, bytes), and importing one must cost memory near the line's own
size, not several copies of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store_sql.formats import long_line
from store_sql.formats.long_line import LongLineReader
from store_sql.formats.transcript_jsonl import entry_fields, parse_line
from store_sql.importer import rows as db
from store_sql.importer.chunks import LineChunker
from store_sql.schema.tables import NAVIGATION_LINES
from store_sql.store import Store

STORE_SQL = Path(sys.executable).with_name("store-sql")
LONG = os.environ.get("STORE_SQL_LONG_TESTS") == "1"

HEADER = b'{"type":"session","version":3,"id":"s1","timestamp":"2026-01-01T00:00:00Z","cwd":"/"}'


# --- the reader against parse_line --------------------------------------------------------


def _read(line: bytes, pos: int, piece: int) -> long_line.LongLine:
    reader = LongLineReader(pos)
    for i in range(0, len(line), piece):
        reader.feed(line[i : i + piece])
    return reader.finish()


def _same_as_whole(line: bytes, pos: int, piece: int) -> None:
    got = _read(line, pos, piece)
    kind, value, damage = parse_line(line, pos)
    assert (got.kind, got.damage) == (kind, damage), line
    assert (got.value is None) == (value is None)
    if value is not None and got.value is not None:
        resolved = {k: got.resolve(v, lambda a, b: line[a:b]) for k, v in got.value.items()}
        message = resolved.get("message")
        if isinstance(message, dict):
            resolved["message"] = {
                k: got.resolve(v, lambda a, b: line[a:b]) for k, v in message.items()
            }
        assert entry_fields(resolved) == entry_fields(value)


SHAPES = [
    b'{"type":"message","id":"abcdefghijkl","text":"hello world this is long"}',
    b'{"type":"message","text":"hello \\n world \\u00e9 long \\ud800 x \\ud83d\\ude00 y"}',
    b'{"type":"message","text":"hello world this is long',
    b'{"type":"message","text":"hello world this is long\\u12',
    b'{"type":"message","text":"hello world this is \\x long"}',
    b'{"type":"message","text":"hello world this is \x01 long"}',
    b'{"type":"message","text":"h\xc3\xa9llo world this is long"}',
    b'{"type":"message","text":"hello world \xff this is long"}',
    b'{"type":"message","text":"hello world this is long \xc3',
    b'{"type":"message","text":"hello world this is long"} x',
    b'{"type":"message","text":"hello world this is long"}{"a":"bbbbbbbbbbbbbbbbbbbbbbbb"}',
    b'{"type":"message","text":"hello world this is long",,"b":1}',
    b'\xef\xbb\xbf{"type":"session","id":"longlonglonglonglong","t":"' + b"\xc3\xa9" * 4 + b' x"}',
    b'{"type":"m","text":"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 x", "y": tru}',
    b'{"a":"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80 and \\q"}\r',
    b'{"type":"message","message":{"role":"assistant-role-long-long-long","idempotencyKey":"key-long-key-long-long"}}',
    b'[1,2,"aaaaaaaaaaaaaaaaaaaaaa"]',
    b'{"a":"aaaaaaaaaaaaaaaaaa\xff\xfe", "b": "\xff"}',
    b'{"a":1e400,"b":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}',
]


@pytest.mark.parametrize("line", SHAPES)
def test_a_line_read_in_pieces_is_what_it_is_read_whole(
    line: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Longer than every key the store reads, so only values are replaced, as with the real
    # threshold.
    monkeypatch.setattr(long_line, "LONG_STRING_BYTES", 16)
    for pos in (0, 1):
        for piece in (1, 2, 3, 7, 1000):
            _same_as_whole(line, pos, piece)


_TOKENS = [b'"', b"\\", b"n", b"u", b"0", b"a", b"{", b"}", b":", b",", b" ", b"\xc3\xa9",
           b"\xf0\x9f\x98\x80", b"\xff", b"\x01", b"[", b"]", b"1", b"\\u00e9",
           b"\\ud800"]  # fmt: skip


@settings(max_examples=3000 if LONG else 400, deadline=None)
@given(
    head=st.sampled_from([b'{"type":"message","id":"', b'{"type":"session","id":"', b"{"]),
    short=st.integers(0, 24),
    body=st.lists(st.sampled_from(_TOKENS), max_size=50),
    end=st.sampled_from([b'"}', b"", b'"', b"}", b'"}\r', b'","parentId":"p"}']),
    pos=st.integers(0, 1),
    piece=st.integers(1, 9),
)
def test_any_line_read_in_pieces_is_what_it_is_read_whole(
    head: bytes, short: int, body: list[bytes], end: bytes, pos: int, piece: int
) -> None:
    saved = long_line.LONG_STRING_BYTES
    long_line.LONG_STRING_BYTES = 16
    try:
        line = head + b"x" * short + b'","text":"' + b"".join(body) + end
        _same_as_whole(line, pos, piece)
    finally:
        long_line.LONG_STRING_BYTES = saved


# --- spooled lines are stored as lines read whole ---------------------------------------


def _long_lines() -> bytes:
    text = 'é😀 \\n \\" '.encode() * 3000
    lines = [
        HEADER,
        b'{"type":"message","id":"a1","parentId":null,"timestamp":"t","message":{"role":"user",'
        b'"content":"' + text + b'","idempotencyKey":"k1"}}',
        b'{"type":"message","id":"b2","parentId":"a1","appendMode":"side","message":{"role":'
        b'"assistant","content":"' + text + b'"}}\r',
        b'{"type":"message","id":"' + b"i" * 70_000 + b'","parentId":"b2","message":{}}',
        b'{"type":"message","id":"c3","parentId":"a1","message":{"content":"' + text + b'\xff"}}',
        b'{"type":"message","id":"d4","parentId":"c3","message":{"content":"' + text,
        b'{"type":"message","id":"e5","parentId":"a1","message":{"content":"' + text + b'\\x"}}',
        b'{"type":"leaf","id":"f6","parentId":"a1","note":"' + text + b'"}',
    ]
    return b"\n".join(lines) + b"\n" + lines[1][:-2]  # the file ends inside a long line


def _stored(tmp_path: Path, name: str, data: bytes, spool: int) -> list[tuple[object, ...]]:
    path = tmp_path / f"{name}.sqlite"

    async def create() -> None:
        store = await Store.open(path)
        await store.close()

    asyncio.run(create())
    conn = sqlite3.connect(path, isolation_level=None)
    target: db.NewTranscript | db.Continuation = db.NewTranscript(
        "main", "agents/main/sessions", "live", "s1.jsonl", None, None, None, None
    )
    chunker = LineChunker(
        io.BytesIO(data), hasher=hashlib.sha256(), chunk_bytes=4096, spool_line_bytes=spool
    )
    for chunk in chunker:
        conn.execute("BEGIN")
        tid = db.write_chunk(conn, target, chunk)
        conn.execute("COMMIT")
        target = db.Continuation(tid, chunk.next_pos or 0, chunk.end_offset, "s1.jsonl")
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    rows = conn.execute(
        "SELECT pos, CAST(line AS BLOB), typeof(line), kind, entry_id, parent_id, parent_pos, "
        "type, role, timestamp, idempotency_key, byte_size, damage, "
        "EXISTS (SELECT 1 FROM transcript_lines INDEXED BY ix_transcript_lines_navigation "
        f"WHERE transcript_id = l.transcript_id AND pos = l.pos AND {NAVIGATION_LINES}), "
        'side_append, instr(line, \'"appendMode":"side"\') > 0 '
        "FROM transcript_lines AS l ORDER BY pos"
    ).fetchall()
    rows.append(
        conn.execute(
            "SELECT line_count, entry_count, damaged_count, byte_size, source_size, "
            "source_sha256, ends_with_newline, leaf_pos, leaf_id FROM transcripts"
        ).fetchone()
    )
    conn.close()
    return rows


def test_spooled_lines_are_stored_as_lines_read_whole(tmp_path: Path) -> None:
    data = _long_lines()
    whole = _stored(tmp_path, "whole", data, spool=1 << 30)
    spooled = _stored(tmp_path, "spooled", data, spool=20_000)
    assert spooled == whole
    assert b"".join(bytes(r[1]) + b"\n" for r in whole[:-1])[:-1] == data  # type: ignore[call-overload]
    kinds = [r[3] for r in whole[:-1]]
    assert kinds == ["header", "entry", "entry", "entry", "damaged", "damaged", "damaged",
                     "entry", "damaged"]  # fmt: skip
    assert [r[13] for r in whole[:-1]].count(1) == 2  # the side entry and the leaf
    # side_append is the substring test the line's bytes give, for every line.
    assert [r[14] for r in whole[:-1]] == [r[15] for r in whole[:-1]] == [0, 0, 1, 0, 0, 0, 0, 0, 0]


ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("STORE_SQL_SHARED", ROOT.parent / "shared")) / "corpus"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_corpus_transcripts_are_stored_alike_spooled(tmp_path: Path) -> None:
    """Every real transcript, with every line over 2 KB spooled, is stored as read whole."""
    files = sorted(CORPUS.rglob("*.jsonl"))
    assert files
    for i, path in enumerate(files):
        data = path.read_bytes()
        if max(map(len, data.split(b"\n"))) <= 2048:
            continue
        whole = _stored(tmp_path, f"w{i}", data, spool=1 << 30)
        assert _stored(tmp_path, f"s{i}", data, spool=2048) == whole, path


def test_a_spooled_line_is_refused_past_the_longest_line(tmp_path: Path) -> None:
    from store_sql.errors import ImportFailedError

    data = HEADER + b"\n" + b'{"a":"' + b"x" * 100_000 + b'"}\n' + HEADER
    chunker = LineChunker(
        io.BytesIO(data), chunk_bytes=4096, spool_line_bytes=10_000, max_line_bytes=50_000
    )
    with pytest.raises(ImportFailedError, match=r"line 2 .* longer than 50000 bytes"):
        list(chunker)


# --- memory: a real import of one very long line ------------------------------------------

_MEASURED = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


_UNITS = {"emoji": "😀 \\n é ".encode(), "ascii": b"plain text "}


def _state_dir(root: Path, text_bytes: int, unit: bytes = _UNITS["emoji"]) -> Path:
    """A state dir whose one transcript holds a message of `text_bytes` of text (by default
    emoji and JSON escapes: a parser's string of it would take 4 bytes a character)."""
    folder = root / "agents/main/sessions"
    folder.mkdir(parents=True)
    with (folder / "s1.jsonl").open("wb") as f:
        f.write(HEADER + b"\n")
        f.write(b'{"type":"message","id":"a1","parentId":null,"message":{"role":"user",'
                b'"content":"hi"}}\n')  # fmt: skip
        f.write(b'{"type":"message","id":"b2","parentId":"a1","message":{"role":"assistant",'
                b'"content":[{"type":"text","text":"')  # fmt: skip
        block = unit * ((1 << 20) // len(unit))
        for _ in range(text_bytes // len(block)):
            f.write(block)
        f.write(b'"}]}}\n{"type":"message","id":"c3","parentId":"b2","message":{}}\n')
    return root


def _peak_import_kib(state: Path, db_path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(STORE_SQL), "import", str(state), "--db",
         str(db_path), "--json"],
        capture_output=True, text=True, timeout=1800, check=True,
    )  # fmt: skip
    code, peak = done.stdout.split()
    assert int(code) == 0, done.stderr
    return int(peak)


_SLACK_KIB = 48 << 10
"""What an import of a long line holds besides SQLite's two copies of it: the writer's page
cache (16 MiB, filled by the line's pages) and the allocator's arenas."""


def _memory_bound(tmp_path: Path, text_bytes: int, unit: str = "emoji") -> None:
    base = _peak_import_kib(_state_dir(tmp_path / "small", 1 << 20), tmp_path / "small.db")
    state = _state_dir(tmp_path / "big", text_bytes, _UNITS[unit])
    line_kib = (state / "agents/main/sessions/s1.jsonl").stat().st_size // 1024
    peak = _peak_import_kib(state, tmp_path / "big.db")
    ratio = (peak - base) / line_kib
    print(f"{unit} line {line_kib // 1024} MiB: base {base // 1024} MiB, peak {peak // 1024} "
          f"MiB, {ratio:.2f}x the line above the base")  # fmt: skip
    # SQLite holds the line twice while it creates the row (the stand-in value and the
    # record; docs/TESTING.md), and nothing else grows with the line.
    assert peak < base + 2 * line_kib + _SLACK_KIB
    conn = sqlite3.connect(tmp_path / "big.db")
    size, kind = conn.execute(
        "SELECT length(CAST(line AS BLOB)), typeof(line) FROM transcript_lines WHERE pos = 2"
    ).fetchone()
    conn.close()
    assert kind == "text"
    assert abs(size - line_kib * 1024) < 4096


def test_importing_a_96_mib_line_costs_twice_the_line(tmp_path: Path) -> None:
    _memory_bound(tmp_path, 96 << 20)


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["emoji", "ascii"])
def test_importing_a_200_mib_line_costs_twice_the_line(tmp_path: Path, unit: str) -> None:
    _memory_bound(tmp_path, 200 << 20, unit)


@pytest.mark.slow
def test_importing_a_900_mib_line_costs_twice_the_line(tmp_path: Path) -> None:
    _memory_bound(tmp_path, 900 << 20)

"""The export hot path (transcript_dump): a transcript's bytes in blocks joined by SQLite are
the file's exact bytes, in pos order, for every line shape, in flat memory."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from conftest import LoadTranscript

from store_sql import Store, export_transcript, export_tree, import_path
from store_sql.transcripts.file_bytes import _BLOCK_LIMIT, _BLOCK_SQL, _POS_INDEX, transcript_blocks
from store_sql.transcripts.rows import insert_transcript

SID = "6f21fc8d-db06-423b-a23b-af673666e267"
HEADER = (
    b'{"type":"session","version":3,"id":"' + SID.encode() + b'",'
    b'"timestamp":"2026-02-10T08:00:00.000Z","cwd":"/w"}'
)


def transcript_chunks(
    conn: sqlite3.Connection,
    transcript_id: int,
    *,
    upto_pos: int | None = None,
    newline: bool | None = None,
) -> Iterator[bytes]:
    """The reference renderer the blocks are held to: one fetched row per line, joined in
    Python (the store's own renderer until transcript_blocks replaced it)."""
    if newline is None:
        row = conn.execute(
            "SELECT ends_with_newline FROM transcripts WHERE transcript_id = ?",
            (transcript_id,),
        ).fetchone()
        newline = bool(row[0]) if row is not None else True
    sql = "SELECT CAST(line AS BLOB) FROM transcript_lines WHERE transcript_id = ?"
    params: tuple[int, ...] = (transcript_id,)
    if upto_pos is not None:
        sql += " AND pos <= ?"
        params = (transcript_id, upto_pos)
    cursor = conn.execute(sql + " ORDER BY pos", params)
    separator = b""
    while rows := cursor.fetchmany(2000):
        # A separator before every batch but the first: the final newline is decided last.
        yield separator + b"\n".join([r[0] for r in rows])
        separator = b"\n"
    if separator and newline:
        yield b"\n"


def entry(i: int, text: bytes) -> bytes:
    return (
        b'{"type":"message","id":"' + f"{i:08x}".encode() + b'","parentId":null,'
        b'"timestamp":"2026-02-10T08:00:01.000Z","message":{"role":"user","content":"'
        + text
        + b'"}}'
    )


def every_shape(count: int) -> bytes:
    """A file with a BOM and CRLF on its header, blank lines, invalid UTF-8 and NUL bytes
    (BLOB lines), lone surrogate escapes, short and long lines, and no final newline: long
    enough to span many blocks."""
    lines = [b"\xef\xbb\xbf" + HEADER + b"\r"]
    for i in range(count):
        if i % 997 == 5:
            lines.append(b"")
        elif i % 631 == 7:
            lines.append(b'{"type":"message","id":"bad\xff\xfe\x00"}')
        elif i % 409 == 3:
            lines.append(entry(i, b"\\ud800 lone \\udc00"))
        elif i % 1500 == 11:
            lines.append(entry(i, b"y" * 300_000))
        else:
            lines.append(entry(i, b"x" * (i % 700)))
    return b"\n".join(lines)


async def blocks(store: Store, tid: int, **kwargs: object) -> list[bytes]:
    return await store.read(lambda c: list(transcript_blocks(c, tid, **kwargs)))  # type: ignore[arg-type]


async def chunks(store: Store, tid: int, **kwargs: object) -> bytes:
    return await store.read(lambda c: b"".join(transcript_chunks(c, tid, **kwargs)))  # type: ignore[arg-type]


async def test_every_line_shape_comes_back_byte_for_byte_across_many_blocks(
    store: Store, load_transcript: LoadTranscript
) -> None:
    data = every_shape(12_000)
    tid = await load_transcript(store, data)

    got = await blocks(store, tid)

    assert b"".join(got) == data
    assert len([b for b in got if b != b"\n"]) > 10
    assert b"".join(await blocks(store, tid, newline=True)) == data + b"\n"


async def test_a_file_with_a_final_newline_keeps_it(
    store: Store, load_transcript: LoadTranscript
) -> None:
    data = every_shape(3000) + b"\n"
    tid = await load_transcript(store, data)

    assert b"".join(await blocks(store, tid)) == data
    assert b"".join(await blocks(store, tid, newline=False)) == data[:-1]


async def test_a_prefix_up_to_a_position_matches_the_line_reader(
    store: Store, load_transcript: LoadTranscript
) -> None:
    tid = await load_transcript(store, every_shape(5000) + b"\n")

    for upto in (0, 1, 127, 128, 129, 4000, 4999, 5000, 9999):
        for newline in (True, False):
            got = b"".join(await blocks(store, tid, upto_pos=upto, newline=newline))
            assert got == await chunks(store, tid, upto_pos=upto, newline=newline), upto


async def test_tiny_files(store: Store, load_transcript: LoadTranscript) -> None:
    for data in (b"\n", b"\n\n", b"x", b"x\n", b"\xff", b"\r\n", b"\x00\n\x00"):
        tid = await load_transcript(store, data, session_id=f"s{data!r}")
        assert b"".join(await blocks(store, tid)) == data, data

    empty = await store.write(lambda c: _new_transcript(c, "empty"))
    assert await blocks(store, empty) == []


async def test_short_lines_then_long_ones_stay_within_the_block_limit(
    store: Store, load_transcript: LoadTranscript
) -> None:
    """Blocks sized for 60-byte lines would hold ~12 MB once 100 KB lines follow; a line
    longer than the limit comes alone. The connection's length limit is put back."""
    lines = [HEADER] + [entry(i, b"s") for i in range(5000)]
    lines += [entry(i, b"L" * 100_000) for i in range(120)]
    lines += [entry(1, b"H" * (9 << 20))] + [entry(i, b"t") for i in range(3000)]
    data = b"\n".join(lines) + b"\n"
    tid = await load_transcript(store, data)

    got = await blocks(store, tid)

    assert b"".join(got) == data
    assert sorted(len(b) for b in got)[-2] <= _BLOCK_LIMIT
    assert max(len(b) for b in got) == len(lines[-3001])
    limit = await store.read(lambda c: c.getlimit(sqlite3.SQLITE_LIMIT_LENGTH))
    assert limit > 100 << 20


async def test_lines_come_in_pos_order_whatever_order_they_were_inserted_in(
    store: Store,
) -> None:
    lines = [b"line %d " % i + b"z" * (i * 37 % 900) for i in range(6000)]
    order = list(range(6000))[::-1]  # rowids ascend while pos descends
    order = order[3000:] + order[:3000]
    tid = await store.write(lambda c: _insert_raw(c, "shuffled", [(p, lines[p]) for p in order]))

    got = b"".join(await blocks(store, tid))

    assert got == b"\n".join(lines) + b"\n"
    assert got == await chunks(store, tid)


async def test_gaps_in_pos_are_skipped_as_the_line_reader_skips_them(store: Store) -> None:
    rows = [(0, b"a"), (1, b"b"), (50_000, b"c"), (50_001, b""), (90_000_000, b"d")]
    tid = await store.write(lambda c: _insert_raw(c, "gaps", rows))

    got = b"".join(await blocks(store, tid))

    assert got == b"a\nb\nc\n\nd\n"
    assert got == await chunks(store, tid)


async def test_the_block_query_walks_the_unique_transcript_pos_index(store: Store) -> None:
    """Blocks rely on the scan order of UNIQUE(transcript_id, pos) (transcript_dump's
    docstring): the pinned index must be that one."""

    def inspect(conn: sqlite3.Connection) -> tuple[list[str], int, str]:
        columns = [r[2] for r in conn.execute(f"PRAGMA index_info({_POS_INDEX})")]
        unique = next(r[2] for r in conn.execute("PRAGMA index_list(transcript_lines)")
                      if r[1] == _POS_INDEX)  # fmt: skip
        plan = conn.execute("EXPLAIN QUERY PLAN " + _BLOCK_SQL, (1, 0, 10)).fetchall()
        return columns, unique, " ".join(str(r[3]) for r in plan)

    columns, unique, plan = await store.read(inspect)

    assert columns == ["transcript_id", "pos"]
    assert unique == 1
    assert f"USING INDEX {_POS_INDEX} (transcript_id=? AND pos>? AND pos<?)" in plan


async def test_export_tree_and_export_transcript_write_the_blocks(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "src/agents/main/sessions"
    folder.mkdir(parents=True)
    data = every_shape(4000)
    (folder / f"{SID}.jsonl").write_bytes(data)
    await import_path(store, tmp_path / "src")

    report = await export_tree(store, tmp_path / "out")

    assert report.ok
    assert (tmp_path / "out/agents/main/sessions" / f"{SID}.jsonl").read_bytes() == data
    assert await export_transcript(store, "main", SID) == data


def test_export_memory_stays_flat_whatever_the_file_size(tmp_path: Path) -> None:
    """Subprocesses export a 4 MB and a 24 MB transcript: peak memory must not grow with it
    (a whole-file join would add ~40 MB). SQLite's page cache is small in both so that what
    remains is what the export itself holds."""
    import_script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from store_sql import Store\n"
        "from store_sql import import_path\n"
        "async def main():\n"
        "    store = await Store.open(sys.argv[1])\n"
        "    assert (await import_path(store, Path(sys.argv[2]))).ok\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    # VmHWM, not getrusage: ru_maxrss survives fork+exec and would report pytest's own peak.
    export_script = (
        "import asyncio, re, sys\n"
        "from pathlib import Path\n"
        "from store_sql.engine.pragmas import EngineSettings\n"
        "from store_sql import Store\n"
        "from store_sql import export_tree\n"
        "async def main():\n"
        "    settings = EngineSettings(cache_size_kib=1024, readers=1)\n"
        "    store = await Store.open(sys.argv[1], settings=settings, full_text=False)\n"
        "    r = await export_tree(store, Path(sys.argv[2]))\n"
        "    await store.close()\n"
        "    assert r.ok\n"
        "    status = open('/proc/self/status').read()\n"
        "    print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
        "asyncio.run(main())\n"
    )
    peaks = []
    for count in (5_000, 30_000):
        root = tmp_path / str(count)
        folder = root / "src/agents/main/sessions"
        folder.mkdir(parents=True)
        data = b"\n".join([HEADER] + [entry(i, b"x" * 700) for i in range(count)]) + b"\n"
        (folder / f"{SID}.jsonl").write_bytes(data)
        db = str(root / "db.sqlite")
        subprocess.run([sys.executable, "-c", import_script, db, str(root / "src")],
                       check=True, timeout=120)  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", export_script, db, str(root / "out")],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert (root / "out/agents/main/sessions" / f"{SID}.jsonl").read_bytes() == data
        peaks.append(int(done.stdout.strip()) * 1024)
    assert peaks[1] - peaks[0] < 6e6, f"peak RSS {peaks[0] / 1e6:.0f} -> {peaks[1] / 1e6:.0f} MB"


def _new_transcript(conn: sqlite3.Connection, name: str) -> int:
    return insert_transcript(
        conn, agent_id="main", rel_dir="agents/main/sessions", session_id=name,
        kind="live", file_name=f"{name}.jsonl", version=3,
    )  # fmt: skip


def _insert_raw(conn: sqlite3.Connection, name: str, rows: list[tuple[int, bytes]]) -> int:
    """Lines inserted as given (pos, bytes): rowid order need not be pos order."""
    tid = _new_transcript(conn, name)
    conn.executemany(
        "INSERT INTO transcript_lines (transcript_id, pos, line, kind, byte_size) "
        "VALUES (?, ?, ?, 'damaged', ?)",
        [(tid, pos, raw, len(raw)) for pos, raw in rows],
    )
    return tid

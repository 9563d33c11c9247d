"""Import (issue 4): every file kind, exact bytes, damage reports, re-import, streaming.

Each test builds a small state dir in tmp_path, imports it with `import_path`, and looks at
the database (`rows`, in SQLite's spelling on either backend) and at what export writes back.
Tests taking `backend` run on SQLite and on PostgreSQL. Those on `store` stay on SQLite: they
count the SQLite writer's mutations, replace its functions to simulate a crash, measure its
process's memory or event loop, or compare with the Node oracle on a file store.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

from store_sql import Store, export_tree, import_path
from store_sql.errors import ImportFailedError
from store_sql.importer import chunks as import_lines
from store_sql.importer.backend import SqliteImport
from store_sql.importer.report import ImportProgress

SID = "4a24ada5-df64-4801-a672-65bda22a45b4"
UUID = "0f3c2a11-7d2e-4c55-9a1e-3b7f00c0ffee"


def line(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def header(session_id: str = SID, **extra: Any) -> bytes:
    return line({"type": "session", "version": 3, "id": session_id,
                 "timestamp": "2026-02-10T08:00:00.000Z", "cwd": "/w", **extra})  # fmt: skip


def entry(entry_id: str, parent: str | None, text: str = "hi", role: str = "user") -> bytes:
    message = {"role": role, "content": [{"type": "text", "text": text}]}
    return line({"type": "message", "id": entry_id, "parentId": parent,
                 "timestamp": "2026-02-10T08:00:01.000Z", "message": message})  # fmt: skip


def transcript(*lines: bytes, newline: bool = True) -> bytes:
    return b"\n".join(lines) + (b"\n" if newline else b"")


def sessions_dir(root: Path, agent: str = "main") -> Path:
    folder = root / "agents" / agent / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def rows(store: Store, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """The rows of `sql` (SQLite's spelling) on either backend. On PostgreSQL the `?` become
    `$n`, `typeof(line)` says where the line is kept, and a selected `line` comes back as its
    bytes (`line` or `line_bytes`)."""
    if store.dialect == "sqlite":
        return await store.read(lambda c: [tuple(r) for r in c.execute(sql, params)])
    numbers = iter(range(1, len(params) + 1))
    pg_sql = re.sub(r"\?", lambda _: f"${next(numbers)}", sql)
    pg_sql = pg_sql.replace("typeof(line)", "CASE WHEN line IS NULL THEN 'blob' ELSE 'text' END")
    pg_sql = re.sub(
        r"\bline\b(?=,| FROM)", "coalesce(convert_to(line, 'UTF8'), line_bytes)", pg_sql
    )

    async def fetch(conn: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await conn.fetch(pg_sql, *params)]

    return await store.postgres.read(fetch)


INDEX = (
    b'{\n  "7": {\n    "sessionId": "s7",\n    "updatedAt": 1\n  },\n'
    b'  "agent:main:main": {\n    "sessionId": "' + SID.encode() + b'",\n'
    b'    "updatedAt": 1770710400000,\n    "cost": 0.000009\n  }\n}'
)


def full_state(root: Path) -> Path:
    """A sessions dir holding one file of every kind FORMATS.md §1 lists."""
    d = sessions_dir(root)
    body = transcript(header(), entry("a1", None), entry("a2", "a1"))
    (d / "sessions.json").write_bytes(INDEX)
    (d / f"{SID}.jsonl").write_bytes(body)
    (d / f"{SID}-topic-th%2F42.jsonl").write_bytes(body)
    (d / f"2026-02-10T08-00-00-000Z_{SID}.jsonl").write_bytes(
        transcript(header(parentSession="/x.jsonl"), entry("b1", None))
    )
    (d / f"{SID}.checkpoint.{UUID}.jsonl").write_bytes(body)
    (d / f"{SID}.jsonl.reset.2026-02-10T09-15-21.653Z").write_bytes(body)
    (d / f"{SID}.jsonl.deleted.2026-02-11T10-00-00.000Z").write_bytes(body)
    (d / f"{SID}.jsonl.deleted.2026-02-12T10-00-00.000Z.zst").write_bytes(
        zstandard.ZstdCompressor().compress(body)
    )
    (d / f"{SID}.trajectory.jsonl").write_bytes(b'{"step":1}\n')
    (d / f"{SID}.trajectory-path.json").write_bytes(b'{"path":"x"}')
    (d / "sessions.json.bak.1770710400000").write_bytes(INDEX)
    (d / "notes.txt").write_bytes(b"not ours\x00\xff")
    (d / "empty.backup").write_bytes(b"")
    (d / "0e0e0e0e-0000-4000-8000-000000000000.jsonl").write_bytes(b"")
    (d / "Weird Name.jsonl").write_bytes(body)
    (d / "sessions.json.lock").write_bytes(b"")
    (d / f"{SID}.jsonl.1234.tmp").write_bytes(b"partial")
    blob = d / "skills-prompts" / "sha256" / "ab" / ("ab" + "0" * 62 + ".txt")
    blob.parent.mkdir(parents=True)
    blob.write_bytes("prompt ✓\n".encode())
    outside = root / "outside.txt"
    outside.write_bytes(b"secret")
    (d / "link.jsonl").symlink_to(outside)
    return d


# --- every file kind -----------------------------------------------------------------------


async def test_every_file_kind_is_stored_and_exported_exactly(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    src = tmp_path / "state"
    full_state(src)
    report = await import_path(store, src)

    assert report.ok, report.as_dict()
    status = {Path(f.rel_path).name: f.status for f in report.files}
    assert status["sessions.json"] == "imported"
    assert status[f"{SID}.trajectory.jsonl"] == "kept_opaque"
    assert status["notes.txt"] == "kept_opaque"
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"sessions.json.lock", f"{SID}.jsonl.1234.tmp", "link.jsonl"}
    assert "symlink leaving" in skipped["link.jsonl"]

    await export_tree(store, tmp_path / "out")
    expected = {k: v for k, v in tree_bytes(src).items() if not k.endswith((".lock", ".tmp"))}
    expected.pop("outside.txt")
    expected.pop("agents/main/sessions/link.jsonl")
    assert tree_bytes(tmp_path / "out") == expected


async def test_file_names_map_to_transcript_kinds(backend: Store, tmp_path: Path) -> None:
    store = backend
    await import_path(store, full_state(tmp_path / "state").parent.parent.parent)

    got = await rows(
        store,
        "SELECT file_name, kind, session_id, topic, archived_at, parent_session, "
        "compressed_bytes IS NOT NULL FROM transcripts ORDER BY file_name",
    )
    by_name = {r[0]: r[1:] for r in got}
    assert by_name[f"{SID}.jsonl"] == ("live", SID, None, None, None, 0)
    assert by_name[f"{SID}-topic-th%2F42.jsonl"] == ("topic", SID, "th/42", None, None, 0)
    assert by_name[f"2026-02-10T08-00-00-000Z_{SID}.jsonl"][:1] == ("fork",)
    assert by_name[f"2026-02-10T08-00-00-000Z_{SID}.jsonl"][4] == "/x.jsonl"
    assert by_name[f"{SID}.checkpoint.{UUID}.jsonl"][0] == "checkpoint"
    reset = by_name[f"{SID}.jsonl.reset.2026-02-10T09-15-21.653Z"]
    assert reset[0] == "reset"
    assert reset[3] == "2026-02-10T09-15-21.653Z"
    assert by_name[f"{SID}.jsonl.deleted.2026-02-12T10-00-00.000Z.zst"][0::5] == ("deleted", 1)
    assert by_name["Weird Name.jsonl"][0] == "other"
    opaque = dict(await rows(store, "SELECT file_name, kind FROM opaque_files"))
    assert opaque == {
        f"{SID}.trajectory.jsonl": "trajectory",
        f"{SID}.trajectory-path.json": "trajectory",
        "sessions.json.bak.1770710400000": "backup",
        "notes.txt": "other",
        "empty.backup": "backup",
        "skills-prompts/sha256/ab/ab" + "0" * 62 + ".txt": "skill_prompt",
    }


async def test_compressed_archive_keeps_original_bytes_and_queryable_lines(
    store: Store, tmp_path: Path
) -> None:
    d = sessions_dir(tmp_path)
    body = transcript(header(), entry("a1", None, "zstd text"))
    packed = zstandard.ZstdCompressor(level=7).compress(body)
    name = f"{SID}.jsonl.reset.2026-02-10T09-15-21.653Z.zst"
    (d / name).write_bytes(packed)

    await import_path(store, tmp_path)

    [(blob, tid)] = await rows(store, "SELECT compressed_bytes, transcript_id FROM transcripts")
    assert blob == packed
    texts = await rows(
        store,
        "SELECT json_extract(line, '$.message.content[0].text') FROM transcript_lines "
        "WHERE transcript_id = ? AND kind = 'entry'",
        tid,
    )
    assert texts == [("zstd text",)]


async def test_an_archive_that_does_not_decompress_is_kept_as_bytes(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    d = sessions_dir(tmp_path)
    name = f"{SID}.jsonl.deleted.2026-02-10T09-15-21.653Z.zst"
    (d / name).write_bytes(b"\x28\xb5\x2f\xfdgarbage")

    report = await import_path(store, tmp_path)

    [record] = report.files
    assert record.status == "kept_opaque"
    assert "cannot decompress" in (record.message or "")
    await export_tree(store, tmp_path / "out")
    assert (tmp_path / "out/agents/main/sessions" / name).read_bytes() == (d / name).read_bytes()


# --- lines: exact bytes, damage, parents ---------------------------------------------------


async def test_damaged_lines_are_kept_verbatim_and_reported_with_line_numbers(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    d = sessions_dir(tmp_path)
    data = (
        b"\xef\xbb\xbf" + header() + b"\r\n"
        + entry("a1", None) + b"\n"
        + b"\n"
        + entry("a2", "a1") + entry("a3", "a2") + b"\n"
        + b'{"type":"message","id":"a4","par\xff\xfe"}\n'
        + b'{"type":"message","id":"a5","parentId":"a1","mess'
    )  # fmt: skip
    (d / f"{SID}.jsonl").write_bytes(data)

    report = await import_path(store, tmp_path)

    [record] = report.files
    assert [n for n, _ in record.damaged] == [3, 4, 5, 6]
    reasons = dict(record.damaged)
    assert reasons[3] == "blank line (kept)"
    assert reasons[4].startswith("two JSON records glued together")
    assert reasons[5].startswith("invalid UTF-8")
    assert reasons[6] == "truncated JSON (torn line)"
    assert "CRLF" in (record.message or "")
    assert "byte order mark" in (record.message or "")
    assert "no newline at the end" in (record.message or "")
    stored = await rows(
        store, "SELECT pos, kind, typeof(line), damage IS NOT NULL FROM transcript_lines"
    )
    assert [r[1] for r in stored] == ["header", "entry", "blank", "damaged", "damaged", "damaged"]
    assert stored[4][2] == "blob"
    await export_tree(store, tmp_path / "out")
    assert (tmp_path / "out/agents/main/sessions" / f"{SID}.jsonl").read_bytes() == data


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 20])
async def test_lines_are_cut_from_the_source_bytes_exactly_whatever_the_chunk_size(
    backend: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    """The writer cuts each line out of the chunk's bytes by offset (import_files): lines
    split across reads, multi-byte characters cut in two by a read, CRLF, a NUL byte, and
    bytes that are not UTF-8 in ways Python and orjson both refuse all come back exactly,
    as TEXT when valid UTF-8 and as BLOB otherwise (transcripts.stored_line)."""
    store = backend
    monkeypatch.setattr(import_lines, "CHUNK_BYTES", chunk_bytes)
    lines = [
        header(),
        entry("a1", None, "naïve ✓ 日本語 🎉"),
        entry("a2", "a1") + b"\r",
        b'{"type":"message","id":"a3","parentId":"a2","x":"\xed\xa0\x80"}',  # a surrogate
        b'{"type":"message","id":"a4","parentId":"a2","x":"\xc0\xaf"}',  # overlong
        b'{"type":"message","id":"a5","parentId":"a2","x":"\xf4\x90\x80\x80"}',  # > U+10FFFF
        b"not json \x00 with a NUL",
        b"\r",
        entry("a6", "a2", "last, unterminated"),
    ]
    data = b"\n".join(lines)
    (sessions_dir(tmp_path) / f"{SID}.jsonl").write_bytes(data)

    report = await import_path(store, tmp_path)

    [record] = report.files
    assert (record.lines, record.entries, record.bytes) == (9, 3, len(data))
    assert [n for n, _ in record.damaged] == [4, 5, 6, 7, 8]
    got = await rows(
        store, "SELECT pos, line, typeof(line), byte_size, parent_pos FROM transcript_lines "
        "ORDER BY pos",
    )  # fmt: skip
    stored = [line.encode() if isinstance(line, str) else line for _, line, *_ in got]
    assert stored == lines
    # PostgreSQL's text cannot hold NUL: that line is kept as bytes there (docs/POSTGRES.md).
    nul = "blob" if store.dialect == "postgresql" else "text"
    assert [r[2] for r in got] == ["text"] * 3 + ["blob"] * 3 + [nul] + ["text"] * 2
    assert [r[3] for r in got] == [len(line) for line in lines]
    assert [r[4] for r in got][:3] == [None, None, 1]
    assert got[8][4] == 2
    assert await exported(store, tmp_path) == data


async def test_parent_pos_is_the_nearest_preceding_entry_with_that_id(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    d = sessions_dir(tmp_path)
    no_parent_key = line({"type": "custom", "id": "c1", "timestamp": "t"})
    (d / f"{SID}.jsonl").write_bytes(
        transcript(
            header(),
            entry("a1", None),  # 1
            entry("a2", "a1"),  # 2
            entry("a2", "a2"),  # 3 duplicate id: its parent is the earlier a2
            entry("b1", "a1"),  # 4 a branch
            entry("x1", "zz"),  # 5 unknown parent: a root
            entry("a3", "a2"),  # 6 nearest preceding a2 is pos 3
            no_parent_key,  # 7 v3 entry without parentId: a root
        )
    )

    await import_path(store, tmp_path)

    got = await rows(store, "SELECT pos, kind, parent_pos FROM transcript_lines ORDER BY pos")
    parents = [(pos, parent) for pos, _, parent in got]
    assert parents == [(0, None), (1, None), (2, 1), (3, 2), (4, 1), (5, None), (6, 3), (7, None)]
    assert [kind for _, kind, _ in got] == ["header"] + ["entry"] * 7
    [(leaf_pos, version)] = await rows(store, "SELECT leaf_pos, version FROM transcripts")
    assert (leaf_pos, version) == (7, 3)


async def test_v1_entries_chain_to_the_previous_entry(backend: Store, tmp_path: Path) -> None:
    store = backend
    d = sessions_dir(tmp_path)
    v1_header = line({"type": "session", "id": SID, "timestamp": "t", "cwd": "/w"})
    msg = line({"type": "message", "timestamp": "t", "message": {"role": "user", "content": "x"}})
    (d / f"{SID}.jsonl").write_bytes(transcript(v1_header, msg, b"{torn", msg, msg))

    await import_path(store, tmp_path)

    got = await rows(store, "SELECT pos, kind, parent_pos FROM transcript_lines ORDER BY pos")
    assert got == [(0, "header", None), (1, "entry", None), (2, "damaged", None),
                   (3, "entry", 1), (4, "entry", 3)]  # fmt: skip
    assert await rows(store, "SELECT version FROM transcripts") == [(1,)]


# --- sessions.json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "state"), [(b"", "empty_file"), (b'{\n  "a": {', "invalid"), (b"[]", "invalid")]
)
async def test_an_empty_or_invalid_index_is_kept_and_reported_never_read_as_empty(
    backend: Store, tmp_path: Path, data: bytes, state: str
) -> None:
    store = backend
    (sessions_dir(tmp_path) / "sessions.json").write_bytes(data)

    report = await import_path(store, tmp_path)

    [record] = report.files
    assert record.status == "kept_opaque"
    assert "never read as an empty index" in (record.message or "")
    [(got_state, error, source)] = await rows(
        store, "SELECT source_state, source_error, source_bytes FROM session_indexes"
    )
    assert (got_state, source) == (state, data)
    assert error
    assert await store.sessions.render_json("main") == data
    assert await rows(store, "SELECT count(*) FROM session_entries") == [(0,)]


async def test_index_entries_keep_positions_and_exact_text(backend: Store, tmp_path: Path) -> None:
    store = backend
    (sessions_dir(tmp_path) / "sessions.json").write_bytes(INDEX)

    report = await import_path(store, tmp_path)

    assert report.files[0].entries == 2
    got = await rows(
        store, "SELECT session_key, position, entry_json FROM session_entries ORDER BY position"
    )
    assert [r[:2] for r in got] == [("7", 0), ("agent:main:main", 1)]
    assert '"cost": 0.000009' in got[1][2]
    assert await store.sessions.render_json("main") == INDEX
    assert await rows(store, "SELECT next_position FROM session_indexes") == [(2,)]
    await store.sessions.patch("main", "new", {"sessionId": "n", "updatedAt": 2})
    assert await rows(store, "SELECT position FROM session_entries WHERE session_key = 'new'") == [
        (2,)
    ]


async def test_index_reimport_never_merges(backend: Store, tmp_path: Path) -> None:
    store = backend
    path = sessions_dir(tmp_path) / "sessions.json"
    path.write_bytes(INDEX)
    await import_path(store, tmp_path)

    assert (await import_path(store, tmp_path)).files[0].status == "unchanged"
    changed = INDEX.replace(b'"s7"', b'"s8"')
    path.write_bytes(changed)
    replaced = await import_path(store, tmp_path)
    assert replaced.files[0].status == "new_version"
    assert await store.sessions.render_json("main") == changed

    await store.sessions.patch("main", "7", {"label": "api"})
    assert (await import_path(store, tmp_path)).files[0].status == "unchanged"
    path.write_bytes(INDEX)
    conflict = await import_path(store, tmp_path)
    assert conflict.files[0].status == "error"
    assert not conflict.ok
    assert (await store.sessions.get("main", "7") or {}).get("label") == "api"


async def test_a_second_index_for_the_same_agent_is_kept_as_a_file(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    (sessions_dir(tmp_path) / "sessions.json").write_bytes(INDEX)
    legacy = tmp_path / "sessions"
    legacy.mkdir()
    (legacy / "sessions.json").write_bytes(b"{}")

    report = await import_path(store, tmp_path)

    status = {f.rel_path: f.status for f in report.files}
    assert status == {"agents/main/sessions/sessions.json": "imported",
                      "sessions/sessions.json": "kept_opaque"}  # fmt: skip
    await export_tree(store, tmp_path / "out")
    assert (tmp_path / "out/sessions/sessions.json").read_bytes() == b"{}"
    assert (tmp_path / "out/agents/main/sessions/sessions.json").read_bytes() == INDEX


# --- re-import -----------------------------------------------------------------------------


async def import_one(store: Store, root: Path) -> str:
    report = await import_path(store, root)
    [record] = report.files
    assert record.status != "error", record.as_dict()
    return record.status


async def exported(store: Store, tmp_path: Path) -> bytes:
    out = tmp_path / f"out{time.monotonic_ns()}"
    await export_tree(store, out)
    return (out / "agents/main/sessions" / f"{SID}.jsonl").read_bytes()


async def test_unchanged_file_writes_nothing(tmp_path: Path) -> None:
    (sessions_dir(tmp_path) / f"{SID}.jsonl").write_bytes(transcript(header(), entry("a", None)))
    # No background indexer: its steps are writes of its own, not the import's.
    async with await Store.open(tmp_path / "quiet.sqlite", full_text=False) as store:
        assert await import_one(store, tmp_path) == "imported"
        before = store.metrics()["mutations"]

        assert await import_one(store, tmp_path) == "unchanged"
        assert store.metrics()["mutations"] == before


async def test_grown_file_gets_only_its_new_lines(backend: Store, tmp_path: Path) -> None:
    store = backend
    path = sessions_dir(tmp_path) / f"{SID}.jsonl"
    path.write_bytes(transcript(header(), entry("a1", None)))
    await import_one(store, tmp_path)
    old = await rows(store, "SELECT line_pk, pos FROM transcript_lines ORDER BY pos")

    grown = transcript(header(), entry("a1", None), entry("a2", "a1"), entry("a3", "a1"))
    path.write_bytes(grown)
    assert await import_one(store, tmp_path) == "appended"

    now = await rows(store, "SELECT line_pk, pos, parent_pos FROM transcript_lines ORDER BY pos")
    assert [r[:2] for r in now[:2]] == old
    assert [(r[1], r[2]) for r in now[2:]] == [(2, 1), (3, 1)]
    assert await rows(store, "SELECT count(*), max(superseded_by) FROM transcripts") == [(1, None)]
    assert await exported(store, tmp_path) == grown


async def test_a_torn_last_line_completed_later_is_read_again_whole(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    path = sessions_dir(tmp_path) / f"{SID}.jsonl"
    full = transcript(header(), entry("a1", None), entry("a2", "a1"))
    path.write_bytes(full[:-20])
    await import_one(store, tmp_path)
    assert await rows(store, "SELECT count(*) FROM transcript_lines WHERE kind = 'damaged'") == [
        (1,)
    ]

    path.write_bytes(full)
    assert await import_one(store, tmp_path) == "appended"

    got = await rows(store, "SELECT pos, kind, parent_pos FROM transcript_lines ORDER BY pos")
    assert got == [(0, "header", None), (1, "entry", None), (2, "entry", 1)]
    [(count, leaf, generation, newline)] = await rows(
        store, "SELECT damaged_count, leaf_pos, generation, ends_with_newline FROM transcripts"
    )
    assert (count, leaf, generation, newline) == (0, 2, 2, 1)
    assert await exported(store, tmp_path) == full


async def test_a_file_changed_in_the_middle_becomes_a_new_version(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    path = sessions_dir(tmp_path) / f"{SID}.jsonl"
    path.write_bytes(transcript(header(), entry("a1", None, "one")))
    await import_one(store, tmp_path)

    changed = transcript(header(), entry("a1", None, "ONE"), entry("a2", "a1"))
    path.write_bytes(changed)
    report = await import_path(store, tmp_path)

    assert report.files[0].status == "new_version"
    assert "changed" in (report.files[0].message or "")
    got = await rows(
        store, "SELECT transcript_id, superseded_by, line_count FROM transcripts ORDER BY 1"
    )
    assert got == [(1, 2, 2), (2, None, 3)]
    assert await exported(store, tmp_path) == changed


async def test_api_appends_make_a_grown_file_a_new_version(backend: Store, tmp_path: Path) -> None:
    store = backend
    path = sessions_dir(tmp_path) / f"{SID}.jsonl"
    path.write_bytes(transcript(header(), entry("a1", None)))
    await import_one(store, tmp_path)
    await store.transcripts.append_message("main", SID, {"role": "user", "content": "api"})

    unchanged = await import_path(store, tmp_path)
    assert unchanged.files[0].status == "unchanged"
    assert "API appends" in (unchanged.files[0].message or "")

    path.write_bytes(transcript(header(), entry("a1", None), entry("a2", "a1")))
    assert await import_one(store, tmp_path) == "new_version"
    got = await rows(store, "SELECT transcript_id, superseded_by FROM transcripts ORDER BY 1")
    assert got == [(1, 2), (2, None)]


async def test_sources_are_never_modified(backend: Store, tmp_path: Path) -> None:
    store = backend
    src = tmp_path / "state"
    full_state(src)
    files = [p for p in src.rglob("*") if p.is_file() and not p.is_symlink()]
    before = {p: (p.stat().st_mtime_ns, p.stat().st_mode, p.read_bytes()) for p in files}
    listing = sorted(str(p) for p in src.rglob("*"))

    await import_path(store, src)
    await import_path(store, src)

    assert {p: (p.stat().st_mtime_ns, p.stat().st_mode, p.read_bytes()) for p in files} == before
    assert sorted(str(p) for p in src.rglob("*")) == listing


async def test_dry_run_reports_and_writes_nothing(tmp_path: Path) -> None:
    full_state(tmp_path / "state")
    # No background indexer: its steps are writes of its own, not the import's.
    async with await Store.open(tmp_path / "quiet.sqlite", full_text=False) as store:
        report = await import_path(store, tmp_path / "state", dry_run=True)

        assert report.dry_run
        assert report.ok
        assert {f.status for f in report.files} == {"imported", "kept_opaque"}
        assert store.metrics()["mutations"] == 0
        assert await rows(store, "SELECT count(*) FROM transcripts") == [(0,)]


# --- paths ---------------------------------------------------------------------------------


async def test_one_file_or_a_foreign_sessions_dir_needs_an_agent(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "loose"
    folder.mkdir()
    (folder / f"{SID}.jsonl").write_bytes(transcript(header()))

    with pytest.raises(ImportFailedError, match="which agent"):
        await import_path(store, folder / f"{SID}.jsonl")
    with pytest.raises(ImportFailedError, match="agent"):
        await import_path(store, folder)
    report = await import_path(store, folder / f"{SID}.jsonl", agent="dev")
    assert [f.rel_path for f in report.files] == [f"agents/dev/sessions/{SID}.jsonl"]
    with pytest.raises(ImportFailedError, match="no such file"):
        await import_path(store, tmp_path / "missing")


# --- streaming -----------------------------------------------------------------------------


def big_transcript(entries: int, text_size: int = 400) -> bytes:
    lines = [header()]
    parent = None
    for i in range(entries):
        entry_id = f"{i:08x}"
        # Every 50th entry branches from far back, so parents cross chunk boundaries.
        far = f"{max(0, i - 3000):08x}" if i % 50 == 0 and i else parent
        lines.append(entry(entry_id, far, f"message {i} " + "x" * text_size))
        parent = entry_id
    return transcript(*lines)


async def test_chunked_import_links_parents_across_chunks_and_resumes_after_a_crash(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = big_transcript(6000)
    path = sessions_dir(tmp_path) / f"{SID}.jsonl"
    path.write_bytes(data)
    monkeypatch.setattr(import_lines, "CHUNK_BYTES", 64 << 10)
    # The SQLite importer's row functions, as its writer calls them.
    statements = SqliteImport.rows
    real = statements.write_chunk
    seen: list[int] = []

    def crash_on_fifth(conn: sqlite3.Connection, target: Any, chunk: Any) -> int:
        # By chunk, not by call: the writer reruns a failed group (with savepoints), so the
        # same chunk may be tried twice.
        if chunk.end_offset not in seen:
            seen.append(chunk.end_offset)
        if seen.index(chunk.end_offset) == 4:
            raise ImportFailedError("simulated crash")
        return real(conn, target, chunk)

    monkeypatch.setattr(statements, "write_chunk", crash_on_fifth)
    first = await import_path(store, tmp_path)
    assert first.files[0].status == "error"
    [(committed,)] = await rows(store, "SELECT line_count FROM transcripts")
    assert 0 < committed < 6001

    monkeypatch.setattr(statements, "write_chunk", real)
    assert await import_one(store, tmp_path) == "appended"

    got = await rows(store, "SELECT pos, parent_pos FROM transcript_lines ORDER BY pos")
    assert len(got) == 6001
    for pos, parent_pos in got[2:]:
        i = pos - 1
        expected = max(0, i - 3000) + 1 if i % 50 == 0 else pos - 1
        assert parent_pos == expected, pos
    assert await exported(store, tmp_path) == data


async def test_the_event_loop_keeps_answering_during_a_large_import(
    store: Store, tmp_path: Path
) -> None:
    await store.sessions.patch("main", "k", {"sessionId": "s", "updatedAt": 1})
    (sessions_dir(tmp_path) / f"{SID}.jsonl").write_bytes(big_transcript(12000, 500))
    seen: list[ImportProgress] = []
    task = asyncio.create_task(import_path(store, tmp_path, progress=seen.append))
    latencies: list[float] = []
    while not task.done():
        started = time.perf_counter()
        assert await store.sessions.get("main", "k") is not None
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)
    report = await task

    assert report.ok
    assert report.files[0].lines == 12001
    assert len(latencies) >= 5, "the import finished before the reads could overlap it"
    assert max(latencies) < 0.5, latencies
    assert len(seen) >= 2
    assert seen[-1].bytes_done == seen[-1].bytes_total


def test_memory_stays_flat_whatever_the_file_size(tmp_path: Path) -> None:
    """Subprocesses import a 3 MB and a 15 MB transcript: peak memory must not grow with it.

    SQLite's page cache and the chunk size are made small so that the fixed costs are
    reached by both files and what remains is what the import itself holds: about four
    chunks are alive at once (one read ahead, one parsed, one bound by the writer, freed
    buffers not yet reused), so 256 KiB chunks make 3 MB enough to reach them."""
    # VmHWM, not getrusage: ru_maxrss survives fork+exec and would report pytest's own peak.
    script = (
        "import asyncio, re, sys\n"
        "from pathlib import Path\n"
        "from store_sql.importer import chunks as import_lines\n"
        "from store_sql.engine.pragmas import EngineSettings\n"
        "from store_sql import Store\n"
        "from store_sql import import_path\n"
        "import_lines.CHUNK_BYTES = 256 << 10\n"
        "async def main():\n"
        "    settings = EngineSettings(cache_size_kib=1024, readers=1)\n"
        "    store = await Store.open(sys.argv[1], settings=settings)\n"
        "    r = await import_path(store, Path(sys.argv[2]))\n"
        "    await store.close()\n"
        "    assert r.ok\n"
        "    status = open('/proc/self/status').read()\n"
        "    print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
        "asyncio.run(main())\n"
    )
    peaks = []
    for entries in (3000, 15000):
        root = tmp_path / str(entries)
        (sessions_dir(root) / f"{SID}.jsonl").write_bytes(big_transcript(entries, 950))
        done = subprocess.run(
            [sys.executable, "-c", script, str(root / "db.sqlite"), str(root)],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        peaks.append(int(done.stdout.strip()) * 1024)
    # 12 MB more input; a reader that held the file (or its rows) would grow by 2-3x that.
    assert peaks[1] - peaks[0] < 4e6, f"peak RSS {peaks[0] / 1e6:.0f} -> {peaks[1] / 1e6:.0f} MB"


async def test_hard_shapes_round_trip_byte_for_byte(backend: Store, tmp_path: Path) -> None:
    """The shapes issue 4 lists: integer-like and `__proto__` keys, JavaScript number
    spellings, integers beyond 2^53, lone surrogate escapes, a 12 MB line, no parentId."""
    store = backend
    d = sessions_dir(tmp_path)
    index = (
        b'{\n  "7": {\n    "sessionId": "a",\n    "updatedAt": 1\n  },\n'
        b'  "123": {\n    "sessionId": "b",\n    "updatedAt": 2\n  },\n'
        b'  "__proto__": {\n    "sessionId": "c",\n    "updatedAt": 3,\n'
        b'    "cost": 0.000015000000000000002,\n    "tiny": 9.000000000000001e-12,\n'
        b'    "huge": 1e+21,\n    "big": 123456789012345680000\n  }\n}'
    )
    lines = [
        header(),
        b'{"type":"message","id":"n1","parentId":null,"timestamp":"t","message":{"role":"user",'
        b'"content":"\\ud800 lone \\udc00","usage":{"cost":0.000015000000000000002,'
        b'"x":9.000000000000001e-12,"y":1e+21,"z":12345678901234567890123}}}',
        b'{"type":"custom","customType":"blob","data":"' + b"x" * (12 << 20) + b'","id":"n2",'
        b'"parentId":"n1","timestamp":"t"}',
        b'{"type":"label","id":"n3","timestamp":"t","targetId":"n1","label":"no parent key"}',
    ]
    (d / "sessions.json").write_bytes(index)
    (d / f"{SID}.jsonl").write_bytes(transcript(*lines))

    report = await import_path(store, tmp_path)
    await export_tree(store, tmp_path / "out")

    assert report.ok
    assert report.totals["damaged"] == 0
    out = tmp_path / "out/agents/main/sessions"
    assert (out / "sessions.json").read_bytes() == index
    assert (out / f"{SID}.jsonl").read_bytes() == transcript(*lines)
    keys = await rows(store, "SELECT session_key FROM session_entries ORDER BY position")
    assert keys == [("7",), ("123",), ("__proto__",)]
    parents = await rows(store, "SELECT pos, parent_pos FROM transcript_lines ORDER BY pos")
    assert parents == [(0, None), (1, None), (2, 1), (3, None)]


async def test_a_truncated_or_multi_frame_zstd_archive(backend: Store, tmp_path: Path) -> None:
    store = backend
    d = sessions_dir(tmp_path)
    body = transcript(header(), entry("a1", None), entry("a2", "a1"))
    packer = zstandard.ZstdCompressor()
    two_frames = packer.compress(body[:40]) + packer.compress(body[40:])
    (d / f"{SID}.jsonl.reset.2026-02-10T09-15-21.653Z.zst").write_bytes(two_frames)
    (d / f"{SID}.jsonl.deleted.2026-02-10T09-15-21.653Z.zst").write_bytes(
        packer.compress(body)[:-5]
    )

    report = await import_path(store, tmp_path)

    status = {Path(f.rel_path).name.split(".")[2]: f for f in report.files}
    assert status["reset"].status == "imported"
    assert status["reset"].lines == 3
    assert status["deleted"].status == "kept_opaque"
    assert "truncated archive" in (status["deleted"].message or "")
    await export_tree(store, tmp_path / "out")
    assert tree_bytes(tmp_path / "out/agents") == tree_bytes(tmp_path / "agents")


async def test_lone_surrogates_in_ids_and_keys_never_abort_the_import(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    d = sessions_dir(tmp_path)
    # Raw JSON escapes, as JavaScript writes a lone surrogate (orjson would escape the "\\").
    body = transcript(
        header(),
        entry("ID", None).replace(b'"ID"', b'"\\udc00"'),
        entry("b1", "ID").replace(b'"ID"', b'"\\udc00"'),
    )
    index = b'{\n  "agent:main:\\ud800": {\n    "sessionId": "s",\n    "updatedAt": 1\n  }\n}'
    (d / f"{SID}.jsonl").write_bytes(body)
    (d / "sessions.json").write_bytes(index)

    report = await import_path(store, tmp_path)

    status = {Path(f.rel_path).name: f for f in report.files}
    assert status[f"{SID}.jsonl"].status == "imported"
    assert status["sessions.json"].status == "kept_opaque"
    assert "lone surrogate" in (status["sessions.json"].message or "")
    # The lines keep the escapes; the indexed id columns leave them out (formats/sqltext.py).
    parents = await rows(store, "SELECT pos, entry_id, parent_id FROM transcript_lines")
    assert parents == [(0, SID, None), (1, None, None), (2, "b1", None)]
    await export_tree(store, tmp_path / "out")
    out = tmp_path / "out/agents/main/sessions"
    assert (out / f"{SID}.jsonl").read_bytes() == body
    assert (out / "sessions.json").read_bytes() == index


async def test_a_non_canonical_index_patched_by_the_api_exports_as_javascript_rewrites_it(
    tmp_path: Path, js: Any
) -> None:
    # Compact and hand-indented: not what JSON.stringify(store, null, 2) writes. Imported
    # untouched it exports byte for byte; after one patch the gateway would rewrite it all.
    source = (
        b'{"b":{"sessionId":"s-b","updatedAt":2,"nested":{"x":[1,2]}},\n'
        b'   "7": {"sessionId":"s-7", "updatedAt":1},"a":{"sessionId":"s-a","updatedAt":3}}'
    )
    sessions_dir = tmp_path / "agents" / "main" / "sessions"
    sessions_dir.mkdir(parents=True)
    (sessions_dir / "sessions.json").write_bytes(source)
    async with await Store.open(tmp_path / "store.sqlite") as store:
        await import_path(store, tmp_path / "agents" / "main" / "sessions")
        assert await store.sessions.render_json("main") == source
        await store.sessions.patch("main", "b", {"label": "x", "updatedAt": 9})
        rendered = await store.sessions.render_json("main")
    expected = js(
        "const store = JSON.parse(input.source);"
        "store.b = {...store.b, label: 'x', updatedAt: 9};"
        "process.stdout.write(JSON.stringify(store, null, 2));",
        {"source": source.decode()},
    )
    assert rendered == expected.encode()


async def test_an_index_framed_like_javascripts_but_compact_inside_is_re_rendered_on_change(
    tmp_path: Path, js: Any
) -> None:
    source = (
        b'{\n  "a": {"sessionId":"s-a","updatedAt":3},\n  "b": {"sessionId":"s-b","updatedAt":2}\n}'
    )
    sessions_dir = tmp_path / "agents" / "main" / "sessions"
    sessions_dir.mkdir(parents=True)
    (sessions_dir / "sessions.json").write_bytes(source)
    async with await Store.open(tmp_path / "store.sqlite") as store:
        await import_path(store, sessions_dir)
        assert await store.sessions.render_json("main") == source
        await store.sessions.touch("main", "a", 4)
        rendered = await store.sessions.render_json("main")
    expected = js(
        "const store = JSON.parse(input.source); store.a.updatedAt = 4;"
        "process.stdout.write(JSON.stringify(store, null, 2));",
        {"source": source.decode()},
    )
    assert rendered == expected.encode()

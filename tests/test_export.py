"""Export (issue 4): layout, modes, atomic writes, API changes written as the gateway would,
names that try to escape OUT, checkpoint snapshots, superseded versions, one transcript.

Tests taking `backend` run on SQLite and on PostgreSQL; the two on `store` plant rows with
SQLite functions (names that escape OUT, a snapshot row), and stay on SQLite."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from store_sql import Store, export_transcript, export_tree, import_path
from store_sql.errors import NotFoundError
from store_sql.transcripts.rows import insert_transcript

SID = "6f21fc8d-db06-423b-a23b-af673666e267"
HEADER = (
    b'{"type":"session","version":3,"id":"' + SID.encode() + b'",'
    b'"timestamp":"2026-02-10T08:00:00.000Z","cwd":"/w"}'
)
ENTRY = (
    b'{"type":"message","id":"a1b2c3d4","parentId":null,"timestamp":"2026-02-10T08:00:01.000Z",'
    b'"message":{"role":"user","content":"hi","usage":{"cost":0.000009}}}'
)
# Integer-like keys first (as JavaScript orders them), a __proto__ key, JS number spellings
# (an integer beyond 2^53 as JavaScript writes one: the digits of the nearest double).
INDEX = (
    '{\n  "7": {\n    "sessionId": "s7",\n    "updatedAt": 1770710400000\n  },\n'
    '  "agent:main:main": {\n    "sessionId": "' + SID + '",\n    "updatedAt": 1770710400001,\n'
    '    "inputTokens": 12,\n    "cost": 0.000015000000000000002,\n'
    '    "tiny": 9.000000000000001e-12,\n'
    '    "huge": 1e+21,\n    "big": 12345678901234567000,\n    "label": "café ☕",\n'
    '    "origin": {\n      "channel": "signal",\n      "to": null\n    }\n  },\n'
    '  "__proto__": {\n    "sessionId": "p",\n    "updatedAt": 3\n  }\n}'
).encode()


def state(root: Path, legacy: bool = False) -> Path:
    folder = root / ("sessions" if legacy else "agents/main/sessions")
    folder.mkdir(parents=True)
    (folder / "sessions.json").write_bytes(INDEX)
    (folder / f"{SID}.jsonl").write_bytes(HEADER + b"\n" + ENTRY + b"\n")
    return root


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def rows(store: Store, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return await store.read(lambda c: [tuple(r) for r in c.execute(sql, params)])


async def test_files_are_0600_and_created_dirs_0700(backend: Store, tmp_path: Path) -> None:
    store = backend
    await import_path(store, state(tmp_path / "src"))
    out = tmp_path / "out"

    report = await export_tree(store, out)

    assert report.ok
    assert {f.rel_path for f in report.files} == {
        "agents/main/sessions/sessions.json",
        f"agents/main/sessions/{SID}.jsonl",
    }
    for path in [out, out / "agents", out / "agents/main", out / "agents/main/sessions"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (out / "agents/main/sessions").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not list(out.rglob("*.tmp"))


async def test_the_legacy_layout_is_kept(backend: Store, tmp_path: Path) -> None:
    store = backend
    await import_path(store, state(tmp_path / "src", legacy=True))

    await export_tree(store, tmp_path / "out")

    assert (tmp_path / "out/sessions/sessions.json").read_bytes() == INDEX
    assert (tmp_path / "out/sessions" / f"{SID}.jsonl").exists()


async def test_an_export_replaces_existing_files_atomically(backend: Store, tmp_path: Path) -> None:
    store = backend
    await import_path(store, state(tmp_path / "src"))
    out = tmp_path / "out"
    await export_tree(store, out)
    target = out / "agents/main/sessions/sessions.json"
    target.write_bytes(b"stale")
    inode = target.stat().st_ino

    await export_tree(store, out)

    assert target.read_bytes() == INDEX
    assert target.stat().st_ino != inode  # a new file renamed over the old one
    assert not list(out.rglob(".*.tmp"))


async def test_a_changed_entry_is_written_as_node_json_stringify_writes_it(
    backend: Store, tmp_path: Path, js: Any
) -> None:
    store = backend
    await import_path(store, state(tmp_path / "src"))
    patch = {"updatedAt": 1770710499999, "label": None, "model": "gpt-5", "cost": 0.000009}

    added = {"sessionId": "s42", "updatedAt": 5, "ratio": 1e-7}

    await store.sessions.patch("main", "agent:main:main", patch)
    await store.sessions.patch("main", "42", added)  # integer-like: JavaScript lists it second
    await export_tree(store, tmp_path / "out")

    node = js(
        "const store = JSON.parse(input.file);\n"
        "const merged = {...store[input.key], ...input.patch};\n"
        "for (const k of Object.keys(input.patch)) if (input.patch[k] === null) delete merged[k];\n"
        "store[input.key] = merged;\n"
        "store['42'] = input.added;\n"
        "process.stdout.write(JSON.stringify(store, null, 2));",
        {"file": INDEX.decode(), "key": "agent:main:main", "patch": patch, "added": added},
    )
    exported = (tmp_path / "out/agents/main/sessions/sessions.json").read_bytes()
    assert exported == node.encode()


async def test_an_index_emptied_through_the_api_is_written_as_two_bytes(
    backend: Store, tmp_path: Path
) -> None:
    store = backend
    await import_path(store, state(tmp_path / "src"))
    for key in ("7", "agent:main:main", "__proto__"):
        assert await store.sessions.delete("main", key)

    await export_tree(store, tmp_path / "out")

    assert (tmp_path / "out/agents/main/sessions/sessions.json").read_bytes() == b"{}"


async def test_api_appends_follow_the_imported_bytes(
    backend: Store, tmp_path: Path, js: Any
) -> None:
    store = backend
    src = state(tmp_path / "src")
    # No final newline: the first appended line must terminate the last imported one.
    (src / "agents/main/sessions" / f"{SID}.jsonl").write_bytes(HEADER + b"\n" + ENTRY)
    await import_path(store, src)
    message = {"role": "assistant", "content": [{"type": "text", "text": "ok"}], "n": 1e21}

    await store.transcripts.append_message("main", SID, message)
    await export_tree(store, tmp_path / "out")

    data = (tmp_path / "out/agents/main/sessions" / f"{SID}.jsonl").read_bytes()
    head, _, rest = data.partition(HEADER + b"\n" + ENTRY + b"\n")
    assert head == b""
    assert rest.endswith(b"\n")
    assert rest.count(b"\n") == 1
    appended = rest[:-1]
    assert js("process.stdout.write(JSON.stringify(JSON.parse(input)))", appended.decode()) == (
        appended.decode()
    )
    value = orjson.loads(appended)
    assert value["parentId"] == "a1b2c3d4"
    assert value["message"]["n"] == 1e21


async def test_names_that_would_escape_out_are_refused(store: Store, tmp_path: Path) -> None:
    def plant(conn: sqlite3.Connection) -> None:
        for rel_dir, name in [
            ("agents/main/sessions", "../../../escaped.jsonl"),
            ("../outside", "x.jsonl"),
            ("agents/main/sessions", "/etc/evil.jsonl"),
        ]:
            insert_transcript(conn, agent_id="main", rel_dir=rel_dir, session_id="x",
                              kind="live", file_name=name, version=3)  # fmt: skip
        conn.execute(
            "INSERT INTO opaque_files (agent_id, rel_dir, file_name, kind, content, sha256, "
            "imported_at) VALUES ('main', 'agents/main/sessions', 'a/../../../../b.txt', "
            "'other', x'00', '', '')"
        )

    await store.write(plant)
    out = tmp_path / "deep" / "out"
    # A symlink inside OUT pointing outside it must not be written through either.
    out.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (out / "agents").symlink_to(tmp_path / "elsewhere")
    await import_path(store, state(tmp_path / "src"))

    report = await export_tree(store, out)

    assert not report.ok
    assert len(report.refused) == 6
    assert not report.files
    assert list((tmp_path / "elsewhere").iterdir()) == []
    written = {p.name for p in files_under(tmp_path) if "src" not in p.parts}
    assert written <= {"store.sqlite", "store.sqlite-wal", "store.sqlite-shm"}


async def test_checkpoint_snapshots_export_the_referenced_prefix(
    store: Store, tmp_path: Path
) -> None:
    await import_path(store, state(tmp_path / "src"))
    await store.transcripts.append_message("main", SID, {"role": "user", "content": "later"})
    [(tid,)] = await rows(store, "SELECT transcript_id FROM transcripts")
    name = f"{SID}.checkpoint.0f3c2a11-7d2e-4c55-9a1e-3b7f00c0ffee.jsonl"

    def snapshot(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO checkpoint_snapshots (agent_id, checkpoint_id, transcript_id, upto_pos, "
            "file_name, created_at) VALUES ('main', 'cp1', ?, 1, ?, '')",
            (tid, name),
        )

    await store.write(snapshot)
    await export_tree(store, tmp_path / "out")

    folder = tmp_path / "out/agents/main/sessions"
    assert (folder / name).read_bytes() == HEADER + b"\n" + ENTRY + b"\n"
    assert (folder / f"{SID}.jsonl").read_bytes().count(b"\n") == 3


async def test_superseded_versions_are_not_exported(backend: Store, tmp_path: Path) -> None:
    store = backend
    src = state(tmp_path / "src")
    path = src / "agents/main/sessions" / f"{SID}.jsonl"
    await import_path(store, src)
    path.write_bytes(HEADER + b"\n")
    again = await import_path(store, src)
    assert {Path(f.path).name: f.status for f in again.files}[f"{SID}.jsonl"] == "new_version"

    report = await export_tree(store, tmp_path / "out")

    assert len(report.files) == 2
    assert (tmp_path / "out/agents/main/sessions" / f"{SID}.jsonl").read_bytes() == HEADER + b"\n"


async def test_export_of_one_agent_only(backend: Store, tmp_path: Path) -> None:
    store = backend
    await import_path(store, state(tmp_path / "src"))
    await store.sessions.patch("other", "k", {"sessionId": "s", "updatedAt": 1})

    await export_tree(store, tmp_path / "out", agent="other")

    assert sorted(p.name for p in (tmp_path / "out/agents").iterdir()) == ["other"]
    exported = (tmp_path / "out/agents/other/sessions/sessions.json").read_bytes()
    assert exported == b'{\n  "k": {\n    "sessionId": "s",\n    "updatedAt": 1\n  }\n}'


async def test_one_transcript_as_jsonl_or_markdown(backend: Store, tmp_path: Path) -> None:
    store = backend
    await import_path(store, state(tmp_path / "src"))

    by_key = await export_transcript(store, "main", "agent:main:main")
    by_id = await export_transcript(store, "main", SID)
    by_name = await export_transcript(store, "main", f"{SID}.jsonl")
    markdown = await export_transcript(store, "main", SID, fmt="markdown")

    assert by_key == by_id == by_name == HEADER + b"\n" + ENTRY + b"\n"
    assert markdown.startswith(b"# main / " + SID.encode())
    assert b"### user" in markdown
    assert b"hi" in markdown
    with pytest.raises(NotFoundError):
        await export_transcript(store, "main", "no-such-session")

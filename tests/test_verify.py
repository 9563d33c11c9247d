"""Verify (issue 4): compares the store with a directory, lists every difference with the
first differing byte, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from store_sql import Store, import_path
from store_sql.errors import NotFoundError
from store_sql.exporter.verify import Difference, verify_tree

SID = "bd53f236-60b4-42aa-af60-597502a825f1"
BODY = (
    b'{"type":"session","version":3,"id":"' + SID.encode() + b'","timestamp":"t","cwd":"/w"}\n'
    b'{"type":"message","id":"a1","parentId":null,"timestamp":"t","message":{"role":"user"}}\n'
)
INDEX = b'{\n  "k": {\n    "sessionId": "' + SID.encode() + b'",\n    "updatedAt": 1\n  }\n}'


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state" / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    (folder / "sessions.json").write_bytes(INDEX)
    (folder / f"{SID}.jsonl").write_bytes(BODY)
    (folder / "notes.bak").write_bytes(b"backup")
    return tmp_path / "state"


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


async def test_identical_after_import(store: Store, state: Path) -> None:
    await import_path(store, state)

    report = await verify_tree(store, state)

    assert report.identical
    assert report.compared == 3
    assert report.differences == []


async def test_every_difference_is_listed_with_the_first_differing_byte(
    store: Store, state: Path
) -> None:
    await import_path(store, state)
    folder = state / "agents/main/sessions"
    changed = bytearray(BODY)
    changed[100] ^= 1
    (folder / f"{SID}.jsonl").write_bytes(bytes(changed))
    (folder / "sessions.json").write_bytes(INDEX[:-2])  # a prefix: differs at its length
    (folder / "notes.bak").unlink()
    (folder / "new.jsonl").write_bytes(b"{}\n")
    (folder / "sessions.json.lock").write_bytes(b"")

    report = await verify_tree(store, state)

    assert not report.identical
    assert report.differences == [
        Difference(f"agents/main/sessions/{SID}.jsonl", "different", 100),
        Difference("agents/main/sessions/new.jsonl", "extra"),
        Difference("agents/main/sessions/notes.bak", "missing"),
        Difference("agents/main/sessions/sessions.json", "different", len(INDEX) - 2),
    ]
    assert [Path(p).name for p, _ in report.ignored] == ["sessions.json.lock"]


async def test_a_longer_file_differs_where_the_stored_one_ends(store: Store, state: Path) -> None:
    await import_path(store, state)
    path = state / "agents/main/sessions" / f"{SID}.jsonl"
    path.write_bytes(BODY + b"{}\n")

    report = await verify_tree(store, state)

    assert report.differences == [
        Difference(f"agents/main/sessions/{SID}.jsonl", "different", len(BODY))
    ]


async def test_verify_writes_nothing(store: Store, state: Path, tmp_path: Path) -> None:
    await import_path(store, state)
    (state / "agents/main/sessions/extra.txt").write_bytes(b"x")
    before_files = snapshot(state)
    before_mutations = store.metrics()["mutations"]

    await verify_tree(store, state)

    assert snapshot(state) == before_files
    assert store.metrics()["mutations"] == before_mutations


async def test_one_sessions_dir_is_compared_by_its_own_names(
    store: Store, state: Path, tmp_path: Path
) -> None:
    await import_path(store, state)
    loose = tmp_path / "copy"
    loose.mkdir()
    for p in (state / "agents/main/sessions").iterdir():
        (loose / p.name).write_bytes(p.read_bytes())

    assert (await verify_tree(store, state / "agents/main/sessions")).identical
    assert (await verify_tree(store, loose, agent="main")).identical
    other = await verify_tree(store, loose, agent="ops")
    assert {d.kind for d in other.differences} == {"extra"}
    with pytest.raises(NotFoundError, match="agent"):
        await verify_tree(store, loose)

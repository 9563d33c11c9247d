"""Compaction checkpoints: the entry's `compactionCheckpoints` as the gateway writes it, and
snapshots that are references into append-only transcripts, not copies. Every test runs on
SQLite and on PostgreSQL (`backend`); the rows a test writes directly go through the
backend's own twin (transcripts/rows.py or pg_rows.py)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import transcript_rows

from store_sql import Store
from store_sql.checkpoints.entries import CheckpointSpec
from store_sql.errors import NotFoundError
from store_sql.formats import jsjson
from store_sql.transcripts import pg_rows as pg_tx
from store_sql.transcripts import rows as tx

AGENT = "main"
KEY = "agent:main:main"
SAMPLE_INDEX = (
    Path(__file__).resolve().parents[2]
    / "shared/corpus/sample-state/agents/main/sessions/sessions.json"
)


async def make_session(
    store: Store, key: str = KEY, session_id: str = "sid-1", messages: int = 2, **fields: Any
) -> None:
    entry = {"sessionId": session_id, "updatedAt": 1000, "sessionFile": f"{session_id}.jsonl"}
    await store.sessions.put(AGENT, key, {**entry, **fields})
    await store.transcripts.create(AGENT, session_id, cwd="/work")
    for n in range(messages):
        await store.transcripts.append_message(
            AGENT, session_id, {"role": "user", "content": f"m{n}"}
        )


async def count(store: Store, sql: str) -> int:
    if store.dialect == "postgresql":
        return int(await store.postgres.read(lambda c: c.fetchval(sql)))
    return int(await store.read(lambda c: c.execute(sql).fetchone()[0]))


async def column(store: Store, sql: str) -> set[Any]:
    """The first column of a query's rows, as a set."""
    if store.dialect == "postgresql":
        return {r[0] for r in await store.postgres.read(lambda c: c.fetch(sql))}
    return await store.read(lambda c: {r[0] for r in c.execute(sql)})


async def insert_lines(
    store: Store, transcript_id: int, rows: list[tx.LineRow], *, ends_with_newline: bool
) -> None:
    """Lines written as an importer writes them (no append rules), on either backend."""
    if store.dialect == "postgresql":
        await store.postgres.write(
            lambda c: pg_tx.insert_lines(
                c, transcript_id, rows, ends_with_newline=ends_with_newline
            )
        )
        return
    await store.write(
        lambda c: tx.insert_lines(c, transcript_id, rows, ends_with_newline=ends_with_newline)
    )


async def insert_transcript(store: Store, **columns: Any) -> int:
    if store.dialect == "postgresql":
        return int(await store.postgres.write(lambda c: pg_tx.insert_transcript(c, **columns)))
    return int(await store.write(lambda c: tx.insert_transcript(c, **columns)))


async def imported_session(store: Store, file: bytes) -> None:
    """Session KEY on sid-1, whose transcript holds `file` as an importer stores it."""
    await store.sessions.put(
        AGENT, KEY, {"sessionId": "sid-1", "sessionFile": "sid-1.jsonl", "updatedAt": 1}
    )
    rows, ends_with_newline, _ = transcript_rows(file)
    tid = await insert_transcript(
        store, agent_id=AGENT, rel_dir="agents/main/sessions", session_id="sid-1",
        kind="live", file_name="sid-1.jsonl", version=3,
    )  # fmt: skip
    await insert_lines(store, tid, rows, ends_with_newline=ends_with_newline)


async def test_checkpoint_fields_follow_the_gateway_order(backend: Store) -> None:
    await make_session(backend)
    spec = CheckpointSpec(
        reason="auto-threshold", summary="  sum  ", first_kept_entry_id="abcd1234",
        tokens_before=150000, tokens_after=20000, post_entry_id="ffff0000",
    )  # fmt: skip
    cp = (await backend.checkpoints.persist(AGENT, KEY, spec)).checkpoint
    assert list(cp) == [
        "checkpointId", "sessionKey", "sessionId", "createdAt", "reason", "tokensBefore",
        "tokensAfter", "summary", "firstKeptEntryId", "preCompaction", "postCompaction",
    ]  # fmt: skip
    assert list(cp["preCompaction"]) == ["sessionId", "sessionFile", "leafId"]
    assert cp["postCompaction"] == {"sessionId": "sid-1", "entryId": "ffff0000"}
    assert cp["summary"] == "sum"
    assert re.fullmatch(
        r"sid-1\.checkpoint\.[0-9a-f-]{36}\.jsonl", cp["preCompaction"]["sessionFile"]
    )


async def test_absent_optionals_are_left_out(backend: Store) -> None:
    await make_session(backend)
    cp = (await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))).checkpoint
    assert list(cp) == [
        "checkpointId", "sessionKey", "sessionId", "createdAt", "reason", "preCompaction",
        "postCompaction",
    ]  # fmt: skip


@pytest.mark.skipif(not SAMPLE_INDEX.is_file(), reason=f"corpus index not found at {SAMPLE_INDEX}")
async def test_field_order_matches_the_corpus_checkpoints(backend: Store) -> None:
    sample = json.loads(SAMPLE_INDEX.read_text())["agent:main:main"]["compactionCheckpoints"][0]
    await make_session(backend)
    spec = CheckpointSpec(
        reason="auto-threshold", summary="s", first_kept_entry_id="x", tokens_before=1,
        tokens_after=2,
    )  # fmt: skip
    cp = (await backend.checkpoints.persist(AGENT, KEY, spec)).checkpoint
    assert list(cp) == list(sample)
    assert list(cp["preCompaction"]) == list(sample["preCompaction"])
    assert list(cp["postCompaction"]) == list(sample["postCompaction"])


async def test_new_checkpoint_list_goes_last_and_existing_fields_keep_their_place(
    backend: Store,
) -> None:
    await make_session(backend, label="x")
    await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual", created_at=5))
    entry = await backend.sessions.get(AGENT, KEY)
    assert entry is not None
    assert list(entry) == [
        "sessionId",
        "updatedAt",
        "sessionFile",
        "label",
        "compactionCheckpoints",
    ]


async def test_missing_key_stores_nothing_and_says_so(backend: Store) -> None:
    await make_session(backend)
    with pytest.raises(NotFoundError, match="not stored"):
        await backend.checkpoints.persist(AGENT, "agent:main:nope", CheckpointSpec(reason="manual"))
    assert await count(backend, "SELECT count(*) FROM checkpoint_snapshots") == 0
    assert await backend.sessions.get(AGENT, "agent:main:nope") is None


async def test_updated_at_becomes_the_later_of_the_two(backend: Store) -> None:
    await make_session(backend)
    await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual", created_at=500))
    assert (await backend.sessions.get(AGENT, KEY) or {})["updatedAt"] == 1000
    await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual", created_at=9000))
    assert (await backend.sessions.get(AGENT, KEY) or {})["updatedAt"] == 9000


async def test_newest_25_are_kept_and_trimmed_snapshots_released(backend: Store) -> None:
    await make_session(backend)
    ids = []
    for n in range(28):
        spec = CheckpointSpec(reason="manual", created_at=2000 + n)
        ids.append((await backend.checkpoints.persist(AGENT, KEY, spec)).checkpoint["checkpointId"])
    kept = [cp["checkpointId"] for cp in await backend.checkpoints.list_checkpoints(AGENT, KEY)]
    assert kept == ids[::-1][:25]
    rows = await column(backend, "SELECT checkpoint_id FROM checkpoint_snapshots")
    assert rows == set(ids[3:])


async def test_byte_budget_trims_oldest_but_keeps_the_newest(backend: Store) -> None:
    await make_session(backend, messages=5)
    size = (await backend.transcripts.info(AGENT, "sid-1")).byte_size
    first = await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))
    second = await backend.checkpoints.persist(
        AGENT, KEY, CheckpointSpec(reason="manual"), max_retained_bytes=size + size // 2
    )
    assert second.removed == [first.checkpoint["checkpointId"]]
    third = await backend.checkpoints.persist(
        AGENT, KEY, CheckpointSpec(reason="manual"), max_retained_bytes=1
    )
    assert third.removed == [second.checkpoint["checkpointId"]]
    listed = await backend.checkpoints.list_checkpoints(AGENT, KEY)
    assert [cp["checkpointId"] for cp in listed] == [third.checkpoint["checkpointId"]]
    assert await count(backend, "SELECT count(*) FROM checkpoint_snapshots") == 1


async def test_a_snapshot_still_named_by_a_kept_checkpoint_stays(backend: Store) -> None:
    await make_session(backend)
    kept = (
        await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))
    ).checkpoint
    older = {**kept, "checkpointId": "older-twin", "createdAt": 1}
    await backend.sessions.patch(AGENT, KEY, {"compactionCheckpoints": [older, kept]})
    for _ in range(24):
        persisted = await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))
    assert persisted.removed == ["older-twin"]
    snapshot = await backend.checkpoints.snapshot_bytes(AGENT, KEY, kept["checkpointId"])
    assert snapshot == await backend.transcripts.file_bytes(AGENT, "sid-1")


async def test_a_snapshot_is_a_reference_not_a_copy(backend: Store) -> None:
    await make_session(backend, messages=50)
    lines_before = await count(backend, "SELECT count(*) FROM transcript_lines")
    file_then = await backend.transcripts.file_bytes(AGENT, "sid-1")
    cp = (await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))).checkpoint
    await backend.transcripts.append_message(
        AGENT, "sid-1", {"role": "assistant", "content": "after"}
    )
    assert await count(backend, "SELECT count(*) FROM transcript_lines") == lines_before + 1
    assert await backend.checkpoints.snapshot_bytes(AGENT, KEY, cp["checkpointId"]) == file_then


async def test_captured_before_compaction_the_snapshot_excludes_it(backend: Store) -> None:
    await make_session(backend)
    before = await backend.transcripts.file_bytes(AGENT, "sid-1")
    leaf = await backend.transcripts.leaf(AGENT, "sid-1")
    captured = await backend.checkpoints.capture(AGENT, "sid-1")
    await backend.transcripts.append_compaction(AGENT, "sid-1", "summary", "abc", 100)
    spec = CheckpointSpec(reason="manual")
    cp = (await backend.checkpoints.persist(AGENT, KEY, spec, snapshot=captured)).checkpoint
    assert leaf is not None
    assert cp["preCompaction"]["leafId"] == leaf.id
    assert await backend.checkpoints.snapshot_bytes(AGENT, KEY, cp["checkpointId"]) == before


async def test_a_transcript_without_final_newline_gives_a_snapshot_without_one(
    backend: Store,
) -> None:
    await make_session(backend, messages=0)
    info = await backend.transcripts.info(AGENT, "sid-1")
    raw = b'{"type":"message","id":"aaaa0001","parentId":null,"timestamp":"t","message":{}}'
    row = tx.LineRow(1, raw.decode(), "entry", "aaaa0001", None, None, "message", None,
                     "t", None, len(raw), None)  # fmt: skip
    await insert_lines(backend, info.transcript_id, [row], ends_with_newline=False)
    expected = await backend.transcripts.file_bytes(AGENT, "sid-1")
    assert not expected.endswith(b"\n")
    cp = (await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))).checkpoint
    await backend.transcripts.append_message(AGENT, "sid-1", {"role": "user", "content": "x"})
    assert await backend.checkpoints.snapshot_bytes(AGENT, KEY, cp["checkpointId"]) == expected


async def test_list_is_newest_first_and_get_finds_by_id(backend: Store) -> None:
    await make_session(backend)
    made = {}
    for created in (3000, 1000, 2000):
        spec = CheckpointSpec(reason="manual", created_at=created)
        made[created] = (await backend.checkpoints.persist(AGENT, KEY, spec)).checkpoint
    listed = await backend.checkpoints.list_checkpoints(AGENT, KEY)
    assert [cp["createdAt"] for cp in listed] == [3000, 2000, 1000]
    got = await backend.checkpoints.get(AGENT, KEY, made[1000]["checkpointId"])
    assert got == made[1000]
    with pytest.raises(NotFoundError):
        await backend.checkpoints.get(AGENT, KEY, "no-such-id")


async def test_branch_makes_a_new_session_from_the_snapshot(backend: Store) -> None:
    await make_session(backend, label="Work")
    before = await backend.transcripts.file_bytes(AGENT, "sid-1")
    spec = CheckpointSpec(reason="manual", tokens_before=777)
    cp = (await backend.checkpoints.persist(AGENT, KEY, spec)).checkpoint
    await backend.transcripts.append_message(AGENT, "sid-1", {"role": "user", "content": "later"})
    result = await backend.checkpoints.branch(AGENT, KEY, cp["checkpointId"])
    assert re.fullmatch(r"agent:main:dashboard:[0-9a-f-]{36}", result.key)
    lines = (await backend.transcripts.file_bytes(AGENT, result.session_id)).splitlines()
    header = json.loads(lines[0])
    assert header["id"] == result.session_id
    assert header["parentSession"] == cp["preCompaction"]["sessionFile"]
    assert list(header) == ["type", "version", "id", "timestamp", "cwd", "parentSession"]
    assert lines[1:] == before.splitlines()[1:]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z_[0-9a-f-]{36}\.jsonl", result.file_name
    )
    entry = result.entry
    assert entry["label"] == "Work (checkpoint)"
    assert entry["parentSessionKey"] == KEY
    assert entry["totalTokens"] == 777
    assert entry["totalTokensFresh"] is True
    assert "compactionCheckpoints" not in entry
    assert (await backend.sessions.get(AGENT, KEY) or {})["sessionId"] == "sid-1"


async def test_branch_stops_at_the_checkpoint_leaf(backend: Store) -> None:
    await make_session(backend, messages=3)
    captured = await backend.checkpoints.capture(AGENT, "sid-1")
    await backend.transcripts.append_message(AGENT, "sid-1", {"role": "user", "content": "after"})
    spec = CheckpointSpec(reason="manual")
    cp = (await backend.checkpoints.persist(AGENT, KEY, spec, snapshot=captured)).checkpoint
    result = await backend.checkpoints.branch(
        AGENT, KEY, cp["checkpointId"], new_key="agent:main:b"
    )
    path = await backend.transcripts.active_path(AGENT, result.session_id)
    assert [e.id for e in path][-1] == captured.leaf_id
    assert len(path) == 3


async def test_branched_lines_are_written_as_json_stringify_writes_them(
    backend: Store, js: Any
) -> None:
    await make_session(backend, messages=0)
    info = await backend.transcripts.info(AGENT, "sid-1")
    raw = (
        '{"type":"custom","customType":"x","data":{"b":1.0,"2":"two","1":"one","n":1E3},'
        '"id":"aaaa0001","parentId":null,"timestamp":"t"}'
    )
    row = tx.LineRow(1, raw, "entry", "aaaa0001", None, None, "custom", None, "t", None,
                     len(raw), None)  # fmt: skip
    await insert_lines(backend, info.transcript_id, [row], ends_with_newline=True)
    cp = (await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))).checkpoint
    result = await backend.checkpoints.branch(AGENT, KEY, cp["checkpointId"])
    lines = (await backend.transcripts.file_bytes(AGENT, result.session_id)).decode().splitlines()
    assert lines[1] == js("process.stdout.write(JSON.stringify(JSON.parse(input)))", raw)


async def test_restore_makes_the_snapshot_the_active_transcript(backend: Store) -> None:
    await make_session(backend, label="Work")
    before = await backend.transcripts.file_bytes(AGENT, "sid-1")
    cp = (await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))).checkpoint
    await backend.transcripts.append_message(AGENT, "sid-1", {"role": "user", "content": "later"})
    result = await backend.checkpoints.restore(AGENT, KEY, cp["checkpointId"])
    entry = await backend.sessions.get(AGENT, KEY)
    assert entry is not None
    assert entry["sessionId"] == result.session_id != "sid-1"
    assert entry["label"] == "Work"
    assert [c["checkpointId"] for c in entry["compactionCheckpoints"]] == [cp["checkpointId"]]
    restored = await backend.transcripts.file_bytes(AGENT, result.session_id)
    assert restored.splitlines()[1:] == before.splitlines()[1:]
    await backend.transcripts.append_message(
        AGENT, result.session_id, {"role": "user", "content": "on"}
    )
    old = await backend.transcripts.info(AGENT, "sid-1")
    assert old.kind == "live"
    assert old.entry_count == 3


async def test_an_imported_checkpoint_copy_serves_as_the_snapshot(backend: Store) -> None:
    await make_session(backend, messages=0)
    name = "sid-1.checkpoint.11111111-2222-4333-8444-555555555555.jsonl"
    header = jsjson.dumps(tx.header_value("sid-1", cwd="/w", timestamp="t", parent_session=None))
    entry = (
        '{"type":"message","id":"bbbb0001","parentId":null,"timestamp":"t",'
        '"message":{"role":"user","content":"old"}}'
    )
    tid = await insert_transcript(backend, agent_id=AGENT, rel_dir="agents/main/sessions",
                                  session_id="sid-1", kind="checkpoint", file_name=name,
                                  version=3)  # fmt: skip
    rows = [
        tx.LineRow(0, header, "header", "sid-1", None, None, "session", None, "t", None,
                   len(header), None),
        tx.LineRow(1, entry, "entry", "bbbb0001", None, None, "message", "user", "t", None,
                   len(entry), None),
    ]  # fmt: skip
    await insert_lines(backend, tid, rows, ends_with_newline=True)
    cp = {"checkpointId": "c1", "sessionKey": KEY, "sessionId": "sid-1", "createdAt": 1,
          "reason": "manual", "preCompaction": {"sessionId": "sid-1", "sessionFile": name,
          "leafId": "bbbb0001"}, "postCompaction": {"sessionId": "sid-1"}}  # fmt: skip
    await backend.sessions.patch(AGENT, KEY, {"compactionCheckpoints": [cp]})
    data = await backend.checkpoints.snapshot_bytes(AGENT, KEY, "c1")
    assert data == f"{header}\n{entry}\n".encode()
    result = await backend.checkpoints.branch(AGENT, KEY, "c1")
    assert (await backend.transcripts.file_bytes(AGENT, result.session_id)).endswith(
        f"{entry}\n".encode()
    )


async def test_export_writes_the_checkpoint_file_the_entry_names(
    backend: Store, tmp_path: Path
) -> None:
    from store_sql import export_tree

    await make_session(backend, messages=4)
    before = await backend.transcripts.file_bytes(AGENT, "sid-1")
    cp = (await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))).checkpoint
    await backend.transcripts.append_message(AGENT, "sid-1", {"role": "user", "content": "later"})
    await backend.lifecycle.reset(AGENT, KEY)
    out = tmp_path / "state"
    await export_tree(backend, out)
    folder = out / "agents" / "main" / "sessions"
    assert (folder / cp["preCompaction"]["sessionFile"]).read_bytes() == before
    index = json.loads((folder / "sessions.json").read_bytes())
    assert index[KEY]["compactionCheckpoints"] == [cp]
    assert [p.name for p in folder.glob("sid-1.jsonl.reset.*")]


MIXED_FILE = (
    b'{"type":"session","version":3,"id":"sid-1","timestamp":"t","cwd":"/w"}\n'
    b'{"type":"message","id":"aaaa0001","parentId":null,"timestamp":"t",'
    b'"message":{"role":"user","content":"caf\xe9 \\u00e9 1E3"}}\n'
    b"not json \xff\x00 at all\n"
    b'{"type":"message","id":"aaaa0002","parentId":"aaaa0001","timestamp":"t",'
    b'"message":{"role":"assistant","content":[{"type":"text","text":"x","n":1.50}]}}'
)
"""A transcript as a gateway may leave it: a line that is not UTF-8, one that is not JSON
(with a NUL), a number spelling JSON.stringify changes, no final newline."""


async def _snapshot_and_branch(location: str | Path) -> tuple[bytes, bytes, list[bytes]]:
    """The snapshot file of MIXED_FILE before and after an append, and the branched
    transcript's lines after its header (its own id and time)."""
    store = await Store.open(location)
    try:
        await imported_session(store, MIXED_FILE)
        spec = CheckpointSpec(reason="manual", created_at=5)
        cp = (await store.checkpoints.persist(AGENT, KEY, spec)).checkpoint
        before = await store.checkpoints.snapshot_bytes(AGENT, KEY, cp["checkpointId"])
        await store.transcripts.append_message(AGENT, "sid-1", {"role": "user", "content": "y"})
        after = await store.checkpoints.snapshot_bytes(AGENT, KEY, cp["checkpointId"])
        branched = await store.checkpoints.branch(AGENT, KEY, cp["checkpointId"])
        lines = (await store.transcripts.file_bytes(AGENT, branched.session_id)).split(b"\n")
        return before, after, lines[1:]
    finally:
        await store.close()


async def test_snapshot_and_branch_bytes_are_equal_on_both_backends(
    pg_url: str, tmp_path: Path
) -> None:
    """Both backends in one test, since the point is comparing their bytes."""
    on_sqlite = await _snapshot_and_branch(tmp_path / "s.sqlite")
    on_postgresql = await _snapshot_and_branch(pg_url)
    assert on_sqlite[0] == on_sqlite[1] == MIXED_FILE
    assert on_postgresql == on_sqlite


async def test_two_stores_persisting_to_one_key_lose_no_checkpoint(pg_url: str) -> None:
    """PostgreSQL only: two writers (as two processes would) on one database."""
    first, second = await Store.open(pg_url), await Store.open(pg_url)
    try:
        await make_session(first)

        async def persist(store: Store, n: int) -> str:
            spec = CheckpointSpec(reason="manual", created_at=1000 + n)
            return str(
                (await store.checkpoints.persist(AGENT, KEY, spec)).checkpoint["checkpointId"]
            )

        made = await asyncio.gather(*(persist(first if n % 2 else second, n) for n in range(20)))
        listed = await second.checkpoints.list_checkpoints(AGENT, KEY)
        assert sorted(cp["checkpointId"] for cp in listed) == sorted(made)
        rows = await column(first, "SELECT checkpoint_id FROM checkpoint_snapshots")
        assert rows == set(made)
    finally:
        await first.close()
        await second.close()


NOT_UTF8_FILE = (
    b'{"type":"session","version":3,"id":"sid-1","timestamp":"t","cwd":"/w"}\n'
    b'{"type":"message","id":"aaaa0001","parentId":null,"timestamp":"t",'
    b'"message":{"role":"user","content":"caf\xe9 1E3"}}\n'
    b'{"type":"message","id":"aaaa0002","parentId":"aaaa0001","timestamp":"t",'
    b'"message":{"role":"assistant","content":"ok"}}\n'
)
"""An entry whose text holds a byte that is not UTF-8 (Latin-1 e9), then its child."""


@pytest.mark.parametrize("mode", ["branch", "restore"])
async def test_a_line_that_is_not_utf8_keeps_its_bytes_and_its_place_in_the_chain(
    backend: Store, mode: str
) -> None:
    await imported_session(backend, NOT_UTF8_FILE)
    cp = (await backend.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))).checkpoint
    fork = backend.checkpoints.branch if mode == "branch" else backend.checkpoints.restore
    result = await fork(AGENT, KEY, cp["checkpointId"])
    lines = (await backend.transcripts.file_bytes(AGENT, result.session_id)).split(b"\n")
    assert lines[1:] == NOT_UTF8_FILE.split(b"\n")[1:]
    path = await backend.transcripts.active_path(AGENT, result.session_id)
    assert [e.id for e in path] == ["aaaa0001", "aaaa0002"]

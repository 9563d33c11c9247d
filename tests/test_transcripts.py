"""Transcripts through `store.transcripts`: FORMATS.md §3, issue 3.

Bytes the store writes are compared with what Node's JSON.stringify gives for the object pi
would build (session-manager.ts), so field order and number spelling are both checked."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest

from store_sql import Store
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.transcripts.reads import Cursor

A = "main"
SID = "5fd1e58c-9635-410e-a644-133a96057c90"
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
HEX8 = re.compile(r"[0-9a-f]{8}")


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}], **extra}


def assistant(text: str, model: str = "claude-opus-4-5") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "provider": "anthropic",
        "model": model,
        "usage": {"input": 10, "output": 2, "cost": {"input": 0.000009, "total": 3.3e-8}},
        "stopReason": "stop",
        "timestamp": 1765233665292,
    }


async def lines(store: Store, target: str | int = SID) -> list[dict[str, Any]]:
    data = await store.transcripts.file_bytes(A, target)
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


@pytest.fixture
def store(backend: Store) -> Store:
    """Every test here runs on SQLite and on PostgreSQL (the conformance suite)."""
    return backend


@pytest.fixture
async def session(store: Store) -> Store:
    await store.transcripts.create(
        A, SID, cwd="/work/project", timestamp="2025-12-17T19:39:21.535Z"
    )
    return store


# --- create ----------------------------------------------------------------------------------


async def test_create_writes_the_header_json_stringify_writes(store: Store, js: Any) -> None:
    info = await store.transcripts.create(
        A, SID, cwd="/tmp/ü", timestamp="2025-12-17T19:39:21.535Z"
    )
    fork = await store.transcripts.create(A, "fork-1", cwd="/w", parent_session="/s/parent.jsonl")
    expected = js(
        "const h = (id, timestamp, cwd, parentSession) => JSON.stringify("
        "{type: 'session', version: 3, id, timestamp, cwd, parentSession});"
        "process.stdout.write(h(...input[0]) + '\\n' + h(...input[1]) + '\\n');",
        [
            [SID, "2025-12-17T19:39:21.535Z", "/tmp/ü", None],
            [
                "fork-1",
                fork_timestamp(await store.transcripts.file_bytes(A, "fork-1")),
                "/w",
                "/s/parent.jsonl",
            ],
        ],
    )
    # JSON.stringify drops an undefined parentSession, as pi's newSession does; null stays,
    # so the test passes undefined for the first header.
    expected = expected.replace(',"parentSession":null', "")
    got = await store.transcripts.file_bytes(A, SID) + await store.transcripts.file_bytes(
        A, "fork-1"
    )
    assert got.decode() == expected
    assert (info.version, info.kind, info.line_count, info.entry_count) == (3, "live", 1, 0)
    assert info.leaf_id is None
    assert info.leaf_pos is None
    assert fork.parent_session == "/s/parent.jsonl"
    assert info.file_name == f"{SID}.jsonl"


def fork_timestamp(data: bytes) -> str:
    timestamp = json.loads(data)["timestamp"]
    assert ISO_MS.fullmatch(timestamp)
    return str(timestamp)


async def test_a_session_has_one_live_transcript(session: Store) -> None:
    with pytest.raises(InvalidEntryError, match="already has a live transcript"):
        await session.transcripts.create(A, SID, cwd="/w")
    with pytest.raises(NotFoundError, match="no live transcript for session 'nope'"):
        await session.transcripts.append_message(A, "nope", user("hi"))
    assert await session.transcripts.find(A, "nope") is None


# --- append ----------------------------------------------------------------------------------


async def test_appends_chain_with_fresh_ids_and_ms_timestamps(session: Store) -> None:
    first = await session.transcripts.append_message(A, SID, user("one"))
    rest = await session.transcripts.append(
        A,
        SID,
        [
            {"type": "message", "message": assistant("two")},
            {"type": "message", "message": user("three")},
        ],
    )
    written = (await lines(session))[1:]
    ids = [e["id"] for e in written]
    assert ids == [first.id] + [r.id for r in rest]
    assert all(HEX8.fullmatch(i) for i in ids)
    assert len(set(ids)) == 3
    assert [e["parentId"] for e in written] == [None, ids[0], ids[1]]
    assert all(ISO_MS.fullmatch(e["timestamp"]) for e in written)
    assert [r.pos for r in (first, *rest)] == [1, 2, 3]
    assert not any(r.existed for r in (first, *rest))
    info = await session.transcripts.info(A, SID)
    assert (info.leaf_id, info.leaf_pos, info.entry_count, info.line_count) == (ids[2], 3, 3, 4)


async def test_appended_lines_are_what_json_stringify_writes(session: Store, js: Any) -> None:
    messages = [
        user('ünïcödé 🦞 \u2028 "quoted"\n', idempotencyKey="idem-1"),
        assistant("number spellings"),
        {
            "role": "toolResult",
            "toolCallId": "t1",
            "toolName": "read",
            "isError": False,
            "content": [{"type": "text", "text": "ok"}],
            "details": {"2": "b", "1": "a", "x": 1e21, "neg": -0.0, "f": 2.0},
        },
    ]
    appended = [await session.transcripts.append_message(A, SID, m) for m in messages]
    written = (await lines(session))[1:]
    shape = [
        {"id": a.id, "parentId": e["parentId"], "timestamp": e["timestamp"], "message": m}
        for a, e, m in zip(appended, written, messages, strict=True)
    ]
    expected = js(
        "for (const e of input) process.stdout.write(JSON.stringify({type: 'message', id: e.id,"
        " parentId: e.parentId, timestamp: e.timestamp, message: e.message}) + '\\n');",
        shape,
    )
    data = await session.transcripts.file_bytes(A, SID)
    assert data.split(b"\n", 1)[1].decode() == expected


async def test_convenience_appends_write_pi_field_order(session: Store) -> None:
    t = session.transcripts
    first = await t.append_message(A, SID, user("hi"))
    await t.append_model_change(A, SID, "anthropic", "claude-sonnet-4-5")
    await t.append_thinking_level_change(A, SID, "high")
    await t.append_compaction(A, SID, "summary", first.id, 1234, details={"files": ["a"]})
    await t.append_compaction(A, SID, "from hook", first.id, 99, from_hook=True)
    await t.append_custom(A, SID, "my-ext", {"state": 1})
    await t.append_custom(A, SID, "no-data")
    await t.append_custom_message(A, SID, "note", "visible text", True)
    await t.append_custom_message(A, SID, "note", [{"type": "text", "text": "x"}], False, {"d": 1})
    await t.append_label(A, SID, first.id, "bookmark")
    await t.append_label(A, SID, first.id, None)
    await t.append_session_info(A, SID, "  My session  ")
    branch = await t.append_branch_summary(A, SID, first.id, "abandoned path")
    root_branch = await t.append_branch_summary(A, SID, None, "from the root")
    # Each line equals the line pi's SessionManager appends for the same call
    # (tests/test_against_pi.py asks the real pi); here, where the tree fields go: custom
    # types put the payload first
    data = await session.transcripts.file_bytes(A, SID)
    custom_line = data.split(b"\n")[6].decode()
    assert re.fullmatch(
        r'\{"type":"custom","customType":"my-ext","data":\{"state":1\},"id":"[0-9a-f]{8}",'
        r'"parentId":"[0-9a-f]{8}","timestamp":"[^"]+"\}',
        custom_line,
    )
    assert (await t.entry(A, SID, branch.id)).parent_id == first.id
    assert (await t.entry(A, SID, root_branch.id)).parent_id is None


async def test_entries_get_their_tree_fields_from_the_store(session: Store) -> None:
    with pytest.raises(InvalidEntryError, match="'id' from the store"):
        await session.transcripts.append(A, SID, [{"type": "message", "id": "x", "message": {}}])
    with pytest.raises(InvalidEntryError, match="'parentId' from the store"):
        await session.transcripts.append(A, SID, [{"type": "message", "parentId": None}])
    with pytest.raises(InvalidEntryError, match="non-empty string 'type'"):
        await session.transcripts.append(A, SID, [{"message": user("typeless")}])
    assert (await session.transcripts.info(A, SID)).line_count == 1
    stamped = await session.transcripts.append(
        A, SID, [{"type": "custom", "customType": "x", "timestamp": "2020-01-01T00:00:00.000Z"}]
    )
    assert (
        await session.transcripts.entry(A, SID, stamped[0].id)
    ).timestamp == "2020-01-01T00:00:00.000Z"


async def test_an_explicit_parent_starts_a_branch(session: Store) -> None:
    a = await session.transcripts.append_message(A, SID, user("a"))
    b = await session.transcripts.append_message(A, SID, user("b"))
    c = await session.transcripts.append_message(A, SID, user("c"))
    d = (
        await session.transcripts.append(
            A, SID, [{"type": "message", "message": user("d")}], parent_id=a.id
        )
    )[0]
    e = await session.transcripts.append_message(A, SID, user("e"))  # child of the new leaf
    assert (await session.transcripts.entry(A, SID, d.id)).parent_id == a.id
    assert [x.id for x in await session.transcripts.active_path(A, SID)] == [a.id, d.id, e.id]
    assert [x.id for x in await session.transcripts.children(A, SID, a.id)] == [b.id, d.id]
    assert [x.id for x in await session.transcripts.active_path(A, SID, c.id)] == [a.id, b.id, c.id]
    assert (await session.transcripts.leaf(A, SID)).id == e.id  # type: ignore[union-attr]
    with pytest.raises(NotFoundError, match="has no entry 'ffffffff'"):
        await session.transcripts.append(A, SID, [{"type": "custom"}], parent_id="ffffffff")


async def test_a_none_parent_starts_a_new_root(session: Store) -> None:
    await session.transcripts.append_message(A, SID, user("a"))
    root = (
        await session.transcripts.append(
            A, SID, [{"type": "message", "message": user("r")}], parent_id=None
        )
    )[0]
    assert (await session.transcripts.entry(A, SID, root.id)).parent_id is None
    assert [x.id for x in await session.transcripts.active_path(A, SID)] == [root.id]
    assert len(await session.transcripts.tree(A, SID)) == 2


# --- idempotency -----------------------------------------------------------------------------


async def test_a_repeated_idempotency_key_writes_nothing(session: Store) -> None:
    first = await session.transcripts.append_message(A, SID, user("hi", idempotencyKey="k1"))
    before = await session.transcripts.file_bytes(A, SID)
    again = await session.transcripts.append_message(
        A, SID, user("hi (retry)", idempotencyKey="k1")
    )
    assert (again.id, again.pos, again.existed) == (first.id, first.pos, True)
    assert await session.transcripts.file_bytes(A, SID) == before
    assert (await session.transcripts.info(A, SID)).line_count == 2


async def test_a_repeated_key_within_one_append_is_written_once(session: Store) -> None:
    results = await session.transcripts.append(
        A,
        SID,
        [
            {"type": "message", "message": user("a", idempotencyKey="dup")},
            {"type": "message", "message": user("a again", idempotencyKey="dup")},
            {"type": "message", "message": user("b")},
        ],
    )
    assert [r.existed for r in results] == [False, True, False]
    assert results[1].id == results[0].id
    written = (await lines(session))[1:]
    assert [e["id"] for e in written] == [results[0].id, results[2].id]
    assert written[1]["parentId"] == results[0].id


async def test_concurrent_appends_with_one_key_write_one_entry(session: Store) -> None:
    results = await asyncio.gather(
        *(
            session.transcripts.append_message(A, SID, user(f"try {n}", idempotencyKey="same"))
            for n in range(20)
        )
    )
    assert len({r.id for r in results}) == 1
    assert sum(not r.existed for r in results) == 1
    assert (await session.transcripts.info(A, SID)).entry_count == 1


async def test_a_hundred_concurrent_appenders_form_one_chain(session: Store) -> None:
    results = await asyncio.gather(
        *(session.transcripts.append_message(A, SID, user(f"message {n}")) for n in range(100))
    )
    written = (await lines(session))[1:]
    assert len(written) == 100
    assert written[0]["parentId"] is None
    for earlier, later in itertools.pairwise(written):
        assert later["parentId"] == earlier["id"]
    assert sorted(r.pos for r in results) == list(range(1, 101))
    path = await session.transcripts.active_path(A, SID)
    assert len(path) == 100
    tree = await session.transcripts.tree(A, SID)
    assert len(tree) == 1
    node, depth = tree[0], 1
    while node.children:
        assert len(node.children) == 1, "two siblings were created by accident"
        node, depth = node.children[0], depth + 1
    assert depth == 100


# --- reads -----------------------------------------------------------------------------------


async def test_labels_tree_and_session_name(session: Store) -> None:
    t = session.transcripts
    a = await t.append_message(A, SID, user("a"))
    b = await t.append_message(A, SID, assistant("b"))
    await t.append_label(A, SID, a.id, "start")
    await t.append_label(A, SID, b.id, "answer")
    await t.append_label(A, SID, b.id, "")  # clears
    await t.append_label(A, SID, a.id, "beginning")  # last one wins
    assert await t.session_name(A, SID) is None
    await t.append_session_info(A, SID, "First")
    await t.append_session_info(A, SID, " Second ")
    assert await t.labels(A, SID) == {a.id: "beginning"}
    assert await t.session_name(A, SID) == "Second"
    tree = await t.tree(A, SID)
    assert [(n.id, n.label, n.role) for n in tree] == [(a.id, "beginning", "user")]
    assert tree[0].children[0].id == b.id
    assert tree[0].children[0].label is None


async def test_entry_lookup(session: Store) -> None:
    a = await session.transcripts.append_message(A, SID, user("a"))
    got = await session.transcripts.entry(A, SID, a.id)
    assert (got.id, got.pos, got.type, got.role, got.kind) == (a.id, 1, "message", "user", "entry")
    assert got.value()["message"] == user("a")
    with pytest.raises(NotFoundError):
        await session.transcripts.entry(A, SID, "00000000")


async def test_recent_is_bounded_by_count_and_bytes(session: Store) -> None:
    t = session.transcripts
    ids = [(await t.append_message(A, SID, user("x" * (10 * n)))).id for n in range(1, 11)]
    side = (
        await t.append(A, SID, [{"type": "message", "message": user("side")}], parent_id=ids[3])
    )[0]
    # the active path is now ids[0..3] + side
    assert [e.id for e in await t.recent(A, SID, limit=3)] == [ids[2], ids[3], side.id]
    await t.append(A, SID, [{"type": "custom", "customType": "c"}], parent_id=ids[9])
    recent = await t.recent(A, SID, limit=4)
    assert [e.id for e in recent[:3]] == ids[7:10]
    sizes = [len(e.raw) for e in recent]
    assert [e.id for e in await t.recent(A, SID, limit=10, max_bytes=sizes[-1] + sizes[-2])] == [
        e.id for e in recent[-2:]
    ]
    assert len(await t.recent(A, SID, limit=10, max_bytes=sizes[-1] + sizes[-2] - 1)) == 1
    assert [e.id for e in await t.recent(A, SID, limit=10, max_bytes=1)] == [recent[-1].id]
    only_messages = await t.recent(A, SID, limit=2, types=frozenset({"message"}))
    assert [e.id for e in only_messages] == ids[8:10]
    assert await t.recent(A, SID, limit=0) == []
    assert len(await t.recent(A, SID, limit=5000)) == 11


async def test_recent_walks_past_its_first_chunk(session: Store) -> None:
    entries = [
        {"type": "custom", "customType": "tick"}
        if n % 3 == 0
        else {"type": "message", "message": user(str(n))}
        for n in range(150)
    ]
    appended = await session.transcripts.append(A, SID, entries)
    customs = [a.id for a, e in zip(appended, entries, strict=True) if e["type"] == "custom"]
    got = await session.transcripts.recent(A, SID, limit=40, types=frozenset({"custom"}))
    assert [e.id for e in got] == customs[-40:]


async def test_page_before_and_after_a_position(session: Store) -> None:
    ids = [
        a.id
        for a in await session.transcripts.append(
            A, SID, [{"type": "message", "message": user(str(n))} for n in range(10)]
        )
    ]
    first = await session.transcripts.page(A, SID, limit=3)
    assert [e.pos for e in first] == [0, 1, 2]
    assert first[0].kind == "header"
    assert [e.id for e in await session.transcripts.page(A, SID, after_pos=2, limit=3)] == ids[2:5]
    assert [e.id for e in await session.transcripts.page(A, SID, before_pos=10, limit=3)] == ids[
        6:9
    ]
    assert await session.transcripts.page(A, SID, after_pos=10) == []


async def test_changes_since_a_cursor(session: Store) -> None:
    t = session.transcripts
    await t.append_message(A, SID, user("a"))
    start = await t.changes_since(A, SID, None)
    assert [e.pos for e in start.entries] == [0, 1]
    assert not start.replaced
    assert await t.changes_since(A, SID, start.cursor) == type(start)([], start.cursor, False)
    b = await t.append_message(A, SID, user("b"))
    later = await t.changes_since(A, SID, Cursor.decode(start.cursor.encode()))
    assert [e.id for e in later.entries] == [b.id]
    assert not later.replaced
    assert later.cursor.pos == b.pos
    limited = await t.changes_since(A, SID, None, limit=1)
    assert [e.pos for e in limited.entries] == [0]
    assert limited.cursor.pos == 0
    with pytest.raises(ValueError, match="not a transcript cursor"):
        Cursor.decode("1.2")


async def test_changes_since_reports_a_replaced_transcript_after_migrate(
    store: Store, load_transcript: Any
) -> None:
    v1 = (
        b'{"type":"session","id":"old","timestamp":"2025-01-01T00:00:00.000Z","cwd":"/"}\n'
        b'{"type":"message","timestamp":"2025-01-01T00:00:01.000Z","message":{"role":"user","content":"hi"}}\n'
    )
    await load_transcript(store, v1, session_id="old")
    before = await store.transcripts.changes_since(A, "old", None)
    migrated = await store.transcripts.migrate_to_v3(A, "old")
    after = await store.transcripts.changes_since(A, "old", before.cursor)
    assert after.replaced is True
    assert after.cursor.transcript_id == migrated.transcript_id != before.cursor.transcript_id
    assert [e.pos for e in after.entries] == [0, 1]
    assert json.loads(after.entries[1].raw)["parentId"] is None


async def test_counts_and_sizes(session: Store) -> None:
    t = session.transcripts
    await t.append_message(A, SID, user("a"))
    await t.append_message(A, SID, assistant("b"))
    await t.append_message(A, SID, user("c"))
    await t.append_custom(A, SID, "x")
    counts = await t.counts(A, SID)
    data = await t.file_bytes(A, SID)
    assert (counts.lines, counts.entries, counts.damaged) == (5, 4, 0)
    assert counts.bytes == len(data)
    assert counts.messages_by_role == {"user": 2, "assistant": 1}
    assert (await t.info(A, SID)).byte_size == len(data)


async def test_a_v1_transcript_refuses_appends_until_migrated(
    store: Store, load_transcript: Any
) -> None:
    v1 = (
        b'{"type":"session","id":"legacy","timestamp":"2025-01-01T00:00:00.000Z","cwd":"/"}\n'
        b'{"type":"message","timestamp":"2025-01-01T00:00:01.000Z","message":{"role":"user","content":"hi"}}\n'
    )
    tid = await load_transcript(store, v1, session_id="legacy")
    with pytest.raises(InvalidEntryError, match=r"v1 transcript .* migrate it to v3 first"):
        await store.transcripts.append_message(A, "legacy", user("more"))
    assert await store.transcripts.file_bytes(A, tid) == v1
    migrated = await store.transcripts.migrate_to_v3(A, "legacy")
    appended = await store.transcripts.append_message(A, "legacy", user("more"))
    assert (await store.transcripts.entry(A, "legacy", appended.id)).parent_id == migrated.leaf_id
    with pytest.raises(InvalidEntryError, match="superseded"):
        await store.transcripts.append_message(A, tid, user("into the old version"))


async def test_appending_to_a_file_without_a_final_newline_terminates_its_last_line(
    store: Store, load_transcript: Any
) -> None:
    data = (
        b'{"type":"session","version":3,"id":"nl","timestamp":"2025-01-01T00:00:00.000Z","cwd":"/"}\n'
        b'{"type":"message","id":"aaaaaaaa","parentId":null,"timestamp":"2025-01-01T00:00:01.000Z",'
        b'"message":{"role":"user","content":"torn?"}}'
    )
    tid = await load_transcript(store, data, session_id="nl")
    assert (await store.transcripts.counts(A, tid)).bytes == len(data)
    appended = await store.transcripts.append_message(A, "nl", user("next"))
    after = await store.transcripts.file_bytes(A, tid)
    assert after.startswith(data + b"\n")
    assert after.endswith(b"\n")
    assert after.count(b"\n") == 3
    assert (await store.transcripts.counts(A, tid)).bytes == len(after)
    assert (await store.transcripts.entry(A, tid, appended.id)).parent_id == "aaaaaaaa"


async def test_every_line_shape_comes_back_byte_for_byte(
    store: Store, load_transcript: Any
) -> None:
    # Invalid UTF-8, a NUL, an encoded lone surrogate, a BOM inside a line, a CR, blank
    # lines, no final newline: SQLite keeps the odd ones as BLOBs, PostgreSQL in line_bytes.
    lines = [
        b'{"type":"session","version":3,"id":"shapes","timestamp":"2025-01-01T00:00:00.000Z","cwd":"/"}',
        b'{"type":"message","id":"aaaaaaaa","parentId":null,"timestamp":"2025-01-01T00:00:01.000Z",'
        b'"message":{"role":"user","content":"caf\xc3\xa9 \\u0000 \\ud800"}}',
        b"\xff\xfe not UTF-8",
        b"a NUL \x00 inside",
        b'{"type":"message","id":"bbbbbbbb","parentId":"aaaaaaaa","message":{"content":"\xed\xa0\x80"}}',
        b"\xef\xbb\xbf{}",
        b"",
        b'{"type":"custom","id":"cccccccc","parentId":"aaaaaaaa","customType":"x"}\r',
        b"torn {",
    ]
    data = b"\n".join(lines)
    tid = await load_transcript(store, data, session_id="shapes")
    t = store.transcripts
    assert await t.file_bytes(A, tid) == data
    assert b"".join([c async for c in t.file_chunks(A, tid, chunk_lines=2)]) == data
    assert [e.raw for e in await t.page(A, tid, limit=100)] == lines
    assert (await t.counts(A, tid)).bytes == len(data)
    appended = await t.append_message(A, "shapes", user("after the torn line"))
    after = await t.file_bytes(A, tid)
    assert after.startswith(data + b"\n")
    assert after.endswith(b"\n")
    assert (await t.info(A, tid)).byte_size == len(after)
    assert (await t.entry(A, tid, appended.id)).parent_id == "cccccccc"


async def test_a_transcript_under_todays_tree_rules_reads_and_appends_alike(
    store: Store, load_transcript: Any
) -> None:
    # A leaf control moves the leaf back to a1 and a side append hangs off it: both
    # backends read it by transcripts/navigation.py's rules, and append at its append point.
    data = b"\n".join([
        b'{"type":"session","version":3,"id":"nav","timestamp":"2025-01-01T00:00:00.000Z","cwd":"/"}',
        b'{"type":"message","id":"a1","parentId":null,"timestamp":"2025-01-01T00:00:01.000Z",'
        b'"message":{"role":"user","content":"a"}}',
        b'{"type":"message","id":"a2","parentId":"a1","timestamp":"2025-01-01T00:00:02.000Z",'
        b'"message":{"role":"assistant","content":"b","provider":"p","model":"m"}}',
        b'{"type":"leaf","id":"l1","parentId":"a2","timestamp":"2025-01-01T00:00:03.000Z",'
        b'"targetId":"a1"}',
        b'{"type":"message","id":"a3","parentId":"a1","timestamp":"2025-01-01T00:00:04.000Z",'
        b'"appendMode":"side","message":{"role":"user","content":"side"}}',
    ]) + b"\n"  # fmt: skip
    await load_transcript(store, data, session_id="nav")
    t = store.transcripts
    assert [e.pos for e in await t.active_path(A, "nav")] == [1]
    assert [e.pos for e in await t.recent(A, "nav", limit=5)] == [1]
    assert (await t.context(A, "nav")).messages == [{"role": "user", "content": "a"}]
    appended = await t.append_message(A, "nav", {"role": "user", "content": "after"})
    assert (appended.parent_id, appended.pos) == ("a3", 5)
    assert [e.pos for e in await t.recent(A, "nav", limit=5)] == [1, 5]
    roots = await t.tree(A, "nav")
    assert [(r.pos, [c.pos for c in r.children]) for r in roots] == [(1, [2, 4, 5])]

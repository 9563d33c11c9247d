"""The model context (pi's buildSessionContext) and v1 -> v3 migration (pi's migrations).

Every case is also read by the real pi on the same file bytes (`pi_compare.differences`):
the context as JSON.stringify writes it (field order, `undefined` fields, number spelling),
the tree reads, and for v1/v2 files the migrated lines. Corpus files are imported line by
line (classify_line -> LineRow), as an importer does."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from pi_compare import differences
from pi_oracle import PiOracle

from store_sql import Store
from store_sql.formats import jsjson

A = "main"
SID = "ctx"
SHARED = Path(os.environ.get("STORE_SQL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CORPUS = SHARED / "corpus" / "openclaw" / "pi-mono"
HEX8 = re.compile(r"[0-9a-f]{8}")


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}], "timestamp": 1}


def assistant(
    text: str, provider: str = "anthropic", model: str = "claude-opus-4-5"
) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "provider": provider,
        "model": model,
        "usage": {"cost": {"total": 0.000009}},
    }


def texts(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        if m["role"] in ("compactionSummary", "branchSummary"):
            out.append(f"{m['role']}:{m['summary']}")
        elif m["role"] == "custom":
            out.append(f"custom:{m['content']}")
        else:
            out.append(m["content"][0]["text"])
    return out


async def context_matches_pi(
    store: Store, pi: PiOracle, target: str | int, leaf_id: str | None = None
) -> dict[str, Any]:
    """The store reads the transcript as pi does (its context at `leaf_id` too)."""
    tid = (await store.transcripts.info(A, target)).transcript_id
    leaf_ids = () if leaf_id is None else (leaf_id,)
    assert await differences(store, pi, A, tid, leaf_ids=leaf_ids, migrate=False) == []
    return (await store.transcripts.context(A, target, leaf_id)).as_dict()


@pytest.fixture
def store(backend: Store) -> Store:
    """Every test here runs on SQLite and on PostgreSQL (the conformance suite)."""
    return backend


@pytest.fixture
async def session(store: Store) -> Store:
    await store.transcripts.create(A, SID, cwd="/w", timestamp="2025-12-17T19:39:21.535Z")
    return store


# --- rules -----------------------------------------------------------------------------------


async def test_without_compaction_every_message_of_the_path_in_order(
    session: Store, pi: PiOracle
) -> None:
    t = session.transcripts
    await t.append_thinking_level_change(A, SID, "high")
    await t.append_message(A, SID, user("u1"))
    await t.append_message(A, SID, assistant("a1"))
    await t.append_custom(A, SID, "state", {"x": 1})  # not part of the context
    await t.append_custom_message(A, SID, "note", "injected", True)
    await t.append_custom_message(A, SID, "note", [{"type": "text", "text": "d"}], False, {"k": 1})
    await t.append_label(A, SID, (await t.leaf(A, SID)).id, "here")  # type: ignore[union-attr]
    await t.append_session_info(A, SID, "name")
    await t.append_message(A, SID, user("u2"))
    ctx = await context_matches_pi(session, pi, SID)
    assert texts(ctx["messages"]) == [
        "u1",
        "a1",
        "custom:injected",
        "custom:[{'type': 'text', 'text': 'd'}]",
        "u2",
    ]
    custom = ctx["messages"][2]
    assert list(custom) == ["role", "customType", "content", "display", "timestamp"]
    assert ctx["messages"][3]["details"] == {"k": 1}
    assert isinstance(custom["timestamp"], int)
    assert ctx["thinkingLevel"] == "high"
    assert ctx["model"] == {"provider": "anthropic", "modelId": "claude-opus-4-5"}


async def test_model_comes_from_the_last_model_change_or_assistant_message(
    session: Store, pi: PiOracle
) -> None:
    t = session.transcripts
    assert (await t.context(A, SID)).as_dict() == {
        "messages": [],
        "thinkingLevel": "off",
        "model": None,
    }
    await t.append_message(A, SID, user("u"))
    assert (await t.context(A, SID)).model is None
    await t.append_message(A, SID, assistant("a", "openai", "gpt-5"))
    await t.append_model_change(A, SID, "anthropic", "claude-sonnet-4-5")
    ctx = await context_matches_pi(session, pi, SID)
    assert ctx["model"] == {"provider": "anthropic", "modelId": "claude-sonnet-4-5"}
    await t.append_message(A, SID, assistant("b", "google", "gemini"))
    await t.append_thinking_level_change(A, SID, "low")
    await t.append_thinking_level_change(A, SID, "minimal")
    ctx = await context_matches_pi(session, pi, SID)
    assert ctx["model"] == {"provider": "google", "modelId": "gemini"}
    assert ctx["thinkingLevel"] == "minimal"


async def test_compaction_summary_first_then_kept_entries_then_the_rest(
    session: Store, pi: PiOracle
) -> None:
    t = session.transcripts
    ids = {}
    for name in ("u1", "a1", "u2", "a2", "u3"):
        message = user(name) if name[0] == "u" else assistant(name)
        ids[name] = (await t.append_message(A, SID, message)).id
    await t.append_compaction(A, SID, "first summary", ids["u2"], 1000)
    await t.append_message(A, SID, user("u4"))
    await t.append_branch_summary(A, SID, (await t.leaf(A, SID)).id, "came back")  # type: ignore[union-attr]
    await t.append_message(A, SID, assistant("a4"))
    ctx = await context_matches_pi(session, pi, SID)
    assert texts(ctx["messages"]) == [
        "compactionSummary:first summary",
        "u2",
        "a2",
        "u3",
        "u4",
        "branchSummary:came back",
        "a4",
    ]
    summary = ctx["messages"][0]
    assert list(summary) == ["role", "summary", "tokensBefore", "timestamp"]
    assert summary["tokensBefore"] == 1000

    # A second compaction wins; its kept entries may reach back past the first compaction.
    await t.append_compaction(A, SID, "second summary", ids["u3"], 2000)
    await t.append_message(A, SID, user("u5"))
    ctx = await context_matches_pi(session, pi, SID)
    assert texts(ctx["messages"]) == [
        "compactionSummary:second summary",
        "u3",
        "u4",
        "branchSummary:came back",
        "a4",
        "u5",
    ]


async def test_a_kept_entry_off_the_path_keeps_nothing_before_the_compaction(
    session: Store, pi: PiOracle
) -> None:
    t = session.transcripts
    u1 = await t.append_message(A, SID, user("u1"))
    side = await t.append_message(A, SID, user("side"))
    await t.append(A, SID, [{"type": "message", "message": user("main")}], parent_id=u1.id)
    await t.append_compaction(A, SID, "s", side.id, 5)
    await t.append_message(A, SID, user("after"))
    ctx = await context_matches_pi(session, pi, SID)
    assert texts(ctx["messages"]) == ["compactionSummary:s", "after"]


async def test_context_follows_the_active_branch_or_a_given_leaf(
    session: Store, pi: PiOracle
) -> None:
    t = session.transcripts
    root = await t.append_message(A, SID, user("root"))
    old = await t.append_message(A, SID, assistant("old branch"))
    await t.append_branch_summary(A, SID, root.id, "tried something")
    await t.append_message(A, SID, assistant("new branch"))
    ctx = await context_matches_pi(session, pi, SID)
    assert texts(ctx["messages"]) == ["root", "branchSummary:tried something", "new branch"]
    at_old = await context_matches_pi(session, pi, SID, old.id)
    assert texts(at_old["messages"]) == ["root", "old branch"]
    # an empty branch summary is not a message
    await t.append_branch_summary(A, SID, old.id, "")
    assert texts((await t.context(A, SID)).messages) == ["root", "old branch"]


# --- the real corpus ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def before_compaction() -> bytes:
    path = CORPUS / "before-compaction.jsonl"
    if not path.exists():
        pytest.skip(f"corpus file {path} is not available")
    return path.read_bytes()


@pytest.fixture(scope="module")
def large_session() -> bytes:
    path = CORPUS / "large-session.jsonl"
    if not path.exists():
        pytest.skip(f"corpus file {path} is not available")
    return path.read_bytes()


async def test_context_of_the_real_compacted_session(
    store: Store, pi: PiOracle, load_transcript: Any, before_compaction: bytes
) -> None:
    # read as pi reads it before the migration (pi migrates in memory) and after
    old_tid = await load_transcript(store, before_compaction, session_id="bc")
    ctx = await context_matches_pi(store, pi, old_tid)
    new = await store.transcripts.migrate_to_v3(A, "bc")
    assert await context_matches_pi(store, pi, new.transcript_id) == ctx
    assert len(ctx["messages"]) == 446
    source = [json.loads(line) for line in before_compaction.split(b"\n")[:-1]]
    compaction = source[628]
    assert compaction["firstKeptEntryIndex"] == 551
    summary = ctx["messages"][0]
    assert summary["role"] == "compactionSummary"
    assert summary["summary"] == compaction["summary"]
    assert summary["tokensBefore"] == 185014
    kept = [v["message"] for v in source[551:628] if v["type"] == "message"]
    after = [v["message"] for v in source[629:] if v["type"] == "message"]
    assert ctx["messages"][1:] == kept + after
    assert ctx["thinkingLevel"] == "off"  # the last thinking_level_change, line 1003
    last_assistant = next(
        v["message"]
        for v in reversed(source)
        if v["type"] == "message" and v["message"]["role"] == "assistant"
    )
    assert ctx["model"] == {
        "provider": last_assistant["provider"],
        "modelId": last_assistant["model"],
    }


# --- v1 -> v3 migration ----------------------------------------------------------------------


async def check_migration(
    store: Store, pi: PiOracle, load_transcript: Any, data: bytes, sid: str
) -> list[dict[str, Any]]:
    old_tid = await load_transcript(store, data, session_id=sid)
    before_path = await store.transcripts.active_path(A, sid)
    before = [e.id for e in before_path]
    before_context = (await store.transcripts.context(A, sid)).as_dict()
    # recent entries are the end of that path; entry() finds them by their derived ids
    recent = await store.transcripts.recent(A, sid, limit=5)
    assert [(e.pos, e.raw) for e in recent] == [(e.pos, e.raw) for e in before_path[-5:]]
    assert (await store.transcripts.entry(A, sid, before[-2])).raw == before_path[-2].raw
    # pi reads the v1 file the same way, and migrate_to_v3 writes the lines pi's rewrite
    # writes (`differences` migrates the transcript)
    assert await differences(store, pi, A, old_tid) == []
    new_tid = (await store.transcripts.info(A, sid)).transcript_id
    assert new_tid != old_tid
    migrated = await store.transcripts.file_bytes(A, new_tid)
    lines = [json.loads(line) for line in migrated.split(b"\n")[:-1]]
    header, entries = lines[0], lines[1:]

    # the original is kept, byte for byte, and superseded by the new version
    assert await store.transcripts.file_bytes(A, old_tid) == data
    old_info = await store.transcripts.info(A, old_tid)
    new_info = await store.transcripts.info(A, sid)
    assert old_info.superseded_by == new_tid == new_info.transcript_id
    assert (new_info.version, new_info.kind, new_info.file_name) == (3, "live", old_info.file_name)
    assert [
        i.transcript_id for i in await store.transcripts.list_transcripts(A, session_id=sid)
    ] == [old_tid, new_tid]
    assert new_info.leaf_id == entries[-1]["id"]
    assert new_info.byte_size == len(migrated)

    # the header gains version 3, at the end
    source_header = data.split(b"\n", 1)[0]
    assert migrated.split(b"\n", 1)[0] == source_header[:-1] + b',"version":3}'
    assert list(header)[-1] == "version"

    # ids: 8 hex, unique; parents: a chain in file order
    ids = [e["id"] for e in entries]
    assert all(HEX8.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert [e["parentId"] for e in entries] == [None, *ids[:-1]]
    path = await store.transcripts.active_path(A, sid)
    assert [e.id for e in path] == ids

    # reads show the same before and after the migration: the ids, the context
    assert ids == before
    assert (await store.transcripts.context(A, sid)).as_dict() == before_context
    return lines


async def test_migrating_the_large_v1_session(
    store: Store, pi: PiOracle, load_transcript: Any, large_session: bytes
) -> None:
    lines = await check_migration(store, pi, load_transcript, large_session, "large")
    source = [json.loads(line) for line in large_session.split(b"\n")[:-1]]
    assert len(lines) == len(source) == 1019
    for old, new in zip(source[1:], lines[1:], strict=True):
        assert list(new) == [*old, "id", "parentId"]


async def test_migrating_the_compacted_v1_session(
    store: Store, pi: PiOracle, load_transcript: Any, before_compaction: bytes
) -> None:
    lines = await check_migration(store, pi, load_transcript, before_compaction, "bc")
    for pos, first_kept in ((359, 293), (628, 551)):
        compaction = lines[pos]
        assert compaction["type"] == "compaction"
        assert "firstKeptEntryIndex" not in compaction
        assert compaction["firstKeptEntryId"] == lines[first_kept]["id"]
        assert list(compaction)[-3:] == ["id", "parentId", "firstKeptEntryId"]


async def test_migration_renames_hook_messages_and_keeps_damaged_lines(
    store: Store, pi: PiOracle, load_transcript: Any
) -> None:
    data = (
        b'{"type":"session","id":"v1","timestamp":"2025-01-01T00:00:00.000Z","cwd":"/"}\n'
        b'{"type":"message","timestamp":"2025-01-01T00:00:01.000Z","message":{"role":"hookMessage","content":"h","n":1.0}}\n'
        b'{"type":"message","message":{"role":"user"}}{"glued":true}\n'
        b"\n"
        b'{"type":"compaction","timestamp":"2025-01-01T00:00:02.000Z","summary":"s","firstKeptEntryIndex":0,"tokensBefore":1}\n'
        b'{"type":"compaction","timestamp":"2025-01-01T00:00:03.000Z","summary":"s","firstKeptEntryIndex":1,"tokensBefore":2}\n'
        b'{"type":"message","timestamp":"2025-01-01T00:00:04.000Z","message":{"role":"user","content":"last"}}'
    )  # no final newline either
    old_tid = await load_transcript(store, data, session_id="v1")
    # pi reads it (and rewrites it) the same way; the store keeps the damaged and blank
    # lines verbatim where pi drops them
    assert await differences(store, pi, A, old_tid) == []
    new_tid = (await store.transcripts.info(A, "v1")).transcript_id
    migrated = await store.transcripts.file_bytes(A, new_tid)
    raw = migrated.split(b"\n")
    assert raw[2] == b'{"type":"message","message":{"role":"user"}}{"glued":true}'  # verbatim
    assert raw[3] == b""
    assert not migrated.endswith(b"\n")
    values = [jsjson.loads(line) if n not in (2, 3) else None for n, line in enumerate(raw)]
    assert values[1]["message"]["role"] == "custom"
    # pi's rewrite is JSON.stringify of what it parsed: numbers in JavaScript's spelling
    assert jsjson.dumps(values[1]["message"]) == '{"role":"custom","content":"h","n":1}'
    assert "firstKeptEntryId" not in values[4]
    assert "firstKeptEntryIndex" not in values[4]
    assert values[5]["firstKeptEntryId"] == values[1]["id"]
    assert values[4]["parentId"] == values[1]["id"]  # the damaged line is no link in the chain
    counts = await store.transcripts.counts(A, new_tid)
    assert (counts.lines, counts.entries, counts.damaged) == (7, 4, 1)
    with pytest.raises(Exception, match="already a v3 transcript"):
        await store.transcripts.migrate_to_v3(A, "v1")
    with pytest.raises(Exception, match="superseded"):
        await store.transcripts.migrate_to_v3(A, old_tid)


async def test_absent_fields_stay_absent_as_javascript_drops_undefined(
    session: Store, pi: PiOracle
) -> None:
    # Entries written by older or third-party code can lack fields pi's types require; pi
    # copies them as `undefined`, which JSON.stringify leaves out (not null).
    t = session.transcripts
    await t.append(
        A,
        SID,
        [
            {"type": "model_change", "provider": "anthropic"},
            {"type": "custom_message", "customType": "c", "content": "no display, no details"},
            {"type": "branch_summary", "summary": "no fromId"},
            {"type": "message", "message": {"role": "user", "content": "u"}},
        ],
    )
    ctx = await context_matches_pi(session, pi, SID)
    assert ctx["model"] == {"provider": "anthropic"}
    assert list(ctx["messages"][0]) == ["role", "customType", "content", "timestamp"]
    assert list(ctx["messages"][1]) == ["role", "summary", "timestamp"]
    await t.append(A, SID, [{"type": "message", "message": {"role": "assistant", "model": "m"}}])
    assert (await context_matches_pi(session, pi, SID))["model"] == {"modelId": "m"}

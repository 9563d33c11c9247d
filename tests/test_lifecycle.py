"""Session life cycle: reset and delete archive the transcript with the gateway's names by
renaming a row (no copy); purging an agent removes all of it in short transactions."""

from __future__ import annotations

import re
from typing import Any

import pytest

from store_sql import Store
from store_sql.checkpoints.entries import CheckpointSpec
from store_sql.errors import NotFoundError
from store_sql.formats.state_dir import FileKind, classify_name

AGENT = "main"
KEY = "agent:main:telegram:direct:42"
STAMP = r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z"


async def make_session(
    store: Store, key: str = KEY, session_id: str = "sid-1", agent: str = AGENT, **fields: Any
) -> None:
    entry = {"sessionId": session_id, "updatedAt": 1000, "sessionFile": f"{session_id}.jsonl"}
    await store.sessions.put(agent, key, {**entry, **fields})
    if await store.transcripts.find(agent, session_id) is None:
        await store.transcripts.create(agent, session_id, cwd="/work")
        for n in range(3):
            message = {"role": "user", "content": f"m{n}"}
            await store.transcripts.append_message(agent, session_id, message)


async def test_reset_gives_a_new_session_id_and_start_time(backend: Store) -> None:
    store = backend
    await make_session(store)
    result = await store.lifecycle.reset(AGENT, KEY)
    entry = await store.sessions.get(AGENT, KEY)
    assert entry is not None
    assert entry["sessionId"] == result.session_id != "sid-1"
    assert entry["sessionStartedAt"] == entry["updatedAt"] > 1000
    assert entry["sessionFile"] == f"{result.session_id}.jsonl"


async def test_reset_keeps_user_settings_and_drops_run_state(backend: Store) -> None:
    store = backend
    await make_session(
        store,
        label="Mine",
        chatType="direct",
        thinkingLevel="high",
        deliveryContext={"channel": "telegram", "to": "42"},
        modelOverride="opus",
        providerOverride="anthropic",
        authProfileOverride="auto-profile",
        authProfileOverrideSource="auto",
        systemPromptReport={"big": "x"},
        contextTokens=200000,
        inputTokens=5,
        unknownFutureField=1,
    )
    entry = (await store.lifecycle.reset(AGENT, KEY)).entry
    assert list(entry) == [
        "sessionId", "sessionFile", "updatedAt", "sessionStartedAt", "systemSent",
        "abortedLastRun", "thinkingLevel", "providerOverride", "modelOverride",
        "modelOverrideSource", "chatType", "model", "modelProvider", "label", "deliveryContext",
        "inputTokens", "outputTokens", "totalTokens", "totalTokensFresh",
    ]  # fmt: skip
    assert entry["modelOverrideSource"] == "user"
    assert (entry["model"], entry["modelProvider"]) == ("opus", "anthropic")
    assert (entry["inputTokens"], entry["totalTokensFresh"]) == (0, True)


async def test_reset_can_carry_extra_fields_when_asked(backend: Store) -> None:
    store = backend
    await make_session(store, unknownFutureField={"a": 1})
    entry = (await store.lifecycle.reset(AGENT, KEY, keep_fields=["unknownFutureField"])).entry
    assert entry["unknownFutureField"] == {"a": 1}


async def test_reset_archives_the_old_transcript_by_renaming_it(backend: Store) -> None:
    store = backend
    await make_session(store)
    old = await store.transcripts.info(AGENT, "sid-1")
    result = await store.lifecycle.reset(AGENT, KEY)
    [name] = result.archived
    assert re.fullmatch(rf"sid-1\.jsonl\.reset\.{STAMP}", name)
    assert classify_name(name).kind is FileKind.RESET_ARCHIVE
    archived = await store.transcripts.info(AGENT, old.transcript_id)
    assert (archived.kind, archived.file_name) == ("reset", name)
    assert archived.archived_at == name.rsplit(".reset.", 1)[1]
    assert archived.line_count == old.line_count
    assert await store.transcripts.find(AGENT, "sid-1") is None


async def test_reset_starts_a_live_transcript_to_append_to(backend: Store) -> None:
    store = backend
    await make_session(store)
    result = await store.lifecycle.reset(AGENT, KEY)
    info = await store.transcripts.info(AGENT, result.session_id)
    assert (info.kind, info.line_count) == ("live", 1)
    header = (await store.transcripts.file_bytes(AGENT, result.session_id)).decode()
    assert '"cwd":"/work"' in header
    await store.transcripts.append_message(
        AGENT, result.session_id, {"role": "user", "content": "x"}
    )


async def test_reset_leaves_a_transcript_another_entry_still_uses(backend: Store) -> None:
    store = backend
    await make_session(store)
    await make_session(store, key="agent:main:alias")
    result = await store.lifecycle.reset(AGENT, KEY)
    assert result.archived == []
    assert (await store.transcripts.info(AGENT, "sid-1")).kind == "live"


async def test_reset_keeps_the_checkpoints_and_their_snapshots(backend: Store) -> None:
    store = backend
    await make_session(store)
    cp = (await store.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))).checkpoint
    before = await store.checkpoints.snapshot_bytes(AGENT, KEY, cp["checkpointId"])
    await store.lifecycle.reset(AGENT, KEY)
    assert await store.checkpoints.snapshot_bytes(AGENT, KEY, cp["checkpointId"]) == before


async def test_reset_of_a_missing_key_is_an_error(backend: Store) -> None:
    store = backend
    with pytest.raises(NotFoundError):
        await store.lifecycle.reset(AGENT, "agent:main:none")


async def test_delete_removes_the_entry_and_archives_as_deleted(backend: Store) -> None:
    store = backend
    await make_session(store)
    result = await store.lifecycle.delete(AGENT, KEY)
    assert result.deleted
    [name] = result.archived
    assert re.fullmatch(rf"sid-1\.jsonl\.deleted\.{STAMP}", name)
    assert classify_name(name).kind is FileKind.DELETED_ARCHIVE
    assert await store.sessions.get(AGENT, KEY) is None
    kinds = [t.kind for t in await store.transcripts.list_transcripts(AGENT)]
    assert kinds == ["deleted"]


async def test_delete_keeps_a_transcript_another_entry_uses(backend: Store) -> None:
    store = backend
    await make_session(store)
    await make_session(store, key="agent:main:alias")
    result = await store.lifecycle.delete(AGENT, KEY)
    assert (result.deleted, result.archived) == (True, [])
    assert (await store.transcripts.info(AGENT, "sid-1")).kind == "live"


async def test_delete_of_a_missing_key_reports_nothing_deleted(backend: Store) -> None:
    store = backend
    result = await store.lifecycle.delete(AGENT, "agent:main:none")
    assert (result.deleted, result.archived) == (False, [])


async def test_purge_removes_one_agent_entirely_in_chunks(store: Store) -> None:
    """SQLite only: it counts the SQLite writer's batches and reads the rows through sqlite3
    (tests/test_pg_lifecycle.py purges on both backends)."""
    await make_session(store)
    await store.checkpoints.persist(AGENT, KEY, CheckpointSpec(reason="manual"))
    await store.lifecycle.reset(AGENT, KEY)
    await make_session(store, agent="ops", session_id="ops-1", key="agent:ops:main")
    batches = store.metrics()["batches"]
    result = await store.lifecycle.purge_agent(AGENT, chunk_lines=2)
    assert (result.entries, result.transcripts, result.snapshots) == (1, 2, 1)
    assert result.lines == 5
    assert store.metrics()["batches"] - batches >= 4

    def remaining(conn: Any) -> list[tuple[str, int]]:
        tables = ("session_indexes", "session_entries", "transcripts", "checkpoint_snapshots")
        return [
            (t, conn.execute(f"SELECT count(*) FROM {t} WHERE agent_id = 'main'").fetchone()[0])
            for t in tables
        ]

    assert all(n == 0 for _, n in await store.read(remaining))
    assert (
        await store.read(lambda c: c.execute("SELECT count(*) FROM transcript_lines").fetchone()[0])
        == 4
    )
    assert await store.sessions.get("ops", "agent:ops:main") is not None

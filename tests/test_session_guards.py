"""Compare-and-swap writes, batches and turns of the Python API (store.sessions), on both
backends (`backend`)."""

from __future__ import annotations

import asyncio

import pytest

from store_sql import ConflictError, Expect, NotFoundError, SessionOp, Store
from store_sql.errors import InvalidEntryError

AGENT = "main"
KEY = "agent:main:main"


async def test_expect_guards_every_write(backend: Store) -> None:
    await backend.sessions.patch(AGENT, KEY, {"sessionId": "s1", "updatedAt": 5})
    with pytest.raises(ConflictError):
        await backend.sessions.patch(AGENT, KEY, {"a": 1}, expect=Expect(session_id="s2"))
    with pytest.raises(ConflictError):
        await backend.sessions.patch(AGENT, KEY, {"a": 1}, expect=Expect(updated_at=4))
    with pytest.raises(ConflictError):
        await backend.sessions.put(
            AGENT, KEY, {"sessionId": "x", "updatedAt": 1}, expect=Expect(exists=False)
        )
    with pytest.raises(ConflictError):
        await backend.sessions.touch(AGENT, KEY, 9, expect=Expect(version="0" * 16))
    with pytest.raises(ConflictError):
        await backend.sessions.delete(AGENT, KEY, expect=Expect(session_id="nope"))
    with pytest.raises(ConflictError):
        await backend.sessions.patch(
            AGENT, "agent:main:other", {"a": 1}, expect=Expect(exists=True)
        )
    assert await backend.sessions.get(AGENT, KEY) == {"sessionId": "s1", "updatedAt": 5}
    current = await backend.sessions.get_text(AGENT, KEY)
    assert current is not None
    entry = await backend.sessions.patch(
        AGENT, KEY, {"a": 1}, expect=Expect("s1", 5, current.version, True)
    )
    assert entry == {"sessionId": "s1", "updatedAt": 5, "a": 1}
    after = await backend.sessions.get_text(AGENT, KEY)
    assert after is not None
    assert after.version != current.version
    assert await backend.sessions.delete(AGENT, KEY, expect=Expect(session_id="s1"))


async def test_compare_and_swap_lets_exactly_one_of_racing_writers_win(backend: Store) -> None:
    await backend.sessions.patch(AGENT, KEY, {"sessionId": "s1", "updatedAt": 1})
    seen = await backend.sessions.get_text(AGENT, KEY)
    assert seen is not None

    async def bump(n: int) -> bool:
        try:
            await backend.sessions.patch(
                AGENT, KEY, {"winner": n}, expect=Expect(version=seen.version)
            )
        except ConflictError:
            return False
        return True

    outcomes = await asyncio.gather(*(bump(n) for n in range(20)))
    assert outcomes.count(True) == 1
    entry = await backend.sessions.get(AGENT, KEY)
    assert entry is not None
    assert entry["winner"] == outcomes.index(True)


async def test_batch_all_or_nothing(backend: Store) -> None:
    await backend.sessions.patch(AGENT, "a", {"sessionId": "a", "updatedAt": 1})
    ops = [
        SessionOp("patch", "a", {"label": "x"}),
        SessionOp("put", "b", {"sessionId": "b", "updatedAt": 2}),
        SessionOp("touch", "a", updated_at=7, expect=Expect(session_id="a")),
    ]
    results = await backend.sessions.batch(AGENT, ops)
    assert [r.key for r in results] == ["a", "b", "a"]
    assert await backend.sessions.get(AGENT, "a") == {
        "sessionId": "a",
        "updatedAt": 7,
        "label": "x",
    }
    failing = [
        SessionOp("delete", "b"),
        SessionOp("patch", "a", {"n": 1}, expect=Expect(updated_at=1)),
    ]
    with pytest.raises(ConflictError):
        await backend.sessions.batch(AGENT, failing)
    assert await backend.sessions.get(AGENT, "b") is not None
    with pytest.raises(InvalidEntryError):
        await backend.sessions.batch(AGENT, [SessionOp("patch", "c", {"label": "no ids"})])
    assert await backend.sessions.get(AGENT, "c") is None


async def test_turn_appends_and_updates_in_one_transaction(backend: Store) -> None:
    await backend.transcripts.create(AGENT, "s1", cwd="/w")
    await backend.sessions.patch(AGENT, KEY, {"sessionId": "s1", "updatedAt": 1})
    user = {"type": "message", "message": {"role": "user", "content": "hi", "idempotencyKey": "k1"}}
    reply = {"type": "message", "message": {"role": "assistant", "content": "hello"}}
    result = await backend.sessions.turn(
        AGENT, KEY, [user, reply], updated_at=50, fields={"model": "m"}, expect_session_id="s1"
    )
    assert result.session_id == "s1"
    assert [a.existed for a in result.appended] == [False, False]
    assert result.appended[1].parent_id == result.appended[0].id
    assert result.entry.value() == {"sessionId": "s1", "updatedAt": 50, "model": "m"}
    path = await backend.transcripts.active_path(AGENT, "s1")
    assert [e.id for e in path] == [a.id for a in result.appended]
    # a retry with the same idempotency key writes nothing new
    again = await backend.sessions.turn(AGENT, KEY, [user], updated_at=60)
    assert again.appended[0].existed
    assert again.appended[0].id == result.appended[0].id
    assert again.appended[0].parent_id == result.appended[0].parent_id
    # rebound key: nothing written, neither the lines nor the entry
    await backend.transcripts.create(AGENT, "s2", cwd="/w")
    await backend.sessions.patch(AGENT, KEY, {"sessionId": "s2"})
    with pytest.raises(ConflictError):
        await backend.sessions.turn(AGENT, KEY, [reply], updated_at=99, expect_session_id="s1")
    assert (await backend.transcripts.info(AGENT, "s1")).entry_count == 2
    assert (await backend.transcripts.info(AGENT, "s2")).entry_count == 0
    entry = await backend.sessions.get(AGENT, KEY)
    assert entry is not None
    assert entry["updatedAt"] == 60
    # a bad entry is refused before anything is queued
    with pytest.raises(InvalidEntryError):
        await backend.sessions.turn(AGENT, KEY, [{"no": "type"}])
    with pytest.raises(NotFoundError):
        await backend.sessions.turn(AGENT, "agent:main:missing", [reply])

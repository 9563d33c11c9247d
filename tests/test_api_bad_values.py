"""Arguments found by tests/test_api_fuzz.py that raised a driver error, OverflowError or a
bare ValueError instead of a StoreError, on both backends (`backend`): each now gets the
same StoreError on SQLite and PostgreSQL and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from store_sql import Store
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.search.terms import InvalidSearchError

A = "main"
MESSAGE = {"type": "message", "message": {"role": "user", "content": "hi"}}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": [value]}
    return value


@pytest.mark.parametrize("tid", [2**63, -(2**63) - 1, 10**30])
async def test_a_transcript_id_past_64_bits_names_no_transcript(backend: Store, tid: int) -> None:
    await backend.transcripts.create(A, "s1", cwd="/w")
    t = backend.transcripts
    with pytest.raises(NotFoundError, match="no transcript with id"):
        await t.info(A, tid)
    with pytest.raises(NotFoundError, match="no transcript with id"):
        await t.entry(A, tid, "e1")
    with pytest.raises(NotFoundError, match="no transcript with id"):
        await t.append(A, tid, [MESSAGE])
    with pytest.raises(NotFoundError, match="no transcript with id"):
        await t.append_session_info(A, tid, "name")
    assert (await t.info(A, "s1")).entry_count == 0


async def test_values_nested_too_deeply_to_write_are_invalid_entries(backend: Store) -> None:
    await backend.transcripts.create(A, "s1", cwd="/w")
    await backend.sessions.patch(A, "k1", {"sessionId": "s1", "updatedAt": 1})
    before = await backend.sessions.get_text(A, "k1")
    deep = nested(3000)
    with pytest.raises(InvalidEntryError, match="nested too deeply"):
        await backend.sessions.patch(A, "k1", {"x": deep})
    with pytest.raises(InvalidEntryError, match="nested too deeply"):
        await backend.sessions.put(A, "k1", {"sessionId": "s1", "updatedAt": 2, "x": deep})
    with pytest.raises(InvalidEntryError, match="nested too deeply"):
        await backend.transcripts.append(A, "s1", [{"type": "custom", "data": deep}])
    with pytest.raises(InvalidEntryError, match="nested too deeply"):
        await backend.sessions.turn(A, "k1", [{"type": "custom", "data": deep}], updated_at=3)
    assert await backend.sessions.get_text(A, "k1") == before
    assert await backend.transcripts.leaf(A, "s1") is None


@pytest.mark.parametrize("field", ["agent_id", "session", "role", "kinds"])
async def test_search_filters_holding_nul_are_refused(backend: Store, field: str) -> None:
    await backend.transcripts.create(A, "s1", cwd="/w")
    await backend.transcripts.append(A, "s1", [MESSAGE])
    value: Any = ["live\x00"] if field == "kinds" else "a\x00b"
    with pytest.raises(InvalidSearchError, match="holds a NUL character"):
        await backend.search.find("hi", **{field: value})


async def test_names_holding_a_lone_surrogate_find_nothing(backend: Store) -> None:
    """No database text holds a lone surrogate and no store writes a key, id or name
    holding one, so a call naming one finds nothing (NotFoundError), never the driver's
    UnicodeEncodeError or DataError, and changes nothing."""
    await backend.transcripts.create(A, "s1", cwd="/w")
    [first] = await backend.transcripts.append(A, "s1", [MESSAGE])
    await backend.sessions.patch(A, "k1", {"sessionId": "s1", "updatedAt": 1})
    before = await backend.transcripts.file_bytes(A, "s1")
    odd = "a\udfffb"
    s, t, c = backend.sessions, backend.transcripts, backend.checkpoints
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "session": lambda: s.get(A, odd),
        "session text": lambda: s.get_text(A, odd),
        "delete": lambda: s.delete(A, odd),
        "touch": lambda: s.touch(A, odd, 5),
        "checkpoints": lambda: c.list_checkpoints(A, odd),
        "branch": lambda: c.branch(A, odd, "c1"),
        "capture": lambda: c.capture(A, odd),
        "info": lambda: t.info(A, odd),
        "find": lambda: t.find(A, odd),
        "list": lambda: t.list_transcripts(A, session_id=odd),
        "entry": lambda: t.entry(A, "s1", odd),
        "children": lambda: t.children(A, "s1", odd),
        "path": lambda: t.active_path(A, "s1", odd),
        "context": lambda: t.context(A, "s1", odd),
        "recent": lambda: t.recent(A, odd),
        "changes": lambda: t.changes_since(A, odd, None),
        "append below": lambda: t.append(A, "s1", [MESSAGE], parent_id=odd),
        "append to": lambda: t.append(A, odd, [MESSAGE]),
        "turn below": lambda: s.turn(A, "k1", [MESSAGE], parent_id=odd, updated_at=2),
    }
    answers = {}
    for name, call in calls.items():
        try:
            answers[name] = await call()
        except NotFoundError:
            answers[name] = NotFoundError
    assert answers == dict.fromkeys(calls, NotFoundError)
    # A filter holding one matches nothing, as one holding NUL does on PostgreSQL.
    assert await s.list_entries(A, label=odd) == []
    assert await s.count_entries(A, channel=odd, chat_type="a\x00b") == 0
    assert await s.count_entries(A, chat_type=odd, channel="a\x00b") == 0
    assert await backend.transcripts.file_bytes(A, "s1") == before
    assert (await backend.transcripts.leaf(A, "s1")).id == first.id  # type: ignore[union-attr]
    assert (await s.get(A, "k1")) == {"sessionId": "s1", "updatedAt": 1}
    [second] = await t.append(A, "s1", [MESSAGE])  # the writer goes on
    assert second.parent_id == first.id


@pytest.mark.parametrize("indexed", [False, True])
async def test_search_reads_entries_holding_a_lone_surrogate(backend: Store, indexed: bool) -> None:
    """SQLite's JSON functions give such a text as bytes that are not UTF-8: the search
    reads it with U+FFFD in the surrogate's place (found before and after the indexer ran).
    PostgreSQL's JSON cannot hold the entry's escaped surrogate, so its text is not
    searchable there (docs/GUARANTEES.md, "Differences")."""
    await backend.transcripts.create(A, "s1", cwd="/w")
    odd = {"type": "message", "message": {"role": "user", "content": "abc\ud800 tail"}}
    [appended, _] = await backend.transcripts.append(A, "s1", [odd, MESSAGE])
    if indexed:
        await backend.search.catch_up()
    found = await backend.search.find("abc")
    if backend.dialect == "postgresql":
        assert found.hits == []
    else:
        [hit] = found.hits
        assert hit.entry_id == appended.id

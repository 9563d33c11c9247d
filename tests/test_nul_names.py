"""Keys, ids and names holding NUL (U+0000), on both backends (`backend`).

SQLite text holds NUL; PostgreSQL text cannot. No store accepts such a session id or a
PostgreSQL session key, so a lookup by one finds nothing: each call below answers what
SQLite answers (the transcript, entry or checkpoint is not found, the entry is absent),
never a driver error, and leaves what is stored untouched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from store_sql import Store
from store_sql.errors import NotFoundError

A = "main"
MESSAGE = {"type": "message", "message": {"role": "user", "content": "hi"}}


async def outcome(call: Callable[[], Awaitable[Any]]) -> object:
    """What a call answered: its value, or the kind of error it raised."""
    try:
        return await call()
    except NotFoundError:
        return NotFoundError


async def test_lookups_by_names_holding_nul_find_nothing(backend: Store) -> None:
    await backend.transcripts.create(A, "s1", cwd="/w")
    [first] = await backend.transcripts.append(A, "s1", [MESSAGE])
    await backend.sessions.patch(A, "k", {"sessionId": "s1", "updatedAt": 1})
    before = await backend.transcripts.file_bytes(A, "s1")
    t = backend.transcripts
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "info": lambda: t.info(A, "s\x00"),
        "find": lambda: t.find(A, "s\x00"),
        "list": lambda: t.list_transcripts(A, session_id="s\x00"),
        "recent": lambda: t.recent(A, "s\x00"),
        "entry": lambda: t.entry(A, "s1", "e\x00"),
        "children": lambda: t.children(A, "s1", "e\x00"),
        "path": lambda: t.active_path(A, "s1", "e\x00"),
        "append to a session": lambda: t.append(A, "s\x00", [MESSAGE]),
        "append below an entry": lambda: t.append(A, "s1", [MESSAGE], parent_id="e\x00"),
        "session": lambda: backend.sessions.get(A, "k\x00"),
        "checkpoints": lambda: backend.checkpoints.list_checkpoints(A, "k\x00"),
        "checkpoint": lambda: backend.checkpoints.get(A, "k", "c\x00"),
    }
    answers = {name: await outcome(call) for name, call in calls.items()}
    assert answers == {
        "info": NotFoundError,
        "find": None,
        "list": [],
        "recent": NotFoundError,
        "entry": NotFoundError,
        "children": NotFoundError,
        "path": NotFoundError,
        "append to a session": NotFoundError,
        "append below an entry": NotFoundError,
        "session": None,
        "checkpoints": NotFoundError,
        "checkpoint": NotFoundError,
    }
    assert await backend.transcripts.file_bytes(A, "s1") == before
    assert (await backend.transcripts.leaf(A, "s1")).id == first.id  # type: ignore[union-attr]


@pytest.mark.parametrize("key", ["k\x00", "\x00"])
async def test_a_missing_session_key_holding_nul_is_not_deleted(backend: Store, key: str) -> None:
    assert await backend.sessions.delete(A, key) is False

"""Arguments found by tests/test_api_fuzz.py that raised a driver error, OverflowError or a
bare ValueError instead of a StoreError, on both backends (`backend`): each now gets the
same StoreError on SQLite and PostgreSQL and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from store_sql import Store
from store_sql.errors import InvalidEntryError, NotFoundError

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

"""The session index API (`store.sessions`): FORMATS.md §2 and §5, issue 2.

Entries are checked through the API and through `render_json`, the bytes export writes for
sessions.json; Node applying the same operations is the oracle for those bytes. Every test
runs on SQLite and on PostgreSQL (the `backend` fixture): the same assertions, the same
bytes."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from store_sql import Store
from store_sql.errors import DamagedIndexError, InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.formats.sessions_json import parse_index
from store_sql.sessions import pg_rows
from store_sql.sessions import rows as sessions
from store_sql.sessions.rows import ListFilter

A = "main"


def entry(session_id: str, updated_at: int, **fields: Any) -> dict[str, Any]:
    return {"sessionId": session_id, "updatedAt": updated_at, **fields}


async def rendered(backend: Store, agent: str = A) -> dict[str, Any]:
    data = await backend.sessions.render_json(agent)
    assert data is not None
    return json.loads(data)


async def import_index(backend: Store, agent: str, data: bytes) -> None:
    """Store a sessions.json the way an importer does: its exact entry texts and positions."""
    parsed = parse_index(data)
    found = [(e.key, e.position, e.text, e.value, e.problem) for e in parsed.entries]
    if backend.dialect == "postgresql":

        async def run_pg(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO session_indexes (agent_id, rel_dir, source_bytes, source_state) "
                "VALUES ($1, $2, $3, 'imported')",
                agent,
                sessions.default_rel_dir(agent),
                data,
            )
            await pg_rows.insert_imported_entries(conn, agent, found)

        await backend.postgres.write(run_pg)
        return

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO session_indexes (agent_id, rel_dir, source_bytes, source_state) "
            "VALUES (?, ?, ?, 'imported')",
            (agent, sessions.default_rel_dir(agent), data),
        )
        sessions.insert_imported_entries(conn, agent, found)

    await backend.write(run)


async def index_revision(backend: Store) -> int:
    if backend.dialect == "postgresql":
        value = await backend.postgres.read(
            lambda c: c.fetchval("SELECT revision FROM session_indexes")
        )
        return int(value)
    return int(
        await backend.read(
            lambda c: c.execute("SELECT revision FROM session_indexes").fetchone()[0]
        )
    )


async def delete_entries(backend: Store, agent: str, keys: list[str]) -> int:
    if backend.dialect == "postgresql":
        return await backend.postgres.write(lambda c: pg_rows.delete_entries(c, agent, keys))
    return await backend.write(lambda c: sessions.delete_entries(c, agent, keys))


# --- get / list / count ----------------------------------------------------------------------


async def seed_listing(backend: Store) -> None:
    await backend.sessions.patch(
        A, "agent:main:a", entry("sa", 100, label="x", chatType="direct", channel="telegram")
    )
    await backend.sessions.patch(
        A,
        "agent:main:b",
        entry("sb", 300, chatType="group", deliveryContext={"channel": "discord", "to": "c1"}),
    )
    await backend.sessions.patch(A, "agent:main:c", entry("sc", 200, label="x"))
    await backend.sessions.patch(A, "agent:main:d", entry("sd", 300, label="y"))
    await backend.sessions.patch("ops", "agent:ops:main", entry("so", 999))


async def test_get_returns_the_entry_or_none(backend: Store) -> None:
    await seed_listing(backend)
    got = await backend.sessions.get(A, "agent:main:b")
    assert got == entry(
        "sb", 300, chatType="group", deliveryContext={"channel": "discord", "to": "c1"}
    )
    assert list(got) == ["sessionId", "updatedAt", "chatType", "deliveryContext"]
    assert await backend.sessions.get(A, "agent:main:nope") is None
    assert await backend.sessions.get("ops", "agent:main:a") is None


async def test_list_is_newest_first_with_ties_in_index_order(backend: Store) -> None:
    await seed_listing(backend)
    rows = await backend.sessions.list_entries(A)
    assert [r.key for r in rows] == ["agent:main:b", "agent:main:d", "agent:main:c", "agent:main:a"]
    first = rows[0]
    assert (first.session_id, first.updated_at, first.chat_type, first.channel) == (
        "sb",
        300,
        "group",
        "discord",
    )
    assert first.entry_bytes == len(sessions.entry_text(await backend.sessions.get(A, first.key)))


async def test_list_pages_with_limit_and_offset(backend: Store) -> None:
    await seed_listing(backend)
    keys = [r.key for r in await backend.sessions.list_entries(A)]
    assert [r.key for r in await backend.sessions.list_entries(A, limit=2)] == keys[:2]
    assert [r.key for r in await backend.sessions.list_entries(A, limit=2, offset=2)] == keys[2:]
    assert [r.key for r in await backend.sessions.list_entries(A, offset=3)] == keys[3:]
    assert await backend.sessions.list_entries(A, limit=5, offset=10) == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"updated_after": 100}, ["agent:main:b", "agent:main:d", "agent:main:c"]),
        ({"updated_before": 300}, ["agent:main:c", "agent:main:a"]),
        ({"updated_after": 100, "updated_before": 300}, ["agent:main:c"]),
        ({"label": "x"}, ["agent:main:c", "agent:main:a"]),
        ({"chat_type": "group"}, ["agent:main:b"]),
        ({"channel": "telegram"}, ["agent:main:a"]),
        ({"channel": "discord"}, ["agent:main:b"]),  # from deliveryContext.channel
        ({"label": "x", "updated_after": 150}, ["agent:main:c"]),
        ({"label": "nobody"}, []),
    ],
)
async def test_each_filter_and_the_count_agree(
    backend: Store, filters: dict[str, Any], expected: list[str]
) -> None:
    await seed_listing(backend)
    assert [r.key for r in await backend.sessions.list_entries(A, **filters)] == expected
    assert await backend.sessions.count_entries(A, **filters) == len(expected)


async def test_count_and_agents(backend: Store) -> None:
    await seed_listing(backend)
    assert await backend.sessions.count_entries(A) == 4
    assert await backend.sessions.count_entries("ops") == 1
    assert await backend.sessions.agents() == ["main", "ops"]


async def test_listing_never_reads_entry_json(backend: Store) -> None:
    if backend.dialect == "postgresql":
        pytest.skip("SQLite's authorizer proves it; PostgreSQL: test_pg_sessions.py")
    await seed_listing(backend)
    conn = sqlite3.connect(f"file:{backend.path}?mode=ro", uri=True)
    read_columns: set[str] = set()

    def authorizer(action: int, table: str | None, column: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and table == "session_entries":
            read_columns.add(str(column))
            if column == "entry_json":
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorizer)
    try:
        rows = sessions.list_entries(conn, A, ListFilter(label="x"), 10, 0)
        assert len(rows) == 2
        assert sessions.count_entries(conn, A, ListFilter()) == 4
    finally:
        conn.close()
    assert "entry_json" not in read_columns
    assert {"session_key", "updated_at"} <= read_columns


# --- patch -----------------------------------------------------------------------------------


async def test_patch_merges_keeping_order_and_appending_new_keys(backend: Store) -> None:
    await backend.sessions.patch(A, "k", entry("s", 1, model="m1", label="old", extra={"a": 1}))
    result = await backend.sessions.patch(A, "k", {"label": "new", "updatedAt": 2, "fresh": True})
    assert list(result.items()) == [
        ("sessionId", "s"),
        ("updatedAt", 2),
        ("model", "m1"),
        ("label", "new"),
        ("extra", {"a": 1}),
        ("fresh", True),
    ]
    assert await backend.sessions.get(A, "k") == result


async def test_patch_none_removes_a_field_and_readding_puts_it_last(backend: Store) -> None:
    await backend.sessions.patch(A, "k", entry("s", 1, model="m1", label="l"))
    assert list(await backend.sessions.patch(A, "k", {"model": None, "ghost": None})) == [
        "sessionId",
        "updatedAt",
        "label",
    ]
    assert list(await backend.sessions.patch(A, "k", {"model": "m2"})) == [
        "sessionId",
        "updatedAt",
        "label",
        "model",
    ]


async def test_patch_creates_a_missing_entry(backend: Store) -> None:
    created = await backend.sessions.patch(A, "agent:main:new", entry("s", 5, label="l"))
    assert created == entry("s", 5, label="l")
    assert await backend.sessions.get(A, "agent:main:new") == created


@pytest.mark.parametrize(
    ("patch", "problem"),
    [
        ({"label": "x"}, "missing sessionId; missing updatedAt"),
        ({"sessionId": "s"}, "missing updatedAt"),
        ({"updatedAt": 1}, "missing sessionId"),
        ({"sessionId": 7, "updatedAt": 1}, "sessionId is not a string"),
        ({"sessionId": "s", "updatedAt": "1"}, "updatedAt is not a number"),
        ({"sessionId": "", "updatedAt": 1}, "sessionId is empty"),
    ],
)
async def test_patch_creating_an_entry_requires_session_id_and_updated_at(
    backend: Store, patch: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidEntryError) as raised:
        await backend.sessions.patch(A, "agent:main:x", patch)
    assert str(raised.value) == f"session 'agent:main:x' of agent 'main': {problem}"
    assert await backend.sessions.get(A, "agent:main:x") is None


async def test_patch_cannot_remove_a_required_field(backend: Store) -> None:
    await backend.sessions.patch(A, "k", entry("s", 1))
    with pytest.raises(InvalidEntryError, match="missing sessionId"):
        await backend.sessions.patch(A, "k", {"sessionId": None})
    assert await backend.sessions.get(A, "k") == entry("s", 1)


async def test_bad_agent_ids_keys_and_patches_are_refused(backend: Store) -> None:
    with pytest.raises(InvalidEntryError, match="invalid agent id 'Main'"):
        await backend.sessions.patch("Main", "k", entry("s", 1))
    with pytest.raises(InvalidEntryError, match=r"invalid agent id '\.\./x'"):
        await backend.sessions.get("../x", "k")
    with pytest.raises(InvalidEntryError, match="invalid session key ''"):
        await backend.sessions.patch(A, "", entry("s", 1))
    with pytest.raises(InvalidEntryError, match="a patch must be a JSON object"):
        await backend.sessions.patch(A, "k", [("sessionId", "s")])  # type: ignore[arg-type]


# --- put / update / delete -------------------------------------------------------------------


async def test_put_replaces_the_whole_entry_in_its_place(backend: Store) -> None:
    await backend.sessions.patch(A, "first", entry("s1", 1, label="gone"))
    await backend.sessions.patch(A, "second", entry("s2", 2))
    await backend.sessions.put(A, "first", {"updatedAt": 3, "sessionId": "s1b"})
    assert await backend.sessions.get(A, "first") == {"updatedAt": 3, "sessionId": "s1b"}
    assert list(await rendered(backend)) == ["first", "second"]
    with pytest.raises(InvalidEntryError, match="missing updatedAt"):
        await backend.sessions.put(A, "first", {"sessionId": "s"})


async def test_update_is_an_atomic_read_modify_write(backend: Store) -> None:
    await backend.sessions.patch(A, "k", entry("s", 1, turns=0))

    def bump(current: dict[str, Any] | None) -> dict[str, Any]:
        assert current is not None
        return {**current, "turns": current["turns"] + 1}

    await asyncio.gather(*(backend.sessions.update(A, "k", bump) for _ in range(100)))
    assert (await backend.sessions.get(A, "k"))["turns"] == 100  # type: ignore[index]


async def test_update_creates_and_none_means_unchanged(backend: Store) -> None:
    created = await backend.sessions.update(
        A, "k", lambda cur: entry("s", 1) if cur is None else None
    )
    assert created == entry("s", 1)
    before = await backend.sessions.render_json(A)
    revision = await index_revision(backend)
    assert await backend.sessions.update(A, "k", lambda cur: None) == entry("s", 1)
    assert await backend.sessions.update(A, "missing", lambda cur: None) is None
    assert await backend.sessions.render_json(A) == before
    assert await index_revision(backend) == revision
    assert await backend.sessions.get(A, "missing") is None


async def test_a_raising_mutator_changes_nothing(backend: Store) -> None:
    await backend.sessions.patch(A, "k", entry("s", 1))

    def half_then_fail(current: dict[str, Any] | None) -> dict[str, Any]:
        raise RuntimeError("mutator gave up")

    with pytest.raises(RuntimeError, match="mutator gave up"):
        await backend.sessions.update(A, "k", half_then_fail)
    with pytest.raises(InvalidEntryError, match="must return a dict or None"):
        await backend.sessions.update(A, "k", lambda cur: ["not", "a", "dict"])  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidEntryError, match="missing updatedAt"):
        await backend.sessions.update(A, "k", lambda cur: {"sessionId": "s"})
    assert await backend.sessions.get(A, "k") == entry("s", 1)


async def test_delete(backend: Store) -> None:
    await backend.sessions.patch(A, "k", entry("s", 1))
    assert await backend.sessions.delete(A, "k") is True
    assert await backend.sessions.delete(A, "k") is False
    assert await backend.sessions.get(A, "k") is None


async def test_delete_entries_removes_just_the_named_keys_of_that_agent(backend: Store) -> None:
    for key in ("a", "b", "c"):
        await backend.sessions.patch(A, key, entry(key, 1))
    await backend.sessions.patch("other", "a", entry("x", 1))
    removed = await delete_entries(backend, A, ["a", "c", "gone"])
    assert removed == 2
    assert [s.key for s in await backend.sessions.list_entries(A)] == ["b"]
    assert await backend.sessions.get("other", "a") is not None
    assert await delete_entries(backend, A, []) == 0


async def test_an_index_emptied_by_deletes_renders_as_two_bytes(backend: Store) -> None:
    assert await backend.sessions.render_json(A) is None  # no index at all
    await backend.sessions.patch(A, "a", entry("s", 1))
    await backend.sessions.patch(A, "b", entry("t", 2))
    await backend.sessions.delete(A, "a")
    await backend.sessions.delete(A, "b")
    assert await backend.sessions.render_json(A) == b"{}"


async def test_a_deleted_then_recreated_key_goes_last(backend: Store) -> None:
    for key in ("a", "b", "c"):
        await backend.sessions.patch(A, key, entry(key, 1))
    await backend.sessions.delete(A, "a")
    await backend.sessions.patch(A, "a", entry("a2", 2))
    assert list(await rendered(backend)) == ["b", "c", "a"]


# --- touch (the updatedAt fast path) ---------------------------------------------------------


TOUCH_CASES = [
    entry("s", 1),
    entry("s", 1, label="l", origin={"updatedAt": 5, "nested": {"updatedAt": 6}}),
    {"label": "first", "updatedAt": 1.5, "sessionId": "s"},
    {"sessionId": "s", "updatedAt": 1e21, "ratio": 0.000009},
    entry("s", -3, note='"updatedAt": 9 inside a string\u2028'),
]


@pytest.mark.parametrize("value", TOUCH_CASES)
async def test_touch_gives_exactly_what_a_full_patch_gives(
    backend: Store, value: dict[str, Any]
) -> None:
    await backend.sessions.patch("touched", "k", value)
    await backend.sessions.patch("patched", "k", value)
    await backend.sessions.touch("touched", "k", 1767225600123)
    await backend.sessions.patch("patched", "k", {"updatedAt": 1767225600123})
    assert await backend.sessions.get("touched", "k") == await backend.sessions.get("patched", "k")
    assert await backend.sessions.render_json("touched") == await backend.sessions.render_json(
        "patched"
    )
    touched = await backend.sessions.list_entries("touched")
    patched = await backend.sessions.list_entries("patched")
    assert touched == patched


async def test_touch_of_an_imported_entry_matches_a_patch_too(backend: Store) -> None:
    text = b'{\n  "k": {\n    "updatedAt": 1,\n    "sessionId": "s",\n    "n": 1.0\n  }\n}'
    await import_index(backend, "touched", text)
    await import_index(backend, "patched", text)
    await backend.sessions.touch("touched", "k", 2)
    await backend.sessions.patch("patched", "k", {"updatedAt": 2})
    assert await backend.sessions.render_json("touched") == await backend.sessions.render_json(
        "patched"
    )
    assert await backend.sessions.render_json("touched") == text.replace(b": 1,", b": 2,")


async def test_touch_of_an_invalid_imported_entry_fails_like_a_patch(backend: Store) -> None:
    text = b'{\n  "k": {\n    "updatedAt": 1\n  }\n}'  # imported with a problem: no sessionId
    await import_index(backend, A, text)
    with pytest.raises(InvalidEntryError, match="missing sessionId"):
        await backend.sessions.patch(A, "k", {"updatedAt": 2})
    with pytest.raises(InvalidEntryError, match="missing sessionId"):
        await backend.sessions.touch(A, "k", 2)
    assert await backend.sessions.render_json(A) == text


async def test_touch_of_a_missing_entry_or_with_a_non_integer_fails(backend: Store) -> None:
    with pytest.raises(NotFoundError, match="no session 'k'"):
        await backend.sessions.touch(A, "k", 1)
    await backend.sessions.patch(A, "k", entry("s", 1))
    with pytest.raises(InvalidEntryError, match="must be an integer"):
        await backend.sessions.touch(A, "k", 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidEntryError, match="must be an integer"):
        await backend.sessions.touch(A, "k", True)


# --- JavaScript key order and odd keys -------------------------------------------------------


async def test_integer_like_keys_render_first_ascending(backend: Store) -> None:
    for key in ("agent:main:z", "42", "global", "7", "007", "-1", "4294967295", "4294967294"):
        await backend.sessions.patch(A, key, entry(key, 1))
    data = await backend.sessions.render_json(A)
    assert data is not None
    keys = [line.split(b'"')[1].decode() for line in data.split(b"\n") if line.startswith(b'  "')]
    assert keys == ["7", "42", "4294967294", "agent:main:z", "global", "007", "-1", "4294967295"]


async def test_proto_and_constructor_keys_round_trip(backend: Store) -> None:
    odd = entry("s", 1, __proto__={"polluted": True}, constructor="c", prototype=None)
    await backend.sessions.patch(A, "__proto__", {k: v for k, v in odd.items() if v is not None})
    await backend.sessions.patch(A, "constructor", entry("t", 2))
    await backend.sessions.patch(A, "__proto__", {"label": "still own"})
    got = await backend.sessions.get(A, "__proto__")
    assert got == {
        "sessionId": "s",
        "updatedAt": 1,
        "__proto__": {"polluted": True},
        "constructor": "c",
        "label": "still own",
    }
    data = await backend.sessions.render_json(A)
    assert data is not None
    assert data.startswith(b'{\n  "__proto__": {\n    "sessionId": "s",')
    assert b'\n  "constructor": {\n    "sessionId": "t",' in data


async def test_number_spellings_survive_patches_of_other_fields(backend: Store) -> None:
    data = (
        b'{\n  "agent:main:main": {\n    "sessionId": "s",\n    "updatedAt": 1700000000000,\n'
        b'    "ratio": 1.0,\n    "huge": 1e+21,\n    "tiny": 0.000009,\n    "exp": 1E5,\n'
        b'    "nested": {\n      "cost": 2.50\n    }\n  }\n}'
    )
    await import_index(backend, A, data)
    assert await backend.sessions.render_json(A) == data  # untouched: the imported bytes
    await backend.sessions.patch(A, "agent:main:main", {"label": "x"})
    after = await backend.sessions.render_json(A)
    assert after == data.replace(b"2.50\n    }\n  }", b'2.50\n    },\n    "label": "x"\n  }')
    await backend.sessions.touch(A, "agent:main:main", 1700000000001)
    after_touch = await backend.sessions.render_json(A)
    assert after_touch == after.replace(b"1700000000000", b"1700000000001")


async def test_keys_added_after_an_import_go_last(backend: Store) -> None:
    data = (
        b'{\n  "b": {\n    "sessionId": "s",\n    "updatedAt": 1\n  },\n'
        b'  "a": {\n    "sessionId": "t",\n    "updatedAt": 2\n  }\n}'
    )
    await import_index(backend, A, data)
    await backend.sessions.patch(A, "c", entry("u", 3))
    await backend.sessions.patch(A, "b", {"label": "kept in place"})
    assert list(await rendered(backend)) == ["b", "a", "c"]


# --- Node as the oracle ----------------------------------------------------------------------

NODE_APPLY = """
const store = {};
for (const op of input) {
  if (op.op === "patch") {
    const current = Object.prototype.hasOwnProperty.call(store, op.key) ? store[op.key] : undefined;
    const next = { ...current, ...op.patch };
    for (const [field, value] of Object.entries(op.patch)) if (value === null) delete next[field];
    // defineProperty, not assignment: `store["__proto__"] = x` would set the prototype.
    Object.defineProperty(store, op.key,
      { value: next, enumerable: true, writable: true, configurable: true });
  } else {
    delete store[op.key];
  }
}
process.stdout.write(JSON.stringify(store, null, 2));
"""


def random_operations(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    keys = [
        "agent:main:main",
        "7",
        "42",
        "0",
        "agent:main:telegram:direct:ünï",
        "__proto__",
        "constructor",
        "global",
        "cron:nightly",
        "10",
        "hook:1",
    ]
    fields = [
        "label",
        "model",
        "displayName",
        "chatType",
        "inputTokens",
        "cost",
        "origin",
        "deliveryContext",
        "9",
        "1",
        "skillsSnapshot",
        "emoji",
        "__proto__",
    ]
    values: list[Any] = [
        "x",
        "ünïcödé 🦞",
        'line\nbreak "quoted" \u2028',
        0,
        -1,
        12345678901234,
        0.000009,
        1e21,
        1.5,
        2.0,
        -0.0,
        3.3e-8,
        True,
        False,
        [],
        {},
        [1, "two", None, {"3": 3, "a": 1}],
        {"channel": "discord", "to": "c1", "2": "int-like", "threadId": 42},
    ]
    ops: list[dict[str, Any]] = []
    live: set[str] = set()
    clock = 1_700_000_000_000
    for _ in range(count):
        key = rng.choice(keys)
        if key in live and rng.random() < 0.12:
            ops.append({"op": "delete", "key": key})
            live.discard(key)
            continue
        clock += rng.randint(1, 1000)
        patch: dict[str, Any] = {}
        if key not in live or rng.random() < 0.3:
            patch["sessionId"] = f"sid-{rng.randint(0, 99)}"
            patch["updatedAt"] = clock
        for field in rng.sample(fields, rng.randint(0, 4)):
            patch[field] = None if rng.random() < 0.25 else rng.choice(values)
        ops.append({"op": "patch", "key": key, "patch": patch})
        live.add(key)
    return ops


async def test_render_json_equals_node_applying_the_same_operations(
    backend: Store, js: Any
) -> None:
    ops = random_operations(seed=20260101, count=300)
    for op in ops:
        if op["op"] == "patch":
            await backend.sessions.patch(A, op["key"], op["patch"])
        else:
            await backend.sessions.delete(A, op["key"])
    expected = js(NODE_APPLY, ops)
    data = await backend.sessions.render_json(A)
    assert data is not None
    assert data.decode("utf-8") == expected


async def test_an_index_emptied_through_the_api_matches_node(backend: Store, js: Any) -> None:
    ops = [{"op": "patch", "key": "k", "patch": entry("s", 1)}, {"op": "delete", "key": "k"}]
    await backend.sessions.patch(A, "k", entry("s", 1))
    await backend.sessions.delete(A, "k")
    assert (await backend.sessions.render_json(A)) == js(NODE_APPLY, ops).encode() == b"{}"


def test_entry_text_is_what_json_stringify_writes_at_depth_one(tmp_path: Path, js: Any) -> None:
    value = {"sessionId": "s", "updatedAt": 1, "n": [1, {"b": 2, "1": None}], "e": {}, "a": []}
    expected = js("process.stdout.write(JSON.stringify({k: input}, null, 2))", value)
    assert expected == '{\n  "k": ' + sessions.entry_text(jsjson.loads(json.dumps(value))) + "\n}"


# --- a damaged index -------------------------------------------------------------------------

TORN = (
    b'{\n  "agent:main:a": {\n    "sessionId": "sa",\n    "updatedAt": 1\n  },\n'
    b'  "agent:main:b": {\n    "sessionId": "sb",\n    "updatedAt": 2,\n    "label": "\xc3\xbc"\n'
    b'  },\n  "agent:main:c": {\n    "sessionId": "s'
)


async def store_damaged_index(backend: Store, agent: str, data: bytes) -> None:
    """An index whose imported sessions.json could not be read, as the importer leaves it."""
    params = (agent, sessions.default_rel_dir(agent), data, "Unexpected end of JSON input")
    if backend.dialect == "postgresql":
        await backend.postgres.write(
            lambda c: c.execute(
                "INSERT INTO session_indexes (agent_id, rel_dir, source_bytes, source_state, "
                "source_error) VALUES ($1, $2, $3, 'invalid', $4)",
                *params,
            )
        )
        return
    await backend.write(
        lambda c: c.execute(
            "INSERT INTO session_indexes (agent_id, rel_dir, source_bytes, source_state, "
            "source_error) VALUES (?, ?, ?, 'invalid', ?)",
            params,
        )
    )


async def kept_files(backend: Store, agent: str) -> list[tuple[str, bytes]]:
    query = "SELECT file_name, content FROM opaque_files WHERE agent_id = {} ORDER BY 1"
    if backend.dialect == "postgresql":
        found = await backend.postgres.read(lambda c: c.fetch(query.format("$1"), agent))
    else:
        found = await backend.read(lambda c: c.execute(query.format("?"), (agent,)).fetchall())
    return [(str(r[0]), bytes(r[1])) for r in found]


async def test_recover_salvages_a_damaged_index_and_keeps_its_bytes(backend: Store) -> None:
    await store_damaged_index(backend, A, TORN)
    with pytest.raises(DamagedIndexError, match="sessions recover --agent main"):
        await backend.sessions.patch(A, "k", entry("s", 1))
    assert await backend.sessions.render_json(A) == TORN
    result = await backend.sessions.recover(A)
    assert result.salvaged == 2
    assert result.lost
    assert result.kept_bytes == len(TORN)
    [(name, content)] = await kept_files(backend, A)
    assert content == TORN
    assert result.kept_as == f"agents/main/sessions/{name}"
    await backend.sessions.patch(A, "k", entry("s", 3))
    assert await backend.sessions.render_json(A) == (
        b'{\n  "agent:main:a": {\n    "sessionId": "sa",\n    "updatedAt": 1\n  },\n'
        b'  "agent:main:b": {\n    "sessionId": "sb",\n    "updatedAt": 2,\n'
        b'    "label": "\xc3\xbc"\n  },\n'
        b'  "k": {\n    "sessionId": "s",\n    "updatedAt": 3\n  }\n}'
    )
    with pytest.raises(InvalidEntryError, match="nothing to recover"):
        await backend.sessions.recover(A)
    with pytest.raises(NotFoundError):
        await backend.sessions.recover("nobody")

"""Hypothesis against the Python API on both backends at once: adversarial keys, ids, names,
filters and values (NUL, lone surrogates, long and non-BMP strings, numbers past 64 bits,
NaN and infinities, deep nesting, bools for ints, empty strings).

The property: each call either returns or raises a StoreError subclass, never a driver
error or another exception, and a SQLite store and a PostgreSQL store given the same calls
in the same order answer them the same way (the same error class, or both None, or both a
value). Where the backends differ on purpose (docs/GUARANTEES.md,
"On PostgreSQL": a session key holding NUL is refused there) the expected answers are
spelled out in `_pg_refuses`."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store_sql import Store
from store_sql.checkpoints.entries import CheckpointSpec
from store_sql.errors import InvalidEntryError, StoreError
from store_sql.sessions.guards import Expect, SessionOp

LONG = os.environ.get("STORE_SQL_LONG_TESTS") == "1"
EXAMPLES = 3000 if LONG else 60

A = "main"
LEAF = "@leaf"
"""Stands for the leaf entry id of transcript s1 on each store (ids are random per store)."""
CHECKPOINT = "@checkpoint"
"""Stands for the id of the first checkpoint of key k1 on each store."""

odd_strings = st.sampled_from(
    ["", "\x00", "a\x00b", "\ud800", "a\udfffb", "\U0001f600", "\U0010ffff", "x" * 300,
     "y" * 5000, " ", ".", "..", "/", "a/b", "\\", "\n", "\x7f", "%00", "k1", "s1",
     "main", "agent:main:main", "*", "%", "_", "'", '"', "\u0301", "\ufeff"]
)  # fmt: skip
names = odd_strings | st.text(max_size=12)
agents = st.sampled_from(["main", "main", "main", "ops", "", "\x00", "Main", "a" * 100, "\ud800"])
keys = st.sampled_from(["k1", "k1", "k2"]) | names
session_ids = st.sampled_from(["s1", "s1", "s2"]) | names
entry_ids = st.sampled_from([LEAF, LEAF, "root"]) | names
numbers = st.one_of(
    st.integers(),
    st.sampled_from(
        [0, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**400, -(10**30), True, False]
    ),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 1.5]),
)
optional_ints = st.none() | numbers


def _nest(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"n": value}
    return value


scalars = st.none() | st.booleans() | numbers | names
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(names, inner, max_size=3)
        | st.dictionaries(st.integers() | st.none(), inner, min_size=1, max_size=1)
    ),
    max_leaves=8,
) | st.just(150).map(_nest)
patches = st.fixed_dictionaries(
    {"sessionId": session_ids, "updatedAt": numbers},
    optional={"label": values, "chatType": values, "channel": values, "x": values},
) | st.dictionaries(names, values, max_size=3)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]) | names, "content": values},
    optional={"idempotencyKey": values, "timestamp": numbers},
)
entries = st.lists(
    st.fixed_dictionaries({"type": st.just("message"), "message": message})
    | st.dictionaries(st.sampled_from(["type", "x", "id", "parentId", "timestamp"]) | names, values)
    | values,
    max_size=3,
)
targets = (
    session_ids
    | st.integers(min_value=-2, max_value=4)
    | st.sampled_from([2**63, -(2**63) - 1, True])
)
parents = st.none() | entry_ids


def _op(op: str, **kwargs: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, dict]]:
    return st.tuples(st.just(op), st.fixed_dictionaries(kwargs))


_filters = {
    "updated_after": optional_ints,
    "updated_before": optional_ints,
    "label": st.none() | names,
    "chat_type": st.none() | names,
    "channel": st.none() | names,
}
expects = st.none() | st.builds(
    Expect,
    session_id=st.none() | session_ids,
    updated_at=st.none() | numbers,
    version=st.none() | names,
    exists=st.none() | st.booleans(),
)
session_ops = st.lists(
    st.builds(
        SessionOp,
        op=st.sampled_from(["patch", "put", "delete", "touch", "other"]),
        key=keys,
        value=st.none() | patches,
        updated_at=optional_ints,
        expect=expects,
    ),
    max_size=3,
)
operations = st.one_of(
    _op("s.patch_expect", agent=agents, key=keys, patch=patches, expect=expects),
    _op("s.touch_expect", agent=agents, key=keys, updated_at=numbers, expect=expects),
    _op("s.delete_expect", agent=agents, key=keys, expect=expects),
    _op("s.batch", agent=agents, ops=session_ops),
    _op("s.render", agent=agents),
    _op("c.snapshot", agent=agents, key=keys, checkpoint_id=st.just(CHECKPOINT) | names),
    _op("c.restore", agent=agents, key=keys, checkpoint_id=st.just(CHECKPOINT) | names),
    _op("t.migrate", agent=agents, target=targets),
    _op("s.get", agent=agents, key=keys),
    _op("s.get_text", agent=agents, key=keys),
    _op("s.patch", agent=agents, key=keys, patch=patches),
    _op("s.put", agent=agents, key=keys, entry=patches),
    _op("s.touch", agent=agents, key=keys, updated_at=numbers),
    _op("s.delete", agent=agents, key=keys),
    _op("s.list", agent=agents, limit=optional_ints, offset=numbers, **_filters),
    _op("s.count", agent=agents, **_filters),
    _op(
        "s.turn",
        agent=agents,
        key=keys,
        entries=entries,
        updated_at=optional_ints,
        fields=st.none() | st.dictionaries(names, values, max_size=2),
        expect_session_id=st.none() | session_ids,
        parent_id=parents,
    ),
    _op("t.create", agent=agents, session_id=session_ids, cwd=names),
    _op("t.info", agent=agents, target=targets),
    _op("t.find", agent=agents, session_id=session_ids),
    _op("t.list", agent=agents, session_id=st.none() | session_ids),
    _op("t.append", agent=agents, target=targets, entries=entries, parent_id=parents),
    _op("t.label", agent=agents, target=targets, target_id=entry_ids, label=st.none() | names),
    _op("t.session_info", agent=agents, target=targets, name=names),
    _op(
        "t.compaction",
        agent=agents,
        target=targets,
        summary=names,
        first_kept=entry_ids,
        tokens=numbers,
    ),
    _op("t.branch_summary", agent=agents, target=targets, from_id=parents, summary=names),
    _op("t.entry", agent=agents, target=targets, entry_id=entry_ids),
    _op("t.children", agent=agents, target=targets, entry_id=entry_ids),
    _op("t.path", agent=agents, target=targets, entry_id=parents),
    _op("t.context", agent=agents, target=targets, entry_id=parents),
    _op(
        "t.recent",
        agent=agents,
        target=targets,
        limit=numbers,
        max_bytes=optional_ints,
        types=st.none() | st.frozensets(names, max_size=2),
    ),
    _op("t.page", agent=agents, target=targets, after=optional_ints, before=optional_ints),
    _op("t.changes", agent=agents, session_id=session_ids, limit=numbers),
    _op("t.reads", agent=agents, target=targets),
    _op("c.list", agent=agents, key=keys),
    _op("c.get", agent=agents, key=keys, checkpoint_id=st.just(CHECKPOINT) | names),
    _op("c.capture", agent=agents, session_id=session_ids),
    _op(
        "c.persist",
        agent=agents,
        key=keys,
        reason=names,
        first_kept=st.none() | entry_ids,
        tokens=st.none() | numbers,
        session_id=st.none() | session_ids,
        created_at=optional_ints,
    ),
    _op(
        "c.branch",
        agent=agents,
        key=keys,
        checkpoint_id=st.just(CHECKPOINT) | names,
        new_key=st.none() | keys,
    ),
    _op(
        "q.find",
        text=names,
        agent=st.none() | agents,
        session=st.none() | keys,
        role=st.none() | names,
    ),
)


async def _leaf_id(store: Store) -> str:
    leaf = await store.transcripts.leaf(A, "s1")
    return leaf.id if leaf is not None else "none"


async def _checkpoint_id(store: Store) -> str:
    found = await store.checkpoints.list_checkpoints(A, "k1")
    return str(found[-1]["checkpointId"]) if found else "none"


async def _call(store: Store, name: str, a: dict[str, Any]) -> Any:
    """Run one operation; LEAF and CHECKPOINT name this store's own entry and checkpoint."""
    for field in ("entry_id", "parent_id", "target_id", "first_kept", "from_id"):
        if a.get(field) == LEAF:
            a = {**a, field: await _leaf_id(store)}
    if a.get("checkpoint_id") == CHECKPOINT:
        a = {**a, "checkpoint_id": await _checkpoint_id(store)}
    s, t, c = store.sessions, store.transcripts, store.checkpoints
    filters = {f: a[f] for f in _filters if f in a}
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "s.get": lambda: s.get(a["agent"], a["key"]),
        "s.patch_expect": lambda: s.patch(a["agent"], a["key"], a["patch"], expect=a["expect"]),
        "s.touch_expect": lambda: s.touch(
            a["agent"], a["key"], a["updated_at"], expect=a["expect"]
        ),
        "s.delete_expect": lambda: s.delete(a["agent"], a["key"], expect=a["expect"]),
        "s.batch": lambda: s.batch(a["agent"], a["ops"]),
        "s.render": lambda: s.render_json(a["agent"]),
        "c.snapshot": lambda: c.snapshot_bytes(a["agent"], a["key"], a["checkpoint_id"]),
        "c.restore": lambda: c.restore(a["agent"], a["key"], a["checkpoint_id"]),
        "t.migrate": lambda: t.migrate_to_v3(a["agent"], a["target"]),
        "s.get_text": lambda: s.get_text(a["agent"], a["key"]),
        "s.patch": lambda: s.patch(a["agent"], a["key"], a["patch"]),
        "s.put": lambda: s.put(a["agent"], a["key"], a["entry"]),
        "s.touch": lambda: s.touch(a["agent"], a["key"], a["updated_at"]),
        "s.delete": lambda: s.delete(a["agent"], a["key"]),
        "s.list": lambda: s.list_entries(
            a["agent"], limit=a["limit"], offset=a["offset"], **filters
        ),
        "s.count": lambda: s.count_entries(a["agent"], **filters),
        "s.turn": lambda: s.turn(
            a["agent"],
            a["key"],
            a["entries"],
            updated_at=a["updated_at"],
            fields=a["fields"],
            expect_session_id=a["expect_session_id"],
            parent_id=a["parent_id"],
        ),
        "t.create": lambda: t.create(a["agent"], a["session_id"], cwd=a["cwd"]),
        "t.info": lambda: t.info(a["agent"], a["target"]),
        "t.find": lambda: t.find(a["agent"], a["session_id"]),
        "t.list": lambda: t.list_transcripts(a["agent"], session_id=a["session_id"]),
        "t.append": lambda: t.append(
            a["agent"], a["target"], a["entries"], parent_id=a["parent_id"]
        ),
        "t.label": lambda: t.append_label(a["agent"], a["target"], a["target_id"], a["label"]),
        "t.session_info": lambda: t.append_session_info(a["agent"], a["target"], a["name"]),
        "t.compaction": lambda: t.append_compaction(
            a["agent"], a["target"], a["summary"], a["first_kept"], a["tokens"]
        ),
        "t.branch_summary": lambda: t.append_branch_summary(
            a["agent"], a["target"], a["from_id"], a["summary"]
        ),
        "t.entry": lambda: t.entry(a["agent"], a["target"], a["entry_id"]),
        "t.children": lambda: t.children(a["agent"], a["target"], a["entry_id"]),
        "t.path": lambda: t.active_path(a["agent"], a["target"], a["entry_id"]),
        "t.context": lambda: t.context(a["agent"], a["target"], a["entry_id"]),
        "t.recent": lambda: t.recent(
            a["agent"], a["target"], limit=a["limit"], max_bytes=a["max_bytes"], types=a["types"]
        ),
        "t.page": lambda: t.page(
            a["agent"], a["target"], after_pos=a["after"], before_pos=a["before"]
        ),
        "t.changes": lambda: t.changes_since(a["agent"], a["session_id"], None, limit=a["limit"]),
        "t.reads": lambda: _all_reads(store, a["agent"], a["target"]),
        "c.list": lambda: c.list_checkpoints(a["agent"], a["key"]),
        "c.get": lambda: c.get(a["agent"], a["key"], a["checkpoint_id"]),
        "c.capture": lambda: c.capture(a["agent"], a["session_id"]),
        "c.persist": lambda: c.persist(
            a["agent"],
            a["key"],
            CheckpointSpec(
                reason=a["reason"],
                first_kept_entry_id=a["first_kept"],
                tokens_before=a["tokens"],
                session_id=a["session_id"],
                created_at=a["created_at"],
            ),
        ),
        "c.branch": lambda: c.branch(
            a["agent"], a["key"], a["checkpoint_id"], new_key=a["new_key"]
        ),
        "q.find": lambda: store.search.find(
            a["text"], agent_id=a["agent"], session=a["session"], role=a["role"]
        ),
    }
    return await calls[name]()


async def _all_reads(store: Store, agent: str, target: Any) -> None:
    t = store.transcripts
    await t.labels(agent, target)
    await t.tree(agent, target)
    await t.session_name(agent, target)
    await t.counts(agent, target)
    await t.file_bytes(agent, target)


@dataclass(frozen=True)
class Answer:
    """What a call answered: the StoreError class it raised, or whether it returned None
    (nothing found) or a value (ids and times differ between the stores, so values do too)."""

    error: type[StoreError] | type[TypeError] | None
    none: bool = False


async def _answer(store: Store, name: str, args: dict[str, Any]) -> Answer:
    try:
        value = await _call(store, name, args)
    except StoreError as exc:
        return Answer(type(exc))
    except TypeError as exc:
        # Documented (docs/GUARANTEES.md, "API arguments"): a value that is not JSON raises
        # TypeError naming its path.
        if "(at $" not in str(exc):
            raise
        return Answer(TypeError)
    return Answer(None, value is None)


def _has_nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def _pg_refuses(name: str, args: dict[str, Any]) -> bool:
    """A session-index write naming a key that holds NUL: InvalidEntryError on PostgreSQL
    (its text cannot hold NUL), stored or answered as any missing key on SQLite
    (docs/GUARANTEES.md, "Differences")."""
    writes = {
        "s.patch",
        "s.put",
        "s.turn",
        "c.persist",
        "s.patch_expect",
        "s.touch_expect",
        "s.delete_expect",
    }
    return (
        (name in writes and _has_nul(args.get("key")))
        or (name == "s.batch" and any(_has_nul(op.key) for op in args["ops"]))
        or (name == "c.branch" and _has_nul(args.get("new_key")))
    )


@dataclass
class Pair:
    runner: asyncio.Runner
    sqlite: Store
    postgresql: Store


async def _seed(store: Store) -> None:
    await store.transcripts.create(A, "s1", cwd="/w")
    await store.transcripts.append(A, "s1", [{"type": "message", "message": {"role": "user"}}])
    await store.sessions.patch(A, "k1", {"sessionId": "s1", "updatedAt": 1, "label": "L"})
    await store.checkpoints.persist(A, "k1", CheckpointSpec(reason="manual"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, pg_module_url: str) -> Iterator[Pair]:
    """One SQLite and one PostgreSQL store, seeded alike, open for the module's examples
    on one event loop."""
    runner = asyncio.Runner()
    path: Path = tmp_path_factory.mktemp("fuzz") / "store.sqlite"
    sqlite = runner.run(Store.open(path))
    postgresql = runner.run(Store.open(pg_module_url))
    try:
        for store in (sqlite, postgresql):
            runner.run(_seed(store))
        yield Pair(runner, sqlite, postgresql)
    finally:
        runner.run(sqlite.close())
        runner.run(postgresql.close())
        runner.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(plan=st.lists(operations, min_size=1, max_size=6))
def test_both_backends_answer_any_call_alike(pair: Pair, plan: list[tuple[str, dict]]) -> None:
    for name, args in plan:
        on_pg = pair.runner.run(_answer(pair.postgresql, name, args))
        if _pg_refuses(name, args) and on_pg.error is InvalidEntryError:
            # Not run on SQLite, so both stores keep holding the same entries. (An earlier
            # check, such as an unknown key, may answer first: then both answer alike.)
            continue
        on_sqlite = pair.runner.run(_answer(pair.sqlite, name, args))
        assert on_sqlite == on_pg, (name, args)

"""Today's tree rules (leaf controls, resets, side appends) against OpenClaw's own code.

`store_sql.transcripts.navigation` states the rules OpenClaw 2026.9 reads transcripts by;
here the same transcripts go through OpenClaw's own `scanSessionTranscriptTree` and
selectors, loaded from the installed package under its own Node 24
(tools/oracles/openclaw_tree.mjs), and every answer must agree: the leaf, the append point,
the flags, each node's parent, the active path and the entries the context keeps. Then the
store: a transcript holding such entries is read (active path, recent, tree, context) and
appended to (parent LEAF) as OpenClaw reads it, and one without them as before.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspection_data import ROOT

from store_sql import LEAF, Store, import_path
from store_sql.transcripts.navigation import scan_navigation

ORACLE = ROOT / "tools" / "oracles" / "openclaw"
DRIVER = ROOT / "tools" / "oracles" / "openclaw_tree.mjs"
LONG = os.environ.get("STORE_SQL_LONG_TESTS") == "1"


@pytest.fixture(scope="module")
def openclaw_tree() -> Any:
    done = subprocess.run(
        ["bash", str(ORACLE), "--install"], capture_output=True, text=True, check=False
    )
    if done.returncode == 3:
        pytest.skip(f"OpenClaw oracle unavailable: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    dist = Path(done.stdout.strip()) / "node_modules" / "openclaw" / "dist"
    node = subprocess.run(
        ["bash", str(ORACLE), "node-path"], capture_output=True, text=True, check=True
    ).stdout.strip()

    def run(cases: list[list[Any]]) -> list[dict[str, Any]]:
        result = subprocess.run(
            [node, str(DRIVER), str(dist)],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        value: list[dict[str, Any]] = json.loads(result.stdout)
        return value

    return run


def ours(entries: list[Any]) -> dict[str, Any]:
    nav = scan_navigation(entries)
    return {
        "leafId": nav.leaf_id,
        "appendParentId": nav.append_parent_id,
        "hasLeafControl": nav.has_leaf_control,
        "hasExplicitLeafUpdate": nav.has_explicit_leaf_update,
        "hasInvalidLeafControl": nav.has_invalid_leaf_control,
        "parents": [[n.index, n.id, n.parent_id] for n in nav.nodes],
        "activePath": [n.index for n in nav.active_path()],
        "context": nav.context_indexes(entries),
    }


# --- generated transcripts ------------------------------------------------------------------

TYPES = ["message", "message", "message", "compaction", "custom", "label", "branch_summary"]


def transcript(rng: random.Random, length: int) -> list[Any]:
    """Entries mixing every rule: parents among earlier ids, null, unknown and missing ids,
    leaf controls (valid, null, unknown, with and without appendParentId, side), resets with
    a kept entry, side appends, parentless entries, non-canonical types."""
    entries: list[Any] = [{"type": "session", "version": 3, "id": "s", "cwd": "/"}]
    ids: list[str] = []

    def some_id() -> str | None:
        roll = rng.random()
        if not ids or roll < 0.08:
            return None
        if roll < 0.14:
            return "nope"
        return rng.choice(ids) if roll < 0.45 else ids[-1]

    for n in range(length):
        entry_id = f"{n:08x}"
        roll = rng.random()
        if roll < 0.16:
            entry: dict[str, Any] = {"type": "leaf", "id": entry_id, "parentId": some_id()}
            if rng.random() < 0.9:
                entry["targetId"] = some_id()
            if rng.random() < 0.3:
                entry["appendParentId"] = some_id()
            if rng.random() < 0.1:
                entry["appendMode"] = rng.choice(["side", "main"])
        elif roll < 0.24:
            entry = {"type": "reset", "id": entry_id, "parentId": rng.choice([None, some_id()])}
            if rng.random() < 0.8:
                entry["firstKeptEntryId"] = some_id()
        else:
            kind = rng.choice([*TYPES, "custom_type_of_a_plugin"])
            entry = {"type": kind, "id": entry_id}
            if rng.random() < 0.93:
                entry["parentId"] = some_id()
            if rng.random() < 0.15:
                entry["appendMode"] = "side"
        if rng.random() < 0.02:
            entry["id"] = "  "  # blank: not a node
        entries.append(entry)
        ids.append(entry_id)
    return entries


def test_generated_transcripts_read_as_openclaw_reads_them(openclaw_tree: Any) -> None:
    rng = random.Random(20261207)
    cases = [transcript(rng, rng.randrange(1, 40)) for _ in range(3000 if LONG else 600)]
    for entries, theirs in zip(cases, openclaw_tree(cases), strict=True):
        assert ours(entries) == theirs, json.dumps(entries)


@settings(
    max_examples=300 if LONG else 60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=25))
def test_hypothesis_transcripts_read_as_openclaw_reads_them(
    openclaw_tree: Any, seed: int, length: int
) -> None:
    entries = transcript(random.Random(seed), length)
    (theirs,) = openclaw_tree([entries])
    assert ours(entries) == theirs


# --- the store follows the same rules ---------------------------------------------------------


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _msg(entry_id: str, parent: str | None, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "id": entry_id,
        "parentId": parent,
        "timestamp": "2026-12-07T10:00:00.000Z",
        "message": {"role": "user", "content": text},
        **extra,
    }


async def _imported(store: Store, tmp_path: Path, entries: list[dict[str, Any]]) -> None:
    folder = tmp_path / "state" / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    header = {"type": "session", "version": 3, "id": "nav", "timestamp": "2026-12-07T10:00:00.000Z",
              "cwd": "/"}  # fmt: skip
    (folder / "nav.jsonl").write_bytes(b"".join(_line(v) + b"\n" for v in [header, *entries]))
    await import_path(store, tmp_path / "state")


async def _append_point(store: Store) -> str | None:
    """The parent a message appended at the leaf of the imported transcript gets."""
    (appended,) = await store.transcripts.append(
        "main",
        "nav",
        [{"type": "message", "message": {"role": "user", "content": "next"}}],
        parent_id=LEAF,
    )
    return (await store.transcripts.entry("main", "nav", appended.id)).parent_id


async def test_a_leaf_control_selects_the_path_and_the_append_point(
    store: Store, tmp_path: Path
) -> None:
    entries = [
        _msg("a1", None, "one"),
        _msg("a2", "a1", "two"),
        _msg("b2", "a1", "branch"),
        {"type": "leaf", "id": "l1", "parentId": "b2", "targetId": "a2"},
        _msg("s1", "a2", "aside", appendMode="side"),
    ]
    await _imported(store, tmp_path, entries)
    nav = scan_navigation([{"type": "session"}, *entries])
    path = await store.transcripts.active_path("main", "nav")
    assert [e.id for e in path] == [n.id for n in nav.active_path()] == ["a1", "a2"]
    recent = await store.transcripts.recent("main", "nav", limit=1)
    assert [e.id for e in recent] == ["a2"]
    ctx = await store.transcripts.context("main", "nav")
    assert [m["content"] for m in ctx.messages] == ["one", "two"]
    assert await _append_point(store) == nav.append_parent_id == "s1"


async def test_a_transcript_without_such_entries_reads_as_before(
    store: Store, tmp_path: Path
) -> None:
    entries = [_msg("a1", None, "one"), _msg("a2", "a1", "two"), _msg("b2", "a1", "branch")]
    await _imported(store, tmp_path, entries)
    path = await store.transcripts.active_path("main", "nav")
    assert [e.id for e in path] == ["a1", "b2"]
    assert await _append_point(store) == "b2"


async def test_a_reset_bounds_the_context_and_the_tree_leaves_controls_out(
    store: Store, tmp_path: Path
) -> None:
    entries = [
        _msg("a1", None, "old one"),
        _msg("a2", "a1", "old two"),
        _msg("a3", "a2", "old three"),
        {"type": "reset", "id": "r1", "parentId": None, "firstKeptEntryId": "a3",
         "timestamp": "2026-12-07T10:00:00.000Z"},
        _msg("n1", "r1", "new one"),
        {"type": "leaf", "id": "l1", "parentId": "n1", "targetId": "n1"},
        _msg("n2", "l1", "new two"),
    ]  # fmt: skip
    await _imported(store, tmp_path, entries)
    values = [{"type": "session"}, *entries]
    nav = scan_navigation(values)
    path = await store.transcripts.active_path("main", "nav")
    assert [e.id for e in path] == [n.id for n in nav.active_path()]
    ctx = await store.transcripts.context("main", "nav")
    kept = [values[i] for i in nav.context_indexes(values)]
    want = [v["message"]["content"] for v in kept if v.get("type") == "message"]
    assert [m["content"] for m in ctx.messages] == want
    assert "old one" not in want
    assert "n2" in [n.id for n in nav.active_path()]
    forest = await store.transcripts.tree("main", "nav")

    def ids(nodes: list[Any]) -> list[str]:
        return [x for n in nodes for x in [n.id, *ids(n.children)]]

    assert "l1" not in ids(forest)
    assert set(ids(forest)) == {"a1", "a2", "a3", "r1", "n1", "n2"}


async def test_telling_such_a_transcript_apart_takes_one_index_probe(
    store: Store, tmp_path: Path
) -> None:
    await _imported(store, tmp_path, [_msg("a1", None, "one")])
    from store_sql.transcripts.reads import _NAVIGATION_PROBE

    plan = await store.read(
        lambda conn: conn.execute(f"EXPLAIN QUERY PLAN {_NAVIGATION_PROBE}", (1,)).fetchall()
    )
    assert "ix_transcript_lines_navigation" in str(plan)


async def test_the_store_reads_and_appends_generated_transcripts_as_openclaw_does(
    store: Store, tmp_path: Path, openclaw_tree: Any
) -> None:
    rng = random.Random(7)
    cases = [transcript(rng, rng.randrange(2, 30)) for _ in range(120)]
    folder = tmp_path / "state" / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    for n, entries in enumerate(cases):
        entries[0]["id"] = f"case{n}"
        (folder / f"case{n}.jsonl").write_bytes(b"".join(_line(v) + b"\n" for v in entries))
    await import_path(store, tmp_path / "state")
    checked = 0
    for n, theirs in enumerate(openclaw_tree(cases)):
        if not any(
            isinstance(v, dict)
            and (v.get("type") in ("leaf", "reset") or v.get("appendMode") == "side")
            for v in cases[n]
        ):
            continue  # read by the JSONL-era rules
        checked += 1
        # Line positions: the header is line 0, so an entry's index is its position.
        path = await store.transcripts.active_path("main", f"case{n}")
        assert [e.pos for e in path] == theirs["activePath"], n
        recent = await store.transcripts.recent("main", f"case{n}", limit=3)
        assert [e.pos for e in recent] == theirs["activePath"][-3:], n
        (appended,) = await store.transcripts.append(
            "main", f"case{n}", [{"type": "custom", "customType": "probe"}], parent_id=LEAF
        )
        entry = await store.transcripts.entry("main", f"case{n}", appended.id)
        assert entry.parent_id == theirs["appendParentId"], n
    assert checked > 80

"""Property tests of the tree rules over damaged transcripts (transcript_reads docstring).

The documented rule: an entry's parent is the nearest *preceding* entry whose id equals its
`parentId`; a `parentId` naming no preceding entry (null, missing, dangling, later in the
file, the entry itself) makes it a root; the leaf is the last entry in file order.

pi's rule (SessionManager.getBranch and buildSessionContext; the tests ask the real pi,
tools/oracles) walks `byId.get(parentId)` where `byId` maps each id to the *last* entry
carrying it anywhere in the file, until a parent is missing. The two agree on well-formed
files (unique ids, parents before children), which `test_well_formed_files_walk_as_pi_walks`
checks. They disagree, by design:

- a forward reference (parent later in the file): pi follows it, the store makes a root;
- a duplicate id: pi goes to the last entry with that id in the whole file (possibly a later
  one), the store to the nearest preceding one;
- a self reference or any cycle: pi's `while (current)` never ends (the gateway hangs on such
  a file); the store stops, since every step goes to an earlier line.
`test_where_pi_disagrees` pins one example of each.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspection_data import scratch_connection
from pi_oracle import PiOracle

from store_sql import Store
from store_sql.formats import jsjson
from store_sql.transcripts import context as context
from store_sql.transcripts import reads as transcript_reads
from store_sql.transcripts import rows as transcripts

MISSING = object()  # the entry has no parentId key at all
IDS = ["a", "b", "c", "d", "e"]


@dataclass(frozen=True)
class Line:
    kind: str  # entry | damaged | blank
    id: str | None = None
    parent: Any = None  # str, None (null) or MISSING

    def raw(self, pos: int) -> bytes:
        if self.kind == "blank":
            return b""
        if self.kind == "damaged":
            return b'{"type":"message","id":"' + str(pos).encode() + b'"{"glued":true}'
        value: dict[str, Any] = {"type": "message"}
        if self.id is not None:
            value["id"] = self.id
        if self.parent is not MISSING:
            value["parentId"] = self.parent
        value["timestamp"] = f"2025-01-01T00:00:{pos % 60:02d}.000Z"
        value["message"] = {"role": "user", "content": f"line {pos}"}
        return jsjson.dumps(value).encode()


entry_lines = st.builds(
    Line,
    kind=st.just("entry"),
    id=st.one_of(st.none(), st.sampled_from(IDS)),
    parent=st.one_of(st.none(), st.just(MISSING), st.sampled_from([*IDS, "zz"])),
)
any_line = st.one_of(
    entry_lines, entry_lines, entry_lines, st.just(Line("damaged")), st.just(Line("blank"))
)
transcripts_st = st.lists(any_line, min_size=0, max_size=25)

_counter = itertools.count()


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    yield from scratch_connection(tmp_path_factory, "tree")


def write(conn: sqlite3.Connection, lines: list[Line]) -> int:
    """Write a v3 transcript line by line as an importer does: each parent resolved with
    `transcripts.resolve_parent_pos` against the lines already stored."""
    n = next(_counter)
    if conn.in_transaction:  # run by the store's writer, inside its group transaction
        return _write_lines(conn, n, lines)
    conn.execute("BEGIN")
    try:
        tid = _write_lines(conn, n, lines)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return tid


def _write_lines(conn: sqlite3.Connection, n: int, lines: list[Line]) -> int:
    tid = transcripts.insert_transcript(
        conn,
        agent_id="main",
        rel_dir="agents/main/sessions",
        session_id=f"s{n}",
        kind="live",
        file_name=f"s{n}.jsonl",
        version=3,
    )
    header = jsjson.dumps(
        {
            "type": "session",
            "version": 3,
            "id": f"s{n}",
            "timestamp": "2025-01-01T00:00:00.000Z",
            "cwd": "/",
        }
    ).encode()
    rows = [
        transcripts.LineRow(
            0,
            header.decode(),
            "header",
            f"s{n}",
            None,
            None,
            "session",
            None,
            None,
            None,
            len(header),
            None,
        )
    ]
    transcripts.insert_lines(conn, tid, rows, ends_with_newline=True)
    for pos, line in enumerate(lines, start=1):
        raw = line.raw(pos)
        parent_id = line.parent if isinstance(line.parent, str) else None
        is_entry = line.kind == "entry"
        parent_pos = None
        if is_entry and parent_id is not None:
            parent_pos = transcripts.resolve_parent_pos(conn, tid, parent_id, pos)
        row = transcripts.LineRow(
            pos,
            raw.decode(),
            line.kind,
            line.id if is_entry else None,
            parent_id if is_entry else None,
            parent_pos,
            "message" if is_entry else None,
            "user" if is_entry else None,
            None,
            None,
            len(raw),
            "glued records" if line.kind == "damaged" else None,
        )
        transcripts.insert_lines(conn, tid, [row], ends_with_newline=True)
    return tid


# --- references ------------------------------------------------------------------------------


def documented_parents(lines: list[Line]) -> dict[int, int | None]:
    """pos -> parent pos under the documented rule (positions count the header as 0)."""
    parents: dict[int, int | None] = {}
    for pos, line in enumerate(lines, start=1):
        if line.kind != "entry":
            continue
        parents[pos] = None
        if isinstance(line.parent, str):
            for earlier in range(pos - 1, 0, -1):
                other = lines[earlier - 1]
                if other.kind == "entry" and other.id == line.parent:
                    parents[pos] = earlier
                    break
    return parents


def documented_path(lines: list[Line], start: int | None = None) -> list[int]:
    parents = documented_parents(lines)
    if start is None:
        if not parents:
            return []
        start = max(parents)
    path = [start]
    while (parent := parents[path[-1]]) is not None:
        path.append(parent)
    return path[::-1]


def file_bytes(lines: list[Line]) -> bytes:
    """The transcript `write` stores, as a file (for pi)."""
    header = (
        b'{"type":"session","version":3,"id":"s","timestamp":"2025-01-01T00:00:00.000Z","cwd":"/"}'
    )
    return b"\n".join([header, *(line.raw(pos) for pos, line in enumerate(lines, 1))]) + b"\n"


def pi_path(pi: PiOracle, lines: list[Line]) -> list[int]:
    """The positions of the entries on the real pi's active path (SessionManager.getBranch),
    for files whose ids are unique."""
    pos_of = {line.id: pos for pos, line in enumerate(lines, 1) if line.kind == "entry"}
    return [pos_of[entry_id] for entry_id in pi.read(file_bytes(lines))["branch"]]


# --- properties ------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(lines=transcripts_st)
def test_active_path_follows_the_documented_rule(
    conn: sqlite3.Connection, lines: list[Line]
) -> None:
    tid = write(conn, lines)
    path = [e.pos for e in transcript_reads.active_path(conn, tid)]
    expected = documented_path(lines)
    assert path == expected
    info = transcripts.get_info(conn, tid)
    if expected:
        assert path[-1] == info.leaf_pos  # ends at the leaf: the last entry in file order
        assert info.leaf_pos == max(p for p, ln in enumerate(lines, 1) if ln.kind == "entry")
    else:
        assert info.leaf_pos is None
    assert len(set(path)) == len(path)  # never loops
    assert all(a < b for a, b in itertools.pairwise(path))  # each step goes to an earlier line
    assert all(transcript_reads.entry_at(conn, tid, p).kind == "entry" for p in path)  # type: ignore[union-attr]


@PROPERTY_SETTINGS
@given(lines=transcripts_st)
def test_paths_to_any_entry_tree_and_recent_agree(
    conn: sqlite3.Connection, lines: list[Line]
) -> None:
    tid = write(conn, lines)
    for entry_id in {ln.id for ln in lines if ln.kind == "entry" and ln.id is not None}:
        latest = max(p for p, ln in enumerate(lines, 1) if ln.kind == "entry" and ln.id == entry_id)
        got = [e.pos for e in transcript_reads.active_path(conn, tid, entry_id)]
        assert got == documented_path(lines, latest)

    parents = documented_parents(lines)
    seen: list[int] = []
    stack = [(node, None) for node in transcript_reads.tree(conn, tid)]
    while stack:
        node, parent = stack.pop()
        seen.append(node.pos)
        assert parents[node.pos] == parent
        stack.extend((child, node.pos) for child in node.children)
    assert sorted(seen) == sorted(parents)  # every entry exactly once

    full = documented_path(lines)
    for limit in (1, 3, 50):
        recent = transcript_reads.recent_entries(conn, tid, limit=limit)
        assert [e.pos for e in recent] == full[-limit:]
    ctx = context.build_context(conn, tid)  # damaged trees never break the context read
    assert len(ctx.messages) == len(full)


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(data=st.data())
def test_well_formed_files_walk_as_pi_walks(
    conn: sqlite3.Connection, pi: PiOracle, data: st.DataObject
) -> None:
    count = data.draw(st.integers(min_value=0, max_value=20))
    lines: list[Line] = []
    for n in range(count):
        earlier = [f"e{m}" for m in range(n)]
        parent = data.draw(st.one_of(st.none(), st.sampled_from(earlier))) if earlier else None
        lines.append(Line("entry", f"e{n}", parent))
        if data.draw(st.booleans()) and data.draw(st.booleans()):
            lines.append(Line(data.draw(st.sampled_from(["damaged", "blank"]))))
    tid = write(conn, lines)
    assert [e.pos for e in transcript_reads.active_path(conn, tid)] == pi_path(pi, lines)


def test_where_pi_disagrees(conn: sqlite3.Connection, pi: PiOracle) -> None:
    forward = [Line("entry", "a", "b"), Line("entry", "b", None), Line("entry", "c", "a")]
    # pi: c -> a -> b (follows the forward reference); the store: c -> a (a is a root).
    assert pi_path(pi, forward) == [2, 1, 3]
    assert [e.pos for e in transcript_reads.active_path(conn, write(conn, forward))] == [1, 3]

    duplicate = [
        Line("entry", "a", None),
        Line("entry", "b", "a"),
        Line("entry", "a", None),
        Line("entry", "c", "a"),
    ]
    # b's parent: pi takes the last "a" (line 3, after b); the store the one before b.
    tid = write(conn, duplicate)
    assert [e.pos for e in transcript_reads.active_path(conn, tid, "b")] == [1, 2]
    assert [e.pos for e in transcript_reads.active_path(conn, tid)] == [3, 4]
    assert pi.read(file_bytes(duplicate))["branch"] == ["a", "c"]

    # A cycle or a self reference: pi's walk (`while (current)`) never ends, so it is not
    # asked; the store stops, since every step goes to an earlier line.
    cycle = [Line("entry", "a", "b"), Line("entry", "b", "a")]
    self_ref = [Line("entry", "a", "a")]
    assert [e.pos for e in transcript_reads.active_path(conn, write(conn, cycle))] == [1, 2]
    assert [e.pos for e in transcript_reads.active_path(conn, write(conn, self_ref))] == [1]


async def test_the_async_api_reads_a_damaged_tree_the_same_way(tmp_path: Path) -> None:
    # SQLite only: the lines are written by this module's SQLite `write`; the same reads of
    # damaged and branchy files run on both backends in test_transcripts/test_context.
    lines = [
        Line("entry", "a", MISSING),
        Line("damaged"),
        Line("entry", "b", "a"),
        Line("blank"),
        Line("entry", "a", "zz"),
        Line("entry", "c", "a"),
        Line("entry", None, "c"),
    ]
    store = await Store.open(tmp_path / "api.sqlite")
    try:
        tid = await store.write(lambda c: write(c, lines))
        path = await store.transcripts.active_path("main", tid)
        assert [e.pos for e in path] == documented_path(lines) == [5, 6, 7]
        assert [e.pos for e in await store.transcripts.children("main", tid, "a")] == [6]
        roots = await store.transcripts.tree("main", tid)
        assert [r.pos for r in roots] == [1, 5]
    finally:
        await store.close()

"""Combined appends (transcript_appends.AppendMutation.combine): a group of appends run as
one must leave exactly what running them one after another leaves, and a failing append
in a group must fail alone."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store_sql import LEAF, Store
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.transcripts.appends import AppendMutation

SESSIONS = ("s1", "s2")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with two live transcripts, each holding a few entries."""
    path = tmp_path_factory.mktemp("combine") / "template.sqlite"

    async def build() -> None:
        async with await Store.open(path, full_text=False) as store:
            for sid in SESSIONS:
                await store.transcripts.create(
                    "main", sid, cwd="/w", timestamp="2026-01-01T00:00:00.000Z"
                )
                for i in range(3):
                    await store.transcripts.append_message(
                        "main",
                        sid,
                        {"role": "user", "content": f"seed {i}", "idempotencyKey": f"seed-{i}"},
                    )

    asyncio.run(build())
    return path


# One append: (session, entries as (text, idempotency key or None), parent choice).
# Parent choice: "leaf", "root", or an int k: the k-th id appended so far in this run to the
# same session (or a seeded entry when there is none), so explicit parents made in the same
# group are covered.
_entry = st.tuples(
    st.sampled_from(["a", "b", "c"]), st.sampled_from([None, None, "k1", "k2", "seed-1"])
)
_append = st.tuples(
    st.sampled_from((*SESSIONS, 1)),  # 1 = transcript id of s1: another name, same chain
    st.lists(_entry, min_size=1, max_size=3),
    st.one_of(st.just("leaf"), st.just("root"), st.integers(0, 4)),
)


def _mutations(
    conn: sqlite3.Connection, plan: list[Any], made: dict[Any, list[str]]
) -> list[AppendMutation]:
    out = []
    for target, entries, parent in plan:
        fields = [
            {"type": "message", "timestamp": "2026-01-02T00:00:00.000Z",
             "message": {"role": "user", "content": text, **({"idempotencyKey": k} if k else {})}}
            for text, k in entries
        ]  # fmt: skip
        if parent == "leaf":
            parent_id: str | None = LEAF
        elif parent == "root":
            parent_id = None
        else:
            ids = made.get("s1" if target == 1 else target) or []
            parent_id = ids[parent % len(ids)] if ids else LEAF
        out.append(AppendMutation("main", target, fields, parent_id))
    return out


def _shape(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Every line and transcript counter, with entry ids renamed by order of appearance
    (ids are random)."""
    names: dict[str, str] = {}

    def name(entry_id: str | None) -> str | None:
        if entry_id is None:
            return None
        return names.setdefault(entry_id, f"id{len(names)}")

    lines = conn.execute(
        "SELECT transcript_id, pos, kind, entry_id, parent_id, parent_pos, type, role, "
        "idempotency_key, byte_size, line FROM transcript_lines ORDER BY transcript_id, pos"
    ).fetchall()
    shaped = []
    for tid, pos, kind, eid, pid, ppos, typ, role, key, size, line in lines:
        text = str(line)
        for raw in (eid, pid):
            if raw:
                text = text.replace(raw, name(raw) or "")
        shaped.append((tid, pos, kind, name(eid), name(pid), ppos, typ, role, key, size, text))
    counters = conn.execute(
        "SELECT transcript_id, leaf_pos, line_count, entry_count, byte_size FROM transcripts "
        "ORDER BY transcript_id"
    ).fetchall()
    return shaped + [tuple(c) for c in counters]


def _run(db: Path, plan: list[Any], combined: bool) -> tuple[list[Any], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        # Parents by index refer to ids made earlier in the run: make them known up front by
        # a first pass that only collects the seeded ids.
        made: dict[Any, list[str]] = {
            sid: [r[0] for r in conn.execute(
                "SELECT entry_id FROM transcript_lines l JOIN transcripts t USING (transcript_id) "
                "WHERE t.session_id = ? AND l.kind = 'entry' ORDER BY pos", (sid,))]
            for sid in SESSIONS
        }  # fmt: skip
        mutations = _mutations(conn, plan, made)
        if combined:
            results = AppendMutation.combine(conn, mutations)
        else:
            results = [m(conn) for m in mutations]
        conn.execute("COMMIT")
        return [[(a.pos, a.existed) for a in r] for r in results], _shape(conn)
    finally:
        conn.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=st.lists(_append, min_size=2, max_size=8))
def test_a_combined_group_leaves_what_one_by_one_leaves(
    template: Path, tmp_path_factory: pytest.TempPathFactory, plan: list[Any]
) -> None:
    work = tmp_path_factory.mktemp("run")
    one, both = work / "one.sqlite", work / "both.sqlite"
    shutil.copyfile(template, one)
    shutil.copyfile(template, both)
    assert _run(both, plan, combined=True) == _run(one, plan, combined=False)


async def test_a_failing_append_in_a_group_fails_alone(backend_location: str | Path) -> None:
    async with await Store.open(backend_location, full_text=False) as store:
        for sid in SESSIONS:
            await store.transcripts.create("main", sid, cwd="/w")
        calls = [
            store.transcripts.append_message(
                "main", SESSIONS[i % 2], {"role": "user", "content": str(i)}
            )
            for i in range(20)
        ]
        calls.insert(
            7, store.transcripts.append_message("main", "missing", {"role": "user", "content": "x"})
        )
        calls.insert(12, store.transcripts.append("main", "s1", [{"type": ""}]))
        calls.insert(
            15, store.transcripts.append("main", "s2", [{"type": "message"}], parent_id="nope")
        )
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(outcomes[7], NotFoundError)
        assert isinstance(outcomes[12], InvalidEntryError)
        assert isinstance(outcomes[15], NotFoundError)
        good = [o for i, o in enumerate(outcomes) if i not in (7, 12, 15)]
        assert all(not isinstance(o, BaseException) for o in good)
        assert store.metrics()["largest_batch"] > 1
        assert store.metrics()["savepoint_reruns"] >= 1  # the group ran again, one by one
        for sid in SESSIONS:
            path = await store.transcripts.active_path("main", sid)
            assert [e.value()["message"]["content"] for e in path] == [
                str(i) for i in range(20) if SESSIONS[i % 2] == sid
            ]


async def test_concurrent_appends_to_one_transcript_form_one_chain_through_groups(
    backend_location: str | Path,
) -> None:
    async with await Store.open(backend_location, full_text=False) as store:
        info = await store.transcripts.create("main", "s1", cwd="/w")
        tid = info.transcript_id

        async def writer(n: int) -> None:
            for i in range(10):
                target: str | int = "s1" if (n + i) % 2 else tid  # both names of one chain
                await store.transcripts.append_message(
                    "main", target, {"role": "user", "content": f"{n}-{i}"}
                )

        await asyncio.gather(*(writer(n) for n in range(30)))
        path = await store.transcripts.active_path("main", "s1")
        assert len(path) == 300  # every append on one path: no siblings
        assert store.metrics()["mean_batch_size"] > 2


async def test_an_id_a_stored_entry_has_makes_the_group_place_its_entries_again(
    backend_location: str | Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await Store.open(backend_location, full_text=False) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        real = os.urandom  # uuid4 draws 16 bytes from it: only the 8-hex-digit ids collide
        monkeypatch.setattr(
            "store_sql.transcripts.rows.os.urandom", lambda n: b"\xaa" * n if n == 4 else real(n)
        )
        first = await store.transcripts.append_message(
            "main", "s1", {"role": "user", "content": "0"}
        )
        assert first.id == "aaaaaaaa"
        reruns = store.metrics()["savepoint_reruns"]
        later = await asyncio.gather(
            *(store.transcripts.append_message("main", "s1", {"role": "user", "content": str(i)})
              for i in range(1, 4))
        )  # fmt: skip
        # SQLite reruns the group one append at a time; PostgreSQL's write refuses the
        # group's lines and the group places them again itself (pg_appends.py).
        rerun = 1 if store.dialect == "sqlite" else 0
        assert store.metrics()["savepoint_reruns"] == reruns + rerun
        ids = [first.id, *(a.id for a in later)]
        assert len(set(ids)) == 4  # pi's fallback after 100 draws: a whole UUID
        assert all(len(i) == 36 for i in ids[1:])
        path = await store.transcripts.active_path("main", "s1")
        assert [e.id for e in path] == ids

"""The session index on PostgreSQL across processes: compare-and-swap holds between two
real processes writing one database (each with its own writer and group commit), a key is
created once however many processes race to create it, and listing reads no entry text.

PostgreSQL only by nature: one SQLite database has one writing process (docs/GUARANTEES.md),
so there is no second process to race with; what both backends share is in
test_sessions.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from store_sql import Store
from store_sql.sessions.guards import Expect

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path
from store_sql import ConflictError, Store
from store_sql.sessions.guards import Expect

url, go = sys.argv[1], Path(sys.argv[2])
rounds, tasks, keys = (int(a) for a in sys.argv[3:6])

async def main():
    store = await Store.open(url)
    created = []
    conflicts = 0

    async def by_update():
        for _ in range(rounds):
            await store.sessions.update("main", "counter", lambda e: {**e, "n": e["n"] + 1})

    async def by_expected_version():
        nonlocal conflicts
        for _ in range(rounds):
            while True:
                current = await store.sessions.get_text("main", "counter")
                value = current.value()
                try:
                    await store.sessions.patch(
                        "main", "counter", {"m": value["m"] + 1},
                        expect=Expect(version=current.version),
                    )
                    break
                except ConflictError:
                    conflicts += 1

    async def create_once(i):
        entry = {"sessionId": f"s{i}", "updatedAt": i}
        try:
            await store.sessions.put("main", f"new:{i}", entry, expect=Expect(exists=False))
            created.append(i)
        except ConflictError:
            pass

    while not go.exists():
        await asyncio.sleep(0.005)
    await asyncio.gather(
        *(by_update() for _ in range(tasks)),
        *(by_expected_version() for _ in range(tasks)),
        *(create_once(i) for i in range(keys)),
    )
    await store.close()
    print(json.dumps({"created": created, "conflicts": conflicts}))

asyncio.run(main())
"""


async def test_two_processes_never_lose_an_update(pg_url: str, tmp_path: Path) -> None:
    rounds, tasks, keys = 40, 3, 60
    async with await Store.open(pg_url) as store:
        await store.sessions.put("main", "counter", {"sessionId": "c", "updatedAt": 1, "n": 0,
                                                      "m": 0})  # fmt: skip
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", CHILD, pg_url, str(go), str(rounds), str(tasks), str(keys)]
    children = [
        await asyncio.create_subprocess_exec(
            *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    go.touch()
    outputs = []
    for child in children:
        out, err = await asyncio.wait_for(child.communicate(), timeout=600)
        assert child.returncode == 0, err.decode()
        outputs.append(json.loads(out))
    async with await Store.open(pg_url) as store:
        counter = await store.sessions.get("main", "counter")
        assert counter is not None
        # every read-modify-write of both processes counted exactly once
        assert counter["n"] == 2 * tasks * rounds
        assert counter["m"] == 2 * tasks * rounds
        created = sorted(outputs[0]["created"] + outputs[1]["created"])
        assert created == list(range(keys))  # each key created by exactly one process
        for i in range(keys):
            assert await store.sessions.get("main", f"new:{i}") == {
                "sessionId": f"s{i}",
                "updatedAt": i,
            }
        assert await store.sessions.count_entries("main") == keys + 1


async def test_listing_never_reads_entry_json(pg_url: str) -> None:
    """The PostgreSQL twin of test_sessions.py's SQLite-authorizer check: a role that may
    read every column of session_entries but entry_json lists and counts all the same."""
    async with await Store.open(pg_url) as store:
        for i in range(4):
            label = "x" if i % 2 else "y"
            await store.sessions.patch(
                "main", f"k{i}", {"sessionId": "s", "updatedAt": i, "label": label}
            )
    role = f"r_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"CREATE ROLE {role}")
        await admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        await admin.execute(f"REVOKE SELECT ON session_entries FROM {role}")
        columns = [
            r[0]
            for r in await admin.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'session_entries' AND column_name <> 'entry_json'"
            )
        ]
        await admin.execute(f"GRANT SELECT ({', '.join(columns)}) ON session_entries TO {role}")
        from store_sql.sessions import pg_rows
        from store_sql.sessions.rows import ListFilter

        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(f"SET ROLE {role}")
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                listed = await pg_rows.list_entries(conn, "main", ListFilter(label="x"), 10, 0)
                assert [s.key for s in listed] == ["k3", "k1"]
                assert await pg_rows.count_entries(conn, "main", ListFilter()) == 4
            try:
                await conn.fetch("SELECT entry_json FROM session_entries")
            except asyncpg.InsufficientPrivilegeError:
                pass  # the role really cannot read the text: the listing above did not
            else:
                raise AssertionError("the role could read entry_json")
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_expect_and_batch_hold_on_postgresql_as_on_sqlite(pg_url: str) -> None:
    """A failing op of a batch leaves nothing written, also next to other writers' groups."""
    from store_sql import ConflictError
    from store_sql.sessions.guards import SessionOp

    async with await Store.open(pg_url) as store:
        await store.sessions.put("main", "a", {"sessionId": "s", "updatedAt": 1})
        batch = store.sessions.batch(
            "main",
            [
                SessionOp("patch", "a", {"label": "L"}),
                SessionOp("put", "b", {"sessionId": "t", "updatedAt": 2}),
                SessionOp("touch", "a", updated_at=5, expect=Expect(updated_at=99)),
            ],
        )
        others = [store.sessions.patch("main", f"o{i}", {"sessionId": "o", "updatedAt": i})
                  for i in range(10)]  # fmt: skip
        results = await asyncio.gather(batch, *others, return_exceptions=True)
        assert isinstance(results[0], ConflictError)
        assert all(isinstance(r, dict) for r in results[1:])
        assert await store.sessions.get("main", "a") == {"sessionId": "s", "updatedAt": 1}
        assert await store.sessions.get("main", "b") is None
        assert await store.sessions.count_entries("main") == 11


async def test_nul_in_keys_and_fields(pg_url: str) -> None:
    """PostgreSQL text cannot hold NUL: a key with one is refused before anything is
    written, a lookup by one finds nothing, a field with one stays in the entry text."""
    from store_sql import InvalidEntryError, NotFoundError

    async with await Store.open(pg_url) as store:
        entry = {"sessionId": "s", "updatedAt": 1}
        with pytest.raises(InvalidEntryError, match="NUL"):
            await store.sessions.patch("main", "a\0b", entry)
        with pytest.raises(InvalidEntryError, match="NUL"):
            await store.sessions.put("main", "a\0b", entry)
        with pytest.raises(InvalidEntryError, match="NUL"):
            await store.sessions.update("main", "a\0b", lambda e: entry)
        assert await store.sessions.get("main", "a\0b") is None
        assert await store.sessions.delete("main", "a\0b") is False
        with pytest.raises(NotFoundError):
            await store.sessions.touch("main", "a\0b", 5)
        entry = {"sessionId": "s", "updatedAt": 1, "label": "x\0y", "model": "m"}
        await store.sessions.put("main", "k", entry)
        assert await store.sessions.get("main", "k") == entry
        [summary] = await store.sessions.list_entries("main")
        assert summary.label is None  # left out of its column, kept in the text
        assert summary.model == "m"
        assert await store.sessions.list_entries("main", label="x\0y") == []
        assert await store.sessions.agents() == ["main"]


TURNS_CHILD = r"""
import asyncio, sys
from pathlib import Path
from store_sql import Store

url, go, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
rounds, tasks = (int(a) for a in sys.argv[4:6])

async def main():
    store = await Store.open(url)

    async def turns(task):
        for n in range(rounds):
            message = {"role": "user", "content": f"{name} {task} {n}",
                       "idempotencyKey": f"{name}-{task}-{n}"}
            await store.sessions.turn(
                "main", "agent:main:main", [{"type": "message", "message": message}],
                fields={"lastWriter": name}, expect_session_id="s1",
            )
            # a plain append to the same transcript, queued beside the turns
            await store.transcripts.append_message(
                "main", "s1", {"role": "assistant", "content": f"{name} {task} {n} reply"}
            )

    while not go.exists():
        await asyncio.sleep(0.005)
    await asyncio.gather(*(turns(t) for t in range(tasks)))
    await store.close()

asyncio.run(main())
"""


async def test_turns_of_two_processes_form_one_chain(pg_url: str, tmp_path: Path) -> None:
    rounds, tasks = 15, 3
    async with await Store.open(pg_url) as store:
        await store.transcripts.create("main", "s1", cwd="/w")
        await store.sessions.patch("main", "agent:main:main", {"sessionId": "s1", "updatedAt": 1})
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", TURNS_CHILD, pg_url, str(go), name, str(rounds), str(tasks),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        for name in ("a", "b")
    ]  # fmt: skip
    go.touch()
    for child in children:
        _, err = await asyncio.wait_for(child.communicate(), timeout=600)
        assert child.returncode == 0, err.decode()
    async with await Store.open(pg_url) as store:
        path = await store.transcripts.active_path("main", "s1")
        total = 2 * 2 * rounds * tasks  # two processes, a turn and an append each round
        assert len(path) == total  # one chain: every entry on the path from the leaf
        contents = [json.loads(e.raw)["message"]["content"] for e in path]
        assert len(set(contents)) == total
        for name in ("a", "b"):
            for task in range(tasks):
                mine = [c for c in contents if c.startswith(f"{name} {task} ")]
                expected = [
                    text for n in range(rounds) for text in (f"{name} {task} {n}",
                                                             f"{name} {task} {n} reply")
                ]  # fmt: skip
                assert mine == expected  # each task's writes in the order it made them
        entry = await store.sessions.get("main", "agent:main:main")
        assert entry is not None
        assert entry["lastWriter"] in ("a", "b")

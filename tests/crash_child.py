"""The process tests/test_crash.py kills: it writes to a store and prints what was acknowledged.

    python tests/crash_child.py writer DB RUN SEED
    python tests/crash_child.py migrate DB
    python tests/crash_child.py import DB SRC

`writer` prints `OPENING`, opens DB (creating it on the first run), makes sure the sessions
exist, prints `READY`, then lets several tasks write until it is killed. After each write
is acknowledged (its `await` returned) it prints one line and flushes, so every line the
test reads names a write the store promised to keep (docs/GUARANTEES.md):

    A <session> <key> <entry id>                append_message with idempotency key <key>
    I <session key> <n>                         update(): field `n` incremented to <n>
    T <session key> <updatedAt>                 touch() (the updatedAt fast path)
    C <session> <key> <id1>,<id2>,<id3> <count> ONE store.write: three entries appended AND
                                                the index entry's `combined` set to <count>
                                                and `lastCombined` to <id3>

`migrate` opens DB, prints `MIGRATING`, migrates session `v1` to v3, prints `DONE <id>`.
`import` imports SRC into DB, printing `P <source bytes done>` after every chunk.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from store_sql import sessions, transcripts
from store_sql.engine.pragmas import EngineSettings
from store_sql.store import Store

AGENT = "main"
SESSIONS = [f"s{i}" for i in range(6)]
TASKS = 8
# Small WAL bounds so forced and automatic checkpoints happen often and kills land in them.
SETTINGS = EngineSettings(wal_truncate_bytes=1 << 20, wal_autocheckpoint_pages=100)


def session_key(session_id: str) -> str:
    return f"agent:{AGENT}:{session_id}"


def ack(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _setup(conn: sqlite3.Connection) -> None:
    for sid in SESSIONS:
        if transcripts.find_live(conn, AGENT, sid) is None:
            transcripts.create_transcript(
                conn, AGENT, sid, rel_dir=sessions.default_rel_dir(AGENT), cwd="/work"
            )
        if sessions.get_entry(conn, AGENT, session_key(sid)) is None:
            entry = {"sessionId": sid, "updatedAt": 1, "n": 0, "combined": 0}
            sessions.put_entry(conn, AGENT, session_key(sid), entry)


def _message(key: str, rng: random.Random) -> dict[str, Any]:
    # Mostly small lines, now and then a large one (several pages, overflow chains).
    size = rng.choice((20, 200, 1000, 30000)) if rng.random() < 0.1 else rng.randint(10, 400)
    return {"role": "user", "content": "w" * size, "idempotencyKey": key}


def _combined(sid: str, key: str, rng: random.Random) -> Any:
    """Three entries and an index change in one mutation: all of it is kept, or none."""
    messages = [_message(f"{key}.{i}", rng) for i in range(3)]

    def mutation(conn: sqlite3.Connection) -> tuple[list[str], int]:
        tid = transcripts.require_live(conn, AGENT, sid).transcript_id
        appended = transcripts.append_entries(
            conn, tid, [{"type": "message", "message": m} for m in messages]
        )
        ids = [a.id for a in appended]

        def bump(entry: dict[str, Any] | None) -> dict[str, Any]:
            assert entry is not None
            return {**entry, "combined": entry["combined"] + 1, "lastCombined": ids[-1]}

        updated = sessions.update_entry(conn, AGENT, session_key(sid), bump)
        assert updated is not None
        return ids, int(updated["combined"])

    return mutation


def _bump_n(entry: dict[str, Any] | None) -> dict[str, Any]:
    assert entry is not None
    return {**entry, "n": entry["n"] + 1}


async def _work(store: Store, run: str, task: int, rng: random.Random) -> None:
    serial = 0
    # touch() values must only grow per key, so each key is touched by one task only.
    touched = [sid for i, sid in enumerate(SESSIONS) if i % TASKS == task]
    while True:
        serial += 1
        key = f"{run}-{task}-{serial}"
        sid = rng.choice(SESSIONS)
        op = rng.random()
        if op < 0.45:
            done = await store.transcripts.append_message(AGENT, sid, _message(key, rng))
            ack(f"A {sid} {key} {done.id}")
        elif op < 0.7:
            entry = await store.sessions.update(AGENT, session_key(sid), _bump_n)
            assert entry is not None
            ack(f"I {session_key(sid)} {entry['n']}")
        elif op < 0.8 and touched:
            sid = rng.choice(touched)
            now = time.time_ns() // 1000  # microseconds: grows across runs too
            await store.sessions.touch(AGENT, session_key(sid), now)
            ack(f"T {session_key(sid)} {now}")
        else:
            ids, count = await store.write(_combined(sid, key, rng))
            ack(f"C {sid} {key} {','.join(ids)} {count}")


async def writer(db: str, run: str, seed: int) -> None:
    ack("OPENING")
    store = await Store.open(db, settings=SETTINGS)
    await store.write(_setup)
    ack("READY")
    rng = random.Random(seed)
    tasks = [_work(store, run, t, random.Random(rng.random())) for t in range(TASKS)]
    await asyncio.gather(*tasks)


async def migrate(db: str) -> None:
    store = await Store.open(db)
    ack("MIGRATING")
    info = await store.transcripts.migrate_to_v3(AGENT, "v1")
    ack(f"DONE {info.transcript_id}")
    await store.close()


async def import_source(db: str, src: str) -> None:
    from store_sql.importer import import_path

    store = await Store.open(db)
    report = await import_path(
        store, Path(src), progress=lambda p: ack(f"P {p.bytes_done} {p.rel_path}")
    )
    ack(f"DONE {int(report.ok)}")
    await store.close()


def main(argv: list[str]) -> None:
    mode, db = argv[0], argv[1]
    if mode == "writer":
        asyncio.run(writer(db, argv[2], int(argv[3])))
    elif mode == "migrate":
        asyncio.run(migrate(db))
    elif mode == "import":
        asyncio.run(import_source(db, argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The child process of the crash, multi-process and disk-full tests, and `Child` to run it.

It writes to a store and prints each acknowledged operation; the tests kill it at random.

    python tests/crash_child.py writer DB RUN SEED [SECONDS]
    python tests/crash_child.py hold DB SECONDS
    python tests/crash_child.py migrate DB
    python tests/crash_child.py import DB SRC
    python tests/crash_child.py diskfull DB MAX_FILE_BYTES

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

With SECONDS the writer stops by itself after that long, closes the store and prints
`CLOSED` (tests/test_multiprocess.py runs it beside a second process).
`hold` opens DB and runs one mutation that keeps the write lock for SECONDS: it prints
`HOLDING` once inside the transaction and `RELEASED` after its commit.
`migrate` opens DB, prints `MIGRATING`, migrates session `v1` to v3, prints `DONE <id>`.
`import` imports SRC into DB, printing `P <source bytes done>` after every chunk.
`diskfull` runs with no file allowed past MAX_FILE_BYTES (RLIMIT_FSIZE, SIGXFSZ ignored: a
write past it fails with EFBIG, as on a full disk) and prints `A ...` acknowledgements,
`BIGFAILED <retries> <error>`, `READ <entries>`, `FULL <error>`, then lifts the limit
("space comes back"), writes again and prints `CLOSED` (tests/test_disk_full.py).
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from store_sql import Store
from store_sql.engine.pragmas import EngineSettings
from store_sql.sessions import rows as sessions
from store_sql.transcripts import appends as transcript_appends
from store_sql.transcripts import rows as transcripts

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


_WORDS = ("tool", "result", "assistant", "user", "error", "ok", "file", "línea", "日本", "0.000009")


def _message(key: str, rng: random.Random) -> dict[str, Any]:
    # Mostly small lines, now and then a large one (several pages, overflow chains). Words,
    # not one repeated letter: a single trigram with millions of positions made every
    # full-text segment merge rewrite tens of MB in one transaction.
    words = rng.choice((3, 30, 150, 4000)) if rng.random() < 0.1 else rng.randint(2, 60)
    text = " ".join(rng.choices(_WORDS, k=words))
    return {"role": "user", "content": text, "idempotencyKey": key}


def _combined(sid: str, key: str, rng: random.Random) -> Any:
    """Three entries and an index change in one mutation: all of it is kept, or none."""
    messages = [_message(f"{key}.{i}", rng) for i in range(3)]

    def mutation(conn: sqlite3.Connection) -> tuple[list[str], int]:
        tid = transcripts.require_live(conn, AGENT, sid).transcript_id
        appended = transcript_appends.append_entries(
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


async def _work(store: Store, run: str, task: int, rng: random.Random, stop: float) -> None:
    serial = 0
    # touch() values must only grow per key, so each key is touched by one task only.
    touched = [sid for i, sid in enumerate(SESSIONS) if i % TASKS == task]
    while time.monotonic() < stop:
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


async def writer(db: str, run: str, seed: int, seconds: float | None) -> None:
    ack("OPENING")
    store = await Store.open(db, settings=SETTINGS)
    await store.write(_setup)
    ack("READY")
    rng = random.Random(seed)
    stop = time.monotonic() + seconds if seconds is not None else float("inf")
    tasks = [_work(store, run, t, random.Random(rng.random()), stop) for t in range(TASKS)]
    await asyncio.gather(*tasks)
    await store.close()
    ack("CLOSED")


async def hold(db: str, seconds: float) -> None:
    store = await Store.open(db)

    def keep_the_lock(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS held (at REAL)")
        conn.execute("INSERT INTO held VALUES (?)", (time.time(),))
        ack("HOLDING")
        time.sleep(seconds)

    await store.write(keep_the_lock)
    ack("RELEASED")
    await store.close()


async def migrate(db: str) -> None:
    store = await Store.open(db)
    ack("MIGRATING")
    info = await store.transcripts.migrate_to_v3(AGENT, "v1")
    ack(f"DONE {info.transcript_id}")
    await store.close()


async def import_source(db: str, src: str) -> None:
    from store_sql import import_path

    store = await Store.open(db)
    report = await import_path(
        store, Path(src), progress=lambda p: ack(f"P {p.bytes_done} {p.rel_path}")
    )
    ack(f"DONE {int(report.ok)}")
    await store.close()


# --- the parent's side: running this script and killing it -------------------------------


class Child:
    """This script run as a child process (`args` as on its command line); a thread collects
    its acknowledgements while the test decides when to kill it. Its stderr goes to
    `stderr_path`, shown when the child fails on its own."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if not raw.endswith(b"\n"):
                break  # torn by the kill: never acknowledged
            with self._cond:
                self.lines.append(raw.decode().rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 60) -> bool:
        """Wait until a printed line satisfies `predicate` (False if the child ended first)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(predicate(line) for line in self.lines):
                if self._eof:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"child printed nothing matching in {timeout}s")
                self._cond.wait(left)
        return True

    def kill(self) -> list[str]:
        """SIGKILL the child; a child that finished just before the signal is fine too."""
        self.proc.send_signal(signal.SIGKILL)
        return self.finish(expect_killed=True)

    def finish(self, *, expect_killed: bool = False, timeout: float = 120) -> list[str]:
        code = self.proc.wait(timeout)
        self._thread.join(30)
        self._stderr.close()
        err = Path(self._stderr.name).read_text(errors="replace")
        if expect_killed:
            # Killed, or done just before the signal; never dead of an exception.
            assert code in (-signal.SIGKILL, 0), f"child exited {code} before the kill:\n{err}"
        else:
            assert code == 0, f"child failed ({code}):\n{err}"
        return list(self.lines)


async def disk_full(db: str, max_file_bytes: int) -> None:
    import resource

    from store_sql.errors import WriteFailedError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, resource.RLIM_INFINITY))
    store = await Store.open(db)

    async def append(key: str, size: int) -> None:
        message = {"role": "user", "content": "d" * size, "idempotencyKey": key}
        done = await store.transcripts.append_message(AGENT, "s0", message)
        ack(f"A s0 {key} {done.id}")

    for n in range(5):
        await append(f"before-{n}", 300)
    # One write too large for the space left, queued with two small ones: only its caller
    # hears of the failure (the group commit fails, each job is retried alone).
    outcomes = await asyncio.gather(
        append("big", 3_000_000), append("small-0", 300), append("small-1", 300),
        return_exceptions=True,
    )  # fmt: skip
    big = outcomes[0]
    assert isinstance(big, WriteFailedError), outcomes
    assert outcomes[1:] == [None, None], outcomes
    ack(f"BIGFAILED {store.metrics()['batch_retries']} {big}")
    await append("after-big", 300)  # the store is still usable
    info = await store.transcripts.info(AGENT, "s0")
    ack(f"READ {info.entry_count}")
    n = 0
    while True:  # fill the WAL up to the limit: the first failure ends the loop
        try:
            await append(f"fill-{n}", 20_000)
        except WriteFailedError as exc:
            ack(f"FULL {exc}")
            break
        n += 1
    info = await store.transcripts.info(AGENT, "s0")  # reads still work when full
    ack(f"READ {info.entry_count}")
    # Space comes back (the limit is lifted): the same store writes again, no reopening.
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    await append("space-back", 20_000)
    await store.close()
    ack("CLOSED")


def main(argv: list[str]) -> None:
    mode, db = argv[0], argv[1]
    if mode == "writer":
        seconds = float(argv[4]) if len(argv) > 4 else None
        asyncio.run(writer(db, argv[2], int(argv[3]), seconds))
    elif mode == "hold":
        asyncio.run(hold(db, float(argv[2])))
    elif mode == "migrate":
        asyncio.run(migrate(db))
    elif mode == "diskfull":
        asyncio.run(disk_full(db, int(argv[2])))
    elif mode == "import":
        asyncio.run(import_source(db, argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

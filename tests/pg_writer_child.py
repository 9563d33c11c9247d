"""A writer process of the PostgreSQL multi-writer test (tests/test_pg_multiwriter.py).

    python tests/pg_writer_child.py URL PROCESS SECONDS ACKS

Opens the store at URL and runs `TASKS` tasks for SECONDS; each task appends messages to
the shared transcripts and to this process's own, some with keys every process uses (so
one key is appended by several processes at once) and some again with a key it used
before (a retry). After each append is acknowledged (its `await` returned) the task writes
one line to the file ACKS with one `os.write` on an O_APPEND descriptor, so a kill -9 leaves
whole lines and nothing unacknowledged:

    <session> <key> <entry id> <existed: 0|1>

Prints `READY` once the store is open and `CLOSED` when done.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time

from store_sql import Store

AGENT = "main"
TASKS = 25
SHARED = [f"shared{i}" for i in range(3)]
COMMON_KEYS = 40
"""Keys `common-<n>` that every process appends to shared0: each must end up once."""


def own_session(process: int) -> str:
    return f"own{process}"


async def _task(store: Store, process: int, task: int, deadline: float, fd: int) -> None:
    rng = random.Random(process * 1000 + task)
    used: list[tuple[str, str]] = []
    n = 0
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.1 and used:
            session, key = rng.choice(used)  # a retry of an acknowledged append
        elif roll < 0.2:
            session, key = SHARED[0], f"common-{rng.randrange(COMMON_KEYS)}"
        else:
            session = own_session(process) if roll < 0.5 else rng.choice(SHARED)
            key = f"p{process}-t{task}-{n}"
            n += 1
        message = {"role": "user", "content": f"{key} from {process}", "idempotencyKey": key}
        done = await store.transcripts.append_message(AGENT, session, message)
        os.write(fd, f"{session} {key} {done.id} {int(done.existed)}\n".encode())
        used.append((session, key))


async def main(url: str, process: int, seconds: float, acks: str) -> None:
    store = await Store.open(url)
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        print("READY", flush=True)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_task(store, process, t, deadline, fd) for t in range(TASKS)))
    finally:
        os.close(fd)
        await store.close()
    print("CLOSED", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))

"""The directory-backed index (sessions.d): patching one entry of a 10,000-key index.

Metrics (ratio orientation in harness.py: > 1 means the store did better):
- `sessions_d.patch_vs_entry_file`: one `store.sessions.patch` on an agent imported from a
  10,000-file sessions.d vs the seed PR's own write path for one session, done in Python
  with the same steps: check the directory is active (lstat of sessions.d and entries/, read
  and check state.json), read and parse the key's entry file, merge the patch, write
  ``JSON.stringify({sessionKey, entry}, null, 2)`` to a temp file, fsync, rename; then write
  state.json with version + 1 the same way. The PR's atomic write syncs the temp file before
  renaming it, so this is its approach as written. ratio = speedup.
- `sessions_d.patch_vs_entry_file_nofsync`: the same baseline without the two fsyncs (what
  the write costs when the disk is not asked to persist it; the store's own commit, WAL with
  synchronous=NORMAL, does not fsync either). ratio = speedup.

The patch is what the gateway writes after a turn (`updatedAt` and token counters); entries
are ~1.4 KB (fixtures.session_entry), as in bench_sessions.py.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fixtures
import orjson
from bench_sessions import PatchPlan
from fixtures import AGENT
from harness import Fastest, Row, abest_of, bench_dir, best_of, row, run_async

from store_sql import Store
from store_sql.formats import jsjson
from store_sql.formats import sessions_dir as directory_index
from store_sql.importer.api import import_path
from store_sql.sessions import rows as sessions_mod

SESSIONS = 10_000


def write_directory(root: Path, index: dict[str, dict[str, Any]]) -> None:
    """A sessions.d as the gateway's migration writes it (state version 1)."""
    entries = root / "entries"
    entries.mkdir(parents=True, mode=0o700)
    for key, entry in index.items():
        text = jsjson.dumps({"sessionKey": key, "entry": entry}, indent=2)
        (entries / directory_index.entry_file_name(key)).write_text(text, encoding="utf-8")
    (root / "state.json").write_bytes(directory_index.render_state(1, fixtures.BASE_MS))


def _write_atomic(path: Path, data: bytes, fsync: bool) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def patch_entry_file(root: Path, key: str, patch: Mapping[str, Any], fsync: bool) -> None:
    """The PR's write path for one session (writeSessionEntryToDirectory after a merge)."""
    entries = root / "entries"
    for folder in (root, entries):
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise RuntimeError(f"{folder} is not a directory")
    state = orjson.loads((root / "state.json").read_bytes())
    path = entries / directory_index.entry_file_name(key)
    document = orjson.loads(path.read_bytes())
    merged = sessions_mod.apply_patch(document["entry"], patch)
    text = jsjson.dumps({"sessionKey": key, "entry": merged}, indent=2)
    _write_atomic(path, text.encode("utf-8"), fsync)
    new_state = directory_index.render_state(state["version"] + 1, int(time.time() * 1000))
    _write_atomic(root / "state.json", new_state, fsync)


async def _main(quick: bool) -> list[Row]:
    work = bench_dir() / "sessions_d"
    work.mkdir(exist_ok=True)
    index = fixtures.session_index(SESSIONS)
    state = work / "state"
    sessions = state / "agents" / AGENT / "sessions"
    write_directory(sessions / "sessions.d", index)
    baseline_root = work / "baseline.d"
    write_directory(baseline_root, index)
    rounds = 3 if quick else 5
    per_round = 100 if quick else 300
    plan = PatchPlan(list(index), 5000, seed=11)
    fastest = Fastest()
    async with await Store.open(work / "store.sqlite") as store:
        report = await import_path(store, state)
        assert report.ok, report.totals
        assert report.totals["entries"] == SESSIONS, report.totals

        async def patch_one() -> None:
            key, patch = plan.next()
            await store.sessions.patch(AGENT, key, patch)

        for _ in range(rounds):
            fastest.add("store", await abest_of(patch_one, repeat=1, number=per_round))
            fastest.add(
                "files_fsync",
                best_of(lambda: patch_entry_file(baseline_root, *plan.next(), True), repeat=20),
            )
            fastest.add(
                "files",
                best_of(lambda: patch_entry_file(baseline_root, *plan.next(), False), repeat=50),
            )
    us = 1e6
    store_us = fastest["store"] * us
    return [
        row(
            "sessions_d.patch_vs_entry_file", store_us, fastest["files_fsync"] * us, "us/op", False
        ),
        row(
            "sessions_d.patch_vs_entry_file_nofsync",
            store_us,
            fastest["files"] * us,
            "us/op",
            False,
        ),
    ]


def run(quick: bool) -> list[Row]:
    return run_async(lambda: _main(quick))

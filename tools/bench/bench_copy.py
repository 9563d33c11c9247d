"""Import, export and `store-sql copy` on PostgreSQL against SQLite, in the same run.

Metrics (ratio orientation in harness.py: > 1 means the store did better):
- `copy.import_pg_vs_sqlite`: `import_path` of a generated state dir (many transcripts, one
  sessions.json per agent) into a store on PostgreSQL, in MB/s, vs the same import into a
  store on SQLite. ratio = fraction of SQLite's throughput (below 1: a server round trip
  costs more than a SQLite statement; docs/POSTGRES.md).
- `copy.export_pg_vs_sqlite`: `export_tree` of those two stores, MB/s, the same way.
- `copy.sqlite_to_pg_vs_sqlite_to_sqlite`: `store-sql copy` (a real subprocess) from the
  SQLite store into an empty PostgreSQL database, MB/s of the state dir (rows copied, then
  verified: the verify time is `verify_s`), vs `store-sql copy` into an empty SQLite file.
- `copy.peak_rss_mb`: the peak RSS of that SQLite -> PostgreSQL copy process, vs the issue's
  budget of 300 MB. ratio = budget / peak, target >= 1.

The state dir is ~100 MB (20 MB with --quick). The issue's 1 GB case:
``STORE_SQL_BENCH_COPY_MB=1000 tools/bench/run --only copy`` (or ``python
tools/bench/bench_copy.py --mb 1000``). The PostgreSQL server is the run's
(`STORE_SQL_TEST_PG`) or a throwaway one with fsync on, stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import fixtures
from harness import Row, bench_dir, row, run_async

from store_sql import Store, export_tree, import_path
from store_sql.formats.sessions_json import entry_text, render_index

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import pg_server  # noqa: E402

SIZE_ENV = "STORE_SQL_BENCH_COPY_MB"
FILE_MB = 2
RSS_BUDGET_MB = 300.0


def run(quick: bool) -> list[Row]:
    size_mb = int(os.environ.get(SIZE_ENV, "20" if quick else "100"))
    return run_async(lambda: _main(size_mb))


async def _main(size_mb: int) -> list[Row]:
    state = _state_dir(size_mb)
    mb = sum(p.stat().st_size for p in state.rglob("*") if p.is_file()) / 1e6
    with pg_server.server_for_run(durable=True) as server:
        rows: list[Row] = []
        lite = bench_dir() / f"copy_src_{uuid.uuid4().hex}.sqlite"
        pg_url = await _database(server)
        lite_s = await _timed_import(str(lite), state)
        pg_s = await _timed_import(pg_url, state)
        rows.append(row("copy.import_pg_vs_sqlite", mb / pg_s, mb / lite_s, "MB/s", True))
        lite_out_s = await _timed_export(str(lite))
        pg_out_s = await _timed_export(pg_url)
        rows.append(row("copy.export_pg_vs_sqlite", mb / pg_out_s, mb / lite_out_s, "MB/s", True))

        to_lite = _copy(lite, str(bench_dir() / f"copy_dst_{uuid.uuid4().hex}.sqlite"))
        to_pg = _copy(lite, await _database(server))
        rows.append(
            {
                **row(
                    "copy.sqlite_to_pg_vs_sqlite_to_sqlite",
                    mb / to_pg["copy_s"],
                    mb / to_lite["copy_s"],
                    "MB/s",
                    True,
                ),
                "state_mb": round(mb, 1),
                "verify_s": round(to_pg["verify_s"], 2),
                "verified": to_pg["verified"],
            }
        )
        rows.append(
            row("copy.peak_rss_mb", to_pg["rss_mb"], RSS_BUDGET_MB, "MB", False, target=1.0)
        )
    return rows


def _state_dir(size_mb: int) -> Path:
    """Two agents, ~`size_mb` MB of transcripts in files of ~2 MB and a sessions.json each
    (cached between runs)."""
    root = bench_dir() / f"copy_state_{size_mb}mb"
    if (root / "done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    count = FILE_MB * 1_000_000 // 560  # ~560 bytes per entry (fixtures.message_fields)
    files = max(2, size_mb // FILE_MB)
    for agent in ("main", "ops"):
        folder = root / "agents" / agent / "sessions"
        folder.mkdir(parents=True)
        index = {}
        for n in range(files // 2):
            sid = str(uuid.UUID(int=(hash(agent) & 0xFFFF) << 64 | n))
            fixture = fixtures.build_transcript(sid, [None, *range(count - 1)], seed=11)
            fixtures.write_file(folder / f"{sid}.jsonl", fixture.file_bytes())
            index[f"agent:{agent}:s{n}"] = {"sessionId": sid, "updatedAt": 1_770_000_000_000 + n}
        fixtures.write_file(
            folder / "sessions.json",
            render_index((key, entry_text(value)) for key, value in index.items()),
        )
    (root / "done").write_bytes(b"")
    return root


async def _database(server_url: str) -> str:
    import asyncpg

    admin = await asyncpg.connect(server_url)
    name = f"bench_copy_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    finally:
        await admin.close()
    return pg_server.database_url(server_url, name)


async def _timed_import(db: str, state: Path) -> float:
    store = await Store.open(db, full_text=False)
    try:
        started = time.perf_counter()
        report = await import_path(store, state)
        elapsed = time.perf_counter() - started
        assert report.ok, report.as_dict()
        return elapsed
    finally:
        await store.close()


async def _timed_export(db: str) -> float:
    out = bench_dir() / f"copy_out_{uuid.uuid4().hex}"
    store = await Store.open(db, create=False, full_text=False)
    try:
        started = time.perf_counter()
        report = await export_tree(store, out)
        elapsed = time.perf_counter() - started
        assert report.ok
        return elapsed
    finally:
        await store.close()
        shutil.rmtree(out, ignore_errors=True)


def _copy(src: Path, dst: str) -> dict[str, Any]:
    """`store-sql copy SRC DST --json` as a subprocess: its report and its peak RSS (that
    process's own, from wait4, not the largest of every child so far)."""
    exe = shutil.which("store-sql", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "store_sql"]
    out_path = bench_dir() / f"copy_out_{uuid.uuid4().hex}.json"
    with out_path.open("wb") as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*command, "copy", str(src), dst, "--json"], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        message = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"store-sql copy failed ({proc.returncode}): {message}")
    report: dict[str, Any] = json.loads(out_path.read_bytes())
    out_path.unlink()
    report["rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the generated state dir")
    args = parser.parse_args()
    os.environ[SIZE_ENV] = str(args.mb)
    for result in run(quick=False):
        print(json.dumps(result))


if __name__ == "__main__":
    main()

"""How long a `store-sql` process takes from start to exit, against a bare interpreter.

Metrics (ratio orientation in harness.py: > 1 means the store did better):
- `cli_start.help`: `python -m store_sql --help`, seconds from spawn to exit, vs
  `python -c "import sqlite3, json"` started the same way. ratio = baseline / store: the
  fraction of the command's time that is the interpreter's own start.
- `cli_start.sessions_list`: `python -m store_sql sessions list --json` on a small store (the
  repository's samples/state imported: 9 sessions), vs the same baseline.

Rounds of store and baseline alternate and each keeps its fastest (harness.Fastest). Each row
also carries the CPU seconds (user + system) of the fastest-CPU round of each side:
`store_cpu_s`, `baseline_cpu_s`; on a loaded machine the CPU is the steadier number.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from harness import Fastest, Row, bench_dir, row

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE = ROOT / "samples" / "state"
BASELINE = [sys.executable, "-c", "import sqlite3, json"]


def run(quick: bool) -> list[Row]:
    db = _sample_store()
    rounds = 5 if quick else 15
    commands = {
        "cli_start.help": [sys.executable, "-m", "store_sql", "--help"],
        "cli_start.sessions_list": [
            *(sys.executable, "-m", "store_sql", "sessions", "list"),
            *("--db", str(db), "--json"),
        ],
    }
    rows = []
    for metric, command in commands.items():
        wall, cpu = Fastest(), Fastest()
        for _ in range(rounds):
            for name, argv in (("store", command), ("baseline", BASELINE)):
                seconds, cpu_s = _spawn(argv)
                wall.add(name, seconds)
                cpu.add(name, cpu_s)
        result = row(metric, wall["store"], wall["baseline"], "s", higher_is_better=False)
        result["store_cpu_s"] = round(cpu["store"], 4)
        result["baseline_cpu_s"] = round(cpu["baseline"], 4)
        rows.append(result)
    return rows


def _spawn(argv: list[str]) -> tuple[float, float]:
    """Wall seconds from spawn to exit, and the child's CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=_env())
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def _env() -> dict[str, str]:
    # The command must not find a server to defer to, nor a default database elsewhere.
    return {**os.environ, "STORE_SQL_LOCAL": "1"}


def _sample_store() -> Path:
    db = bench_dir() / "cli_start.sqlite"
    if not db.exists():
        subprocess.run(
            [sys.executable, "-m", "store_sql", "import", str(SAMPLE), "--db", str(db), "--json"],
            stdout=subprocess.DEVNULL,
            check=True,
            env=_env(),
        )
    return db


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(result)

"""How long a `store-sql` process takes from start to exit, against a bare interpreter.

Metrics (ratio orientation in harness.py: > 1 means the store did better):
- `cli_start.help`: `python -m store_sql --help`, seconds from spawn to exit, vs
  `python -c "import sqlite3, json"` started the same way. ratio = baseline / store: the
  fraction of the command's time that is the interpreter's own start.
- `cli_start.sessions_list`: `python -m store_sql sessions list --json` on a small store (the
  repository's samples/state imported: 9 sessions), vs the same baseline.
- `cli_start.sessions_patch`: `python -m store_sql sessions patch --json` of one of those
  entries, vs the same baseline: a writing command, which looks for a server owning the
  store (its discovery file) before it works locally.

Both sides run as an installed package does: with its modules' bytecode cached (in this run's
own `PYTHONPYCACHEPREFIX`, written by a first, untimed run; the source tree is not touched).
Rounds of store and baseline alternate and each keeps its fastest (harness.Fastest). Each row
also carries diagnostics: the CPU seconds (user + system) of each side's least-CPU round,
`store_cpu_s` and `baseline_cpu_s` (on a loaded machine the steadier number), and
`store_uncached_s`, the command's fastest time under `PYTHONDONTWRITEBYTECODE=1` with
bytecode read only from each package's own `__pycache__`: for a source tree that has none
(an editable install on a machine that sets the variable, as the test suite's subprocesses
run there) every store_sql module is compiled at every start.
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
PATCHED_KEY = "agent:main:whatsapp:direct:+4915112345678"  # an entry of samples/state


def run(quick: bool) -> list[Row]:
    cached = _env(bench_dir() / "cli_start_pycache", write_bytecode=True)
    uncached = _env(None, write_bytecode=False)
    db = _sample_store(cached)
    rounds = 5 if quick else 15
    commands = {
        "cli_start.help": [sys.executable, "-m", "store_sql", "--help"],
        "cli_start.sessions_list": [
            *(sys.executable, "-m", "store_sql", "sessions", "list"),
            *("--db", str(db), "--json"),
        ],
        "cli_start.sessions_patch": [
            *(sys.executable, "-m", "store_sql", "sessions", "patch", PATCHED_KEY),
            *('{"label": "bench"}', "--db", str(db), "--json"),
        ],
    }
    rows = []
    for metric, command in commands.items():
        _spawn(command, cached)  # writes the bytecode cache
        wall, cpu = Fastest(), Fastest()
        for n in range(rounds):
            for name, argv in (("store", command), ("baseline", BASELINE)):
                seconds, cpu_s = _spawn(argv, cached)
                wall.add(name, seconds)
                cpu.add(name, cpu_s)
            if n < max(3, rounds // 3):
                wall.add("uncached", _spawn(command, uncached)[0])
        result = row(metric, wall["store"], wall["baseline"], "s", higher_is_better=False)
        result["store_cpu_s"] = round(cpu["store"], 4)
        result["baseline_cpu_s"] = round(cpu["baseline"], 4)
        result["store_uncached_s"] = round(wall["uncached"], 4)
        rows.append(result)
    return rows


def _spawn(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds from spawn to exit, and the child's CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=env, cwd=bench_dir())
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def _env(pycache: Path | None, *, write_bytecode: bool) -> dict[str, str]:
    """The children's environment: bytecode read from and written to `pycache`; or, without
    it, read from each package's own `__pycache__` and never written."""
    unset = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if pycache is not None:
        pycache.mkdir(exist_ok=True)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    # No server owns the bench's store (it has no discovery file), so a writing command
    # looks for one, finds none and works locally, as on a machine that runs no server.
    env.pop("STORE_SQL_LOCAL", None)
    return env


def _sample_store(env: dict[str, str]) -> Path:
    db = bench_dir() / "cli_start.sqlite"
    if not db.exists():
        subprocess.run(
            [sys.executable, "-m", "store_sql", "import", str(SAMPLE), "--db", str(db), "--json"],
            stdout=subprocess.DEVNULL,
            check=True,
            env=env,
        )
    return db


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(result)

"""Timing helpers and the result row shared by every benchmark module.

A benchmark module (`tools/bench/bench_*.py`) exposes `run(quick: bool) -> list[dict]` and
returns rows built by `row()`. Each row compares the store with a baseline measured in the
same run, on the same machine, a few seconds apart: absolute numbers move with the machine,
the ratio is what the issues' targets are written against.

Ratio orientation (one rule for every metric, so "bigger is better for the store"):
- a time (`higher_is_better=False`, units like `us/op`): ratio = baseline / store, the
  *speedup*. "500x faster than X" reads `ratio >= 500`; "within 10x of X" reads `ratio >= 0.1`.
- a throughput (`higher_is_better=True`, units like `ops/s`): ratio = store / baseline, the
  *fraction of the baseline's throughput*. "at least 50% of X" reads `ratio >= 0.5`.
`target` (optional) is the smallest ratio that meets the issue's target, in that orientation.
A module may add diagnostic keys to a row (e.g. `mean_batch`, the writer's mean group-commit
size during a concurrent run); readers take the five keys and ignore the rest.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import cProfile
import gc
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "Fastest",
    "ThreadProfiler",
    "abest_of",
    "amedian_of",
    "bench_dir",
    "best_of",
    "error_row",
    "gc_paused",
    "median_of",
    "row",
    "run_async",
    "timed",
]

Row = dict[str, Any]


# --- timing ----------------------------------------------------------------------------------


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off, as timeit does. Every timing helper here (store and
    baseline, sync and async) uses it, so neither side pays for collections the other is
    spared: with a 100,000-entry fixture in memory one full collection takes ~100 ms."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _rounds(fn: Callable[[], object], repeat: int, number: int) -> list[float]:
    """Seconds per call of each of `repeat` rounds of `number` calls (GC paused inside)."""
    per_call: list[float] = []
    for _ in range(max(1, repeat)):
        with gc_paused():
            start = time.perf_counter()
            for _ in range(max(1, number)):
                fn()
            per_call.append((time.perf_counter() - start) / max(1, number))
    return per_call


def best_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Seconds per call: the fastest of `repeat` rounds of `number` calls.

    The minimum is the least noisy estimate of what the code costs on an idle machine."""
    return min(_rounds(fn, repeat, number))


def median_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Seconds per call: the median of `repeat` rounds of `number` calls."""
    return statistics.median(_rounds(fn, repeat, number))


async def _arounds(fn: Callable[[], Awaitable[object]], repeat: int, number: int) -> list[float]:
    per_call: list[float] = []
    for _ in range(max(1, repeat)):
        with gc_paused():
            start = time.perf_counter()
            for _ in range(max(1, number)):
                await fn()
            per_call.append((time.perf_counter() - start) / max(1, number))
    return per_call


async def abest_of(
    fn: Callable[[], Awaitable[object]], *, repeat: int = 5, number: int = 1
) -> float:
    """`best_of` for a coroutine function, awaited one call at a time on the running loop."""
    return min(await _arounds(fn, repeat, number))


async def amedian_of(
    fn: Callable[[], Awaitable[object]], *, repeat: int = 5, number: int = 1
) -> float:
    """`median_of` for a coroutine function."""
    return statistics.median(await _arounds(fn, repeat, number))


class Fastest:
    """The fastest time seen per name, for rounds of store and baseline taken in turns.

    The machines these run on are shared: load comes and goes within seconds. Alternating
    store and baseline rounds and keeping each one's fastest gives both the same chances."""

    def __init__(self) -> None:
        self._best: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self._best[name] = min(seconds, self._best.get(name, float("inf")))

    def __getitem__(self, name: str) -> float:
        return self._best[name]


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes (for work that is measured once, like a batch)."""
    with gc_paused():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def run_async(main: Callable[[], Coroutine[Any, Any, list[Row]]]) -> list[Row]:
    """Run a module's async body on a fresh event loop."""
    return asyncio.run(main())


# --- rows ------------------------------------------------------------------------------------


def row(
    metric: str,
    store: float,
    baseline: float,
    unit: str,
    higher_is_better: bool,
    *,
    target: float | None = None,
) -> Row:
    """One result: `{"metric", "store", "baseline", "ratio", "unit"}` (+ `"target"` if given).

    `ratio` > 1 always means the store did better than the baseline (see the module doc)."""
    if higher_is_better:
        ratio = store / baseline if baseline else float("inf")
    else:
        ratio = baseline / store if store else float("inf")
    result: Row = {
        "metric": metric,
        "store": _round(store),
        "baseline": _round(baseline),
        "ratio": _round(ratio),
        "unit": unit,
    }
    if target is not None:
        result["target"] = target
    return result


def error_row(metric: str, exc: BaseException) -> Row:
    """A module that failed to import or raised: reported, and the other modules still run."""
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return {
        "metric": metric,
        "store": None,
        "baseline": None,
        "ratio": None,
        "unit": "error",
        "error": last,
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _round(value: float) -> float:
    """Four significant digits: enough for a ratio, short enough to read."""
    if value == 0 or value != value or value in (float("inf"), float("-inf")):
        return value
    return float(f"{value:.4g}")


# --- fixtures --------------------------------------------------------------------------------

_BENCH_DIR: Path | None = None


def bench_dir() -> Path:
    """A temporary directory shared by every module of this run, removed when it ends.

    Modules cache their large fixtures here (a 100,000-entry transcript takes seconds to
    build) so that a fixture is built at most once per run."""
    global _BENCH_DIR
    if _BENCH_DIR is None:
        _BENCH_DIR = Path(tempfile.mkdtemp(prefix="store_sql_bench_"))
        atexit.register(shutil.rmtree, _BENCH_DIR, True)
    return _BENCH_DIR


# --- profiling -------------------------------------------------------------------------------


class ThreadProfiler:
    """cProfile over the calling thread *and* every thread started while it is active.

    The store does its SQLite work on connection threads (the writer, the readers), where a
    plain cProfile of the event loop sees only awaits. Used by `run --profile`."""

    def __init__(self) -> None:
        self._main = cProfile.Profile()
        self._threads: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, frame: object, event: str, arg: object) -> None:
        # Runs once, as the first profile event of a new thread: hand over to cProfile.
        sys.setprofile(None)
        profile = cProfile.Profile()
        with self._lock:
            self._threads.append(profile)
        profile.enable()

    def __enter__(self) -> ThreadProfiler:
        threading.setprofile(self._start_in_thread)
        self._main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self._main.disable()
        threading.setprofile(None)

    def stats(self) -> pstats.Stats:
        """Merged statistics of every profiled thread."""
        stats = pstats.Stats(self._main)
        with self._lock:
            for profile in self._threads:
                profile.create_stats()
                if getattr(profile, "stats", None):
                    stats.add(profile)
        return stats

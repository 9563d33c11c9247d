"""What the two writers (SQLite's `engine.writer`, PostgreSQL's `engine.pg.writer`) share:
each runs the mutations queued at one moment as one group transaction, tells every caller
its own outcome, and counts its groups the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from typing import Any


@dataclass(slots=True)
class Outcome:
    """One mutation's result in its group: a value, an exception to raise in its caller
    (`ok` false), or `skipped` (the caller gave up before the group started)."""

    ok: bool
    value: Any = None
    skipped: bool = False


def settle(future: asyncio.Future[Any], outcome: Outcome) -> None:
    """Tell the caller waiting on `future`; one that is done already (cancelled) is left."""
    if future.done():
        return
    if outcome.skipped:
        future.cancel()
    elif outcome.ok:
        future.set_result(outcome.value)
    else:
        future.set_exception(outcome.value)


@dataclass(slots=True)
class GroupCommitMetrics:
    """The group counters every writer keeps; `Store.metrics()` reports them.

    Each engine's writer adds its own counters as fields of a subclass; `as_dict` reports
    those under their field names after the group figures."""

    batches: int = 0
    mutations: int = 0
    failed_mutations: int = 0
    largest_batch: int = 0
    last_batch_size: int = 0
    total_txn_seconds: float = 0.0
    max_txn_seconds: float = 0.0
    batch_retries: int = 0
    savepoint_reruns: int = 0

    def record(self, size: int, failed: int, elapsed: float, *, background: int = 0) -> None:
        """Count one group of `size` mutations, `failed` of them failed, that took `elapsed`
        seconds. `background` of them are the store's own upkeep: in the group's size, not
        in `mutations`, which counts callers' writes only."""
        self.batches += 1
        self.mutations += size - background
        self.failed_mutations += failed
        self.last_batch_size = size
        self.largest_batch = max(self.largest_batch, size)
        self.total_txn_seconds += elapsed
        self.max_txn_seconds = max(self.max_txn_seconds, elapsed)

    def as_dict(self, queue_depth: int) -> dict[str, Any]:
        mean = self.total_txn_seconds / self.batches if self.batches else 0.0
        report: dict[str, Any] = {
            "queue_depth": queue_depth,
            "batches": self.batches,
            "mutations": self.mutations,
            "failed_mutations": self.failed_mutations,
            "mean_batch_size": self.mutations / self.batches if self.batches else 0.0,
            "largest_batch": self.largest_batch,
            "last_batch_size": self.last_batch_size,
            "mean_txn_ms": mean * 1000,
            "max_txn_ms": self.max_txn_seconds * 1000,
            "batch_retries": self.batch_retries,
            "savepoint_reruns": self.savepoint_reruns,
        }
        for field in fields(self):
            if field.name not in _GROUP_FIELDS:
                report[field.name] = getattr(self, field.name)
        return report


_GROUP_FIELDS = frozenset(field.name for field in fields(GroupCommitMetrics))

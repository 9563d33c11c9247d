"""Copy a whole store into another, on either backend (`store-sql copy SRC DST`).

    report = await copy_store(source, destination)     # SQLite -> PostgreSQL, or back
    assert report.verified

Every table of the schema is copied row by row with its keys, so the destination holds the
same sessions, transcripts, versions, checkpoints and import history as the source, not
only the same files. The source is read in one snapshot and never written; batches stream
through a queue of `QUEUE_BATCHES`, so memory stays bounded by a few batches
(`copy.tables`) whatever the store's size. The destination must be empty (`replace=True`
empties it first). Then the copy is verified: both stores' exports are streamed and hashed
file by file (`exporter.digests`) and must be equal, path for path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from store_sql.copy.backend import Batch, Link, end_for
from store_sql.copy.tables import COPIED, CopiedTable
from store_sql.engine.database import Database
from store_sql.errors import CopyFailedError, StoreError
from store_sql.exporter.digests import FileDigest, export_digests

__all__ = ["CopyProgress", "CopyReport", "copy_store"]

QUEUE_BATCHES = 4


@dataclass(frozen=True, slots=True)
class CopyProgress:
    """Where a copy is: `phase` is ``copy`` (rows) or ``verify`` (files hashed)."""

    phase: str
    table: str
    done: int
    total: int
    bytes_done: int


@dataclass(slots=True)
class CopyReport:
    """What `copy_store` copied and what the verification found."""

    source: str
    destination: str
    rows: dict[str, int] = field(default_factory=dict)
    """Rows copied, per table."""
    bytes: int = 0
    """Bytes of the large values copied (lines, entry texts, file contents)."""
    files: int = 0
    """Files whose export digests were compared."""
    differences: list[str] = field(default_factory=list)
    """Files whose export differs between the two stores (empty when verified)."""
    replaced: bool = False
    copy_s: float = 0.0
    verify_s: float = 0.0

    @property
    def verified(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "verified": self.verified,
            "replaced": self.replaced,
            "rows": self.rows,
            "bytes": self.bytes,
            "files": self.files,
            "differences": self.differences,
            "copy_s": round(self.copy_s, 6),
            "verify_s": round(self.verify_s, 6),
        }


async def copy_store(
    source: Database,
    destination: Database,
    *,
    replace: bool = False,
    progress: Callable[[CopyProgress], None] | None = None,
) -> CopyReport:
    """Copy every row of `source` into `destination`, then verify both exports are equal.

    Raises CopyFailedError when the destination is not empty (unless `replace`), when the
    two schemas disagree, or when the copy fails half way (the destination then holds part
    of the source: run again with `replace=True`)."""
    report = CopyReport(_where(source), _where(destination), replaced=replace)
    src, dst = end_for(source), end_for(destination)
    in_src, in_dst = await src.existing(), await dst.existing()
    missing = sorted(name for name in in_src if name not in in_dst)
    if missing:
        raise CopyFailedError(
            f"{report.destination} lacks the tables {', '.join(missing)} of the source: "
            "open both with the same store_sql (store-sql migrate)"
        )
    tables = [t for t in COPIED if t.name in in_src]
    holding = await dst.non_empty(tables)
    if holding and not replace:
        raise CopyFailedError(
            f"{report.destination} is not empty ({', '.join(holding)} hold rows): copy into an "
            "empty store, or pass --replace to empty it first"
        )
    started = time.perf_counter()
    async with destination.indexing_paused():
        if holding:
            await dst.clear(tables)
        try:
            await _copy_rows(src, dst, tables, report, progress)
        except StoreError as exc:
            raise CopyFailedError(
                f"{exc} ({report.destination} now holds part of the copy: run it again with "
                "--replace)"
            ) from exc
    report.copy_s = time.perf_counter() - started
    started = time.perf_counter()
    await _verify(source, destination, report, progress)
    report.verify_s = time.perf_counter() - started
    return report


def _where(store: Database) -> str:
    return store.location


async def _copy_rows(
    src: Any,
    dst: Any,
    tables: list[CopiedTable],
    report: CopyReport,
    progress: Callable[[CopyProgress], None] | None,
) -> None:
    queue: asyncio.Queue[Batch | None] = asyncio.Queue(QUEUE_BATCHES)
    totals: dict[str, int] = {}
    links: dict[str, list[Link]] = {}

    stopped = False

    async def put(batch: Batch) -> None:
        if stopped:
            raise CopyFailedError("the copy stopped: the destination refused a write")
        await queue.put(batch)

    async def produce() -> None:
        try:
            await src.stream(tables, totals.update, put)
        finally:
            await queue.put(None)

    async def consume() -> None:
        done = 0
        while (batch := await queue.get()) is not None:
            table, rows, size = batch
            await dst.insert(table, rows)
            if table.deferred:
                key = table.columns.index(table.key)
                links.setdefault(table.name, []).extend(
                    (row[key], i, row[i])
                    for row in rows
                    for i in table.deferred
                    if row[i] is not None
                )
            report.rows[table.name] = report.rows.get(table.name, 0) + len(rows)
            report.bytes += size
            done += len(rows)
            if progress is not None:
                progress(CopyProgress("copy", table.name, done, sum(totals.values()), report.bytes))

    producer = asyncio.ensure_future(produce())
    try:
        await consume()
    except BaseException:
        # The reader may wait on a full queue (in its thread, on SQLite): make room, so it
        # meets `stopped` at its next batch and ends its snapshot.
        stopped = True
        while not queue.empty():
            queue.get_nowait()
        with contextlib.suppress(BaseException):
            await producer
        raise
    await producer
    for table in tables:
        if links.get(table.name):
            await dst.set_deferred(table, links[table.name])
    await dst.finish(tables)
    for name, total in totals.items():
        copied = report.rows.get(name, 0)
        report.rows[name] = copied
        if copied != total:
            raise CopyFailedError(f"{name}: {copied} rows copied of the source's {total}")


async def _verify(
    source: Database,
    destination: Database,
    report: CopyReport,
    progress: Callable[[CopyProgress], None] | None,
) -> None:
    if progress is not None:
        progress(CopyProgress("verify", "", 0, 2, report.bytes))
    theirs, ours = await asyncio.gather(export_digests(source), export_digests(destination))
    if progress is not None:
        progress(CopyProgress("verify", "", 2, 2, report.bytes))
    report.files = len(theirs)
    report.differences = _differences(theirs, ours)


def _differences(theirs: dict[str, FileDigest], ours: dict[str, FileDigest]) -> list[str]:
    found = []
    for path in sorted(theirs.keys() | ours.keys()):
        a, b = theirs.get(path), ours.get(path)
        if a is None:
            found.append(f"{path}: only in the destination")
        elif b is None:
            found.append(f"{path}: missing from the destination")
        elif a != b:
            found.append(
                f"{path}: differs ({a.size} bytes sha256 {a.sha256[:12]} in the source, "
                f"{b.size} bytes sha256 {b.sha256[:12]} in the destination)"
            )
    return found

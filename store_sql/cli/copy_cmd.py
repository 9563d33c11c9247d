"""`store-sql copy SRC DST`: a whole store into another, SQLite or PostgreSQL either side.

Exit status 0 when the copy is verified (both exports hash the same, file by file), 1 when
it copied but the exports differ, 2 when it could not copy (DST not empty, SRC missing)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from store_sql.cli import output
from store_sql.engine.pg.url import is_postgres_url
from store_sql.errors import CopyFailedError

if TYPE_CHECKING:
    from store_sql.copy.api import CopyProgress, CopyReport


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "copy",
        help="copy a whole store into another (SQLite <-> PostgreSQL), then verify it",
        description="Copy every session, transcript, version, checkpoint and import record "
        "of SRC into DST, streaming (memory stays flat), then verify that both export the "
        "same files byte for byte (a sha256 per file). SRC and DST are database files or "
        "postgresql:// URLs. SRC is opened read-only in effect: never upgraded, never "
        "written. DST is created when missing and must be empty unless --replace.",
    )
    p.add_argument("src", metavar="SRC", help="the store to copy: a file or postgresql:// URL")
    p.add_argument("dst", metavar="DST", help="the store to fill: a file or postgresql:// URL")
    p.add_argument("--replace", action="store_true", help="empty DST first when it holds data")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(handler=_copy)


def _copy(args: argparse.Namespace) -> int:
    import asyncio

    from store_sql.copy.api import copy_store
    from store_sql.store import Store

    if _same(args.src, args.dst):
        raise CopyFailedError(f"SRC and DST are the same store ({args.src})")
    bar = CopyBar(sys.stderr) if sys.stderr.isatty() else None

    async def run() -> CopyReport:
        source = await Store.open(args.src, create=False, upgrade=False, full_text=False, readers=1)
        try:
            destination = await Store.open(args.dst, create=True, full_text=False, readers=1)
            try:
                return await copy_store(
                    source,
                    destination,
                    replace=args.replace,
                    progress=bar.update if bar is not None else None,
                )
            finally:
                await destination.close()
        finally:
            await source.close()

    try:
        report = asyncio.run(run())
    finally:
        if bar is not None:
            bar.close()
    output.emit(report.as_dict(), args.json, _human(report))
    return 0 if report.verified else 1


def _same(a: str, b: str) -> bool:
    if is_postgres_url(a) or is_postgres_url(b):
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)


def _human(report: CopyReport) -> str:
    rows = sum(report.rows.values())
    mb = report.bytes / 1e6
    rate = mb / report.copy_s if report.copy_s else 0.0
    lines = [
        f"copied {rows} rows ({mb:.1f} MB) from {report.source} to {report.destination} "
        f"in {report.copy_s:.2f}s ({rate:.1f} MB/s)"
        + ("; DST was emptied first" if report.replaced else "")
    ]
    if report.verified:
        lines.append(
            f"verified: the {report.files} files both export are identical (sha256 per file, "
            f"{report.verify_s:.2f}s)"
        )
    else:
        lines.append(f"NOT verified: {len(report.differences)} files differ")
        lines.extend(f"  {d}" for d in report.differences)
    return "\n".join(lines)


class CopyBar:
    """A one-line progress bar for a terminal (redrawn at most 10 times a second)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._last = 0.0
        self._shown = False

    def update(self, p: CopyProgress) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and p.done < p.total:
            return
        self._last = now
        frac = p.done / p.total if p.total else 1.0
        filled = int(frac * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        what = (
            f"rows {p.done}/{p.total}  {p.bytes_done / 1e6:.1f} MB  {p.table:<22}"
            if p.phase == "copy"
            else "verifying: hashing both exports".ljust(40)
        )
        self._stream.write(f"\r[{bar}] {frac:6.1%}  {what}")
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\r\033[K")

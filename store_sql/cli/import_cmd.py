"""`store-sql import PATH`: a state dir, one sessions dir or one file into the database.

Exit status 0 when every file imported (damaged lines are kept and reported, not errors),
1 when some file could not be imported, 2 when PATH cannot be imported at all."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres, with_store
from store_sql.cli.remote import server_for, via

if TYPE_CHECKING:
    from store_sql.importer.report import ImportProgress, ImportReport
    from store_sql.store import Store


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "import",
        help="import OpenClaw session files (sources are only read, never changed)",
        description="Import a state dir (every agents/<id>/sessions and the legacy sessions/, "
        "and a current install's agents/<id>/agent/openclaw-agent.sqlite, read-only), "
        "one sessions dir, or one .jsonl / sessions.json file. Re-running it imports only "
        "what changed: grown files get their new lines, files changed in the middle become "
        "new versions.",
    )
    add_common(p)
    p.add_argument("path", metavar="PATH", help="state dir, sessions dir, or one file")
    p.add_argument(
        "--agent",
        help="owner of a sessions dir or file outside agents/<id>/sessions "
        "(with a state dir: import only this agent)",
    )
    p.add_argument("--dry-run", action="store_true", help="read and report, write nothing")
    p.set_defaults(handler=_import)
    on_postgres(p)


def _import(args: argparse.Namespace) -> int:
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None

    async def run(store: Store) -> tuple[ImportReport, int]:
        from store_sql.importer.api import import_path

        report = await import_path(
            store,
            Path(args.path),
            agent=args.agent,
            dry_run=args.dry_run,
            progress=bar.update if bar is not None else None,
        )
        if store.dialect == "postgresql":
            from store_sql.search.pg_indexer import queued

            waiting = await store.postgres.read(queued)
        else:
            from store_sql.search.indexer import backlog

            waiting = await store.read(backlog)
        return report, waiting

    client = server_for(args)
    if client is None:
        try:
            # The lines are indexed for full text by the store the gateway opens, in its
            # idle time, or by `search --catch-up` (said below).
            report, waiting = with_store(args.db, run, create=True)
        finally:
            if bar is not None:
                bar.close()
        value = {**report.as_dict(), "full_text_waiting": waiting}
    else:
        body: dict[str, Any] = {"path": os.path.abspath(args.path), "dryRun": args.dry_run}
        if args.agent is not None:
            body["agent"] = args.agent
        from store_sql.service.wire import snake_keys

        with client:
            value = snake_keys(client.call("POST", "/v1/import", body))
        waiting = value["full_text_waiting"]
    human = _human(value)
    if waiting and not value["dry_run"]:
        # The lines are findable at once (a search scans what is not indexed), but a big
        # import leaves more than a search scans: say how to index them.
        human += (
            f"\nfull-text index: {waiting} lines to index; a store opened by the gateway does "
            "it in idle time, `store-sql search --catch-up` does it now"
        )
    output.emit(via(value, client) if args.json else value, args.json, human)
    return 0 if value["ok"] else 1


def _human(report: dict[str, Any]) -> str:
    """The readable summary of an import, from its JSON form (`ImportReport.as_dict`)."""
    lines: list[str] = []
    for f in report["files"]:
        status, message = f["status"], f["message"]
        if status in ("imported", "unchanged") and not f["damaged_total"] and not message:
            continue
        lines.append(f"{status:>11}  {f['rel_path']}" + (f"  ({message})" if message else ""))
        damaged = f["damaged"]
        lines.extend(f"{'':>11}    line {d['line']}: {d['reason']}" for d in damaged)
        if f["damaged_total"] > len(damaged):
            lines.append(f"{'':>11}    ... {f['damaged_total'] - len(damaged)} more damaged lines")
    for s in report["skipped"]:
        lines.append(f"{'skipped':>11}  {s['path']}  ({s['reason']})")
    for d in report.get("databases", []):
        if d["status"] == "error":
            lines.append(f"{'error':>11}  {d['path']}  ({d['message']})")
            continue
        lines.append(
            f"{'database':>11}  {d['path']} (schema {d['schema_version']}, OpenClaw "
            f"{d['app_version']}): {d['sessions']} sessions, {d['transcripts']} transcripts, "
            f"{d['events']} new events, {d['archives']} archives, {d['cold_archives']} in cold "
            f"storage, {d['pre_migration_files']} pre-migration files"
            + (f"  ({d['message']})" if d["message"] else "")
        )
    t = report["totals"]
    statuses = ", ".join(
        f"{k.removeprefix('status_')} {v}" for k, v in t.items() if k.startswith("status_")
    )
    what = "would import" if report["dry_run"] else "imported"
    lines.append(
        f"{what} {t['files']} files ({statuses or 'none'}): {t['lines']} lines, "
        f"{t['entries']} entries, {t['bytes']} bytes, {t['damaged']} damaged lines kept, "
        f"{t['skipped']} skipped, in {report['duration_s']:.2f}s"
    )
    return "\n".join(lines)


class ProgressBar:
    """A one-line progress bar for a terminal (redrawn at most 10 times a second)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._last = 0.0
        self._shown = False

    def update(self, p: ImportProgress) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and p.bytes_done < p.bytes_total:
            return
        self._last = now
        frac = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
        filled = int(frac * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        name = p.rel_path if len(p.rel_path) <= 40 else "…" + p.rel_path[-39:]
        self._stream.write(
            f"\r[{bar}] {frac:6.1%}  file {p.file_index + 1}/{p.file_count}  "
            f"{p.bytes_done / 1e6:.1f}/{p.bytes_total / 1e6:.1f} MB  {name:<40}"
        )
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\r\033[K")
            self._stream.flush()

"""`store-sql export OUT`: rebuild the state directory (or one transcript) from the database.

Exit status 0 when every file was written, 1 when some stored name was refused (it would
have landed outside OUT) or could not be written, 2 on errors such as an unknown session."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres, with_store
from store_sql.cli.verify_cmd import require_database
from store_sql.errors import ExportRefusedError

if TYPE_CHECKING:
    from store_sql.exporter.api import ExportReport

# exporter.plan.INDEX_LAYOUTS, spelled here so the parser imports no exporter
# (tests/test_cli_start.py checks the two agree).
INDEX_LAYOUTS = ("json", "directory")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "export",
        help="write the stored files back out, byte for byte",
        description="Rebuild agents/<id>/sessions/ (or the legacy sessions/) under OUT with "
        "the original file names; untouched data comes out exactly as imported. With "
        "--session, write one transcript to OUT (or to stdout when OUT is -).",
    )
    add_common(p)
    p.add_argument("out", metavar="OUT", help="output directory (with --session: a file or -)")
    p.add_argument("--agent", help="only this agent (with --session: default main)")
    p.add_argument("--session", metavar="KEY_OR_ID", help="one transcript: session key or id")
    p.add_argument(
        "--format",
        choices=("jsonl", "markdown"),
        default="jsonl",
        help="with --session: the JSONL file (default) or readable Markdown",
    )
    p.add_argument(
        "--pre-migration",
        action="store_true",
        help="write the files OpenClaw archived when it migrated to SQLite, under their old "
        "names (to go back to a JSONL-era gateway); lists what the archive lacked",
    )
    p.add_argument(
        "--fsync", action="store_true", help="fsync every file and directory (power-loss safe)"
    )
    p.add_argument(
        "--index-layout",
        choices=INDEX_LAYOUTS,
        help="write every session index as sessions.json (json) or as a sessions.d directory "
        "(directory), converting as the gateway's migration and rollback do; default: the "
        "layout each index was imported in",
    )
    p.set_defaults(handler=_export)
    on_postgres(p)


def _export(args: argparse.Namespace) -> int:
    from store_sql.exporter.api import export_tree
    from store_sql.exporter.pre_migration import export_pre_migration

    require_database(args.db)
    if args.session is not None:
        return _export_one(args)
    if args.out == "-":
        raise ExportRefusedError("a whole tree cannot go to stdout: give a directory, or --session")
    if args.pre_migration and args.index_layout is not None:
        raise ExportRefusedError("--pre-migration writes the archived files: no --index-layout")
    if args.pre_migration:
        report: ExportReport = with_store(
            args.db,
            lambda store: export_pre_migration(
                store, Path(args.out), agent=args.agent, durable=args.fsync
            ),
        )
    else:
        report = with_store(
            args.db,
            lambda store: export_tree(
                store,
                Path(args.out),
                agent=args.agent,
                durable=args.fsync,
                index_layout=args.index_layout,
            ),
        )
    output.emit(report.as_dict(), args.json, _human(report))
    return 0 if report.ok else 1


def _export_one(args: argparse.Namespace) -> int:
    from store_sql.exporter.api import export_transcript, write_file_atomic

    agent = args.agent or "main"
    if args.out != "-" and args.out.endswith("/"):
        raise ExportRefusedError(
            f"{args.out} names a directory: name the file to write "
            f"(e.g. {args.out}<name>.jsonl), or - for standard output"
        )
    data = with_store(
        args.db, lambda store: export_transcript(store, agent, args.session, fmt=args.format)
    )
    if args.out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    write_file_atomic(Path(args.out), data)
    result = {"out": args.out, "agent": agent, "session": args.session, "bytes": len(data)}
    output.emit(result, args.json, f"wrote {len(data)} bytes to {args.out}")
    return 0


def _human(report: ExportReport) -> str:
    lines = [f"refused  {path}  ({reason})" for path, reason in report.refused]
    lines += [f"conflict  {text}" for text in report.conflicts]
    lines += [f"not in the archive  {text}" for text in report.not_in_archive]
    lines += [f"moved  {a} -> {b}" for a, b in report.moved]
    lines += [f"removed  {path}" for path in report.removed]
    total = sum(f.bytes for f in report.files)
    lines.append(
        f"wrote {len(report.files)} files ({total} bytes) to {report.out} "
        f"in {report.duration_s:.2f}s"
        + (f"; {len(report.refused)} refused" if report.refused else "")
    )
    return "\n".join(lines)

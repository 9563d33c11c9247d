"""`store-sql migrate`: upgrade a database to this version's schema."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from store_sql.cli import output
from store_sql.cli.common import add_common
from store_sql.engine.opening import prepare


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("migrate", help="create or upgrade the database schema (backs up first)")
    add_common(p)
    p.add_argument("--no-backup", action="store_true", help="skip the VACUUM INTO backup")
    p.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    report = prepare(Path(args.db), upgrade=True, backup=not args.no_backup)
    result = {
        "db": args.db,
        "created": report.created,
        "upgraded_from": report.upgraded_from,
        "backup": str(report.backup_path) if report.backup_path else None,
    }
    if report.created:
        human = f"created {args.db}"
    elif report.upgraded_from:
        human = f"upgraded {args.db} from {report.upgraded_from} (backup: {report.backup_path})"
    else:
        human = f"{args.db} is up to date"
    output.emit(result, args.json, human)
    return 0

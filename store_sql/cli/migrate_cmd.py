"""`store-sql migrate`: upgrade a database to this version's schema."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres
from store_sql.engine.opening import OpenReport, prepare
from store_sql.engine.pg.url import is_postgres_url, mask_password


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("migrate", help="create or upgrade the database schema (backs up first)")
    add_common(p)
    p.add_argument("--no-backup", action="store_true", help="skip the VACUUM INTO backup")
    p.set_defaults(handler=_migrate)
    on_postgres(p)


def _migrate(args: argparse.Namespace) -> int:
    report: OpenReport
    if is_postgres_url(args.db):
        from store_sql.engine.pg import opening

        # No backup on PostgreSQL: its tools (pg_dump, the server's own backups) do that.
        report = asyncio.run(opening.prepare(args.db))
        shown = mask_password(args.db)
    else:
        report = prepare(Path(args.db), upgrade=True, backup=not args.no_backup)
        shown = args.db
    result = {
        "db": shown,
        "created": report.created,
        "upgraded_from": report.upgraded_from,
        "backup": str(report.backup_path) if report.backup_path else None,
    }
    if report.created:
        human = f"created {shown}"
    elif report.upgraded_from:
        human = f"upgraded {shown} from {report.upgraded_from} (backup: {report.backup_path})"
    else:
        human = f"{shown} is up to date"
    output.emit(result, args.json, human)
    return 0

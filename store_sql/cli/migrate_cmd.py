"""`store-sql migrate`: upgrade a database to this version's schema."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres
from store_sql.engine.pg.url import is_postgres_url, mask_password

if TYPE_CHECKING:
    from store_sql.engine.opening import OpenReport


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("migrate", help="create or upgrade the database schema (backs up first)")
    add_common(p)
    p.add_argument(
        "--no-backup",
        action="store_true",
        help="skip the backup before an upgrade (SQLite: VACUUM INTO; PostgreSQL: pg_dump)",
    )
    p.add_argument(
        "--backup-dir",
        type=Path,
        help="PostgreSQL: the folder for the pg_dump backup (default $STORE_SQL_BACKUP_DIR, "
        "else ~/.local/state/store-sql/backups; a SQLite backup goes beside its file)",
    )
    p.set_defaults(handler=_migrate)
    on_postgres(p)


def _migrate(args: argparse.Namespace) -> int:
    report: OpenReport
    if is_postgres_url(args.db):
        import asyncio

        from store_sql.engine.pg import opening

        report = asyncio.run(
            opening.prepare(args.db, backup=not args.no_backup, backup_dir=args.backup_dir)
        )
        shown = mask_password(args.db)
    else:
        from store_sql.engine.opening import prepare

        report = prepare(Path(args.db), upgrade=True, backup=not args.no_backup)
        shown = args.db
    result = {
        "db": shown,
        "created": report.created,
        "upgraded_from": report.upgraded_from,
        "backup": str(report.backup_path) if report.backup_path else None,
        "backup_skipped": report.backup_skipped,
    }
    if report.created:
        human = f"created {shown}"
    elif report.upgraded_from:
        made = report.backup_path or (
            f"none, {report.backup_skipped}" if report.backup_skipped else "none"
        )
        human = f"upgraded {shown} from {report.upgraded_from} (backup: {made})"
    else:
        human = f"{shown} is up to date"
    output.emit(result, args.json, human)
    return 0

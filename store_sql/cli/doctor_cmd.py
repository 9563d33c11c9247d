"""`store-sql doctor`: health checks of the SQLite library and a database, read-only.

Exit status: 0 healthy, 1 warnings, 2 errors (or the database cannot be examined)."""

from __future__ import annotations

import argparse
from typing import Any

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres
from store_sql.engine.pg.url import is_postgres_url


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the SQLite library and the database (read-only); exit 0/1/2",
        description=(
            "The store's checks, the same on both backends: schema revision and objects, "
            "the full-text index, chains, foreign_key_check. Then the backend's own, listed "
            "as such: SQLite version, file modes, leftover -wal/-shm, journal mode, "
            "integrity_check, WAL; or PostgreSQL's server, text rules, reader role. "
            "Never writes."
        ),
        epilog="exit status: 0 healthy, 1 warnings, 2 errors",
    )
    add_common(p)
    on_postgres(p)
    p.add_argument(
        "--quick",
        action="store_true",
        help="quick_check instead of integrity_check (skips index contents; for big files)",
    )
    p.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from store_sql.admin import doctor

    if is_postgres_url(args.db):
        from store_sql.admin import pg_doctor

        report = pg_doctor.diagnose(args.db, quick=args.quick)
    else:
        report = doctor.diagnose(args.db, quick=args.quick)
    if args.json:
        output.emit_json(report.as_dict())
    else:
        print(doctor.format_report(report))
    return report.exit_code

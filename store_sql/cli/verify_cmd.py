"""`store-sql verify PATH`: compare the database with a directory, writing nothing.

Exit status 0 only when identical, 1 when something differs, 2 on errors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres, with_store
from store_sql.engine.pg.url import is_postgres_url
from store_sql.errors import NotFoundError

if TYPE_CHECKING:
    from store_sql.exporter.verify import VerifyReport


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "verify",
        help="compare the database with a state or sessions dir (read-only)",
        description="List every file missing from PATH, extra in PATH, or different (with "
        "the first differing byte), comparing what `export` would write with what is there.",
    )
    add_common(p)
    p.add_argument("path", metavar="PATH", help="state dir or one sessions dir")
    p.add_argument("--agent", help="only this agent (required for a dir outside agents/<id>/)")
    p.set_defaults(handler=_verify)
    on_postgres(p)


def _verify(args: argparse.Namespace) -> int:
    from store_sql.exporter.verify import verify_tree

    require_database(args.db)
    report: VerifyReport = with_store(
        args.db, lambda store: verify_tree(store, Path(args.path), agent=args.agent)
    )
    output.emit(report.as_dict(), args.json, _human(report))
    return 0 if report.identical else 1


def _human(report: VerifyReport) -> str:
    lines = []
    for d in report.differences:
        at = f" at byte {d.first_differing_byte}" if d.first_differing_byte is not None else ""
        lines.append(f"{d.kind:>9}  {d.rel_path}{at}")
    verdict = "identical" if report.identical else f"{len(report.differences)} differences"
    lines.append(f"{verdict} ({report.compared} files compared, {len(report.ignored)} ignored)")
    return "\n".join(lines)


def require_database(db: str) -> None:
    """Reading commands refuse a missing database instead of creating an empty one (a
    PostgreSQL URL is checked when the store opens it: `create=False`)."""
    if not is_postgres_url(db) and not Path(db).exists():
        raise NotFoundError(f"no database at {db} (give --db, or import first)")

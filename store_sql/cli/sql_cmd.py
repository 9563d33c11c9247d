"""`store-sql sql`: one read-only SQL statement against a live database (the maintainer console).

Exit status: 0 the statement ran (also when the output was cut at --max-rows: a notice on
stderr, and `"truncated": true` with --json); 1 the statement was refused (it would write),
was invalid, or ran past --timeout; 2 the database is missing, not SQLite, or not a store_sql
database, or the command line is wrong."""

from __future__ import annotations

import argparse
import base64
import csv
import sys
from typing import Any

from store_sql.admin import pg_console
from store_sql.admin import sql_console as sql_console
from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres
from store_sql.engine.pg.url import is_postgres_url

EXIT_OK = 0
EXIT_QUERY_FAILED = 1

_EPILOG = """\
The database is opened read-only (mode=ro, query_only, and an authorizer that refuses every
write, DDL, ATTACH and setting PRAGMA). It never checkpoints, truncates the WAL or migrates,
so it is safe to run beside a gateway that is writing. On PostgreSQL (--db postgresql://...)
the statement must be a read (SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN) and runs in a READ
ONLY transaction as the role store_sql_reader, which may only read the store's tables.

exit status:
  0  the statement ran (output cut at --max-rows is announced on stderr)
  1  the statement was refused (it would write), is invalid, or ran past --timeout
  2  the database is missing / not a store_sql database, or bad usage

examples:
  store-sql sql --db gw.sqlite "SELECT session_key, updated_at_iso FROM sessions LIMIT 5"
  store-sql sql --db gw.sqlite --csv "SELECT * FROM session_stats ORDER BY transcript_bytes DESC"
  store-sql sql --db gw.sqlite --json "SELECT role, text FROM messages WHERE session_id = 'abc'"
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "sql",
        help="run one read-only SQL statement (safe beside a running gateway)",
        description="Run one read-only SQL statement; see docs/SCHEMA.md for tables and views.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(p)
    on_postgres(p)
    p.add_argument("query", metavar="SQL", help='one statement, e.g. "SELECT * FROM sessions"')
    p.add_argument("--csv", action="store_true", help="print CSV with a header row")
    p.add_argument("--table", action="store_true", help="print an aligned text table (default)")
    p.add_argument(
        "--max-rows",
        type=int,
        default=sql_console.DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"print at most N rows (default {sql_console.DEFAULT_MAX_ROWS})",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        default=sql_console.DEFAULT_MAX_BYTES,
        metavar="N",
        help="read at most N bytes of values in all; a longer single value fails the query "
        f"(default {sql_console.DEFAULT_MAX_BYTES})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=sql_console.DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"stop the query after this long (default {sql_console.DEFAULT_TIMEOUT_S:g})",
    )
    p.set_defaults(handler=_sql)


def _sql(args: argparse.Namespace) -> int:
    if sum((args.json, args.csv, args.table)) > 1:
        print("store-sql sql: choose one of --json, --csv, --table", file=sys.stderr)
        return 2
    if args.max_rows < 0:
        print("store-sql sql: --max-rows must be 0 or more", file=sys.stderr)
        return 2
    if args.max_bytes < 1:
        print("store-sql sql: --max-bytes must be 1 or more", file=sys.stderr)
        return 2
    try:
        sql_console.check_timeout(args.timeout)
    except sql_console.QueryFailedError as exc:
        print(f"store-sql sql: {exc}", file=sys.stderr)
        return 2
    try:
        run = pg_console.run_query if is_postgres_url(args.db) else sql_console.run_query
        result = run(
            args.db,
            args.query,
            max_rows=args.max_rows,
            timeout_s=args.timeout,
            max_bytes=args.max_bytes,
        )
    except sql_console.QueryFailedError as exc:
        if args.json:
            output.emit_json({"error": type(exc).__name__, "message": str(exc)}, sys.stderr)
        else:
            print(f"store-sql sql: {exc}", file=sys.stderr)
        return EXIT_QUERY_FAILED
    notices = [] if result.notice is None else [f"store-sql sql: {result.notice}"]
    if result.cut_by == "rows":
        notices.append(
            f"store-sql sql: output cut at {result.max_rows} rows; more rows were not read "
            "(raise --max-rows, or add LIMIT/WHERE)"
        )
    elif result.cut_by == "bytes":
        notices.append(
            f"store-sql sql: output cut after {len(result.rows)} rows at {result.max_bytes} "
            "bytes of values; more rows were not read (raise --max-bytes, or select less)"
        )
    notice = "\n".join(notices) or None
    if args.json:
        _emit_json(result, notice)
    elif args.csv:
        _emit_csv(result)
    else:
        _emit_table(result)
    if notice is not None:
        print(notice, file=sys.stderr)
    return EXIT_OK


def _json_value(value: Any) -> Any:
    # Datasette's convention for binary values, so the output round-trips.
    if isinstance(value, bytes):
        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")}
    return value


def _unique(columns: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def _emit_json(result: sql_console.QueryResult, notice: str | None) -> None:
    names = _unique(result.columns)
    output.emit_json(
        {
            "columns": result.columns,
            "rows": [
                {n: _json_value(v) for n, v in zip(names, row, strict=True)} for row in result.rows
            ],
            "row_count": len(result.rows),
            "truncated": result.truncated,
            "max_rows": result.max_rows,
            "notice": notice,
        }
    )


def _text_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "X'" + value.hex().upper() + "'"
    return value


def _emit_csv(result: sql_console.QueryResult) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if v is None else _text_value(v) for v in row])


def _emit_table(result: sql_console.QueryResult) -> None:
    if not result.columns:
        print("(the statement returned no columns)")
        return
    names = _unique(result.columns)
    rows = [{n: _text_value(v) for n, v in zip(names, row, strict=True)} for row in result.rows]
    output.emit_table(rows, names)
    print(f"({len(rows)} row{'' if len(rows) == 1 else 's'}{', cut' if result.truncated else ''})")

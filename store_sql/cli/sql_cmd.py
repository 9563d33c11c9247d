"""`store-sql sql`: one read-only SQL statement against a live database (the maintainer console).

Rows are printed as they are fetched, in every format, so memory holds one row (the table
measures its column widths on its first 100 rows). Exit status: 0 the statement ran (also
when the output was cut at --max-rows or --max-bytes: a notice on stderr, and
`"truncated": true` with --json); 1 the statement was refused (it would write),
was invalid, or ran past --timeout; 2 the database is missing, not SQLite, or not a store_sql
database, or the command line is wrong."""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres
from store_sql.engine.pg.url import is_postgres_url

if TYPE_CHECKING:
    from store_sql.admin import pg_console, sql_console

EXIT_OK = 0
EXIT_QUERY_FAILED = 1

_EPILOG = """\
The database is opened read-only (mode=ro, query_only, and an authorizer that refuses every
write, DDL, ATTACH and setting PRAGMA). It never checkpoints, truncates the WAL or migrates,
so it is safe to run beside a gateway that is writing. On PostgreSQL (--db postgresql://...)
the statement must be a read (SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN) and runs in a READ
ONLY transaction as the role store_sql_reader, which may only read the store's tables.

exit status:
  0  the statement ran (output cut at --max-rows/--max-bytes is announced on stderr)
  1  the statement was refused (it would write), is invalid, or ran past --timeout
  2  the database is missing / not a store_sql database, or bad usage

examples:
  store-sql sql --db gw.sqlite "SELECT session_key, updated_at_iso FROM sessions LIMIT 5"
  store-sql sql --db gw.sqlite --csv "SELECT * FROM session_stats ORDER BY transcript_bytes DESC"
  store-sql sql --db gw.sqlite --json "SELECT role, text FROM messages WHERE session_id = 'abc'"
"""


# The defaults of admin.sql_console, spelled here so the parser imports no console
# (tests/test_cli_start.py checks they agree).
DEFAULT_MAX_ROWS = 1000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 30.0


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
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"print at most N rows (default {DEFAULT_MAX_ROWS})",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help="print at most N bytes of rows (rows stream out as they are read); a single "
        f"value longer than N fails the query (default {DEFAULT_MAX_BYTES})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"stop the query after this long (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.set_defaults(handler=_sql)


def _sql(args: argparse.Namespace) -> int:
    from store_sql.admin import sql_console

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
    shape: type[_Shape] = _Json if args.json else _Csv if args.csv else _Table
    sys.stdout.flush()
    printed: _Printed | None = None
    try:
        with _rows(args) as rows:
            printed = _Printed(
                shape(rows.columns), sys.stdout.buffer, args.max_rows, args.max_bytes, rows.notice
            )
            printed.run(rows)
            printed.end(None)
    except sql_console.QueryFailedError as exc:
        if printed is not None:
            printed.end(str(exc))
        if args.json:
            output.emit_json({"error": type(exc).__name__, "message": str(exc)}, sys.stderr)
        else:
            print(f"store-sql sql: {exc}", file=sys.stderr)
        return EXIT_QUERY_FAILED
    notice = printed.notice()
    if notice is not None:
        print(notice, file=sys.stderr)
    return EXIT_OK


@contextlib.contextmanager
def _rows(args: argparse.Namespace) -> Iterator[sql_console.RowStream | pg_console.RowStream]:
    """The statement's rows as they are fetched, from SQLite or from PostgreSQL."""
    if is_postgres_url(args.db):
        from store_sql.admin import pg_console

        with pg_console.stream(
            args.db, args.query, timeout_s=args.timeout, max_value_bytes=args.max_bytes
        ) as rows:
            yield rows
        return
    from store_sql.admin import sql_console

    with (
        sql_console.open_console(args.db) as console,
        console.stream(args.query, timeout_s=args.timeout, max_value_bytes=args.max_bytes) as rows,
    ):
        yield rows


class _Shape:
    """How one output format renders a result: a head, each row as bytes, and an end.
    `rows` may hold rows back (the table measures its column widths on a first block)."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns

    def head(self) -> bytes:
        """Written once, before the first row (or before the end when no row is printed)."""
        return b""

    def rows(self, row: tuple[Any, ...]) -> list[bytes]:
        """The rows now ready to print: this one, or none while held back, or a block."""
        raise NotImplementedError

    def held(self) -> list[bytes]:
        """The rows held back, once the input ends."""
        return []

    def least_bytes(self, row: tuple[Any, ...]) -> int:
        """A lower bound of the row's printed size, known before it is rendered (a blob
        grows in hex or base64), so a row far past the bound is never rendered."""
        return 0

    def end(self, summary: dict[str, Any]) -> bytes:
        return b""


class _Printed:
    """Rows streamed from the query to `out` as they are fetched, stopping before the row
    past `max_rows`, or before the row whose bytes would take the rows past `max_bytes`."""

    def __init__(
        self, shape: _Shape, out: BinaryIO, max_rows: int, max_bytes: int, remark: str | None
    ) -> None:
        self.shape = shape
        self.remark = remark
        """What the database said about how the statement ran (PostgreSQL's reader role)."""
        self.out = out
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.read = 0
        self.count = 0
        self.size = 0
        self.headed = False
        self.cut_by: str | None = None

    def run(self, rows: Iterable[tuple[Any, ...]]) -> None:
        for row in rows:
            if self.read == self.max_rows:
                self.cut_by = "rows"
                break
            self.read += 1
            if self.size + self.shape.least_bytes(row) > self.max_bytes:
                self.cut_by = "bytes"
                return
            if not self._print(self.shape.rows(row)):
                return

    def _print(self, rendered: list[bytes]) -> bool:
        for data in rendered:
            self._head()
            if self.size + len(data) > self.max_bytes:
                self.cut_by = "bytes"
                return False
            self.out.write(data)
            self.size += len(data)
            self.count += 1
        return True

    def _head(self) -> None:
        if not self.headed:
            self.headed = True
            self.out.write(self.shape.head())

    def end(self, error: str | None) -> None:
        """Close the output (the JSON object, the table's row count); `error` stopped it."""
        if self.cut_by != "bytes":
            self._print(self.shape.held())
        self._head()
        summary: dict[str, Any] = {
            "row_count": self.count,
            "truncated": self.cut_by is not None or error is not None,
            "cut_by": self.cut_by,
            "max_rows": self.max_rows,
            "max_bytes": self.max_bytes,
            "notice": self.notice(),
        }
        if error is not None:
            summary["error"] = error
        self.out.write(self.shape.end(summary))
        self.out.flush()

    def notice(self) -> str | None:
        notices = [] if self.remark is None else [f"store-sql sql: {self.remark}"]
        if self.cut_by == "rows":
            notices.append(
                f"store-sql sql: output cut at {self.max_rows} rows; more rows were not read "
                "(raise --max-rows, or add LIMIT/WHERE)"
            )
        elif self.cut_by == "bytes":
            notices.append(
                f"store-sql sql: output cut after {self.count} rows at {self.max_bytes} "
                "bytes of rows; more rows were not read (raise --max-bytes, or select less)"
            )
        return "\n".join(notices) or None


def _unique(columns: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def _json_value(value: Any) -> Any:
    # Datasette's convention for binary values, so the output round-trips.
    if isinstance(value, bytes):
        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")}
    return value


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # a lone surrogate in stored text, or an integer orjson cannot write
        return json.dumps(value, ensure_ascii=True).encode()


class _Json(_Shape):
    """One JSON object, written as it goes: columns, the rows, then the counts."""

    def __init__(self, columns: list[str]) -> None:
        super().__init__(columns)
        self.names = _unique(columns)
        self.first = True

    def head(self) -> bytes:
        return b'{\n  "columns": ' + _dumps(self.columns) + b',\n  "rows": ['

    def least_bytes(self, row: tuple[Any, ...]) -> int:
        return sum(len(v) * 4 // 3 if isinstance(v, bytes) else _text_size(v) for v in row)

    def rows(self, row: tuple[Any, ...]) -> list[bytes]:
        record = {n: _json_value(v) for n, v in zip(self.names, row, strict=True)}
        lead = b"\n    " if self.first else b",\n    "
        self.first = False
        return [lead + _dumps(record)]

    def end(self, summary: dict[str, Any]) -> bytes:
        tail = b"" if self.first else b"\n  "
        fields = b"".join(b',\n  "' + k.encode() + b'": ' + _dumps(v) for k, v in summary.items())
        return tail + b"]" + fields + b"\n}\n"


def _text_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "X'" + value.hex().upper() + "'"
    return value


def _text_size(value: Any) -> int:
    """Characters of a text value (each at least one byte printed); 0 for other values."""
    return len(value) if isinstance(value, str) else 0


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


class _Csv(_Shape):
    def __init__(self, columns: list[str]) -> None:
        super().__init__(columns)
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")

    def _line(self, values: Iterable[Any]) -> bytes:
        self.buffer.seek(0)
        self.buffer.truncate()
        self.writer.writerow(values)
        return _encoded(self.buffer.getvalue())

    def head(self) -> bytes:
        return self._line(self.columns)

    def least_bytes(self, row: tuple[Any, ...]) -> int:
        return sum(len(v) * 2 if isinstance(v, bytes) else _text_size(v) for v in row)

    def rows(self, row: tuple[Any, ...]) -> list[bytes]:
        return [self._line("" if v is None else _text_value(v) for v in row)]


_CELL_CHARS = 60
_WIDTH_BLOCK = 100


def _cell(value: Any) -> str:
    """What a table cell shows: at most `_CELL_CHARS` characters, one line. Only the part
    of a long value that shows is converted."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        text = "X'" + value[:_CELL_CHARS].hex().upper() + "'"
    elif isinstance(value, str):
        text = value[: _CELL_CHARS + 1]
    else:
        text = str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


class _Table(_Shape):
    """An aligned text table. Column widths are measured on a first block of rows (at most
    `_WIDTH_BLOCK`, cells cut at `_CELL_CHARS`); later rows are aligned to those widths."""

    def __init__(self, columns: list[str]) -> None:
        super().__init__(columns)
        self.names = _unique(columns)
        self.block: list[list[str]] | None = []
        self.widths = [len(n) for n in self.names]

    def head(self) -> bytes:
        if not self.columns:
            return b"(the statement returned no columns)\n"
        return self._line(self.names)

    def rows(self, row: tuple[Any, ...]) -> list[bytes]:
        cells = [_cell(v) for v in row]
        if self.block is None:
            return [self._line(cells)]
        self.block.append(cells)
        return self.held() if len(self.block) == _WIDTH_BLOCK else []

    def held(self) -> list[bytes]:
        if self.block is None:
            return []
        block, self.block = self.block, None
        for cells in block:
            self.widths = [max(w, len(c)) for w, c in zip(self.widths, cells, strict=True)]
        return [self._line(cells) for cells in block]

    def _line(self, cells: list[str]) -> bytes:
        text = "  ".join(c.ljust(w) for c, w in zip(cells, self.widths, strict=True))
        return _encoded(text.rstrip() + "\n")

    def end(self, summary: dict[str, Any]) -> bytes:
        if not self.columns:
            return b""
        n = summary["row_count"]
        cut = ", cut" if summary["truncated"] else ""
        return _encoded(f"({n} row{'' if n == 1 else 's'}{cut})\n")

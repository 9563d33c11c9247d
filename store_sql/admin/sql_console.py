"""The maintainer console: read-only SQL on a store_sql database, safe beside a live gateway.

This is the one place outside the engine that opens SQLite itself (`store-sql sql`, `stats`,
`doctor` and file searches come through here). It never goes through `Store.open`, which
may create, upgrade or checkpoint a database. What a console connection promises, and how:

- **It cannot write.** The file is opened with `mode=ro`, `PRAGMA query_only` is on, and an
  authorizer allows only reading: SELECT, reading functions and an allow-list of
  introspection PRAGMAs. INSERT/UPDATE/DELETE, DDL, ATTACH (which would create a file),
  ANALYZE, REINDEX and any PRAGMA that sets something or checkpoints are refused with a
  message naming the refused action.
- **It never checkpoints and never truncates the WAL**: a read-only connection cannot run a
  checkpoint, not even when it is the last connection to close (SQLite's checkpoint-on-close
  needs a write lock it cannot take), and `wal_checkpoint` is not on the allow-list.
- **It never migrates or creates**: a missing file, a file that is not SQLite, or a SQLite
  file of another application (PRAGMA application_id) is refused before any query runs.
- **It does not hold the WAL back for long**: a query runs for at most `timeout_s` seconds
  (a long read snapshot stops the gateway's checkpoints from resetting the WAL), and only
  `max_rows` rows (plus one, to detect truncation) are ever fetched. `Console.stream` hands
  rows over one at a time, so a caller that prints them holds one row, not the result.

SQLite needs the `-shm` wal-index to read a WAL database; when `-wal`/`-shm` are missing it
creates them empty, with the database file's permissions. The database file itself is not
written.
"""

from __future__ import annotations

import contextlib
import math
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store_sql.engine.damage import is_corruption, next_steps
from store_sql.engine.opening import file_kind
from store_sql.engine.readers import read_only_uri
from store_sql.errors import DatabaseRefusedError, StoreError
from store_sql.schema.revision import APPLICATION_ID

DEFAULT_MAX_ROWS = 1000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""What one query may return in all (and so the largest single value): output is printed,
and a `SELECT zeroblob(900000000)` must not take gigabytes to print."""
DEFAULT_TIMEOUT_S = 30.0
BUSY_TIMEOUT_MS = 5000

# PRAGMAs that only report. With an argument, only those whose argument names a table or
# index (or a row limit) are allowed: for the others an argument means "set".
_READ_PRAGMAS = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "cache_size",
        "collation_list",
        "compile_options",
        "data_version",
        "database_list",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "journal_mode",
        "journal_size_limit",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "query_only",
        "schema_version",
        "synchronous",
        "table_list",
        "user_version",
        "wal_autocheckpoint",
        # these also take a table or index name, below
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)
_READ_PRAGMAS_WITH_ARGUMENT = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
# Functions with side effects outside the database, or that change the connection.
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "writefile", "edit"})

# Actions the authorizer refuses by name (every action not allowed is refused).
_REFUSED_ACTIONS = (
    "SQLITE_ALTER_TABLE",
    "SQLITE_ANALYZE",
    "SQLITE_ATTACH",
    "SQLITE_CREATE_INDEX",
    "SQLITE_CREATE_TABLE",
    "SQLITE_CREATE_TEMP_INDEX",
    "SQLITE_CREATE_TEMP_TABLE",
    "SQLITE_CREATE_TEMP_TRIGGER",
    "SQLITE_CREATE_TEMP_VIEW",
    "SQLITE_CREATE_TRIGGER",
    "SQLITE_CREATE_VIEW",
    "SQLITE_CREATE_VTABLE",
    "SQLITE_DELETE",
    "SQLITE_DETACH",
    "SQLITE_DROP_INDEX",
    "SQLITE_DROP_TABLE",
    "SQLITE_DROP_TEMP_INDEX",
    "SQLITE_DROP_TEMP_TABLE",
    "SQLITE_DROP_TEMP_TRIGGER",
    "SQLITE_DROP_TEMP_VIEW",
    "SQLITE_DROP_TRIGGER",
    "SQLITE_DROP_VIEW",
    "SQLITE_DROP_VTABLE",
    "SQLITE_INSERT",
    "SQLITE_REINDEX",
    "SQLITE_SAVEPOINT",
    "SQLITE_UPDATE",
)
_ACTION_NAMES = {
    getattr(sqlite3, name): name.removeprefix("SQLITE_").lower().replace("_", " ")
    for name in _REFUSED_ACTIONS
}


class QueryFailedError(StoreError):
    """A console query was refused (it would write) or failed; nothing was written."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The first `max_rows` rows of a query, within `max_bytes`; `truncated` says more rows
    were left unread (`cut_by` says which bound cut them)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    max_rows: int
    elapsed_ms: float
    max_bytes: int = DEFAULT_MAX_BYTES
    cut_by: str | None = None
    """None, "rows" or "bytes"."""
    notice: str | None = None
    """What the reader should know about how the statement ran (PostgreSQL: without the
    read-only role)."""

    @classmethod
    def read(
        cls,
        columns: list[str],
        rows: list[tuple[Any, ...]],
        cut_by: str | None,
        *,
        max_rows: int,
        max_bytes: int,
        started: float,
        notice: str | None = None,
    ) -> QueryResult:
        """The rows a query read until `cut_by` stopped it (None: it read them all), timed
        from `started` (a `time.perf_counter()`)."""
        return cls(
            columns=columns,
            rows=rows,
            truncated=cut_by is not None,
            max_rows=max_rows,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            max_bytes=max_bytes,
            cut_by=cut_by,
            notice=notice,
        )


class RowStream:
    """The rows of one console query (`Console.stream`), fetched one per step of iteration."""

    def __init__(
        self,
        columns: list[str],
        cursor: sqlite3.Cursor,
        failed: Callable[[Exception], BaseException],
    ) -> None:
        self.columns = columns
        """The result's column names (empty for a statement that returns no columns)."""
        self.notice: str | None = None
        """A remark on how the statement ran; SQLite has none (PostgreSQL's stream may)."""
        self._cursor = cursor
        self._failed = failed

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if not self.columns:
            return
        fetch = self._cursor.fetchone
        while True:
            try:
                row = fetch()
            except (sqlite3.Error, ValueError, OverflowError) as exc:
                raise self._failed(exc) from exc
            if row is None:
                return
            yield row


class _ReadOnlyAuthorizer:
    """sqlite3 authorizer allowing reads only; remembers what it refused, for the message."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def explain(self) -> str | None:
        """What was refused: a DDL action rather than the row writes it implies."""
        if not self.refused:
            return None
        specific = [r for r in self.refused if r not in ("insert", "update", "delete")]
        return (specific or self.refused)[0]

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        verdict = self._decide(action, arg1, arg2)
        if verdict is not None:
            self.refused.append(verdict)
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    @staticmethod
    def _decide(action: int, arg1: str | None, arg2: str | None) -> str | None:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return None
        if action == sqlite3.SQLITE_TRANSACTION:
            return None  # BEGIN/COMMIT of a read transaction; writes are refused anyway
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
            # SQLite asks this while it connects a virtual table (FTS5, pragma_* functions);
            # nothing is written, and a real UPDATE of sqlite_master fails on its own.
            return None
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            return f"function {name}()" if name in _DENIED_FUNCTIONS else None
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if arg2 is None and name in _READ_PRAGMAS:
                return None
            if arg2 is not None and name in _READ_PRAGMAS_WITH_ARGUMENT:
                return None
            shown = f"PRAGMA {name}" + ("" if arg2 is None else f" = {arg2}")
            return f"{shown} (only reporting PRAGMAs are allowed)"
        return _ACTION_NAMES.get(action, f"action {action}")


def check_path(path: str | Path) -> Path:
    """The absolute path of an existing regular file, or DatabaseRefusedError."""
    db = Path(path).absolute()
    try:
        mode = db.stat().st_mode
    except FileNotFoundError:
        raise DatabaseRefusedError(
            f"{db}: no such database (the console never creates one; check --db or $STORE_SQL_DB)"
        ) from None
    except OSError as exc:
        raise DatabaseRefusedError(f"{db}: cannot examine the file: {exc}") from exc
    if not stat.S_ISREG(mode):
        raise DatabaseRefusedError(f"{db}: not a regular file ({file_kind(mode)})")
    return db


class Console:
    """A read-only connection to a store_sql database (see the module docstring).

    Use as a context manager, or call `close()`. `conn` is the plain sqlite3 connection, for
    thread-side read functions (stats, doctor, search); the authorizer guards it too."""

    def __init__(self, path: Path, conn: sqlite3.Connection, authorizer: _ReadOnlyAuthorizer):
        self.path = path
        self.conn = conn
        self._authorizer = authorizer

    def query(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] = (),
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> QueryResult:
        """Run one statement; at most `max_rows` rows are fetched (one more tells truncation),
        and rows stop once their values add up to `max_bytes`. A single value longer than
        `max_bytes` fails the query (SQLite's length limit, so it is never built).

        Raises QueryFailedError when the statement is refused (it would write), is invalid,
        holds a value over `max_bytes`, or runs past `timeout_s`."""
        if max_rows < 0:
            raise QueryFailedError(f"max_rows must be 0 or more, got {max_rows}")
        started = time.perf_counter()
        cut_by = None
        rows: list[tuple[Any, ...]] = []
        size = 0
        with self.stream(sql, params, timeout_s=timeout_s, max_value_bytes=max_bytes) as stream:
            for row in stream:
                if len(rows) == max_rows:
                    cut_by = "rows"
                    break
                size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
                if size > max_bytes:
                    cut_by = "bytes"
                    break
                rows.append(row)
        return QueryResult.read(
            stream.columns, rows, cut_by, max_rows=max_rows, max_bytes=max_bytes, started=started
        )

    @contextlib.contextmanager
    def stream(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] = (),
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_value_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Iterator[RowStream]:
        """Run one statement and yield its rows one at a time, each fetched when asked for:
        memory holds one row, whatever the size of the result. The time limit covers the
        whole read, up to leaving the `with` block (the snapshot is held until then).

        Raises QueryFailedError, on entry or while iterating, when the statement is refused,
        is invalid, holds a value longer than `max_value_bytes` (never built), or runs past
        `timeout_s`; KeyboardInterrupt when Ctrl-C stopped it."""
        if (
            isinstance(max_value_bytes, bool)
            or not isinstance(max_value_bytes, int)
            or max_value_bytes < 1
        ):
            raise QueryFailedError(f"max_bytes must be 1 or more, got {max_value_bytes!r}")
        check_timeout(timeout_s)
        self._authorizer.refused.clear()
        deadline = _Deadline(timeout_s)
        self.conn.set_progress_handler(deadline, 10_000)
        length_limit = self.conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, min(max_value_bytes, length_limit))
        cursor = self.conn.cursor()

        def failed(exc: Exception) -> BaseException:
            if isinstance(exc, sqlite3.Error):
                if "interrupted" in str(exc) and not deadline.expired:
                    # SIGINT raised KeyboardInterrupt inside the progress handler, which
                    # SQLite reports as an interrupted query: the user, not the time limit.
                    return KeyboardInterrupt()
                return QueryFailedError(self._explain(exc, timeout_s, sql, max_value_bytes))
            return QueryFailedError(f"query refused: {exc}")  # e.g. two statements

        try:
            try:
                cursor.execute(sql, params)
            except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as exc:
                raise failed(exc) from exc
            yield RowStream([d[0] for d in cursor.description or ()], cursor, failed)
        finally:
            cursor.close()
            self.conn.set_progress_handler(None, 0)
            self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length_limit)

    def _explain(self, exc: sqlite3.Error, timeout_s: float, sql: str, max_bytes: int) -> str:
        refused = self._authorizer.explain()
        if refused is not None:
            verb = _VERB.match(sql)
            if verb is not None:
                named = " ".join(verb.group(1).upper().split())
                return f"refused: the console is read-only and {named} writes"
            return f"refused: the console is read-only and this statement needs {refused}"
        text = str(exc)
        if "interrupted" in text:
            return (
                f"query stopped after {timeout_s:g} s (a long read, or output read slowly, "
                "keeps the gateway from resetting its WAL); narrow the query or raise the "
                "time limit"
            )
        if "too big" in text:
            return (
                f"query failed: a value is longer than {max_bytes} bytes, the most the console "
                f"prints ({text}); select length(x) or substr(x, 1, n) instead, or raise "
                "--max-bytes"
            )
        if is_corruption(exc):
            return f"query failed: the database file is damaged ({text}); {next_steps(self.path)}"
        if "readonly" in text or "read-only" in text:
            return f"refused: the console is read-only ({text})"
        return f"query failed: {text}"

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_console(path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Console:
    """Open `path` read-only. Refuses, without creating anything, a missing file, a file
    that is not SQLite, and a SQLite database of another application."""
    db = check_path(path)
    try:
        conn = sqlite3.connect(read_only_uri(str(db)), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise DatabaseRefusedError(f"{db}: cannot open read-only: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA query_only = 1")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseRefusedError(
            f"{db}: not a SQLite database, or corrupt (refusing to read it): {exc}"
        ) from exc
    if app_id != APPLICATION_ID:
        conn.close()
        raise DatabaseRefusedError(
            f"{db}: a SQLite database of another application (application_id={app_id}); "
            "the console opens only store_sql databases"
        )
    authorizer = _ReadOnlyAuthorizer()
    conn.set_authorizer(authorizer)
    return Console(db, conn, authorizer)


class _Deadline:
    """The progress handler stopping a query after `timeout_s`; `expired` tells a stop by
    the time limit from one by Ctrl-C (both reach the caller as "interrupted")."""

    def __init__(self, timeout_s: float) -> None:
        self._at = time.monotonic() + timeout_s
        self.expired = False

    def __call__(self) -> int:
        if time.monotonic() > self._at:
            self.expired = True
            return 1
        return 0


def check_timeout(timeout_s: float) -> float:
    """A query time limit: a positive, finite number of seconds (NaN would disable it)."""
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not math.isfinite(timeout_s)
        or timeout_s <= 0
    ):
        raise QueryFailedError(f"--timeout must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


# The statement's own verb, for refusals: the authorizer first sees the row writes a
# statement implies (CREATE inserts into sqlite_master, VACUUM attaches), not the statement.
_VERB = re.compile(
    r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
    r"(CREATE\s+(?:(?:TEMP|TEMPORARY|UNIQUE|VIRTUAL)\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)"
    r"|DROP\s+(?:TABLE|INDEX|VIEW|TRIGGER)|ALTER\s+TABLE|VACUUM|REINDEX|ANALYZE|ATTACH"
    r"|DETACH|INSERT|UPDATE|DELETE|REPLACE|SAVEPOINT|RELEASE|ROLLBACK)\b",
    re.IGNORECASE | re.DOTALL,
)


def run_query(
    path: str | Path,
    sql: str,
    params: Sequence[Any] | dict[str, Any] = (),
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> QueryResult:
    """Open `path` read-only, run one statement, close. What `store-sql sql` calls.

    Raises DatabaseRefusedError when the file cannot be opened as ours, QueryFailedError
    when the statement is refused, invalid, or runs past `timeout_s`."""
    with open_console(path) as console:
        return console.query(
            sql, params, max_rows=max_rows, timeout_s=timeout_s, max_bytes=max_bytes
        )

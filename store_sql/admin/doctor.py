"""`store-sql doctor`: is this database, and the SQLite under it, healthy? Never writes.

Each check gives ok / info / warn / error; the worst decides the exit status (0 healthy,
1 warnings, 2 errors). The store's own checks (schema, search index, chains, missing
parents: admin/store_checks.py) are the ones PostgreSQL's doctor runs too; the library, the
files, the journal, integrity_check and the writer are SQLite's alone (`backend="sqlite"`).
The database is read through the read-only console (`sql_console`): no checkpoint, no
migration, no file created except the `-wal`/`-shm` SQLite itself needs to read a WAL
database when they are missing (with the database file's permissions).

Order matters: the sidecar files are examined *before* the console connection exists, so
what is reported is what the gateway left, not what this run created. The `-shm` header is
read with a plain file read only when this process holds no SQLite connection to the file:
closing any descriptor of a file drops every POSIX lock this process holds on it, which
would silently unlock a live connection's wal-index (`diagnose_store`, which runs inside
the gateway, therefore skips it).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store_sql.admin import store_checks
from store_sql.admin.findings import ERROR as ERROR
from store_sql.admin.findings import INFO as INFO
from store_sql.admin.findings import OK as OK
from store_sql.admin.findings import SQLITE as SQLITE
from store_sql.admin.findings import WARN as WARN
from store_sql.admin.findings import Check as Check
from store_sql.admin.findings import DoctorReport as DoctorReport
from store_sql.admin.findings import format_report as format_report
from store_sql.admin.sql_console import check_path, open_console
from store_sql.admin.store_checks import revision_check as revision_check
from store_sql.admin.wal_files import lock_holders, read_wal_index
from store_sql.engine.damage import is_corruption, next_steps
from store_sql.engine.pragmas import EngineSettings
from store_sql.errors import DatabaseRefusedError
from store_sql.schema import extra_sql as schema_sql
from store_sql.schema import tables as schema

if TYPE_CHECKING:
    from store_sql.store import Store

MIN_SQLITE = (3, 51, 3)
"""SQLite 3.7.0 through 3.51.2 have the WAL-reset bug; 3.51.3 (and 3.52.0+) fix it."""

WAL_RESET_BUG_URL = "https://sqlite.org/wal.html#walresetbug"
_MAX_LISTED = store_checks.MAX_LISTED


# --- the SQLite library ----------------------------------------------------------------------


def check_sqlite_version(version: tuple[int, int, int] | None = None) -> Check:
    found = version or sqlite3.sqlite_version_info
    text = ".".join(map(str, found))
    details = {"sqlite_version": text, "minimum_recommended": ".".join(map(str, MIN_SQLITE))}
    if found >= MIN_SQLITE:
        return Check(
            "sqlite_library", OK, f"SQLite {text} (has the WAL-reset fix)", details, SQLITE
        )
    return Check(
        "sqlite_library",
        WARN,
        f"SQLite {text} is older than 3.51.3 and has the WAL-reset bug ({WAL_RESET_BUG_URL}): "
        "in SQLite 3.7.0 to 3.51.2 a checkpoint that resets the WAL can race with another "
        "connection using the WAL at that moment and corrupt the database. store_sql's "
        "writer resets the WAL (TRUNCATE checkpoints) while its readers, and maintainer "
        "tools in other processes, read it: the race is rare, the damage is not. Run "
        "store_sql on a Python whose sqlite3 module links SQLite >= 3.51.3 "
        "(check with: python -c 'import sqlite3; print(sqlite3.sqlite_version)').",
        details,
        SQLITE,
    )


def check_full_text(conn: sqlite3.Connection | None = None) -> Check:
    """FTS5 and its trigram tokenizer in this SQLite build (tested on a memory database),
    then, given the database, its index `entry_text_fts` and the lines not indexed yet."""
    memory = sqlite3.connect(":memory:")
    try:
        try:
            memory.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        except sqlite3.Error as exc:
            return Check(
                "full_text_search",
                ERROR,
                f"this SQLite has no FTS5 ({exc}): store_sql cannot create or search its "
                "full-text index; use a SQLite built with FTS5",
                {"fts5": False, "trigram": False},
            )
        try:
            memory.execute("CREATE VIRTUAL TABLE g USING fts5(x, tokenize = 'trigram')")
        except sqlite3.Error as exc:
            return Check(
                "full_text_search",
                WARN,
                f"FTS5 without the trigram tokenizer ({exc}; needs SQLite >= 3.34): substring "
                "search is unavailable",
                {"fts5": True, "trigram": False},
            )
    finally:
        memory.close()
    details: dict[str, Any] = {"fts5": True, "trigram": True}
    if conn is None:
        return Check("full_text_search", OK, "FTS5 with the trigram tokenizer", details)
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entry_text_fts'"
    ).fetchone():
        details["index"] = False
        return store_checks.search_index_problem(
            "the full-text index entry_text_fts is missing: searches fail; rebuild it with "
            "`store-sql search --rebuild`",
            details,
        )
    details["index"] = True
    details["lines_not_indexed"] = conn.execute(
        "SELECT count(*) FROM transcript_lines WHERE line_pk > "
        "(SELECT coalesce(max(indexed_upto), 0) FROM search_index_state)"
    ).fetchone()[0]
    return Check(
        "full_text_search",
        OK,
        "FTS5 with the trigram tokenizer; the index is present "
        f"({details['lines_not_indexed']} lines waiting for the indexer)",
        details,
    )


# --- the files -------------------------------------------------------------------------------


def _sidecars(path: Path) -> dict[str, Path]:
    return {"database": path, "wal": Path(f"{path}-wal"), "shm": Path(f"{path}-shm")}


def check_file_modes(path: Path) -> Check:
    """The database and its -wal/-shm hold conversations: owner-only (0600) is expected."""
    modes: dict[str, str] = {}
    loose: list[str] = []
    for _role, file in _sidecars(path).items():
        try:
            mode = stat.S_IMODE(os.stat(file).st_mode)
        except OSError:
            continue
        modes[file.name] = f"{mode:04o}"
        if mode & 0o077:
            loose.append(f"{file.name} is {mode:04o}")
    if loose:
        return Check(
            "file_modes",
            WARN,
            "readable or writable by others: "
            + ", ".join(loose)
            + " (expected 0600; fix with chmod 600, -wal and -shm inherit the database's mode)",
            modes,
            SQLITE,
        )
    return Check("file_modes", OK, "owner-only (0600)", modes, SQLITE)


def check_sidecars(path: Path, *, in_process: bool) -> tuple[Check, dict[str, int] | None]:
    """Leftover -wal/-shm: harmless when empty, a warning when the WAL holds frames and no
    process has the database open (the last one crashed, or closed read-only).

    `in_process`: this process has the database open itself (it counts as a holder, and
    the -shm header is not read: see the module docstring)."""
    files = _sidecars(path)
    wal, shm = files["wal"], files["shm"]
    wal_size = wal.stat().st_size if wal.exists() else None
    holders = lock_holders(list(files.values()))
    if holders is not None:
        if in_process:
            holders.add(os.getpid())
        else:
            holders.discard(os.getpid())
    wal_index = None if in_process or not shm.exists() else read_wal_index(shm)
    details: dict[str, Any] = {
        "wal_bytes": wal_size,
        "shm_exists": shm.exists(),
        "processes": None if holders is None else sorted(holders),
    }
    if wal_index:
        details.update(wal_index)
    if wal_size is None and not shm.exists():
        return Check("sidecar_files", OK, "no -wal/-shm (closed cleanly)", details), wal_index
    if holders is None:
        note = "cannot tell whether another process has it open (no /proc/locks)"
        return Check("sidecar_files", INFO, note, details), wal_index
    if holders:
        text = f"open in {len(holders)} process(es): {sorted(holders)[:_MAX_LISTED]}"
        return Check("sidecar_files", OK, text, details), wal_index
    if wal_size:
        return (
            Check(
                "sidecar_files",
                WARN,
                f"a {wal_size}-byte -wal with no process holding the database open: the last "
                "writer did not checkpoint (it crashed or was killed). The WAL holds committed "
                "data: never delete -wal or -shm. Opening the store with its writer (start the "
                "gateway, or any writing store-sql command) replays it, and a clean close "
                "folds it into the database.",
                details,
            ),
            wal_index,
        )
    return (
        Check(
            "sidecar_files",
            OK,
            "empty -wal/-shm with no process attached (left by a read-only last connection; "
            "harmless)",
            details,
        ),
        wal_index,
    )


# --- the database ----------------------------------------------------------------------------


def _expected_objects() -> dict[str, str]:
    expected = {name: "table" for name in schema.metadata.tables}
    expected["alembic_version"] = "table"
    pattern = re.compile(r"CREATE\s+(VIRTUAL TABLE|TRIGGER|VIEW)\s+IF NOT EXISTS\s+(\w+)", re.I)
    for statement in schema_sql.CREATE_STATEMENTS:
        found = pattern.search(statement)
        if found:
            kind = found.group(1).lower()
            expected[found.group(2)] = "table" if kind == "virtual table" else kind
    return expected


def check_schema(conn: sqlite3.Connection) -> list[Check]:
    names = dict(conn.execute("SELECT name, type FROM sqlite_master").fetchall())
    revision = None
    if "alembic_version" in names:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    missing = sorted(n for n, kind in _expected_objects().items() if names.get(n) != kind)
    return [revision_check(revision), store_checks.schema_objects_check(revision, missing)]


def check_journal_mode(conn: sqlite3.Connection) -> Check:
    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode == "wal":
        return Check("journal_mode", OK, "wal", {"journal_mode": mode})
    return Check(
        "journal_mode",
        WARN,
        f"{mode}, not wal: readers will block the writer; the store switches the file to WAL "
        "when its writer opens it",
        {"journal_mode": mode},
    )


def check_integrity(conn: sqlite3.Connection, *, quick: bool) -> Check:
    name = "quick_check" if quick else "integrity_check"
    rows = [str(r[0]) for r in conn.execute(f"PRAGMA {name}({_MAX_LISTED})").fetchall()]
    if rows == ["ok"]:
        return Check(name, OK, "ok")
    return Check(
        name,
        ERROR,
        f"{len(rows)} problem(s), first: {rows[0]}; copy the file (with -wal/-shm) before "
        "anything else, then recover with `sqlite3 FILE .recover`",
        {"problems": rows},
    )


def check_chains(conn: sqlite3.Connection, *, quick: bool) -> Check:
    def rows(sql: str) -> list[dict[str, Any]]:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    counts = [] if quick else rows(store_checks.WRONG_COUNTS)
    return store_checks.chains_check(
        rows(store_checks.BROKEN_PARENTS), rows(store_checks.BROKEN_LEAVES), counts, quick=quick
    )


def check_foreign_keys(conn: sqlite3.Connection) -> Check:
    """Rows whose parent is missing, key by key (store_checks.missing_parent_queries)."""
    violations = []
    for key, sql in store_checks.missing_parent_queries():
        count = conn.execute(sql).fetchone()[0]
        if count:
            violations.append({**key, "rows": int(count)})
    return store_checks.missing_parents_check(violations)


def check_wal(
    path: Path, wal_index: dict[str, int] | None, metrics: dict[str, Any] | None
) -> Check:
    """The WAL as the writer keeps it: its size against the point where the writer forces a
    TRUNCATE checkpoint, and the writer's own counters when run inside the gateway."""
    limit = EngineSettings().wal_truncate_bytes
    try:
        size = os.stat(f"{path}-wal").st_size
    except OSError:
        size = 0
    details: dict[str, Any] = {"wal_bytes": size, "wal_truncate_bytes": limit}
    if wal_index:
        details.update(wal_index)
    problems = []
    if size > 2 * limit:
        problems.append(
            f"the WAL is {size} bytes, over twice the {limit} at which the writer truncates it: "
            "a reader holds an old snapshot open, or the writer is not running"
        )
    if metrics is None:
        details["writer_metrics"] = None
        summary = (
            f"WAL {size} bytes; the writer's counters live in the gateway's process "
            "(store.metrics(), or doctor.diagnose_store(store) there)"
        )
    else:
        details["writer_metrics"] = metrics
        if metrics.get("failed_mutations"):
            problems.append(f"{metrics['failed_mutations']} writes failed since the store opened")
        if metrics.get("batch_retries"):
            problems.append(
                f"{metrics['batch_retries']} group commits failed and were retried one by one"
            )
        summary = (
            f"WAL {size} bytes; {metrics.get('batches', 0)} group commits, "
            f"{metrics.get('mutations', 0)} writes, max transaction "
            f"{metrics.get('max_txn_ms', 0):.1f} ms, queue {metrics.get('queue_depth', 0)}"
        )
    if problems:
        return Check("writer", WARN, "; ".join(problems), details)
    return Check("writer", OK, summary, details)


# --- putting it together ---------------------------------------------------------------------


def diagnose(
    path: str | Path,
    *,
    quick: bool = False,
    writer_metrics: dict[str, Any] | None = None,
    in_process: bool = False,
) -> DoctorReport:
    """Every check on the database at `path`, without writing to it.

    `in_process`: this process already has the database open (the gateway itself); the
    -shm header is then not read (see the module docstring). A store on PostgreSQL gets
    the same store checks and its own server's: admin/pg_doctor.py."""
    db = Path(path).absolute()
    checks = [check_sqlite_version()]
    try:
        check_path(db)
    except DatabaseRefusedError as exc:
        checks.append(Check("database", ERROR, str(exc)))
        return DoctorReport(str(db), checks)
    checks.append(_sqlite_only(check_file_modes(db)))
    sidecars, wal_index = check_sidecars(db, in_process=in_process)
    checks.append(_sqlite_only(sidecars))
    try:
        console = open_console(db)
    except DatabaseRefusedError as exc:
        checks.append(Check("database", ERROR, str(exc)))
        return DoctorReport(str(db), checks)
    with console:
        conn = console.conn
        checks.append(Check("database", OK, "a store_sql database (application_id matches)"))
        checks.extend(_guarded(db, "schema_revision", lambda: check_schema(conn)))
        checks.extend(_guarded(db, "full_text_search", lambda: [check_full_text(conn)]))
        checks.extend(
            map(_sqlite_only, _guarded(db, "journal_mode", lambda: [check_journal_mode(conn)]))
        )
        name = "quick_check" if quick else "integrity_check"
        checks.extend(
            map(_sqlite_only, _guarded(db, name, lambda: [check_integrity(conn, quick=quick)]))
        )
        checks.extend(_guarded(db, "chains", lambda: [check_chains(conn, quick=quick)]))
        checks.extend(_guarded(db, "foreign_key_check", lambda: [check_foreign_keys(conn)]))
    checks.append(_sqlite_only(check_wal(db, wal_index, writer_metrics)))
    return DoctorReport(str(db), checks)


def _sqlite_only(check: Check) -> Check:
    return replace(check, backend=SQLITE)


def _guarded(db: Path, name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check's own result, or an error check when SQLite could not finish it: a damaged
    page makes a query (integrity_check itself, when the damage is in the schema or a
    table's root) raise, and the report must still say so and go on to the next check."""
    try:
        return run()
    except sqlite3.Error as exc:
        if is_corruption(exc):
            summary = (
                f"could not finish: the file is damaged ({exc}); {next_steps(db, doctor=False)}"
            )
        else:
            summary = f"could not finish: {exc}"
        return [Check(name, ERROR, summary, {"error": str(exc)})]


async def diagnose_store(store: Store, *, quick: bool = False) -> DoctorReport:
    """`diagnose` from inside the process that has `store` open, with its writer metrics."""
    metrics = store.metrics()
    return await asyncio.to_thread(
        diagnose, store.path, quick=quick, writer_metrics=metrics, in_process=True
    )

"""Options every command shares (`--db`, `--json`) and running a coroutine on a Store.

`--db` is a SQLite file or a PostgreSQL URL (`postgresql://...`). A URL is never taken for
a path: commands whose work is on PostgreSQL say so with `set_defaults(on_postgres=True)`
(`on_postgres`); cli/main.py refuses a URL for every other command, in one line, before
it runs (`BackendNotSupportedError`).

Building the parser imports no more than argparse needs: a command imports the library
(the store, the importer, the server...) when it runs, so every `store-sql` starts quickly
whatever the command."""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from store_sql.engine.pg.url import is_postgres_url
from store_sql.errors import BackendNotSupportedError, InvalidEntryError
from store_sql.formats import jsjson

if TYPE_CHECKING:
    from store_sql.store import Store

T = TypeVar("T")

DEFAULT_DB_ENV = "STORE_SQL_DB"
DEFAULT_DB = "store.sqlite"


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get(DEFAULT_DB_ENV, DEFAULT_DB),
        help=f"database file or postgresql:// URL (default: ${DEFAULT_DB_ENV} or ./{DEFAULT_DB})",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def add_agent(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--agent",
        required=required,
        default=None if required else "main",
        help="agent id" + ("" if required else " (default: main)"),
    )


def on_postgres(parser: argparse.ArgumentParser) -> None:
    """Mark a command as working on a PostgreSQL `--db` too."""
    parser.set_defaults(on_postgres=True)


def refuse_unported(args: argparse.Namespace) -> None:
    """BackendNotSupportedError when `--db` is a PostgreSQL URL and the command is not on
    PostgreSQL yet, so no command ever takes the URL for a file path."""
    db = getattr(args, "db", None)
    if isinstance(db, str) and is_postgres_url(db) and not getattr(args, "on_postgres", False):
        raise BackendNotSupportedError.not_yet(f"`{args.command_name}`")


def with_store(
    db: str,
    work: Callable[[Store], Awaitable[T]],
    *,
    create: bool = False,
    full_text: bool = False,
    **open_args: object,
) -> T:
    """Open the database, run `work(store)`, close it; all on a fresh event loop.

    Only commands that bring data of their own (`import`, `sessions patch`) pass
    `create=True`: every other command refuses a missing database and creates nothing.
    A command's store runs no background indexer (`full_text=False`): the process lives for
    one command, which then changes only what it says it changes (a dry run nothing); the
    lines it writes are indexed by the gateway's or the server's store in their idle time,
    or by `store-sql search --catch-up`, and a search scans them meanwhile."""
    import asyncio

    from store_sql.store import Store

    async def run() -> T:
        options: dict[str, Any] = {"create": create, "full_text": full_text, **open_args}
        store = await Store.open(db, **options)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def json_object_argument(text: str, name: str, example: str) -> dict[str, Any]:
    """A command-line argument that must be a JSON object, or a clear error naming it. Its
    numbers are new values, written as JSON.stringify writes them (`jsjson.loads_new`)."""
    try:
        value = jsjson.loads_new(text)
    except ValueError as exc:
        raise InvalidEntryError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidEntryError(f"{name} must be a JSON object, e.g. {example}")
    return value

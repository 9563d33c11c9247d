"""Options every command shares (`--db`, `--json`) and running a coroutine on a Store."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from store_sql.errors import InvalidEntryError
from store_sql.formats import jsjson
from store_sql.store import DEFAULT_DB_ENV, Store

T = TypeVar("T")

DEFAULT_DB = "store.sqlite"


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get(DEFAULT_DB_ENV, DEFAULT_DB),
        help=f"database file (default: ${DEFAULT_DB_ENV} or ./{DEFAULT_DB})",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def add_agent(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--agent",
        required=required,
        default=None if required else "main",
        help="agent id" + ("" if required else " (default: main)"),
    )


def with_store(
    db: str, work: Callable[[Store], Awaitable[T]], *, create: bool = False, **open_args: object
) -> T:
    """Open the database, run `work(store)`, close it; all on a fresh event loop.

    Only commands that bring data of their own (`import`, `sessions patch`) pass
    `create=True`: every other command refuses a missing database and creates nothing."""

    async def run() -> T:
        store = await Store.open(db, create=create, **open_args)  # type: ignore[arg-type]
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

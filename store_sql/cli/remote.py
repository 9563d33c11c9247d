"""One writer, also for the CLI: writing commands go to the server that owns the database.

When `store-sql serve` owns a database it leaves `<db>.serve` beside it (service/discovery.py).
The CLI's writing commands look for it: when its server answers, the command is sent there
as one HTTP request, so maintenance and runtime traffic share the server's single writer;
otherwise the command opens the database and works locally as always. Both paths print the
same result; `--json` adds `"via": "server"` or `"via": "local"` (the human form says so on
stderr when a server did the work).

`STORE_SQL_LOCAL=1` makes every command work locally (a server that is stuck can still be
worked around; SQLite's locking keeps the two writers safe, only slower).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store_sql.engine.pg.url import is_postgres_url

if TYPE_CHECKING:
    from store_sql.service.remote import ServiceClient

LOCAL_ENV = "STORE_SQL_LOCAL"


def server_for(args: argparse.Namespace) -> ServiceClient | None:
    """A client of the server owning `args.db`, or None to work locally."""
    if os.environ.get(LOCAL_ENV) == "1" or is_postgres_url(args.db):
        # Several processes write one PostgreSQL database at once: no server to defer to.
        return None
    from store_sql.service import discovery

    db = Path(os.path.abspath(args.db))
    if discovery.read(db) is None:
        # No server announced itself: the HTTP client is not even loaded.
        return None
    from store_sql.service.remote import ServiceClient

    client = ServiceClient.for_database(db)
    if client is not None and not getattr(args, "json", False):
        print(f"store-sql: sent to the server at {client.address.url}", file=sys.stderr)
    return client


def via(value: dict[str, Any], client: ServiceClient | None) -> dict[str, Any]:
    return {**value, "via": "local" if client is None else "server"}


def agent_path(agent: str, *parts: str) -> str:
    from store_sql.service.remote import segment

    return "/v1/agents/" + segment(agent) + "".join("/" + p for p in parts)


def session_path(agent: str, key: str, *parts: str) -> str:
    from store_sql.service.remote import segment

    return agent_path(agent, "sessions", segment(key), *parts)

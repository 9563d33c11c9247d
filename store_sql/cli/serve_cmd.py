"""`store-sql serve`: the HTTP service owning one database (docs/SERVICE.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from store_sql.cli.common import DEFAULT_DB_ENV, on_postgres
from store_sql.engine.pg.url import is_postgres_url

# service.bodies.DEFAULT_MAX_BODY, spelled here so the parser imports no part of the service
# (tests/test_cli_start.py checks the two agree).
DEFAULT_MAX_BODY = 32 * 1024 * 1024


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the database over HTTP (unix socket or loopback TCP)",
        description="Own the database and serve it over HTTP until SIGTERM/SIGINT, which "
        "stop gracefully (requests in flight are answered, queued writes committed). Every "
        "route but /v1/health needs the bearer token from --token-file.",
    )
    p.add_argument(
        "--db",
        default=os.environ.get(DEFAULT_DB_ENV, "store.sqlite"),
        help=f"database file or postgresql:// URL (default: ${DEFAULT_DB_ENV} or ./store.sqlite)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--socket", type=Path, help="listen on this unix socket (mode 0600)")
    where.add_argument("--host", default="127.0.0.1", help="TCP address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0: any)")
    p.add_argument(
        "--token-file",
        type=Path,
        help="bearer token file (default: FILE.token, made 0600; required with a URL)",
    )
    p.add_argument("--tls-cert", type=Path, help="TLS certificate (required off loopback)")
    p.add_argument("--tls-key", type=Path, help="TLS private key")
    p.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        help=f"largest request body in bytes (default {DEFAULT_MAX_BODY})",
    )
    p.add_argument(
        "--no-full-text",
        action="store_true",
        help="do not keep the full-text index current in this process",
    )
    p.add_argument("--json", action="store_true", help="announce the address as a JSON line")
    p.set_defaults(handler=_serve)
    on_postgres(p)


def _serve(args: argparse.Namespace) -> int:
    from store_sql.service.serve import ServeOptions, main

    options = ServeOptions(
        db=args.db if is_postgres_url(args.db) else Path(args.db),
        socket=args.socket,
        host=args.host,
        port=args.port,
        token_file=args.token_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_body=args.max_body,
        full_text=not args.no_full_text,
    )

    def announce(where: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(where), flush=True)
        else:
            line = f"store-sql serving {where['db']} at {where['url']} (pid {where['pid']})"
            print(line, file=sys.stderr, flush=True)

    main(options, announce=announce)
    return 0

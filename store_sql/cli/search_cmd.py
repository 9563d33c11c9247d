"""`store-sql search`: full-text search over entries, with snippets, entry ids and session keys.

A search reads the file through the read-only console (never creates, migrates or
checkpoints it: safe beside a running gateway). Lines not indexed yet are scanned (up to
`search.indexer.BACKLOG_LIMIT`; past it the search says how many it could not search).
`--catch-up` indexes them now and `--rebuild` recreates the whole index, both through the
store's writer in batches; either may be combined with a search.

Exit status: 0 something was found (or the rebuild ran), 1 nothing was found, 2 the database
cannot be used or the search text / a filter is invalid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres, with_store
from store_sql.engine.pg.url import is_postgres_url

if TYPE_CHECKING:
    from store_sql.search.query import RebuildReport, SearchQuery, SearchResult

# transcripts.rows.KINDS and search.query.DEFAULT_LIMIT, spelled here so the parser imports
# neither (tests/test_cli_start.py checks they agree).
KINDS = ("live", "topic", "fork", "checkpoint", "reset", "deleted", "other")
DEFAULT_LIMIT = 20


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "search",
        help="full-text search over message text (snippets, entry ids, session keys)",
        description=(
            "Find entries whose text contains TEXT (case-insensitive substring; 3 or more "
            "characters use the trigram index, shorter text is scanned with LIKE)."
        ),
    )
    add_common(p)
    on_postgres(p)
    p.add_argument("text", nargs="?", metavar="TEXT", help="text to find (literal substring)")
    p.add_argument("--agent", help="only this agent")
    p.add_argument("--session", help="only this session (session key or session id)")
    p.add_argument("--role", help="only messages of this role (user, assistant, toolResult, ...)")
    p.add_argument(
        "--since", metavar="ISO", help="only entries at or after this time (UTC if no zone)"
    )
    p.add_argument(
        "--active-path-only",
        action="store_true",
        help="only entries on the active path (leaf -> root) of their transcript",
    )
    p.add_argument(
        "--kind",
        action="append",
        choices=KINDS,
        dest="kinds",
        help="only transcripts of this kind (repeatable; default: all current transcripts)",
    )
    p.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"most hits (default {DEFAULT_LIMIT})"
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help='TEXT is a query of substrings: AND, OR, NOT, "phrases", parentheses',
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild the full-text index from the stored lines first (writes; batched)",
    )
    p.add_argument(
        "--catch-up",
        action="store_true",
        help="index the lines not in the full-text index yet, first (writes; batched)",
    )
    p.set_defaults(handler=_search)


def _search(args: argparse.Namespace) -> int:
    from store_sql.search.query import SearchQuery

    if args.text is None and not (args.rebuild or args.catch_up):
        print(
            "store-sql search: give TEXT to search for, or --rebuild / --catch-up",
            file=sys.stderr,
        )
        return 2
    report = _rebuild(args) if args.rebuild else None
    caught_up = _catch_up(args) if args.catch_up and not args.rebuild else None
    if args.text is None:
        if args.json:
            output.emit_json({"rebuild": report} if report else {"caught_up": caught_up})
        return 0
    query = SearchQuery(
        text=args.text,
        agent_id=args.agent,
        session=args.session,
        role=args.role,
        since=args.since,
        active_path_only=args.active_path_only,
        kinds=tuple(args.kinds or ()),
        limit=args.limit,
        raw=args.raw,
    )
    result = _search_file(args.db, query)
    if args.json:
        value: dict[str, Any] = {"query": query, **output.plain(result)}
        if report is not None:
            value["rebuild"] = report
        if caught_up is not None:
            value["caught_up"] = caught_up
        output.emit_json(value)
    else:
        _print_hits(result)
    if result.notice:
        print(f"store-sql search: {result.notice}", file=sys.stderr)
    return 0 if result.hits else 1


def _rebuild(args: argparse.Namespace) -> RebuildReport:
    if not is_postgres_url(args.db):
        from store_sql.admin.sql_console import check_path

        check_path(args.db)  # a rebuild must not create a database at a mistyped path

    def progress(r: RebuildReport) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rre-indexed {r.lines_read} lines ...", end="", file=sys.stderr)

    report = with_store(args.db, lambda s: s.search.rebuild(progress=progress))
    if not args.json:
        print(
            f"rebuilt the full-text index: {report.rows_indexed} entries indexed from "
            f"{report.lines_read} entry lines in {report.batches} batches"
            + (f"; {report.unreadable} unreadable lines left out" if report.unreadable else ""),
            file=sys.stderr,
        )
    return report


def _catch_up(args: argparse.Namespace) -> int:
    if not is_postgres_url(args.db):
        from store_sql.admin.sql_console import check_path

        check_path(args.db)
    lines = with_store(args.db, lambda s: s.search.catch_up())
    if not args.json:
        print(f"indexed {lines} lines that were not in the full-text index", file=sys.stderr)
    return lines


def _print_hits(result: SearchResult) -> None:
    for hit in result.hits:
        where = hit.session_key or f"(no session key) {hit.session_id or hit.file_name}"
        kind = "" if hit.transcript_kind == "live" else f" [{hit.transcript_kind}]"
        print(f"{hit.timestamp or '-'}  {hit.agent_id}  {where}{kind}")
        print(
            f"  entry {hit.entry_id or '-'} (pos {hit.pos}, {hit.role or hit.type}): {hit.snippet}"
        )
    count = len(result.hits)
    tail = ", more not shown (raise --limit)" if result.more else ""
    print(f"({count} hit{'' if count == 1 else 's'}{tail})")


def _search_file(path: str | Path, query: SearchQuery) -> SearchResult:
    """Search a database file through the read-only console (`store-sql search`): never
    creates, migrates or checkpoints it, so it is safe beside a running gateway. On
    PostgreSQL: the console's READ ONLY snapshot (admin/pg_console.py)."""
    if is_postgres_url(path):
        import asyncio

        return asyncio.run(_search_postgres(str(path), query))
    from store_sql.admin.sql_console import open_console
    from store_sql.search import query as search

    with open_console(path) as console:
        console.conn.execute("BEGIN")
        try:
            return search.search_entries(console.conn, query)
        finally:
            console.conn.execute("COMMIT")


async def _search_postgres(url: str, query: SearchQuery) -> SearchResult:
    from store_sql.admin import pg_console
    from store_sql.search import pg_query

    async with pg_console.reading(url) as (conn, _):
        return await pg_query.search_entries(conn, query)

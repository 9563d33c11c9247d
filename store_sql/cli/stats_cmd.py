"""`store-sql stats`: agents, sessions, transcripts, entries, bytes, biggest sessions, damage,
WAL size. Read-only (safe beside a running gateway); exit 0, or 2 when the database cannot
be read."""

from __future__ import annotations

import argparse
from typing import Any

from store_sql.cli import output
from store_sql.cli.common import add_common, on_postgres
from store_sql.engine.pg.url import is_postgres_url

# admin.stats.DEFAULT_TOP, spelled here so the parser imports no admin module
# (tests/test_cli_start.py checks the two agree).
DEFAULT_TOP = 10


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "stats",
        help="what the database holds and how big it is (read-only)",
        description="Counts and sizes, read in one snapshot without writing to the database.",
    )
    add_common(p)
    on_postgres(p)
    p.add_argument(
        "--top",
        type=int,
        default=DEFAULT_TOP,
        metavar="N",
        help=f"how many of the biggest sessions to list (default {DEFAULT_TOP})",
    )
    p.set_defaults(handler=_stats)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _stats(args: argparse.Namespace) -> int:
    from store_sql.admin import stats

    top = max(0, args.top)
    if is_postgres_url(args.db):
        from store_sql.admin import pg_stats

        s = pg_stats.stats(args.db, top=top)
    else:
        s = stats.stats_file(args.db, top=top)
    if args.json:
        output.emit_json(s)
        return 0
    kinds = ", ".join(f"{k} {v}" for k, v in s.transcripts_by_kind.items()) or "none"
    print(f"database      {s.path}")
    if s.dialect == "postgresql":
        print(f"  size        {_size(s.database_bytes)} (pg_database_size)")
    else:
        print(f"  file        {_size(s.database_bytes)} ({_size(s.free_bytes)} free pages)")
        print(f"  wal         {_size(s.wal_bytes)}")
    print(f"agents        {len(s.agents)}")
    print(
        f"sessions      {s.sessions}"
        + (f" ({s.invalid_sessions} invalid)" if s.invalid_sessions else "")
    )
    print(f"transcripts   {s.transcripts} current ({kinds}); {s.superseded_transcripts} superseded")
    print(f"entries       {s.entries} in {s.lines} lines")
    print(
        f"bytes         transcripts {_size(s.transcript_bytes)}, "
        f"superseded {_size(s.superseded_bytes)}, session index {_size(s.session_index_bytes)}, "
        f"other files {_size(s.opaque_file_bytes)} ({s.opaque_files})"
    )
    print(f"damaged lines {s.damaged_lines} in {s.transcripts_with_damage} transcripts")
    print(f"snapshots     {s.checkpoint_snapshots} checkpoint snapshots")
    waiting = f", {s.full_text_waiting} lines waiting" if s.full_text_waiting else ""
    print(f"full text     {s.full_text_rows} indexed entries{waiting}")
    if s.agents:
        print("\nper agent")
        output.emit_table(
            output.plain(s.agents),
            ["agent_id", "sessions", "transcripts", "entries", "transcript_bytes"],
        )
    if s.biggest_sessions:
        print("\nbiggest sessions (live transcript + archives and versions of the same session id)")
        cols = ["agent_id", "session_key", "session_id", "entries", "live_bytes", "all_bytes"]
        output.emit_table(output.plain(s.biggest_sessions), cols)
    return 0

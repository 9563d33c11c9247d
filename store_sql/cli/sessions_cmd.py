"""`store-sql sessions list|get|patch|delete`: the session index of one agent."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from store_sql.cli import output
from store_sql.cli.common import add_agent, add_common, with_store
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats import jsjson
from store_sql.store import Store


def register(sub: argparse._SubParsersAction[Any]) -> None:
    group = sub.add_parser("sessions", help="read and change the session index")
    cmds = group.add_subparsers(dest="sessions_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("list", help="entries newest first (indexed columns only)")
    add_common(p)
    add_agent(p)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--label")
    p.add_argument("--chat-type")
    p.add_argument("--channel")
    p.add_argument("--updated-after", type=int, help="epoch ms")
    p.add_argument("--updated-before", type=int, help="epoch ms")
    p.set_defaults(handler=_list)

    p = cmds.add_parser("get", help="one entry as JSON (as sessions.json holds it)")
    add_common(p)
    add_agent(p)
    p.add_argument("key")
    p.set_defaults(handler=_get)

    p = cmds.add_parser("patch", help="merge a JSON object into an entry (null removes a field)")
    add_common(p)
    add_agent(p)
    p.add_argument("key")
    p.add_argument("patch", metavar="PATCH_JSON")
    p.set_defaults(handler=_patch)

    p = cmds.add_parser("delete", help="remove an entry")
    add_common(p)
    add_agent(p)
    p.add_argument("key")
    p.set_defaults(handler=_delete)


def _list(args: argparse.Namespace) -> int:
    async def work(store: Store) -> tuple[list[Any], int]:
        filters = {
            "label": args.label,
            "chat_type": args.chat_type,
            "channel": args.channel,
            "updated_after": args.updated_after,
            "updated_before": args.updated_before,
        }
        rows = await store.sessions.list_entries(
            args.agent, limit=args.limit, offset=args.offset, **filters
        )
        total = await store.sessions.count_entries(args.agent, **filters)
        return rows, total

    rows, total = with_store(args.db, work)
    items = output.plain(rows)
    if args.json:
        output.emit_json({"agent": args.agent, "total": total, "sessions": items})
    else:
        columns = ["key", "session_id", "updated_at", "label", "chat_type", "channel", "model"]
        output.emit_table(items, columns)
        print(f"({len(items)} of {total} sessions of agent {args.agent})")
    return 0


def _get(args: argparse.Namespace) -> int:
    entry = with_store(args.db, lambda s: s.sessions.get(args.agent, args.key))
    if entry is None:
        raise NotFoundError(f"agent {args.agent!r} has no session {args.key!r}")
    print(jsjson.dumps(entry, indent=2))
    return 0


def _patch(args: argparse.Namespace) -> int:
    try:
        patch = jsjson.loads(args.patch)
    except ValueError as exc:
        raise InvalidEntryError(f"PATCH_JSON is not valid JSON: {exc}") from exc
    if not isinstance(patch, dict):
        raise InvalidEntryError('PATCH_JSON must be a JSON object, e.g. \'{"label":"x"}\'')
    entry = with_store(args.db, lambda s: s.sessions.patch(args.agent, args.key, patch))
    if args.json:
        output.emit_json(
            {"agent": args.agent, "key": args.key, "entry": orjson.loads(jsjson.dumps(entry))}
        )
    else:
        print(jsjson.dumps(entry, indent=2))
    return 0


def _delete(args: argparse.Namespace) -> int:
    deleted = with_store(args.db, lambda s: s.sessions.delete(args.agent, args.key))
    if args.json:
        output.emit_json({"agent": args.agent, "key": args.key, "deleted": deleted})
    else:
        print(f"deleted {args.key}" if deleted else f"no session {args.key!r}; nothing deleted")
    return 0 if deleted else 1

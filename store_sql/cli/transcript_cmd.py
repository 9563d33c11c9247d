"""`store-sql transcript show|tail|tree|append|migrate`: one session's transcript."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from store_sql.cli import output
from store_sql.cli.common import (
    add_agent,
    add_common,
    json_object_argument,
    on_postgres,
    with_store,
)
from store_sql.cli.remote import agent_path, server_for, via
from store_sql.formats import jsjson

if TYPE_CHECKING:
    from store_sql.store import Store


def _target(text: str) -> str | int:
    """A session id, or `#<transcript_id>` for any transcript (archives, versions)."""
    return int(text[1:]) if text.startswith("#") and text[1:].isdigit() else text


def register(sub: argparse._SubParsersAction[Any]) -> None:
    group = sub.add_parser("transcript", help="read and append to a session's transcript")
    cmds = group.add_subparsers(dest="transcript_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("show", help="the active path, readably")
    _common(p)
    p.set_defaults(handler=_show)
    on_postgres(p)

    p = cmds.add_parser("tail", help="the last entries of the active path")
    _common(p)
    p.add_argument("-n", "--limit", type=int, default=20)
    p.add_argument("--max-bytes", type=int, default=None)
    p.set_defaults(handler=_tail)
    on_postgres(p)

    p = cmds.add_parser("tree", help="every branch, with labels")
    _common(p)
    p.set_defaults(handler=_tree)
    on_postgres(p)

    p = cmds.add_parser("append", help="append one entry (JSON object with a 'type')")
    _common(p)
    p.add_argument(
        "entry", metavar="ENTRY_JSON", help='e.g. \'{"type":"message","message":{...}}\''
    )
    p.add_argument("--parent", default=None, help="append below this entry id (branch)")
    p.set_defaults(handler=_append)
    on_postgres(p)

    p = cmds.add_parser("migrate", help="write the v3 form of a v1/v2 transcript (original kept)")
    _common(p)
    p.set_defaults(handler=_migrate)
    on_postgres(p)


def _common(p: argparse.ArgumentParser) -> None:
    add_common(p)
    add_agent(p)
    p.add_argument("session", help="session id, or #<transcript_id>")


def _entries_json(entries: list[Any]) -> list[dict[str, Any]]:
    return [
        {"pos": e.pos, "id": e.id, "parentId": e.parent_id, "type": e.type, "role": e.role,
         "timestamp": e.timestamp, "kind": e.kind, "damage": e.damage,
         "line": e.raw.decode("utf-8", "replace")}
        for e in entries
    ]  # fmt: skip


def _print_entries(args: argparse.Namespace, entries: list[Any]) -> int:
    if args.json:
        output.emit_json(_entries_json(entries))
    else:
        from store_sql.transcripts.render import entry_lines

        print("\n".join(entry_lines(entries)))
    return 0


def _show(args: argparse.Namespace) -> int:
    entries = with_store(
        args.db, lambda s: s.transcripts.active_path(args.agent, _target(args.session))
    )
    return _print_entries(args, entries)


def _tail(args: argparse.Namespace) -> int:
    entries = with_store(
        args.db,
        lambda s: s.transcripts.recent(
            args.agent, _target(args.session), limit=args.limit, max_bytes=args.max_bytes
        ),
    )
    return _print_entries(args, entries)


def _tree(args: argparse.Namespace) -> int:
    roots = with_store(args.db, lambda s: s.transcripts.tree(args.agent, _target(args.session)))
    if args.json:
        output.emit_json(roots)
    else:
        from store_sql.transcripts.render import tree_lines

        print("\n".join(tree_lines(roots)))
    return 0


def _append(args: argparse.Namespace) -> int:
    example = """'{"type":"message","message":{"role":"user","content":"hi"}}'"""
    entry = json_object_argument(args.entry, "ENTRY_JSON", example)

    async def work(store: Store) -> Any:
        from store_sql.addresses import LEAF

        parent = args.parent if args.parent is not None else LEAF
        return (
            await store.transcripts.append(
                args.agent, _target(args.session), [entry], parent_id=parent
            )
        )[0]

    client = server_for(args)
    if client is None:
        appended = output.plain(with_store(args.db, work))
    else:
        body = {"entries": [entry]}
        if args.parent is not None:
            body["parentId"] = args.parent
        with client:
            done = client.call(
                "POST",
                _transcript_path(args, "entries"),
                raw=jsjson.dumps_bytes(body),
                query=_target_query(args),
            )[0]
        appended = {
            "id": done["id"],
            "pos": done["pos"],
            "existed": done["existed"],
            "parent_id": done["parentId"],
        }
    output.emit(
        via(appended, client) if args.json else appended,
        args.json,
        f"{'exists' if appended['existed'] else 'appended'} {appended['id']} "
        f"at line {appended['pos'] + 1}",
    )
    return 0


def _transcript_path(args: argparse.Namespace, *parts: str) -> str:
    from store_sql.service.remote import segment

    target = _target(args.session)
    name = "_" if isinstance(target, int) else target
    return agent_path(args.agent, "transcripts", segment(name), *parts)


def _target_query(args: argparse.Namespace) -> dict[str, Any] | None:
    target = _target(args.session)
    return {"transcriptId": target} if isinstance(target, int) else None


def _migrate(args: argparse.Namespace) -> int:
    client = server_for(args)
    if client is None:
        info = output.plain(
            with_store(
                args.db, lambda s: s.transcripts.migrate_to_v3(args.agent, _target(args.session))
            )
        )
    else:
        from store_sql.service.wire import info_fields

        with client:
            info = info_fields(
                client.call("POST", _transcript_path(args, "migrate"), query=_target_query(args))
            )
    output.emit(
        via(info, client) if args.json else info,
        args.json,
        f"migrated to v3 as transcript #{info['transcript_id']}",
    )
    return 0

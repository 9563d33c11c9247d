"""`store-sql checkpoints list|show|branch|restore`: a session's compaction checkpoints."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from store_sql.cli import output
from store_sql.cli.common import add_agent, add_common, on_postgres, with_store
from store_sql.cli.remote import server_for, session_path, via
from store_sql.formats import jsjson


def register(sub: argparse._SubParsersAction[Any]) -> None:
    group = sub.add_parser("checkpoints", help="list, show, branch and restore checkpoints")
    cmds = group.add_subparsers(dest="checkpoints_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("list", help="the checkpoints of a session, newest first")
    _common(p)
    p.set_defaults(handler=_list)

    p = cmds.add_parser("show", help="one checkpoint as JSON (as the entry holds it)")
    _common(p)
    p.add_argument("checkpoint_id")
    p.add_argument(
        "--snapshot", action="store_true", help="print the snapshot file instead (JSONL bytes)"
    )
    p.set_defaults(handler=_show)

    p = cmds.add_parser("branch", help="a new session from the checkpoint's snapshot")
    _common(p)
    p.add_argument("checkpoint_id")
    p.add_argument(
        "--new-key", help="key of the new session (default: agent:<id>:dashboard:<uuid>)"
    )
    p.set_defaults(handler=_branch)

    p = cmds.add_parser("restore", help="make the checkpoint's snapshot the active transcript")
    _common(p)
    p.add_argument("checkpoint_id")
    p.set_defaults(handler=_restore)


def _common(p: argparse.ArgumentParser) -> None:
    add_common(p)
    on_postgres(p)
    add_agent(p)
    p.add_argument("key", help="session key")


def _json_ready(value: Any) -> Any:
    """Entry values keep JavaScript's number spellings; turn them into plain JSON values."""
    return orjson.loads(jsjson.dumps(value))


def _list(args: argparse.Namespace) -> int:
    items = with_store(args.db, lambda s: s.checkpoints.list_checkpoints(args.agent, args.key))
    if args.json:
        output.emit_json({"agent": args.agent, "key": args.key, "checkpoints": _json_ready(items)})
        return 0
    rows = [
        {
            "checkpointId": cp.get("checkpointId"),
            "createdAt": cp.get("createdAt"),
            "reason": cp.get("reason"),
            "tokensBefore": cp.get("tokensBefore"),
            "tokensAfter": cp.get("tokensAfter"),
            "summary": cp.get("summary"),
        }
        for cp in items
    ]
    output.emit_table(rows, list(rows[0]) if rows else ["checkpointId"])
    print(f"({len(rows)} checkpoints of {args.key})")
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.snapshot:
        data = with_store(
            args.db,
            lambda s: s.checkpoints.snapshot_bytes(args.agent, args.key, args.checkpoint_id),
        )
        sys.stdout.buffer.write(data)
        return 0
    cp = with_store(args.db, lambda s: s.checkpoints.get(args.agent, args.key, args.checkpoint_id))
    if args.json:
        output.emit_json(_json_ready(cp))
    else:
        print(jsjson.dumps(cp, indent=2))
    return 0


def _fork_report(result: Any) -> dict[str, Any]:
    return {
        "key": result.key,
        "sessionId": result.session_id,
        "sessionFile": result.file_name,
        "checkpoint": _json_ready(result.checkpoint),
        "entry": _json_ready(result.entry),
    }


def _remote_fork(client: Any, args: argparse.Namespace, action: str) -> dict[str, Any]:
    from store_sql.service.remote import segment

    body = {"newKey": args.new_key} if getattr(args, "new_key", None) is not None else {}
    path = session_path(args.agent, args.key, "checkpoints", segment(args.checkpoint_id), action)
    with client:
        done = client.call("POST", path, body)
    return {
        "key": done["key"],
        "sessionId": done["sessionId"],
        "sessionFile": done["fileName"],
        "checkpoint": done["checkpoint"],
        "entry": done["entry"],
    }


def _branch(args: argparse.Namespace) -> int:
    client = server_for(args)
    if client is None:
        report = _fork_report(
            with_store(
                args.db,
                lambda s: s.checkpoints.branch(
                    args.agent, args.key, args.checkpoint_id, new_key=args.new_key
                ),
            )
        )
    else:
        report = _remote_fork(client, args, "branch")
    if args.json:
        output.emit_json(via({"ok": True, "sourceKey": args.key, **report}, client))
    else:
        print(f"branched {args.key} at {args.checkpoint_id} into {report['key']}")
        print(f"session {report['sessionId']}, transcript {report['sessionFile']}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    client = server_for(args)
    if client is None:
        report = _fork_report(
            with_store(
                args.db, lambda s: s.checkpoints.restore(args.agent, args.key, args.checkpoint_id)
            )
        )
    else:
        report = _remote_fork(client, args, "restore")
    if args.json:
        output.emit_json(via({"ok": True, **report}, client))
    else:
        print(f"restored {args.key} to checkpoint {args.checkpoint_id}")
        print(f"session {report['sessionId']}, transcript {report['sessionFile']}")
    return 0

"""`store-sql sessions list|get|patch|delete|recover|cleanup|reset|delete-archive|purge`."""

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
from store_sql.cli.remote import agent_path, server_for, session_path, via
from store_sql.errors import InvalidEntryError, NotFoundError
from store_sql.formats import jsjson

if TYPE_CHECKING:
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
    on_postgres(p)

    p = cmds.add_parser("get", help="one entry as JSON (as sessions.json holds it)")
    _one_session(p)
    p.set_defaults(handler=_get)

    p = cmds.add_parser("patch", help="merge a JSON object into an entry (null removes a field)")
    _one_session(p)
    p.add_argument("patch", metavar="PATCH_JSON")
    p.set_defaults(handler=_patch)

    p = cmds.add_parser("delete", help="remove an entry")
    _one_session(p)
    p.set_defaults(handler=_delete)

    p = cmds.add_parser(
        "recover",
        help="make a damaged imported sessions.json writable: keep its readable entries and "
        "its original bytes (exported as sessions.json.invalid-<time>)",
    )
    add_common(p)
    add_agent(p)
    p.set_defaults(handler=_recover)
    on_postgres(p)

    _register_lifecycle(cmds)


def _one_session(p: argparse.ArgumentParser) -> None:
    """The options of a command on one session entry: `--db`, `--json`, `--agent`, its key."""
    add_common(p)
    add_agent(p)
    p.add_argument("key")
    on_postgres(p)


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
    patch = json_object_argument(args.patch, "PATCH_JSON", """'{"label":"x"}'""")
    client = server_for(args)
    if client is None:
        entry = with_store(
            args.db, lambda s: s.sessions.patch(args.agent, args.key, patch), create=True
        )
    else:
        with client:
            answer = client.request(
                "PATCH", session_path(args.agent, args.key), raw=jsjson.dumps_bytes(patch)
            )
            entry = jsjson.loads(_checked(client, answer).body)
    if args.json:
        # jsjson, not orjson: an entry may hold what JSON.stringify writes and orjson refuses
        # (a lone surrogate as \udxxx, a number like 1e400), and it is printed as stored.
        value = via({"agent": args.agent, "key": args.key, "entry": entry}, client)
        print(jsjson.dumps(value, indent=2))
    else:
        print(jsjson.dumps(entry, indent=2))
    return 0


def _checked(client: Any, answer: Any) -> Any:
    from store_sql.service.remote import error_of

    if answer.status >= 300:
        raise error_of(answer)
    return answer


def _delete(args: argparse.Namespace) -> int:
    client = server_for(args)
    if client is None:
        deleted = with_store(args.db, lambda s: s.sessions.delete(args.agent, args.key))
    else:
        with client:
            deleted = client.call("DELETE", session_path(args.agent, args.key))["deleted"]
    if args.json:
        output.emit_json(via({"agent": args.agent, "key": args.key, "deleted": deleted}, client))
    else:
        print(f"deleted {args.key}" if deleted else f"no session {args.key!r}; nothing deleted")
    return 0 if deleted else 1


def _recover(args: argparse.Namespace) -> int:
    result = with_store(args.db, lambda s: s.sessions.recover(args.agent))
    if args.json:
        output.emit_json(result)
        return 0
    print(
        f"agent {args.agent}: {result.salvaged} entries recovered; the original "
        f"{result.kept_bytes} bytes are kept as {result.kept_as} (export writes them)"
    )
    for part in result.lost:
        print(f"not readable: {part}")
    return 0


# --- life cycle and maintenance (store.lifecycle, store.maintenance) --------------------------


def _register_lifecycle(cmds: argparse._SubParsersAction[Any]) -> None:
    p = cmds.add_parser(
        "cleanup",
        help="maintenance by the gateway's policy: prune, cap, archive, disk budget",
        description="Without --enforce the mode is warn: the report says what is over the "
        "limits and nothing changes. --dry-run reports what --enforce would do.",
    )
    add_common(p)
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--agent", default="main", help="agent id (default: main)")
    scope.add_argument("--all-agents", action="store_true", help="every agent of the database")
    p.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    p.add_argument("--enforce", action="store_true", help="apply the policy (mode enforce)")
    p.add_argument("--active-key", help="a session key to protect (the caller's active one)")
    p.add_argument("--prune-after", default="30d", help="drop entries idle longer (30d)")
    p.add_argument("--max-entries", type=int, default=500, help="keep at most N (500)")
    p.add_argument("--max-disk-bytes", help="disk budget per agent, e.g. 2gb (default: off)")
    p.add_argument("--high-water-bytes", help="clean down to this (default: 80%% of the max)")
    p.add_argument(
        "--archive-retention", help="delete archives older than this (default: --prune-after; "
        "'off' keeps them)"
    )  # fmt: skip
    p.set_defaults(handler=_cleanup)
    on_postgres(p)

    p = cmds.add_parser("reset", help="new session id and transcript; the old one is archived")
    _one_session(p)
    p.set_defaults(handler=_reset)

    p = cmds.add_parser(
        "delete-archive", help="remove an entry and archive its transcript as .deleted."
    )
    _one_session(p)
    p.set_defaults(handler=_delete_archive)

    p = cmds.add_parser("purge", help="remove every entry and transcript of one agent")
    add_common(p)
    add_agent(p, required=True)
    p.add_argument("--yes", action="store_true", help="required: the purge cannot be undone")
    p.set_defaults(handler=_purge)
    on_postgres(p)


def _cleanup(args: argparse.Namespace) -> int:
    from store_sql.maintenance.policy import MaintenancePolicy, parse_bytes, parse_duration_ms

    prune_after = parse_duration_ms(args.prune_after)
    retention: str | None = args.archive_retention
    policy = MaintenancePolicy(
        mode="enforce" if args.enforce else "warn",
        prune_after_ms=prune_after,
        max_entries=args.max_entries,
        max_disk_bytes=parse_bytes(args.max_disk_bytes) if args.max_disk_bytes else None,
        high_water_bytes=parse_bytes(args.high_water_bytes) if args.high_water_bytes else None,
        archive_retention_ms=(
            prune_after if retention is None
            else None if retention.lower() in ("off", "never", "false")
            else parse_duration_ms(retention)
        ),
    )  # fmt: skip
    options = {"active_key": args.active_key, "dry_run": args.dry_run}

    async def work(store: Store) -> dict[str, Any]:
        if args.all_agents:
            return await store.maintenance.cleanup_all(policy, **options)
        return await store.maintenance.cleanup(args.agent, policy, **options)

    client = server_for(args)
    if client is None:
        report = with_store(args.db, work)
    else:
        body = {
            "policy": {
                "mode": policy.mode,
                "pruneAfter": args.prune_after,
                "maxEntries": args.max_entries,
                "maxDiskBytes": args.max_disk_bytes,
                "highWaterBytes": args.high_water_bytes,
                "archiveRetention": "off"
                if retention is not None and retention.lower() in ("off", "never", "false")
                else (retention or args.prune_after),
            },
            "dryRun": args.dry_run,
        }
        if args.active_key is not None:
            body["activeKey"] = args.active_key
        path = (
            "/v1/maintenance/cleanup"
            if args.all_agents
            else agent_path(args.agent, "maintenance", "cleanup")
        )
        with client:
            report = client.call("POST", path, body)
    if args.json:
        output.emit_json(via(report, client))
        return 0
    for summary in report.get("stores", [report]):
        budget = summary["diskBudget"]
        print(
            f"agent {summary['agentId']} ({summary['mode']}): {summary['beforeCount']} -> "
            f"{summary['afterCount']} entries; pruned {summary['pruned']}, capped "
            f"{summary['capped']}; archived {summary['archivedTranscripts']} transcripts; "
            f"deleted {summary['archiveCleanup']['removedFiles']} old archives"
            + ("" if budget is None else f"; disk {budget['totalBytesBefore']} -> "
               f"{budget['totalBytesAfter']} bytes (max {budget['maxBytes']})")
        )  # fmt: skip
    space = report.get("spaceReclaimed")
    if space:
        print(f"space returned to the file system: {space['bytesReclaimed']} bytes")
    if args.dry_run:
        print("dry run: nothing was changed")
    elif not args.enforce:
        print("mode warn: nothing was changed (use --enforce to apply)")
    return 0


def _reset(args: argparse.Namespace) -> int:
    client = server_for(args)
    if client is None:
        result = output.plain(
            with_store(args.db, lambda s: s.lifecycle.reset(args.agent, args.key))
        )
    else:
        with client:
            done = client.call("POST", session_path(args.agent, args.key, "reset"), {})
        result = {
            "key": done["key"],
            "previous_session_id": done["previousSessionId"],
            "session_id": done["sessionId"],
            "entry": done["entry"],
            "archived": done["archived"],
            "transcript_id": done["transcriptId"],
        }
    if args.json:
        output.emit_json(via({"agent": args.agent, **result}, client))
    else:
        print(f"{args.key}: new session {result['session_id']}")
        for name in result["archived"]:
            print(f"archived {name}")
    return 0


def _delete_archive(args: argparse.Namespace) -> int:
    client = server_for(args)
    if client is None:
        result = output.plain(
            with_store(args.db, lambda s: s.lifecycle.delete(args.agent, args.key))
        )
    else:
        with client:
            done = client.call("DELETE", session_path(args.agent, args.key), {"archive": True})
        result = {"key": done["key"], "deleted": done["deleted"], "archived": done["archived"]}
    if args.json:
        output.emit_json(via({"agent": args.agent, **result}, client))
    elif not result["deleted"]:
        print(f"no session {args.key!r}; nothing deleted")
    else:
        print(f"deleted {args.key}" + "".join(f"\narchived {n}" for n in result["archived"]))
    return 0 if result["deleted"] else 1


def _purge(args: argparse.Namespace) -> int:
    from store_sql.service.wire import snake_keys

    if not args.yes:
        raise InvalidEntryError(f"purging agent {args.agent!r} cannot be undone: add --yes")
    client = server_for(args)
    if client is None:
        result = output.plain(with_store(args.db, lambda s: s.lifecycle.purge_agent(args.agent)))
    else:
        with client:
            done = client.call("POST", agent_path(args.agent, "purge"), {"confirm": args.agent})
            result = snake_keys(done)
    if args.json:
        output.emit_json(via(result, client))
    else:
        print(
            f"purged agent {args.agent}: {result['entries']} entries, {result['transcripts']} "
            f"transcripts ({result['lines']} lines), {result['snapshots']} snapshots"
        )
    return 0

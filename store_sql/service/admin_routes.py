"""Routes of the store's upkeep: maintenance, search, statistics, import, export, purge.

Their answers are the library's result objects as JSON with every field name camelCase,
as every answer of the service (wire.camel_keys); a CLI command that sends its work here
turns them back into the library's names (wire.snake_keys), so it prints the same thing as
when it works locally. Import and export take paths on the server's machine: the server
runs as the database's owner, beside the files it serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec
from msgspec import UNSET, Struct
from starlette.responses import Response

from store_sql.admin import pg_stats
from store_sql.admin.stats import collect_stats
from store_sql.exporter.api import export_tree
from store_sql.importer.api import import_path
from store_sql.maintenance.policy import MaintenancePolicy, parse_bytes, parse_duration_ms
from store_sql.search.indexer import backlog
from store_sql.service import bodies
from store_sql.service.bodies import CleanupBody, ExportBody, ImportBody, PolicyBody
from store_sql.service.http_errors import ApiError
from store_sql.service.responses import js_response, json_response
from store_sql.service.routing import Call, Operation, describe
from store_sql.service.wire import camel_keys

TAG: Final = "maintenance"


class PurgeBody(Struct, rename="camel", forbid_unknown_fields=True):
    """`{"confirm": "<agent>"}`: a purge cannot be undone."""

    confirm: str


class SearchHitAnswer(Struct, rename="camel"):
    """One matching entry of `GET /v1/search`."""

    agent_id: str
    session_key: str | None
    session_id: str | None
    transcript_id: int
    transcript_kind: str
    file_name: str
    entry_id: str | None
    pos: int
    type: str | None
    role: str | None
    timestamp: str | None
    snippet: str
    """Text around the match, each match in [brackets]."""


class SearchAnswer(Struct, rename="camel"):
    """`GET /v1/search`: hits newest first; `more` says the limit cut them."""

    hits: list[SearchHitAnswer]
    more: bool
    mode: str
    """`fts` (the trigram index), `like` (a scan, for short text) or `fts-raw`."""
    notice: str | None
    unsearched: int
    """Lines not in the index yet that could not be searched."""


def policy_of(body: PolicyBody) -> MaintenancePolicy:
    prune_after = parse_duration_ms(body.prune_after)
    retention = body.archive_retention
    return MaintenancePolicy(
        mode=body.mode,
        prune_after_ms=prune_after,
        max_entries=body.max_entries,
        max_disk_bytes=parse_bytes(body.max_disk_bytes) if body.max_disk_bytes else None,
        high_water_bytes=parse_bytes(body.high_water_bytes) if body.high_water_bytes else None,
        archive_retention_ms=(
            prune_after
            if retention is UNSET
            else None
            if retention is None or retention.lower() in ("off", "never", "false")
            else parse_duration_ms(retention)
        ),
    )


async def _cleanup_body(call: Call) -> CleanupBody:
    raw = await call.body()
    return bodies.decode(raw, CleanupBody) if raw.strip() else CleanupBody()


async def plan(call: Call) -> Response:
    body = await _cleanup_body(call)
    found = await call.service.store.maintenance.plan(
        call.params["agent"],
        policy_of(body.policy),
        active_key=None if body.active_key is UNSET else body.active_key,
    )
    return js_response(found.report())


async def cleanup(call: Call) -> Response:
    agent = call.params["agent"]
    call.service.busy_check()
    body = await _cleanup_body(call)
    report = await call.service.store.maintenance.cleanup(
        agent,
        policy_of(body.policy),
        active_key=None if body.active_key is UNSET else body.active_key,
        dry_run=body.dry_run,
    )
    if not body.dry_run:
        call.service.hub.agent_changed(agent)
        call.service.hub.session_changed(agent, "reload", b"{}")
    return js_response(report)


async def cleanup_all(call: Call) -> Response:
    call.service.busy_check()
    body = await _cleanup_body(call)
    agents = await call.service.store.sessions.agents()
    report = await call.service.store.maintenance.cleanup_all(
        policy_of(body.policy),
        active_key=None if body.active_key is UNSET else body.active_key,
        dry_run=body.dry_run,
    )
    if not body.dry_run:
        for agent in agents:
            call.service.hub.agent_changed(agent)
            call.service.hub.session_changed(agent, "reload", b"{}")
    return js_response(report)


async def reclaim(call: Call) -> Response:
    call.service.busy_check()
    return json_response(await call.service.store.maintenance.reclaim_space())


async def search(call: Call) -> Response:
    text = call.query("q")
    if not text:
        raise ApiError("INVALID", "q (the text to find) is required")
    kinds = call.query("kinds")
    result = await call.service.store.search.find(
        text,
        agent_id=call.query("agent"),
        session=call.query("session"),
        role=call.query("role"),
        since=call.query("since"),
        active_path_only=call.query_bool("activePathOnly"),
        kinds=tuple(kinds.split(",")) if kinds else (),
        limit=call.query_int("limit", 50, low=1, high=1000) or 50,
        raw=call.query_bool("raw"),
    )
    return json_response(msgspec.convert(result, SearchAnswer, from_attributes=True))


async def stats(call: Call) -> Response:
    store = call.service.store
    top = call.query_int("top", 10, low=1, high=1000) or 10
    if store.dialect == "postgresql":
        found = await store.postgres.read(
            lambda c: pg_stats.collect_stats(c, store.location, top=top)
        )
    else:
        found = await store.read(lambda c: collect_stats(c, store.path, top=top))
    return json_response(camel_keys(found))


async def run_import(call: Call) -> Response:
    call.service.busy_check()
    body = bodies.decode(await call.body(), ImportBody)
    source = Path(body.path)
    if not source.is_absolute():
        raise ApiError("INVALID", f"the import path must be absolute, got {body.path!r}")
    report = await import_path(
        call.service.store,
        source,
        agent=None if body.agent is UNSET else body.agent,
        dry_run=body.dry_run,
    )
    if not body.dry_run:
        for agent in await call.service.store.sessions.agents():
            call.service.hub.agent_changed(agent)
            call.service.hub.session_changed(agent, "reload", b"{}")
    store = call.service.store
    # PostgreSQL indexes every line as it is written: nothing waits for the indexer there
    waiting = 0 if store.dialect == "postgresql" else await store.read(backlog)
    return json_response(camel_keys({**report.as_dict(), "full_text_waiting": waiting}))


async def run_export(call: Call) -> Response:
    body = bodies.decode(await call.body(), ExportBody)
    out = Path(body.out)
    if not out.is_absolute():
        raise ApiError("INVALID", f"the export directory must be absolute, got {body.out!r}")
    report = await export_tree(
        call.service.store, out, agent=call.params["agent"], durable=body.durable
    )
    return json_response(camel_keys(report))


async def purge(call: Call) -> Response:
    agent = call.params["agent"]
    call.service.busy_check()
    body = bodies.decode(await call.body(), PurgeBody)
    if body.confirm != agent:
        raise ApiError("INVALID", f'purging cannot be undone: send {{"confirm": "{agent}"}}')
    result = await call.service.store.lifecycle.purge_agent(agent)
    call.service.hub.agent_changed(agent)
    call.service.hub.session_changed(agent, "reload", b"{}")
    return json_response(camel_keys(result))


WRITE_ERRORS: Final = (400, 404, 413, 503)

OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/agents/{agent}/maintenance/plan",
        plan,
        "What a cleanup by the policy would do (nothing written)",
        TAG,
        body=CleanupBody,
        errors=WRITE_ERRORS,
    ),
    Operation(
        "POST",
        "/v1/agents/{agent}/maintenance/cleanup",
        cleanup,
        "Cleanup by the gateway's policy: prune, cap, archive, disk budget",
        TAG,
        body=CleanupBody,
        errors=WRITE_ERRORS,
    ),
    Operation(
        "POST",
        "/v1/maintenance/cleanup",
        cleanup_all,
        "Cleanup of every agent",
        TAG,
        body=CleanupBody,
        errors=WRITE_ERRORS,
    ),
    Operation(
        "POST",
        "/v1/maintenance/reclaim",
        reclaim,
        "Give free pages back and truncate the WAL",
        TAG,
        errors=(503,),
    ),
    Operation(
        "GET",
        "/v1/search",
        search,
        "Full-text search over entries, newest first",
        "search",
        answer=SearchAnswer,
        query=describe(
            ("q", "string", "the text to find (case-insensitive)"),
            ("agent", "string", "only this agent"),
            ("session", "string", "only this session key or session id"),
            ("role", "string", "only messages of this role"),
            ("since", "string", "only entries at or after this ISO time"),
            ("activePathOnly", "boolean", "only entries on their transcript's active path"),
            ("kinds", "string", "comma-separated transcript kinds (live, reset, deleted, ...)"),
            ("limit", "integer", "at most this many hits (default 50)"),
            ("raw", "boolean", "q is an FTS5 query"),
        ),
    ),
    Operation(
        "GET",
        "/v1/stats",
        stats,
        "Sizes and counts of the database, per agent and per session",
        "stats",
        query=describe(("top", "integer", "how many largest sessions to list (default 10)")),
    ),
    Operation(
        "POST",
        "/v1/import",
        run_import,
        "Import a state dir, sessions dir or file on the server's machine",
        TAG,
        body=ImportBody,
        errors=WRITE_ERRORS,
    ),
    Operation(
        "POST",
        "/v1/agents/{agent}/export",
        run_export,
        "Export the agent's files into a directory on the server's machine",
        TAG,
        body=ExportBody,
    ),
    Operation(
        "POST",
        "/v1/agents/{agent}/purge",
        purge,
        "Remove every entry and transcript of the agent",
        TAG,
        body=PurgeBody,
        errors=WRITE_ERRORS,
    ),
)

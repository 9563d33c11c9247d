"""Routes of compaction checkpoints and session life cycles (store.checkpoints,
store.lifecycle): capture, persist, list, get, snapshot file, branch, restore; reset."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import UNSET, Struct
from starlette.responses import Response

from store_sql.checkpoints.entries import CheckpointSpec
from store_sql.checkpoints.forks import ForkResult
from store_sql.checkpoints.snapshots import CapturedSnapshot
from store_sql.formats import jsjson
from store_sql.service import bodies
from store_sql.service.bodies import CheckpointForkBody, ResetBody
from store_sql.service.responses import js_response, json_response
from store_sql.service.routing import Call, Operation
from store_sql.service.session_routes import EXPECT_HEADERS, expect_of

C: Final = "/v1/agents/{agent}/sessions/{key}/checkpoints"
TAG: Final = "checkpoints"


class SnapshotBody(Struct, rename="camel", forbid_unknown_fields=True):
    """A snapshot as `capture` answered it, handed back to `persist`."""

    transcript_id: int
    session_id: str
    file_name: str
    upto_pos: int
    leaf_id: str | None
    byte_size: int
    ends_with_newline: bool


class PersistBody(Struct, rename="camel", forbid_unknown_fields=True):
    """One compaction: what the gateway's persistSessionCompactionCheckpoint is told."""

    reason: str
    summary: str | None = None
    first_kept_entry_id: str | None = None
    tokens_before: int | float | None = None
    tokens_after: int | float | None = None
    post_session_file: str | None = None
    post_leaf_id: str | None = None
    post_entry_id: str | None = None
    created_at: int | None = None
    session_id: str | None = None
    snapshot: SnapshotBody | None = None
    """From `capture` before the compaction entry was appended; default: now."""
    max_retained_bytes: int | msgspec.UnsetType = UNSET


def _snapshot_dict(s: CapturedSnapshot) -> dict[str, Any]:
    return {
        "transcriptId": s.transcript_id,
        "sessionId": s.session_id,
        "fileName": s.file_name,
        "uptoPos": s.upto_pos,
        "leafId": s.leaf_id,
        "byteSize": s.byte_size,
        "endsWithNewline": s.ends_with_newline,
    }


def fork_dict(result: ForkResult) -> dict[str, Any]:
    return {
        "key": result.key,
        "sessionId": result.session_id,
        "entry": result.entry,
        "checkpoint": result.checkpoint,
        "transcriptId": result.transcript_id,
        "fileName": result.file_name,
    }


async def capture(call: Call) -> Response:
    snap = await call.service.store.checkpoints.capture(
        call.params["agent"], call.params["sessionId"]
    )
    return json_response(_snapshot_dict(snap))


async def persist(call: Call) -> Response:
    agent, key = call.params["agent"], call.params["key"]
    call.service.busy_check()
    body = bodies.decode(await call.body(), PersistBody)
    spec = CheckpointSpec(
        body.reason,
        body.summary,
        body.first_kept_entry_id,
        body.tokens_before,
        body.tokens_after,
        body.post_session_file,
        body.post_leaf_id,
        body.post_entry_id,
        body.created_at,
        body.session_id,
    )
    snapshot = None
    if body.snapshot is not None:
        s = body.snapshot
        snapshot = CapturedSnapshot(
            s.transcript_id,
            s.session_id,
            s.file_name,
            s.upto_pos,
            s.leaf_id,
            s.byte_size,
            s.ends_with_newline,
        )
    options: dict[str, Any] = {}
    if body.max_retained_bytes is not UNSET:
        options["max_retained_bytes"] = body.max_retained_bytes
    done = await call.service.store.checkpoints.persist(
        agent, key, spec, snapshot=snapshot, **options
    )
    call.service.hub.session_changed(agent, "reload", b'{"key":' + jsjson.dumps_bytes(key) + b"}")
    return js_response(
        {"checkpoint": done.checkpoint, "removed": done.removed, "entry": done.entry}, 201
    )


async def list_checkpoints(call: Call) -> Response:
    found = await call.service.store.checkpoints.list_checkpoints(
        call.params["agent"], call.params["key"]
    )
    return js_response({"checkpoints": found})


async def get_checkpoint(call: Call) -> Response:
    found = await call.service.store.checkpoints.get(
        call.params["agent"], call.params["key"], call.params["checkpointId"]
    )
    return js_response(found)


async def snapshot_file(call: Call) -> Response:
    body = await call.service.store.checkpoints.snapshot_bytes(
        call.params["agent"], call.params["key"], call.params["checkpointId"]
    )
    return Response(body, 200, None, "application/x-ndjson")


async def branch(call: Call) -> Response:
    agent = call.params["agent"]
    call.service.busy_check()
    raw = await call.body()
    body = bodies.decode(raw, CheckpointForkBody) if raw.strip() else CheckpointForkBody()
    result = await call.service.store.checkpoints.branch(
        agent,
        call.params["key"],
        call.params["checkpointId"],
        new_key=None if body.new_key is UNSET else body.new_key,
        cwd=None if body.cwd is UNSET else body.cwd,
    )
    _changed(call, agent)
    return js_response(fork_dict(result), 201)


async def restore(call: Call) -> Response:
    agent = call.params["agent"]
    call.service.busy_check()
    raw = await call.body()
    body = bodies.decode(raw, CheckpointForkBody) if raw.strip() else CheckpointForkBody()
    result = await call.service.store.checkpoints.restore(
        agent,
        call.params["key"],
        call.params["checkpointId"],
        cwd=None if body.cwd is UNSET else body.cwd,
    )
    _changed(call, agent)
    return js_response(fork_dict(result))


async def reset(call: Call) -> Response:
    agent, key = call.params["agent"], call.params["key"]
    call.service.busy_check()
    raw = await call.body()
    body = bodies.decode(raw, ResetBody) if raw.strip() else ResetBody()
    result = await call.service.store.lifecycle.reset(
        agent,
        key,
        cwd=None if body.cwd is UNSET else body.cwd,
        keep_fields=body.keep_fields,
        expect=expect_of(call, body.expect),
    )
    _changed(call, agent)
    return js_response(
        {
            "key": result.key,
            "previousSessionId": result.previous_session_id,
            "sessionId": result.session_id,
            "entry": result.entry,
            "archived": result.archived,
            "transcriptId": result.transcript_id,
        }
    )


def _changed(call: Call, agent: str) -> None:
    call.service.hub.agent_changed(agent)
    call.service.hub.session_changed(agent, "reload", b"{}")


WRITE_ERRORS: Final = (400, 404, 409, 413, 503)

OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/agents/{agent}/transcripts/{sessionId}/capture",
        capture,
        "Where the live transcript stands (capture before appending the compaction entry)",
        TAG,
    ),
    Operation("GET", C, list_checkpoints, "Checkpoints of a session, newest first", TAG),
    Operation(
        "POST",
        C,
        persist,
        "Persist a compaction checkpoint (newest 25 kept, then the byte budget)",
        TAG,
        body=PersistBody,
        ok_status=201,
        errors=WRITE_ERRORS,
    ),
    Operation("GET", C + "/{checkpointId}", get_checkpoint, "One checkpoint", TAG),
    Operation(
        "GET",
        C + "/{checkpointId}.jsonl",
        snapshot_file,
        "The checkpoint's snapshot file, byte for byte",
        TAG,
        produces="application/x-ndjson",
    ),
    Operation(
        "POST",
        C + "/{checkpointId}/branch",
        branch,
        "A new session from the checkpoint's snapshot",
        TAG,
        body=CheckpointForkBody,
        ok_status=201,
        errors=WRITE_ERRORS,
    ),
    Operation(
        "POST",
        C + "/{checkpointId}/restore",
        restore,
        "The checkpoint's snapshot becomes the session's transcript (new session id)",
        TAG,
        body=CheckpointForkBody,
        errors=WRITE_ERRORS,
    ),
    Operation(
        "POST",
        "/v1/agents/{agent}/sessions/{key}/reset",
        reset,
        "New session id and transcript; the old one is archived as .reset.",
        "sessions",
        body=ResetBody,
        headers=EXPECT_HEADERS,
        errors=WRITE_ERRORS,
    ),
)

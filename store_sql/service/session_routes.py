"""Routes of the session index: `/v1/agents/{agent}/sessions...` (store.sessions).

Writes take an expected state, so the gateway's read-modify-write becomes a compare-and-swap:
`expect: {"sessionId", "updatedAt", "version", "exists"}` in the body, or the entry's ETag in
`If-Match` (`If-None-Match: *` for "only if new"). When it does not hold the answer is 409
CONFLICT and nothing is written. Every answered entry carries its version as `ETag`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from msgspec import UNSET
from starlette.responses import Response

from store_sql.service import bodies
from store_sql.service.bodies import BatchBody, DeleteBody, ExpectBody, TouchBody
from store_sql.service.http_errors import ApiError
from store_sql.service.responses import entry_response, json_response, raw_response
from store_sql.service.routing import Call, Operation, Param, describe
from store_sql.sessions.guards import EntryText, Expect, SessionOp

S: Final = "/v1/agents/{agent}/sessions"
TAG: Final = "sessions"
_enc = msgspec.json.Encoder()

EXPECT_HEADERS: Final = (
    Param("If-Match", "string", 'the entry\'s ETag ("<version>"): 409 unless it still is'),
    Param("If-None-Match", "string", "`*`: 409 when the entry exists already"),
)


def expect_of(call: Call, body: ExpectBody | msgspec.UnsetType | None) -> Expect | None:
    """The expected state from the body's `expect` and the conditional headers."""
    session_id = updated_at = version = exists = None
    if isinstance(body, ExpectBody):
        session_id = None if body.session_id is UNSET else body.session_id
        updated_at = None if body.updated_at is UNSET else body.updated_at
        version = None if body.version is UNSET else body.version
        exists = None if body.exists is UNSET else body.exists
    if_match = call.header("if-match")
    if if_match is not None:
        tag = if_match.strip()
        if tag == "*":
            exists = True
        else:
            if tag.startswith("W/"):
                tag = tag[2:]
            version = tag.strip('"')
    if_none = call.header("if-none-match")
    if if_none is not None:
        if if_none.strip() != "*":
            raise ApiError("INVALID", "If-None-Match takes only `*` (create when missing)")
        exists = False
    if session_id is None and updated_at is None and version is None and exists is None:
        return None
    return Expect(session_id, updated_at, version, exists)


def _summary(s: Any) -> dict[str, Any]:
    return {
        "key": s.key,
        "sessionId": s.session_id,
        "updatedAt": s.updated_at,
        "label": s.label,
        "displayName": s.display_name,
        "chatType": s.chat_type,
        "channel": s.channel,
        "model": s.model,
        "entryBytes": s.entry_bytes,
    }


def change_data(key: str, entry: EntryText | None) -> bytes:
    """A session-feed payload: the key, and the entry and its version after an upsert."""
    if entry is None:
        return b'{"key":' + _enc.encode(key) + b"}"
    return (
        b'{"key":'
        + _enc.encode(key)
        + b',"version":"'
        + entry.version.encode()
        + b'","entry":'
        + entry.text.encode("utf-8", "surrogatepass")
        + b"}"
    )


def published(call: Call, key: str, entry: EntryText) -> EntryText:
    call.service.hub.session_changed(call.params["agent"], "upsert", change_data(key, entry))
    return entry


# --- handlers ---------------------------------------------------------------------------------


async def list_sessions(call: Call) -> Response:
    agent = call.params["agent"]
    filters: dict[str, Any] = {
        "updated_after": call.query_int("updatedAfter", None, low=-(2**53)),
        "updated_before": call.query_int("updatedBefore", None, low=-(2**53)),
        "label": call.query("label"),
        "chat_type": call.query("chatType"),
        "channel": call.query("channel"),
    }
    limit = call.query_int("limit", 100, low=0, high=100_000)
    offset = call.query_int("offset", 0) or 0
    rows = await call.service.store.sessions.list_entries(
        agent, limit=limit, offset=offset, **filters
    )
    out: dict[str, Any] = {"agent": agent, "sessions": [_summary(r) for r in rows]}
    if call.query_bool("total"):
        out["total"] = await call.service.store.sessions.count_entries(agent, **filters)
    return json_response(out)


async def get_session(call: Call) -> Response:
    agent, key = call.params["agent"], call.params["key"]
    entry = await call.service.store.sessions.get_text(agent, key)
    if entry is None:
        raise ApiError("NOT_FOUND", f"agent {agent!r} has no session {key!r}")
    tag = call.header("if-none-match")
    if tag is not None and tag.strip().strip('"') == entry.version:
        return Response(None, 304, {"ETag": f'"{entry.version}"'})
    return entry_response(entry)


def _envelope(value: dict[str, Any], inner: str) -> tuple[dict[str, Any], Any] | None:
    """`{inner: {...}, "expect": {...}}` as (inner, expect); None for a bare object."""
    if inner in value and isinstance(value[inner], dict) and set(value) <= {inner, "expect"}:
        expect = value.get("expect")
        try:
            parsed = UNSET if expect is None else msgspec.convert(expect, ExpectBody)
        except msgspec.ValidationError as exc:
            raise ApiError("INVALID", f"bad expect: {exc}") from exc
        return value[inner], parsed
    return None


async def patch_session(call: Call) -> Response:
    return await _write_entry(call, "patch", call.service.store.sessions.patch_text)


async def put_session(call: Call) -> Response:
    return await _write_entry(call, "entry", call.service.store.sessions.put_text)


async def _write_entry(call: Call, field: str, write: Callable[..., Awaitable[Any]]) -> Response:
    """PATCH and PUT: the body is the value itself, or `{field: value, "expect": {...}}`."""
    agent, key = call.params["agent"], call.params["key"]
    call.service.busy_check()
    value = bodies.decode_object(await call.body())
    wrapped = _envelope(value, field)
    given, expect_body = wrapped if wrapped is not None else (value, None)
    entry = await write(agent, key, given, expect=expect_of(call, expect_body))
    return entry_response(published(call, key, entry))


async def delete_session(call: Call) -> Response:
    agent, key = call.params["agent"], call.params["key"]
    call.service.busy_check()
    raw = await call.body()
    body = bodies.decode(raw, DeleteBody) if raw.strip() else DeleteBody()
    archive = call.query_bool("archive", False) or body.archive
    expect = expect_of(call, body.expect)
    store = call.service.store
    if archive:
        result = await store.lifecycle.delete(agent, key, archive=True, expect=expect)
        deleted, archived = result.deleted, result.archived
        call.service.hub.agent_changed(agent)
    else:
        deleted, archived = await store.sessions.delete(agent, key, expect=expect), []
    if deleted:
        call.service.hub.session_changed(agent, "delete", change_data(key, None))
    return json_response({"key": key, "deleted": deleted, "archived": archived})


async def touch_session(call: Call) -> Response:
    agent, key = call.params["agent"], call.params["key"]
    call.service.busy_check()
    raw = await call.body()
    body = bodies.decode(raw, TouchBody) if raw.strip() else TouchBody()
    stamp = int(time.time() * 1000) if body.updated_at is UNSET else body.updated_at
    entry = await call.service.store.sessions.touch_text(
        agent, key, stamp, expect=expect_of(call, body.expect)
    )
    return entry_response(published(call, key, entry))


async def batch_sessions(call: Call) -> Response:
    agent = call.params["agent"]
    call.service.busy_check()
    body = bodies.decode(await call.body(), BatchBody)
    ops = [_op(call, op) for op in body.ops]
    results = await call.service.store.sessions.batch(agent, ops)
    parts = []
    hub = call.service.hub
    for r in results:
        if r.entry is not None:
            hub.session_changed(agent, "upsert", change_data(r.key, r.entry))
            parts.append(
                b'{"op":"%s","key":%s,"version":"%s","entry":%s}'
                % (
                    r.op.encode(),
                    _enc.encode(r.key),
                    r.entry.version.encode(),
                    r.entry.text.encode("utf-8", "surrogatepass"),
                )
            )
        else:
            if r.deleted:
                hub.session_changed(agent, "delete", change_data(r.key, None))
            parts.append(
                b'{"op":"%s","key":%s,"deleted":%s}'
                % (r.op.encode(), _enc.encode(r.key), b"true" if r.deleted else b"false")
            )
    return raw_response(b'{"results":[' + b",".join(parts) + b"]}")


def _op(call: Call, op: bodies.BatchOp) -> SessionOp:
    expect = None
    if isinstance(op.expect, ExpectBody):
        e = op.expect
        expect = Expect(
            None if e.session_id is UNSET else e.session_id,
            None if e.updated_at is UNSET else e.updated_at,
            None if e.version is UNSET else e.version,
            None if e.exists is UNSET else e.exists,
        )
    if op.op == "patch":
        if op.patch is UNSET:
            raise ApiError("INVALID", f"op patch of {op.key!r} needs `patch`")
        return SessionOp("patch", op.key, op.patch, expect=expect)
    if op.op == "put":
        if op.entry is UNSET:
            raise ApiError("INVALID", f"op put of {op.key!r} needs `entry`")
        return SessionOp("put", op.key, op.entry, expect=expect)
    if op.op == "touch":
        stamp = int(time.time() * 1000) if op.updated_at is UNSET else op.updated_at
        return SessionOp("touch", op.key, updated_at=stamp, expect=expect)
    return SessionOp("delete", op.key, expect=expect)


async def list_agents(call: Call) -> Response:
    return json_response({"agents": await call.service.store.sessions.agents()})


async def sessions_json(call: Call) -> Response:
    agent = call.params["agent"]
    body = await call.service.store.sessions.render_json(agent)
    if body is None:
        raise ApiError("NOT_FOUND", f"agent {agent!r} has no session index")
    return raw_response(body)


LIST_QUERY: Final = describe(
    ("limit", "integer", "at most this many (default 100)"),
    ("offset", "integer", "skip this many"),
    ("updatedAfter", "integer", "epoch ms: only entries updated after"),
    ("updatedBefore", "integer", "epoch ms: only entries updated before"),
    ("label", "string", "only entries with this label"),
    ("chatType", "string", "only this chat type"),
    ("channel", "string", "only this channel"),
    ("total", "boolean", "also count all matches (`total`)"),
)

OPERATIONS: Final = (
    Operation("GET", "/v1/agents", list_agents, "Agents that have a session index", TAG, errors=()),
    Operation(
        "GET", S, list_sessions, "List entries, newest updatedAt first", TAG, query=LIST_QUERY
    ),
    Operation(
        "GET",
        "/v1/agents/{agent}/sessions.json",
        sessions_json,
        "The agent's sessions.json exactly as export writes it",
        TAG,
    ),
    Operation(
        "POST",
        S + ":batch",
        batch_sessions,
        "Several patches, puts, deletes and touches in one transaction (all or none)",
        TAG,
        body=BatchBody,
        errors=(400, 404, 409, 413, 503),
    ),
    Operation("GET", S + "/{key}", get_session, "One entry (ETag: its version)", TAG),
    Operation(
        "PUT",
        S + "/{key}",
        put_session,
        "Replace an entry whole",
        TAG,
        body_doc="the entry, or {entry, expect}",
        headers=EXPECT_HEADERS,
        errors=(400, 404, 409, 413, 503),
    ),
    Operation(
        "PATCH",
        S + "/{key}",
        patch_session,
        "Merge fields into an entry (null removes a field); creates it when missing",
        TAG,
        body_doc="the patch, or {patch, expect}",
        headers=EXPECT_HEADERS,
        errors=(400, 404, 409, 413, 503),
    ),
    Operation(
        "DELETE",
        S + "/{key}",
        delete_session,
        "Remove an entry (archive=true: archive its transcript as the gateway does)",
        TAG,
        body=DeleteBody,
        query=describe(("archive", "boolean", "archive the transcript as <file>.deleted.<time>")),
        headers=EXPECT_HEADERS,
        errors=(400, 404, 409, 413, 503),
    ),
    Operation(
        "POST",
        S + "/{key}/touch",
        touch_session,
        "Set updatedAt (now unless given): the fast path",
        TAG,
        body=TouchBody,
        headers=EXPECT_HEADERS,
        errors=(400, 404, 409, 413, 503),
    ),
)

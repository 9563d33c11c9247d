"""Routes of transcripts: `/v1/agents/{agent}/transcripts/{sessionId}...` (store.transcripts)
and the gateway's turn, `/v1/agents/{agent}/sessions/{key}/turn`.

A transcript is named by its session id (its live transcript); reads also take
`?transcriptId=N` for any transcript (archives, snapshots, old versions). Entries are
answered as their stored lines, spliced into the JSON as they are (responses.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec
from msgspec import UNSET
from starlette.responses import Response, StreamingResponse

from store_sql.addresses import LEAF
from store_sql.service import bodies
from store_sql.service.bodies import AppendBody, CreateTranscriptBody, TurnBody
from store_sql.service.http_errors import ApiError
from store_sql.service.responses import (
    entries_array,
    etag,
    js_response,
    json_response,
    line_item,
    raw_response,
)
from store_sql.service.routing import Call, Operation, Param, describe
from store_sql.service.session_routes import change_data
from store_sql.service.wire import appended_item, info_dict
from store_sql.transcripts.reads import Cursor, TreeNode

T: Final = "/v1/agents/{agent}/transcripts/{sessionId}"
TAG: Final = "transcripts"
WHOLE_FILE_BYTES: Final = 4 * 1024 * 1024
"""Up to this size a .jsonl is read in one snapshot; larger ones stream in chunks."""

_enc = msgspec.json.Encoder()

TARGET: Final = Param(
    "transcriptId", "integer", "read this transcript (any kind) instead of the live one"
)


def _target(call: Call) -> str | int:
    tid = call.query_int("transcriptId", None, low=1)
    return call.params["sessionId"] if tid is None else tid


# --- writes -----------------------------------------------------------------------------------


async def create_transcript(call: Call) -> Response:
    agent, session_id = call.params["agent"], call.params["sessionId"]
    call.service.busy_check()
    body = bodies.decode(await call.body(), CreateTranscriptBody)
    info = await call.service.store.transcripts.create(
        agent,
        session_id,
        cwd=body.cwd,
        parent_session=None if body.parent_session is UNSET else body.parent_session,
        timestamp=None if body.timestamp is UNSET else body.timestamp,
    )
    call.service.hub.transcript_changed(agent, session_id)
    return json_response(info_dict(info), 201)


async def append_entries(call: Call) -> Response:
    agent, session_id = call.params["agent"], call.params["sessionId"]
    call.service.busy_check()
    body = bodies.decode(await call.body(), AppendBody)
    parent = LEAF if body.parent_id is UNSET else body.parent_id
    results = await call.service.store.transcripts.append(
        agent, _target(call), body.entries, parent_id=parent
    )
    call.service.hub.transcript_changed(agent, session_id)
    return raw_response(_enc.encode([appended_item(r) for r in results]))


async def migrate_transcript(call: Call) -> Response:
    agent = call.params["agent"]
    call.service.busy_check()
    info = await call.service.store.transcripts.migrate_to_v3(agent, _target(call))
    call.service.hub.agent_changed(agent)
    return json_response(info_dict(info))


async def turn(call: Call) -> Response:
    agent, key = call.params["agent"], call.params["key"]
    call.service.busy_check()
    body = bodies.decode(await call.body(), TurnBody)
    result = await call.service.store.sessions.turn(
        agent,
        key,
        body.entries,
        updated_at=None if body.updated_at is UNSET else body.updated_at,
        fields=None if body.fields is UNSET else body.fields,
        expect_session_id=None if body.expect_session_id is UNSET else body.expect_session_id,
        parent_id=LEAF if body.parent_id is UNSET else body.parent_id,
    )
    hub = call.service.hub
    hub.transcript_changed(agent, result.session_id)
    hub.session_changed(agent, "upsert", change_data(key, result.entry))
    out = (
        b'{"sessionId":'
        + _enc.encode(result.session_id)
        + b',"appended":'
        + _enc.encode([appended_item(r) for r in result.appended])
        + b',"version":"'
        + result.entry.version.encode()
        + b'","entry":'
        + result.entry.text.encode("utf-8", "surrogatepass")
        + b"}"
    )
    return raw_response(out, headers={"ETag": etag(result.entry.version)})


# --- reads ------------------------------------------------------------------------------------


async def transcript_info(call: Call) -> Response:
    info = await call.service.store.transcripts.info(call.params["agent"], _target(call))
    return json_response(info_dict(info))


async def list_transcripts(call: Call) -> Response:
    found = await call.service.store.transcripts.list_transcripts(
        call.params["agent"], session_id=call.query("sessionId")
    )
    return json_response({"transcripts": [info_dict(i) for i in found]})


async def recent(call: Call) -> Response:
    types = call.query("types")
    entries = await call.service.store.transcripts.recent(
        call.params["agent"],
        _target(call),
        limit=call.query_int("limit", 50, low=1, high=1000) or 50,
        max_bytes=call.query_int("maxBytes", None, low=1),
        types=frozenset(types.split(",")) if types else None,
    )
    return raw_response(b'{"entries":' + entries_array(entries) + b"}")


async def active_path(call: Call) -> Response:
    entries = await call.service.store.transcripts.active_path(
        call.params["agent"], _target(call), call.query("to")
    )
    return raw_response(b'{"entries":' + entries_array(entries) + b"}")


async def tree(call: Call) -> Response:
    """The tree as a flat list in file order (a long chain would nest thousands deep)."""
    roots = await call.service.store.transcripts.tree(call.params["agent"], _target(call))
    info = await call.service.store.transcripts.info(call.params["agent"], _target(call))
    nodes: list[dict[str, Any]] = []
    stack: list[tuple[TreeNode, str | None]] = [(r, None) for r in reversed(roots)]
    while stack:
        node, parent = stack.pop()
        nodes.append(
            {
                "pos": node.pos,
                "id": node.id,
                "parentId": parent,
                "type": node.type,
                "role": node.role,
                "timestamp": node.timestamp,
                "label": node.label,
                "children": len(node.children),
            }
        )
        stack.extend((child, node.id) for child in reversed(node.children))
    nodes.sort(key=lambda n: n["pos"])
    return json_response({"leafId": info.leaf_id, "nodes": nodes})


async def context(call: Call) -> Response:
    built = await call.service.store.transcripts.context(
        call.params["agent"], _target(call), call.query("leafId")
    )
    return js_response(built.as_dict())


async def entry(call: Call) -> Response:
    found = await call.service.store.transcripts.entry(
        call.params["agent"], _target(call), call.params["entryId"]
    )
    return raw_response(found.raw)


async def children(call: Call) -> Response:
    found = await call.service.store.transcripts.children(
        call.params["agent"], _target(call), call.params["entryId"]
    )
    return raw_response(b'{"entries":' + entries_array(found) + b"}")


def parse_cursor(text: str | None) -> Cursor | None:
    if text is None or text == "":
        return None
    try:
        return Cursor.decode(text)
    except ValueError as exc:
        raise ApiError("INVALID", f"{exc} (cursors look like 12.0.34)") from exc


async def changes(call: Call) -> Response:
    found = await call.service.store.transcripts.changes_since(
        call.params["agent"],
        call.params["sessionId"],
        parse_cursor(call.query("cursor")),
        limit=call.query_int("limit", 1000, low=1, high=10_000) or 1000,
    )
    return raw_response(
        b'{"cursor":"'
        + found.cursor.encode().encode()
        + b'","replaced":'
        + (b"true" if found.replaced else b"false")
        + b',"lines":['
        + b",".join(line_item(e) for e in found.entries)
        + b"]}"
    )


async def counts(call: Call) -> Response:
    found = await call.service.store.transcripts.counts(call.params["agent"], _target(call))
    return json_response(
        {
            "lines": found.lines,
            "entries": found.entries,
            "damaged": found.damaged,
            "bytes": found.bytes,
            "messagesByRole": found.messages_by_role,
        }
    )


async def jsonl_file(call: Call) -> Response:
    """The transcript's file byte for byte as export writes it; large ones stream."""
    agent, target = call.params["agent"], _target(call)
    transcripts = call.service.store.transcripts
    info = await transcripts.info(agent, target)
    headers = {"Content-Disposition": f'attachment; filename="{_ascii(info.file_name)}"'}
    if info.byte_size <= WHOLE_FILE_BYTES:
        body = await transcripts.file_bytes(agent, info.transcript_id)
        return Response(body, 200, headers, "application/x-ndjson")
    chunks: AsyncIterator[bytes] = transcripts.file_chunks(agent, info.transcript_id)
    return StreamingResponse(chunks, 200, headers, "application/x-ndjson")


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c != '"' else "_" for c in name)


READ_ERRORS: Final = (400, 404)

OPERATIONS: Final = (
    Operation(
        "GET",
        "/v1/agents/{agent}/transcripts",
        list_transcripts,
        "Every transcript of an agent (or of one session): live, archives, versions",
        TAG,
        query=describe(("sessionId", "string", "only this session's")),
    ),
    Operation(
        "POST",
        T,
        create_transcript,
        "Start a session's live transcript (v3 header)",
        TAG,
        body=CreateTranscriptBody,
        ok_status=201,
        errors=(400, 404, 413, 503),
    ),
    Operation("GET", T, transcript_info, "Identity, leaf and counters", TAG, query=(TARGET,)),
    Operation(
        "POST",
        T + "/entries",
        append_entries,
        "Append entries as a chain: [{id, parentId, existed, pos}] (idempotency keys dedupe)",
        TAG,
        body=AppendBody,
        query=(TARGET,),
        errors=(400, 404, 413, 503),
    ),
    Operation(
        "POST",
        T + "/migrate",
        migrate_transcript,
        "Write the v3 form of a v1/v2 transcript as a new version",
        TAG,
        query=(TARGET,),
        errors=(400, 404, 503),
    ),
    Operation(
        "GET",
        T + "/recent",
        recent,
        "The last entries of the active path, bounded by count and bytes",
        TAG,
        query=(
            *describe(
                ("limit", "integer", "at most this many (1-1000, default 50)"),
                ("maxBytes", "integer", "at most this many bytes of lines"),
                ("types", "string", "comma-separated entry types to keep"),
            ),
            TARGET,
        ),
    ),
    Operation(
        "GET",
        T + "/path",
        active_path,
        "Root to leaf (or to `to`)",
        TAG,
        query=(*describe(("to", "string", "end at this entry id")), TARGET),
    ),
    Operation("GET", T + "/tree", tree, "Every entry as a flat tree", TAG, query=(TARGET,)),
    Operation(
        "GET",
        T + "/context",
        context,
        "The model context as pi's buildSessionContext builds it",
        TAG,
        query=(*describe(("leafId", "string", "build it for this leaf")), TARGET),
    ),
    Operation(
        "GET", T + "/entries/{entryId}", entry, "One entry (its stored line)", TAG, query=(TARGET,)
    ),
    Operation(
        "GET",
        T + "/entries/{entryId}/children",
        children,
        "The entries whose parent it is",
        TAG,
        query=(TARGET,),
    ),
    Operation(
        "GET",
        T + "/changes",
        changes,
        "Lines after a cursor; replaced: start over (the transcript was reset or re-imported)",
        TAG,
        query=describe(
            ("cursor", "string", "from the previous answer; none: from the start"),
            ("limit", "integer", "at most this many lines (default 1000)"),
        ),
    ),
    Operation("GET", T + "/counts", counts, "Lines, entries, bytes, messages by role", TAG),
    Operation(
        "GET",
        "/v1/agents/{agent}/transcripts/{sessionId}.jsonl",
        jsonl_file,
        "The transcript's file, byte for byte as export writes it",
        TAG,
        query=(TARGET,),
        produces="application/x-ndjson",
    ),
    Operation(
        "POST",
        "/v1/agents/{agent}/sessions/{key}/turn",
        turn,
        "One gateway turn in one transaction: append the entries, update the entry",
        "sessions",
        body=TurnBody,
        errors=(400, 404, 409, 413, 503),
    ),
)

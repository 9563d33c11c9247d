"""Server-Sent Events: a transcript's appended lines, and an agent's session-entry changes.

`GET .../transcripts/{sessionId}/events`: one `entry` event per line added to the session's
live transcript (`header` for a header line, `damaged` for a line that is not JSON, as
`{"pos", "text"}`), each with `id:` = the transcript cursor after it. A reconnect with
`Last-Event-ID` (or `?cursor=`) resumes right after that line: no line lost, none twice.
When the session's transcript is replaced (reset, migration, re-import, restore) a
`replaced` event comes first and the new transcript follows from its first line; when
the session is gone, `gone`, and the stream ends. Without a cursor the stream starts at
the end (only new lines) unless `?from=start`.

`GET /v1/agents/{agent}/sessions/events`: `upsert` (`{"key", "version", "entry"}`),
`delete` (`{"key"}`) and `reload` (many entries changed: list them again) for the writes
this server makes, with ids that `Last-Event-ID` resumes from while the server's ring of
recent changes still holds them; otherwise (or for a slow reader the ring moved past) a
`resync` event says to list the sessions again before following.

Both send a `: keepalive` comment every KEEPALIVE_SECONDS and end when the server stops.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Final

import msgspec
from starlette.responses import Response, StreamingResponse

from store_sql.errors import NotFoundError
from store_sql.service.events import POLL_SECONDS
from store_sql.service.routing import Call, Operation, Param, describe
from store_sql.service.transcript_routes import parse_cursor
from store_sql.transcripts.reads import Cursor, StoredEntry

KEEPALIVE_SECONDS: Final = 15.0
FEED_CHUNK: Final = 32
"""Session changes written at a time."""
PAGE_LINES: Final = 256
"""Lines read per step: a subscriber holds at most one page in the server's memory."""

SSE_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
LAST_EVENT_ID: Final = (
    Param("Last-Event-ID", "string", "resume after this event (sent by EventSource itself)"),
)


def sse(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One event; data holding newlines is sent as several `data:` lines, which the
    client joins back with newlines."""
    head = b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head = b"id: " + event_id.encode() + b"\n" + head
    return head + b"".join(b"data: " + part + b"\n" for part in data.split(b"\n")) + b"\n"


def _line_event(entry: StoredEntry, cursor: str) -> bytes:
    raw = entry.raw
    if entry.kind in ("entry", "header") and b"\r" not in raw:
        return sse(entry.kind, raw, cursor)
    text = raw.decode("utf-8", "replace")
    return sse("damaged", msgspec.json.encode({"pos": entry.pos, "text": text}), cursor)


async def transcript_events(call: Call) -> Response:
    agent, session_id = call.params["agent"], call.params["sessionId"]
    service = call.service
    resume = call.header("last-event-id") or call.query("cursor")
    cursor = parse_cursor(resume)
    store = service.store
    if cursor is None and call.query("from") != "start":
        # Only new lines: start at the transcript's end as it is now.
        info = await store.transcripts.find(agent, session_id)
        if info is None:
            raise NotFoundError(
                f"agent {agent!r} has no live transcript for session {session_id!r}"
            )
        cursor = Cursor(info.transcript_id, info.generation, info.line_count - 1)
    else:
        await store.transcripts.info(agent, session_id)  # 404 before the stream starts
    hub = service.hub
    signal = hub.transcript_signal(agent, session_id)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal cursor
        hub.subscribers += 1
        last_sent = time.monotonic()
        try:
            yield b": stream of " + session_id.encode() + b"\nretry: 1000\n\n"
            while not hub.closing.is_set():
                seen = signal.count
                try:
                    found = await store.transcripts.changes_since(
                        agent, session_id, cursor, limit=PAGE_LINES
                    )
                except NotFoundError:
                    yield sse("gone", b'{"sessionId":"' + session_id.encode() + b'"}')
                    return
                out: list[bytes] = []
                if found.replaced:
                    out.append(sse("replaced", b'{"transcriptId":%d}' % found.cursor.transcript_id))
                base = found.cursor
                for e in found.entries:
                    out.append(
                        _line_event(e, Cursor(base.transcript_id, base.generation, e.pos).encode())
                    )
                cursor = found.cursor
                if out:
                    service.metrics.sse_events += len(out)
                    yield b"".join(out)
                    last_sent = time.monotonic()
                if len(found.entries) >= PAGE_LINES:
                    continue
                if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                    yield b": keepalive\n\n"
                    last_sent = time.monotonic()
                await signal.wait(seen, POLL_SECONDS)
        finally:
            hub.subscribers -= 1
            hub.release(agent, session_id, signal)

    return StreamingResponse(stream(), 200, SSE_HEADERS, "text/event-stream")


async def session_events(call: Call) -> Response:
    agent = call.params["agent"]
    service = call.service
    hub = service.hub
    start = hub.start_seq(call.header("last-event-id") or call.query("lastEventId"))

    async def stream() -> AsyncIterator[bytes]:
        hub.subscribers += 1
        seq = start
        last_sent = time.monotonic()
        try:
            yield b": sessions of " + agent.encode() + b"\nretry: 1000\n\n"
            if seq is None:
                service.metrics.sse_resyncs += 1
                yield sse("resync", b"{}", hub.event_id(hub.start_seq(None) or 0))
                seq = hub.start_seq(None)
            assert seq is not None
            while not hub.closing.is_set():
                seen = hub.feed_signal.count
                changes, upto, missed = hub.feed_after(agent, seq)
                if missed:
                    service.metrics.sse_resyncs += 1
                    yield sse("resync", b"{}", hub.event_id(upto))
                    last_sent = time.monotonic()
                    seq = upto
                    continue
                # A few events per write: while a slow reader takes them, the ring may move
                # past it, which the next turn of the loop sees (and answers with resync).
                for at in range(0, len(changes), FEED_CHUNK):
                    part = changes[at : at + FEED_CHUNK]
                    service.metrics.sse_events += len(part)
                    yield b"".join(sse(c.event, c.data, hub.event_id(c.seq)) for c in part)
                    last_sent = time.monotonic()
                    seq = part[-1].seq
                    if hub.fell_behind(seq):
                        break
                else:
                    seq = upto
                if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                    yield b": keepalive\n\n"
                    last_sent = time.monotonic()
                await hub.feed_signal.wait(seen, KEEPALIVE_SECONDS)
        finally:
            hub.subscribers -= 1

    return StreamingResponse(stream(), 200, SSE_HEADERS, "text/event-stream")


OPERATIONS: Final = (
    Operation(
        "GET",
        "/v1/agents/{agent}/transcripts/{sessionId}/events",
        transcript_events,
        "Server-Sent Events: lines appended to the session's transcript (id = cursor)",
        "events",
        query=describe(
            ("cursor", "string", "resume after this cursor (as Last-Event-ID)"),
            ("from", "string", "`start`: from the first line instead of only new ones"),
        ),
        headers=LAST_EVENT_ID,
        produces="text/event-stream",
    ),
    Operation(
        "GET",
        "/v1/agents/{agent}/sessions/events",
        session_events,
        "Server-Sent Events: the agent's session-entry changes",
        "events",
        query=describe(("lastEventId", "string", "resume after this event")),
        headers=LAST_EVENT_ID,
        produces="text/event-stream",
    ),
)

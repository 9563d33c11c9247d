"""Building answers: JSON bodies, entries spliced in as their stored bytes, ETags.

Entries are answered with the exact bytes the store holds for them (their JSONL line, or
the sessions.json text of a session entry): nothing is parsed and written again, so what a
client reads is byte for byte what export writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec
from starlette.responses import Response

from store_sql.formats import jsjson
from store_sql.sessions.guards import EntryText
from store_sql.transcripts.reads import StoredEntry

JSON: Final = "application/json"
_JSON_TYPE: Final = (b"content-type", JSON.encode())

_encoder = msgspec.json.Encoder()


class JSONAnswer(Response):
    """A JSON body of bytes, its headers built directly: on the wire the same as
    `Response(body, status, headers, JSON)` (the given headers, then Content-Length, then
    Content-Type), without Starlette's general rendering and header merging, which every
    answer of the hot routes would otherwise pay for."""

    def __init__(
        self, body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status
        self.background = None
        self.body = body
        raw = (
            [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            if headers
            else []
        )
        if status >= 200 and status not in (204, 304):
            raw.append((b"content-length", b"%d" % len(body)))
        raw.append(_JSON_TYPE)
        self.raw_headers = raw


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A value of plain data (dicts, lists, dataclasses, Structs) as JSON."""
    return JSONAnswer(_encoder.encode(value), status, headers)


def js_response(value: Any, status: int = 200) -> Response:
    """A value holding parsed entry data, written as JSON.stringify writes it."""
    return JSONAnswer(jsjson.dumps_bytes(value), status)


def raw_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONAnswer(body, status, headers)


def etag(version: str) -> str:
    return f'"{version}"'


def entry_response(entry: EntryText, status: int = 200) -> Response:
    """A session entry: its stored text as the body, its version as the ETag."""
    return JSONAnswer(
        entry.text.encode("utf-8", "surrogatepass"), status, {"ETag": etag(entry.version)}
    )


def is_json_line(entry: StoredEntry) -> bool:
    return entry.kind in ("entry", "header")


def entries_array(entries: Iterable[StoredEntry]) -> bytes:
    """`[line, line, ...]` of entry lines, each spliced in as stored."""
    return b"[" + b",".join(e.raw for e in entries if is_json_line(e)) + b"]"


def line_item(entry: StoredEntry) -> bytes:
    """One line of a change feed: `{"pos", "kind", "value": <the line>}` for JSON lines,
    `{"pos", "kind", "text": "<the line as text>"}` for damaged or blank ones."""
    head = b'{"pos":%d,"kind":"%s",' % (entry.pos, entry.kind.encode())
    if is_json_line(entry):
        return head + b'"value":' + entry.raw + b"}"
    text = entry.raw.decode("utf-8", "replace")
    return head + b'"text":' + _encoder.encode(text) + b"}"

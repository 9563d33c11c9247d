"""The route table: each operation's method, path, handler and description, and matching.

Paths are matched segment by segment on the raw (still percent-encoded) path, each segment
decoded on its own: a session key holding `/` arrives as one `%2F`-encoded segment and is
never split. A segment is a literal (`sessions:batch`), a parameter (`{key}`) or a parameter
with a literal suffix (`{sessionId}.jsonl`); where several routes match, the one with the
most literal text first wins (`sessions/events` before `sessions/{key}`).

The same table produces the OpenAPI document (openapi.py), so both always agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote_to_bytes

from msgspec import Struct
from starlette.responses import Response
from starlette.types import Receive, Scope

from store_sql.service.http_errors import ApiError
from store_sql.service.state import ServiceState

Handler = Callable[["Call"], Awaitable[Response]]

RECENT_PATHS: Final = 4096
"""Matched paths remembered (all forgotten at once when full): a few hundred KB at most."""


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter: its name, JSON-schema type and what it does."""

    name: str
    type: str
    doc: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[Struct] | None = None
    body_doc: str | None = None
    """For a body that is not a Struct (a patch, an entry): what it is."""
    query: tuple[Param, ...] = ()
    headers: tuple[Param, ...] = ()
    public: bool = False
    produces: str = "application/json"
    ok_status: int = 200
    errors: tuple[int, ...] = (400, 404)
    name: str = ""
    answer: type[Struct] | None = None
    """The Struct its JSON answer is encoded from, for the document's response schema."""
    operation_id: str = field(init=False, compare=False, repr=False)
    """`name`, or the handler's name: the document's operationId and the metrics' label."""

    def __post_init__(self) -> None:
        # Read on every request (the metrics' label): worked out once.
        object.__setattr__(self, "operation_id", self.name or self.handler.__name__.lstrip("_"))


@dataclass(frozen=True, slots=True)
class _Segment:
    literal: str | None
    param: str | None = None
    suffix: str = ""

    def score(self) -> tuple[int, int]:
        if self.literal is not None:
            return (2, len(self.literal))
        return (1 if self.suffix else 0, len(self.suffix))


def _compile(path: str) -> tuple[_Segment, ...]:
    parts = path.strip("/").split("/")
    segments = []
    for part in parts:
        if part.startswith("{"):
            close = part.index("}")
            segments.append(_Segment(None, part[1:close], part[close + 1 :]))
        else:
            segments.append(_Segment(part))
    return tuple(segments)


@dataclass(slots=True)
class _Compiled:
    op: Operation
    segments: tuple[_Segment, ...]
    score: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        self.score = tuple(s.score() for s in self.segments)


class Router:
    """Finds the operation of a method and raw path."""

    def __init__(self, operations: Sequence[Operation]) -> None:
        self.operations = list(operations)
        by_length: dict[int, list[_Compiled]] = {}
        for op in operations:
            compiled = _Compiled(op, _compile(op.path))
            by_length.setdefault(len(compiled.segments), []).append(compiled)
        for routes in by_length.values():
            routes.sort(key=lambda r: r.score, reverse=True)
        self._by_length = by_length
        self._recent: dict[tuple[str, bytes], tuple[Operation, dict[str, str]]] = {}

    def match(self, method: str, raw_path: bytes) -> tuple[Operation, dict[str, str]]:
        """The operation and its decoded path parameters (shared between calls: read them,
        never change them); ApiError NOT_FOUND for an unknown path, INVALID (405) for a
        method the path does not take. A gateway calls the same few paths over and over
        (its live sessions' entries and transcripts), so recent matches are remembered."""
        known = self._recent.get((method, raw_path))
        if known is not None:
            return known
        found = self._match(method, raw_path)
        if len(self._recent) >= RECENT_PATHS:
            self._recent.clear()
        self._recent[(method, raw_path)] = found
        return found

    def _match(self, method: str, raw_path: bytes) -> tuple[Operation, dict[str, str]]:
        if method == "HEAD":
            method = "GET"  # the server sends a GET's status and headers, without the body
        parts = raw_path.strip(b"/").split(b"/")
        routes = self._by_length.get(len(parts), ())
        allowed: list[str] = []
        decoded: list[str] | None = None
        for route in routes:
            if decoded is None:
                decoded = [_decode_segment(p) for p in parts]
            params = _bind(route.segments, decoded)
            if params is None:
                continue
            if route.op.method != method:
                allowed.append(route.op.method)
                continue
            return route.op, params
        if allowed:
            raise ApiError(
                "INVALID", f"{method} is not allowed here; use {', '.join(allowed)}", status=405
            )
        raise ApiError("NOT_FOUND", "no such endpoint (see /openapi.json)")

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)


def _bind(segments: tuple[_Segment, ...], parts: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for seg, part in zip(segments, parts, strict=True):
        if seg.literal is not None:
            if part != seg.literal:
                return None
            continue
        if seg.suffix:
            if not part.endswith(seg.suffix) or len(part) == len(seg.suffix):
                return None
            part = part[: -len(seg.suffix)]
        elif not part:
            return None
        assert seg.param is not None
        params[seg.param] = part
    return params


def _decode_segment(raw: bytes) -> str:
    try:
        return (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("INVALID", "a path segment is not UTF-8 once percent-decoded") from exc


class Call:
    """One request as a handler sees it: the ASGI scope and receive channel, the path
    parameters and the service. Headers and the query string are read straight from the
    scope, on demand (the hot routes read one header and no query)."""

    __slots__ = ("_query", "params", "receive", "scope", "service")

    def __init__(
        self, service: ServiceState, scope: Scope, receive: Receive, params: dict[str, str]
    ) -> None:
        self.service = service
        self.scope = scope
        self.receive = receive
        self.params = params
        self._query: dict[str, str] | None = None

    async def body(self) -> bytes:
        """The request body, refused (413 TOO_LARGE) past the server's limit."""
        limit = self.service.config.max_body
        declared = self.header("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise ApiError("INVALID", "Content-Length is not a number") from None
            if size > limit:
                raise ApiError("TOO_LARGE", f"the body is {size} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                raise ApiError("INVALID", "the client went away before its body arrived")
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise ApiError("TOO_LARGE", f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def query(self, name: str) -> str | None:
        query = self._query
        if query is None:
            raw: bytes = self.scope.get("query_string", b"")
            query = self._query = dict(parse_qsl(raw.decode("latin-1"))) if raw else {}
        return query.get(name)

    def query_int(
        self, name: str, default: int | None, *, low: int = 0, high: int = 2**53
    ) -> int | None:
        text = self.query(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise ApiError("INVALID", f"{name} must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise ApiError("INVALID", f"{name} must be between {low} and {high}, got {value}")
        return value

    def query_bool(self, name: str, default: bool = False) -> bool:
        text = self.query(name)
        if text is None or text == "":
            return default
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no"):
            return False
        raise ApiError("INVALID", f"{name} must be true or false, got {text!r}")

    def header(self, name: str) -> str | None:
        """A request header (`name` in lower case), or None."""
        wanted = name.encode("latin-1")
        for key, value in self.scope["headers"]:
            if key == wanted:
                return str(value.decode("latin-1"))
        return None


def describe(*params: tuple[str, str, str]) -> tuple[Param, ...]:
    """Query parameters from (name, type, doc) triples."""
    return tuple(Param(n, t, d) for n, t, d in params)

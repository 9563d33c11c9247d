"""The ASGI application: one Store, the route table, auth, errors, metrics.

Every request goes the same way: match the route (routing.py), check the bearer token
(all but the public routes), run the handler, answer its ApiError or StoreError as
`{"error": {"code", "message"}}` (http_errors.py), count it (metrics.py). Handlers are
plain coroutines taking a `Call`; the Store's writer and readers do the SQLite work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from store_sql.service.auth import TokenCheck
from store_sql.service.http_errors import RETRY_AFTER_SECONDS, ApiError, error_body, from_exception
from store_sql.service.operations import all_operations
from store_sql.service.routing import Call, Operation, Router
from store_sql.service.state import ServiceConfig, ServiceState
from store_sql.store import Store


class Service:
    """The ASGI app (`await service(scope, receive, send)`) over one open Store."""

    def __init__(
        self,
        store: Store,
        token: str,
        *,
        config: ServiceConfig | None = None,
        operations: Sequence[Operation] | None = None,
    ) -> None:
        self.state = ServiceState(store, config)
        self.tokens = TokenCheck(token)
        self.router = Router(operations if operations is not None else all_operations())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        # websockets are not served: uvicorn answers them 403 when the app does not accept

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        name = "unmatched"
        response: Response | None = None
        state = self.state
        state.in_flight += 1
        try:
            try:
                op, params = self.router.match(scope["method"], scope.get("raw_path") or b"/")
            except ApiError as unmatched:
                refusal = unmatched if self._authorized(scope) else _unauthorized()
                response = _error_response(refusal)
            else:
                name = op.operation_id
                if not op.public and not self._authorized(scope):
                    response = _error_response(_unauthorized())
                elif state.stopping and not op.public:
                    response = _error_response(ApiError("BUSY", "the server is stopping"))
                else:
                    try:
                        response = await op.handler(Call(state, scope, receive, params))
                    except Exception as exc:  # answered as its code; see http_errors
                        response = _error_response(from_exception(exc))
            await response(scope, receive, send)
        finally:
            state.in_flight -= 1
            code = 500 if response is None else response.status_code
            state.metrics.observe(name, code, time.perf_counter() - started)

    def _authorized(self, scope: Scope) -> bool:
        for key, value in scope["headers"]:
            if key == b"authorization":
                return self.tokens.allows(value)
        if scope["method"] == "GET":
            query: bytes = scope.get("query_string", b"")
            if b"access_token=" in query:
                from urllib.parse import parse_qs

                values = parse_qs(query.decode("latin-1")).get("access_token") or []
                return len(values) == 1 and self.tokens.allows_token(values[0])
        return False


def _unauthorized() -> ApiError:
    return ApiError("UNAUTHORIZED", "missing or wrong bearer token (Authorization: Bearer ...)")


def _error_response(error: ApiError) -> Response:
    headers = {}
    if error.code == "BUSY":
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif error.code == "UNAUTHORIZED":
        headers["WWW-Authenticate"] = 'Bearer realm="store-sql"'
    return Response(error_body(error), error.status, headers, "application/json")


async def _lifespan(receive: Receive, send: Send) -> None:
    # The store is opened before the server starts and closed after it stops (serve.py),
    # so startup and shutdown have nothing to do here.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

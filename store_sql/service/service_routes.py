"""Routes about the service itself: `/v1/health` (public), `/metrics`, `/openapi.json`."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from starlette.responses import Response

from store_sql.service.responses import json_response
from store_sql.service.routing import Call, Operation

TAG: Final = "service"


@cache
def package_version() -> str:
    """The installed package's version (read once: a metadata lookup scans sys.path)."""
    try:
        return version("store_sql")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "0"


async def health(call: Call) -> Response:
    """Answers without a token, and without touching the database: a liveness probe."""
    service = call.service
    return json_response(
        {
            "ok": not service.stopping,
            "version": package_version(),
            "stopping": service.stopping,
            "writeQueue": service.store.write_queue_depth,
        }
    )


async def metrics(call: Call) -> Response:
    service = call.service
    text = service.metrics.render(service.store.metrics(), service.gauges())
    return Response(text, 200, None, "text/plain; version=0.0.4; charset=utf-8")


OPERATIONS: Final = (
    Operation(
        "GET", "/v1/health", health, "Liveness (no token needed)", TAG, public=True, errors=()
    ),
    Operation(
        "GET",
        "/metrics",
        metrics,
        "Prometheus text: writer queue, batch sizes, commit times, WAL, requests, latency",
        TAG,
        produces="text/plain",
        errors=(),
    ),
)

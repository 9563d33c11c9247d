"""What every handler shares: the open Store, the settings, the event hub, the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from store_sql.service.bodies import DEFAULT_MAX_BODY
from store_sql.service.events import EventHub
from store_sql.service.http_errors import ApiError
from store_sql.service.metrics import RequestMetrics
from store_sql.store import Store

DEFAULT_MAX_QUEUE: Final = 20_000
"""Writes waiting for the writer past which new writes are answered 503 BUSY."""


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    max_body: int = DEFAULT_MAX_BODY
    max_queue: int = DEFAULT_MAX_QUEUE


class ServiceState:
    """One server's shared state; handlers reach it as `call.service`."""

    def __init__(self, store: Store, config: ServiceConfig | None = None) -> None:
        self.store = store
        self.config = config or ServiceConfig()
        self.hub = EventHub()
        self.metrics = RequestMetrics()
        self.started = time.time()
        self.stopping = False
        self.in_flight = 0

    def busy_check(self) -> None:
        """503 BUSY when the writer's queue is past the limit: the caller retries later
        instead of queueing behind everybody."""
        if self.store.write_queue_depth > self.config.max_queue:
            raise ApiError("BUSY", "the writer's queue is full; retry shortly")

    def stop(self) -> None:
        """From now on: new requests are answered BUSY, event streams end."""
        self.stopping = True
        self.hub.close()

    def gauges(self) -> dict[str, Any]:
        return {
            "uptime_seconds": time.time() - self.started,
            "http_in_flight": self.in_flight,
            "sse_subscribers": self.hub.subscribers,
        }

"""`GET /metrics`: the server's and the store's figures in Prometheus' text format (0.0.4).

Requests are counted by operation and status, with a latency histogram per operation; the
store adds its writer (queue depth, group-commit sizes, transaction times, WAL size and
checkpoints), its readers and its background indexer (`Store.metrics()`).
"""

from __future__ import annotations

import bisect
from typing import Any, Final

BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
"""Latency histogram bounds in seconds."""


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0


class RequestMetrics:
    """Counters kept on the event loop (no locks: one thread touches them)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.sse_events = 0
        self.sse_resyncs = 0

    def observe(self, operation: str, status: int, seconds: float) -> None:
        key = (operation, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(operation)
        if hist is None:
            hist = self.latency[operation] = _Histogram()
        hist.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        hist.total += seconds

    def render(self, store: dict[str, Any], gauges: dict[str, float]) -> bytes:
        out: list[str] = []

        def metric(name: str, kind: str, doc: str) -> None:
            out.append(f"# HELP {name} {doc}")
            out.append(f"# TYPE {name} {kind}")

        metric("store_sql_http_requests_total", "counter", "HTTP requests by operation and status")
        for (op, status), n in sorted(self.requests.items()):
            out.append(f'store_sql_http_requests_total{{operation="{op}",status="{status}"}} {n}')
        metric("store_sql_http_request_seconds", "histogram", "HTTP request latency by operation")
        for op, hist in sorted(self.latency.items()):
            running = 0
            for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(
                    f'store_sql_http_request_seconds_bucket{{operation="{op}",le="{le}"}} {running}'
                )
            out.append(f'store_sql_http_request_seconds_sum{{operation="{op}"}} {hist.total}')
            out.append(f'store_sql_http_request_seconds_count{{operation="{op}"}} {running}')
        metric("store_sql_sse_events_total", "counter", "Server-sent events written")
        out.append(f"store_sql_sse_events_total {self.sse_events}")
        metric("store_sql_sse_resyncs_total", "counter", "Subscribers told to resync")
        out.append(f"store_sql_sse_resyncs_total {self.sse_resyncs}")
        for name, value in sorted(gauges.items()):
            metric(f"store_sql_{name}", "gauge", name.replace("_", " "))
            out.append(f"store_sql_{name} {value}")
        for name, value in sorted(store.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            full = f"store_sql_store_{name}"
            kind = "counter" if name in _COUNTERS else "gauge"
            metric(full, kind, f"Store.metrics()['{name}']")
            out.append(f"{full} {value}")
        out.append("")
        return "\n".join(out).encode()


_COUNTERS: Final = frozenset(
    {
        "batches",
        "mutations",
        "background_mutations",
        "failed_mutations",
        "checkpoints",
        "batch_retries",
        "savepoint_reruns",
        "reads",
        "index_steps",
        "index_lines",
        "index_failures",
    }
)

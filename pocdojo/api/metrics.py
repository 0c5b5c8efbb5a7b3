"""Prometheus request metrics per route template and status, and the /metrics endpoint."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pocdojo.observability import export

# Before any metric object exists: with POCDOJO_METRICS_DIR, values go to the node's
# multiprocess files so one scrape sees every process (actors, replicas) of the node.
export.enable_from_env()

from prometheus_client import Counter, Histogram  # noqa: E402

REQUESTS = Counter(
    "pocdojo_http_requests_total",
    "HTTP requests by service, route template, method and status",
    ["service", "route", "method", "status"],
)
LATENCY = Histogram(
    "pocdojo_http_request_duration_seconds",
    "HTTP request latency by service, route template, method and status",
    ["service", "route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class MetricsMiddleware:
    """Pure ASGI middleware: labels by route template, never by raw path (bounded cardinality)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            REQUESTS.labels(self.service, template, method, str(status)).inc()
            LATENCY.labels(self.service, template, method, str(status)).observe(
                time.perf_counter() - start
            )


async def metrics_endpoint(request: Request) -> Response:
    return Response(export.render_latest(), media_type=export.CONTENT_TYPE)

"""The ASGI middleware every service app gets: request id, server span, access log.

- ``X-Request-Id``: taken from the request when it is a sane token (a load balancer's id),
  otherwise generated; echoed on the response and present in every log line of the request.
- A server span named ``METHOD /route/{template}``, continuing a client's ``traceparent``;
  its ``traceparent`` is echoed on the response so a client can quote it in a bug report.
- One access log line per request (logger ``pocdojo.access``): route template (never the raw
  path or query, which may hold tokens), method, status, duration in ms.
"""

from __future__ import annotations

import logging
import re
import time

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pocdojo.observability import context, tracing
from pocdojo.observability.logs import configure_logging

access_log = logging.getLogger("pocdojo.access")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return bytes(value).decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
                return None
    return None


class ObservabilityMiddleware:
    """Pure ASGI (no per-request task or body buffering); http only, lifespan passes."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        configure_logging(service)
        tracing.setup_tracing(service)
        self._tracer = tracing.tracer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _SANE_ID.match(given) else context.new_request_id()
        info = context.RequestInfo(request_id, self.service)
        token = context.CURRENT.set(info)
        method = scope.get("method", "GET")
        parent = None
        traceparent = _header(scope, b"traceparent")
        if traceparent:
            carrier = {"traceparent": traceparent}
            tracestate = _header(scope, b"tracestate")
            if tracestate:
                carrier["tracestate"] = tracestate
            parent = tracing.extract(carrier)
        start = time.perf_counter()
        status = 500
        with self._tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER, record_exception=True
        ) as span:
            echo = [(b"x-request-id", request_id.encode())]
            span_context = span.get_span_context()
            if span_context.is_valid:
                flags = "01" if span_context.trace_flags.sampled else "00"
                echo.append(
                    (
                        b"traceparent",
                        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags}".encode(),
                    )
                )

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), *echo]
                await send(message)

            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                elapsed_ms = (time.perf_counter() - start) * 1000
                if span.is_recording():
                    span.update_name(f"{method} {route}")
                    span.set_attributes(
                        {
                            "http.request.method": method,
                            "http.route": route,
                            "http.response.status_code": status,
                            "pocdojo.request_id": request_id,
                        }
                    )
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)
                access_log.info(
                    "%s %s %d %.1fms",
                    method,
                    route,
                    status,
                    elapsed_ms,
                    extra={
                        "http_method": method,
                        "http_route": route,
                        "http_status": status,
                        "duration_ms": round(elapsed_ms, 2),
                    },
                )
                context.CURRENT.reset(token)


def instrument_app(app: ASGIApp, service: str) -> ASGIApp:
    """``app`` wrapped in `ObservabilityMiddleware` (for apps built without a middleware
    list); Starlette factories pass ``Middleware(ObservabilityMiddleware, service=...)``."""
    return ObservabilityMiddleware(app, service)


__all__ = ["ObservabilityMiddleware", "instrument_app", "trace"]

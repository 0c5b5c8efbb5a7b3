"""Fetching an issuer's keys is part of the trace of the request that needed them: the
discovery and JWKS requests carry the W3C ``traceparent`` of a ``jwks fetch`` client span
that is a child of the caller's span (a real HTTP issuer on loopback records the headers)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from pocdojo.auth.jwks import HttpJwks
from pocdojo.observability.tracing import tracer


class Issuer:
    """Discovery and an empty JWKS; every request's headers are kept."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                else:
                    body = {"keys": []}
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    yield server
    server.stop()


async def test_jwks_requests_carry_the_callers_trace(
    issuer: Issuer, spans: InMemorySpanExporter
) -> None:
    keys = HttpJwks(issuer.url)
    with tracer().start_as_current_span("verify a token") as caller:
        assert await keys.get_key("unknown-kid") is None
    trace_id = format(caller.get_span_context().trace_id, "032x")

    assert [path for path, _ in issuer.requests] == ["/.well-known/openid-configuration", "/jwks"]
    (fetch,) = [s for s in spans.get_finished_spans() if s.name == "jwks fetch"]
    assert fetch.kind is SpanKind.CLIENT
    assert fetch.parent is not None
    assert fetch.parent.span_id == caller.get_span_context().span_id
    fetch_id = format(fetch.context.span_id, "016x")
    for _, headers in issuer.requests:
        version, header_trace, parent, flags = headers["traceparent"].split("-")
        assert (version, header_trace, parent) == ("00", trace_id, fetch_id)
        assert int(flags, 16) & 1  # sampled


async def test_no_traceparent_outside_a_trace(issuer: Issuer) -> None:
    """Without a current span there is nothing to continue: no header (and no error)."""
    keys = HttpJwks(issuer.url)
    assert await keys.get_key("unknown-kid") is None
    assert issuer.requests
    # The fetch's own span starts a trace only if tracing records: either way the header is
    # absent or a well-formed traceparent, never garbage.
    for _, headers in issuer.requests:
        if "traceparent" in headers:
            assert len(headers["traceparent"].split("-")) == 4

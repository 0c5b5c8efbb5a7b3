"""Observability in the code: JSON logs, OpenTelemetry traces, Prometheus metrics export.

- `logs`: one logging configuration (JSON lines on stdout, ``POCDOJO_LOG_LEVEL``).
- `middleware`: request id, server span and access log for every service app.
- `tracing`: the tracer provider (OTLP/HTTP only with ``OTEL_EXPORTER_OTLP_ENDPOINT``) and
  ``traceparent`` helpers for Ray calls and Redis stream messages.
- `db`: a span per database query (statement only) and the pool gauges.
- `export`: how metrics of many processes on one node become one scrape (multiprocess mode).
- `jobs`: render and export jobs as metrics (queue depth and age, attempt outcomes, durations).
- `process`: logs and tracing for processes that are not apps (workers, actors, Ray tasks).
"""

from __future__ import annotations

from pocdojo.observability.tracing import current_traceparent, setup_tracing, span_from

__all__ = ["current_traceparent", "setup_tracing", "span_from"]

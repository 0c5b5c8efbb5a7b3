"""One call for a process that is not a Starlette app (workers, actors): logs + tracing."""

from __future__ import annotations

from pocdojo.observability.logs import configure_logging
from pocdojo.observability.tracing import setup_tracing


def observe_process(service: str) -> None:
    """JSON logs on stdout and this process's tracer provider (both idempotent)."""
    configure_logging(service)
    setup_tracing(service)

"""One call for a process that is not a Starlette app (workers, actors): logs + tracing."""

from __future__ import annotations

from pocdojo.observability.logs import configure_logging
from pocdojo.observability.tracing import setup_tracing

TASK_SERVICE = "render-tasks"
"""The service name of Ray task processes (video segments, joins, exports). A Ray worker
process runs tasks of any kind one after the other, and a process's logging and tracer
provider are set up once (the first call wins), so every task function uses this one name;
spans say what the task was (their name and ``pocdojo.*`` attributes)."""


def observe_process(service: str) -> None:
    """JSON logs on stdout and this process's tracer provider (both idempotent)."""
    configure_logging(service)
    setup_tracing(service)

"""Database observability: one span per query (statement, never values) and pool gauges.

Spans come from asyncpg's query logger, which reports each query after it ran with its
duration; the span is back-dated by that duration and parented to the span current when the
query ran. The logger is attached to a connection only while spans are being recorded, so
with tracing off a query costs nothing extra.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Protocol

from opentelemetry.trace import SpanKind, StatusCode

from pocdojo.observability import tracing

MAX_STATEMENT = 2048


def _operation(query: str) -> str:
    word = query.lstrip().split(None, 1)
    return word[0].upper() if word else "QUERY"


def query_span(record: Any) -> None:
    """asyncpg query-logger callback: a finished CLIENT span for ``record``."""
    end = time.time_ns()
    query: str = record.query
    operation = _operation(query)
    span = tracing.tracer().start_span(
        f"db {operation}",
        kind=SpanKind.CLIENT,
        start_time=end - int(record.elapsed * 1e9),
        attributes={
            "db.system": "postgresql",
            "db.operation": operation,
            "db.statement": query[:MAX_STATEMENT],
        },
    )
    if record.exception is not None:
        span.set_status(StatusCode.ERROR, type(record.exception).__name__)
    span.end(end_time=end)


def watch(conn: Any) -> None:
    """Trace ``conn``'s queries if spans are being recorded (idempotent per connection)."""
    if tracing.recording():
        conn.add_query_logger(query_span)


class _Pool(Protocol):
    def get_size(self) -> int: ...

    def get_idle_size(self) -> int: ...

    def get_max_size(self) -> int: ...


# By id: asyncpg pools take no weak references; `Database.stop` forgets its pool.
_pools: dict[int, _Pool] = {}


def register_pool(pool: _Pool) -> None:
    _pools[id(pool)] = pool
    update_pool_gauges()


def forget_pool(pool: _Pool) -> None:
    _pools.pop(id(pool), None)
    update_pool_gauges()


@functools.cache
def _gauges() -> tuple[Any, Any, Any]:
    # Label children looked up once: this runs twice per database transaction.
    from pocdojo.metrics import DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS

    return (
        DB_POOL_CONNECTIONS.labels("in_use"),
        DB_POOL_CONNECTIONS.labels("idle"),
        DB_POOL_MAX_CONNECTIONS,
    )


def update_pool_gauges() -> None:
    """This process's pools summed: connections in use, idle, and the configured maximum."""
    size = idle = maximum = 0
    for pool in list(_pools.values()):
        size += pool.get_size()
        idle += pool.get_idle_size()
        maximum += pool.get_max_size()
    in_use_gauge, idle_gauge, max_gauge = _gauges()
    in_use_gauge.set(size - idle)
    idle_gauge.set(idle)
    max_gauge.set(maximum)

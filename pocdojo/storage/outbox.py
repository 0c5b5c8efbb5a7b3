"""The transactional outbox: events written in the same transaction as the change."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from pocdojo.observability.tracing import current_traceparent
from pocdojo.types import TenantId


async def record_event(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    *,
    topic: str,
    event_type: str,
    aggregate_id: uuid.UUID,
    payload: dict[str, Any],
    traceparent: str | None = None,
) -> int:
    """Append one event; it is published only if the surrounding transaction commits.

    The row keeps the current span's ``traceparent`` (else the one given), so the relay and
    the consumers continue the trace of the request that made the change."""
    traceparent = current_traceparent() or traceparent
    event_id: int = await conn.fetchval(
        """insert into outbox (tenant_id, topic, event_type, aggregate_id, payload, traceparent)
           values ($1, $2, $3, $4, $5::jsonb, $6) returning id""",
        tenant_id,
        topic,
        event_type,
        aggregate_id,
        json.dumps(payload, default=str),
        traceparent,
    )
    return event_id

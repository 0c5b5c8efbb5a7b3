"""The search indexer: PoC events from the stream -> the SearchIndex (idempotent by version).

Beside the consumer, `watch_group` measures the consumer group every few seconds:
``pocdojo_search_indexer_pending_events`` (delivered, not acknowledged) and, once nothing is
pending or undelivered, resets ``pocdojo_search_indexer_lag_seconds`` to 0 (the lag is set
per indexed event, and would otherwise keep the last one's forever on an idle stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from pocdojo.metrics import SEARCH_INDEXER_LAG, SEARCH_INDEXER_PENDING
from pocdojo.storage.search import SearchDoc, SearchIndex
from pocdojo.types import TenantId
from pocdojo.workers.consumer import Event

GROUP = "search-indexer"
log = logging.getLogger("pocdojo.consumer")


class SearchIndexer:
    def __init__(self, index: SearchIndex) -> None:
        self._index = index

    async def __call__(self, event: Event) -> None:
        if event.fields.get("topic") != "pocs":
            return
        tenant = TenantId(uuid.UUID(event.tenant_id))
        payload = json.loads(event.fields["payload"])
        if event.type in {"poc.created", "poc.updated"}:
            await self._index.upsert(tenant, SearchDoc.from_event(payload))
        elif event.type == "poc.deleted":
            await self._index.delete(tenant, uuid.UUID(payload["id"]), int(payload["version"]))
        created = event.fields.get("created_at")
        if created:
            # Commit of the change -> searchable: what SearchIndexerLagging watches.
            lag = time.time() - datetime.fromisoformat(created).timestamp()
            SEARCH_INDEXER_LAG.set(max(0.0, lag))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def measure_group(redis: aioredis.Redis, stream: str, group: str = GROUP) -> int:
    """The group's pending entries (delivered, not acknowledged); sets the indexer gauges."""
    summary: Any = await redis.xpending(stream, group)
    pending = int(summary["pending"])
    SEARCH_INDEXER_PENDING.set(pending)
    if pending == 0:
        # Caught up when the group has been handed the stream's last entry (and, with
        # nothing pending, acknowledged it): nothing waits to be indexed.
        info: Any = await redis.xinfo_stream(stream)
        last = _text(info["last-generated-id"])
        groups: Any = await redis.xinfo_groups(stream)
        for found in groups:
            if _text(found["name"]) == group and _text(found["last-delivered-id"]) == last:
                SEARCH_INDEXER_LAG.set(0)
    return pending


async def watch_group(
    redis: aioredis.Redis, stream: str, stop: asyncio.Event, *, every_s: float = 2.0
) -> None:
    """`measure_group` every ``every_s`` seconds until ``stop`` (errors are logged and the
    next round tries again: the consumer reports Redis being down already)."""
    while not stop.is_set():
        try:
            await measure_group(redis, stream)
        except (OSError, aioredis.RedisError) as exc:
            log.info("indexer group metrics: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)

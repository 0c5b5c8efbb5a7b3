"""Entry points that run the workers until stopped (CLI processes or Serve replicas)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import redis.asyncio as aioredis

from pocdojo.api.search_app import open_search_index
from pocdojo.observability.process import observe_process
from pocdojo.settings import Settings
from pocdojo.storage.db import Database
from pocdojo.storage.pocs import row_to_poc
from pocdojo.storage.search import SearchDoc, SearchIndex
from pocdojo.types import TenantId
from pocdojo.workers.consumer import StreamConsumer
from pocdojo.workers.relay import OutboxRelay
from pocdojo.workers.search_indexer import GROUP, SearchIndexer, watch_group


def _redis(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)


async def run_relay(settings: Settings, stop: asyncio.Event) -> None:
    observe_process("outbox-relay")
    redis = _redis(settings)
    try:
        async with Database(settings.relay_database_url, max_size=2) as db:
            relay = OutboxRelay(
                db, redis, stream=settings.events_stream, dsn=settings.relay_database_url
            )
            await relay.run(stop)
    finally:
        await redis.aclose()


def consumer_name() -> str:
    # Stable across restarts of the same process slot, so its pending entries are resumed.
    return os.environ.get("POCDOJO_CONSUMER_NAME") or f"{socket.gethostname()}-{os.getpid()}"


async def run_search_indexer(
    settings: Settings, stop: asyncio.Event, name: str | None = None
) -> None:
    observe_process("search-indexer")
    redis = _redis(settings)
    try:
        async with open_search_index(settings) as index:
            consumer = StreamConsumer(
                redis,
                stream=settings.events_stream,
                group=GROUP,
                consumer=name or consumer_name(),
                handler=SearchIndexer(index),  # type: ignore[arg-type]
            )
            watcher = asyncio.create_task(watch_group(redis, settings.events_stream, stop))
            try:
                await consumer.run(stop)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
    finally:
        await redis.aclose()


async def reindex(settings: Settings, tenant_slug: str | None = None) -> dict[str, int]:
    """Rebuild the search projection from the PoC tables, tenant by tenant (no downtime)."""
    counts: dict[str, int] = {}
    async with Database(settings.owner_database_url, max_size=2) as owner:
        async with owner.global_tx() as conn:
            tenants = [
                (TenantId(r["id"]), r["slug"])
                for r in await conn.fetch("select * from ops_tenants()")
            ]
        if tenant_slug:
            tenants = [t for t in tenants if t[1] == tenant_slug]
            if not tenants:
                raise SystemExit(f"no tenant {tenant_slug!r}")
        async with open_search_index(settings) as index_obj:
            index: SearchIndex = index_obj  # type: ignore[assignment]
            for tenant_id, slug in tenants:
                async with owner.tenant_tx(tenant_id) as conn:
                    rows = await conn.fetch("select * from pocs")
                docs = [SearchDoc.from_poc(row_to_poc(r)) for r in rows]
                counts[slug] = await index.replace_tenant(tenant_id, docs)
    return counts

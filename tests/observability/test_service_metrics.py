"""/metrics after activity: search latency by kind, database pool usage, request metrics,
the outbox backlog and the search indexer's pending events (measured in-process, and from
the relay and indexer processes through a node's metrics endpoint)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pocdojo.metrics import SEARCH_INDEXER_LAG
from pocdojo.settings import Settings
from pocdojo.storage.db import Database
from pocdojo.workers.relay import OutboxRelay
from pocdojo.workers.search_indexer import GROUP, measure_group
from tests.conftest import TenantFixture, Worker, free_port
from tests.observability.test_poc_write_trace import paused


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(found: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in found if n == name and labels.items() <= lab.items())


async def test_metrics_after_search_and_writes(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    before = samples((await client.get("/metrics")).text)
    for name in ("Metered search", "Metered suggest"):
        created = await client.post(
            "/v1/pocs", json={"name": name, "languages": ["rust"]}, headers=tenant.member.headers
        )
        assert created.status_code == 201
    for _ in range(3):
        found = await client.get(
            "/v1/search", params={"q": "metered"}, headers=tenant.member.headers
        )
        assert found.status_code == 200
    suggested = await client.get(
        "/v1/search/suggest", params={"q": "met"}, headers=tenant.member.headers
    )
    assert suggested.status_code == 200
    after = samples((await client.get("/metrics")).text)

    count = "pocdojo_search_query_duration_seconds_count"
    total = "pocdojo_search_query_duration_seconds_sum"
    searches = value(after, count, kind="search", backend="postgres") - value(
        before, count, kind="search", backend="postgres"
    )
    assert searches == 3
    assert value(after, count, kind="suggest") - value(before, count, kind="suggest") == 1
    spent = value(after, total, kind="search") - value(before, total, kind="search")
    assert 0 < spent < 30  # seconds, for three queries

    # Pool gauges of this process: in use never above the configured maximum.
    maximum = value(after, "pocdojo_db_pool_max_connections")
    in_use = value(after, "pocdojo_db_pool_connections", state="in_use")
    idle = value(after, "pocdojo_db_pool_connections", state="idle")
    assert maximum >= 10
    assert 0 <= in_use <= maximum
    assert idle >= 1  # the connections the requests above used went back to the pool

    created_count = value(
        after, "pocdojo_http_requests_total", route="/v1/pocs", method="POST", status="201"
    ) - value(before, "pocdojo_http_requests_total", route="/v1/pocs", method="POST", status="201")
    assert created_count == 2


async def test_outbox_backlog_counts_what_the_relay_has_not_moved(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    settings: Settings,
    event_workers: dict[str, Worker],
) -> None:
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        async with Database(settings.relay_database_url, max_size=2) as relay_db:
            relay = OutboxRelay(
                relay_db, redis, stream=settings.events_stream, dsn=settings.relay_database_url
            )
            # The suite's relay is paused: the events of these writes wait in the outbox.
            with paused(event_workers["relay"]):
                for i in range(3):
                    created = await client.post(
                        "/v1/pocs",
                        json={"name": f"Backlogged {i}", "languages": ["go"]},
                        headers=tenant.member.headers,
                    )
                    assert created.status_code == 201
                backlog = await relay.measure_backlog()
                assert backlog >= 3
                found = samples((await client.get("/metrics")).text)
                assert value(found, "pocdojo_outbox_backlog_events") == backlog
                while await relay.publish_batch():
                    pass
                drained = await relay.measure_backlog()
            assert drained < backlog
            found = samples((await client.get("/metrics")).text)
            assert value(found, "pocdojo_outbox_backlog_events") == drained
    finally:
        await redis.aclose()


async def test_indexer_pending_counts_delivered_unacknowledged_events(settings: Settings) -> None:
    redis = aioredis.Redis.from_url(settings.redis_url)
    stream = f"{settings.events_stream}:pending-{uuid.uuid4().hex[:8]}"
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        for i in range(3):
            await redis.xadd(stream, {"type": "poc.created", "n": str(i)})
        # A consumer that received three events and crashed before acknowledging them.
        delivered = await redis.xreadgroup(GROUP, "crashed", {stream: ">"}, count=3)
        entry_ids = [entry_id for _, entries in delivered for entry_id, _ in entries]
        assert len(entry_ids) == 3
        SEARCH_INDEXER_LAG.set(42.0)  # the last indexed event's lag, from long ago
        assert await measure_group(redis, stream) == 3
        with_pending = samples(generate_latest().decode())
        assert value(with_pending, "pocdojo_search_indexer_pending_events") == 3
        assert value(with_pending, "pocdojo_search_indexer_lag_seconds") == 42.0

        await redis.xack(stream, GROUP, *entry_ids)
        assert await measure_group(redis, stream) == 0
        idle = samples(generate_latest().decode())
        assert value(idle, "pocdojo_search_indexer_pending_events") == 0
        # Nothing pending or undelivered: the lag is 0, not the last event's forever.
        assert value(idle, "pocdojo_search_indexer_lag_seconds") == 0
    finally:
        await redis.delete(stream)
        await redis.aclose()


async def test_relay_and_indexer_processes_export_their_gauges(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    settings: Settings,
    event_workers: dict[str, Worker],
    tmp_path: Path,
) -> None:
    """The relay and the indexer as the processes they run as, writing to a node's metrics
    directory that `pocdojo metrics serve` (a pod's app-metrics endpoint) reports.

    Both are given work they cannot finish, so the figures hold still while scraped: the
    relay cannot reach Redis (the events it should move stay in the outbox), and the
    indexer's private stream has entries a crashed consumer of its group still holds."""
    metrics_dir = str(tmp_path / "node-metrics")
    stream = f"{settings.events_stream}:proc-{uuid.uuid4().hex[:8]}"
    redis = aioredis.Redis.from_url(settings.redis_url)
    await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for i in range(2):
        await redis.xadd(stream, {"topic": "none", "type": "test", "n": str(i)})
    held = await redis.xreadgroup(GROUP, "crashed", {stream: ">"}, count=2)
    assert sum(len(entries) for _, entries in held) == 2

    relay = Worker(settings, "outbox", "relay", name="relay-metrics")
    relay.env["POCDOJO_REDIS_URL"] = "redis://127.0.0.1:9/0"  # nothing listens there
    indexer = Worker(settings, "search", "indexer", name="indexer-metrics")
    indexer.env["POCDOJO_EVENTS_STREAM"] = stream
    port = free_port()
    node = Worker(settings, "metrics", "serve", "--port", str(port), name="node-metrics")
    try:
        with paused(event_workers["relay"]):
            for i in range(3):
                created = await client.post(
                    "/v1/pocs",
                    json={"name": f"Stuck in the outbox {i}", "languages": ["go"]},
                    headers=tenant.member.headers,
                )
                assert created.status_code == 201
            for worker in (relay, indexer, node):
                worker.env["POCDOJO_METRICS_DIR"] = metrics_dir
                worker.start()

            async def scraped() -> list[tuple[str, dict[str, str], float]] | None:
                try:
                    async with httpx.AsyncClient(timeout=5) as http:
                        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.HTTPError:
                    return None
                found = samples(text)
                backlog = max(
                    (v for n, _, v in found if n == "pocdojo_outbox_backlog_events"), default=0
                )
                pending = max(
                    (v for n, _, v in found if n == "pocdojo_search_indexer_pending_events"),
                    default=0,
                )
                return found if backlog >= 3 and pending == 2 else None

            deadline = asyncio.get_running_loop().time() + 25  # before the entries are claimed
            found = await scraped()
            while found is None:
                assert asyncio.get_running_loop().time() < deadline, "gauges never scraped"
                await asyncio.sleep(0.5)
                found = await scraped()
    finally:
        for worker in (relay, indexer, node):
            worker.stop()
        await redis.delete(stream)
        await redis.aclose()
    # Gauges are per process (pid label): the relay's backlog, the indexer's pending.
    assert any(n == "pocdojo_outbox_backlog_events" and "pid" in lab for n, lab, _ in found)

"""One POST /v1/pocs is one trace: the HTTP span, its database spans, the outbox relay's
publish span and the search indexer's consumer span (with its own database spans).

The relay and the indexer run in this process so the in-memory exporter sees their spans;
the suite's relay subprocess (``event_workers``) is paused meanwhile so that ours is the
one that publishes the event (both would race for the same outbox row).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from collections.abc import Iterator

import httpx
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from pocdojo.settings import Settings
from pocdojo.storage.db import Database
from pocdojo.storage.search_postgres import PostgresSearch, open_search_database
from pocdojo.workers.consumer import Event, StreamConsumer
from pocdojo.workers.relay import OutboxRelay
from pocdojo.workers.search_indexer import SearchIndexer
from tests.conftest import TenantFixture, Worker


@contextlib.contextmanager
def paused(worker: Worker) -> Iterator[None]:
    assert worker.process is not None
    worker.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        worker.process.send_signal(signal.SIGCONT)


def trace_of(response: httpx.Response) -> str:
    version, trace_id, _span_id, flags = response.headers["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    return trace_id


def in_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and format(s.context.trace_id, "032x") == trace_id
    ]


async def test_create_poc_is_one_trace_through_outbox_and_indexer(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    settings: Settings,
    spans: InMemorySpanExporter,
    event_workers: dict[str, Worker],
) -> None:
    redis = aioredis.Redis.from_url(settings.redis_url)
    group = f"obs-test-{uuid.uuid4().hex[:8]}"
    # Our own consumer group, positioned at the stream's end: it sees only new events.
    await redis.xgroup_create(settings.events_stream, group, id="$", mkstream=True)
    try:
        with paused(event_workers["relay"]):
            created = await client.post(
                "/v1/pocs",
                json={"name": "Traced PoC", "languages": ["python"], "tags": ["otel"]},
                headers=tenant.member.headers,
            )
            assert created.status_code == 201, created.text
            poc_id = created.json()["id"]
            trace_id = trace_of(created)
            async with Database(settings.relay_database_url, max_size=2) as relay_db:
                relay = OutboxRelay(
                    relay_db, redis, stream=settings.events_stream, dsn=settings.relay_database_url
                )
                assert await relay.publish_batch() >= 1

        handled: list[Event] = []
        stop = asyncio.Event()
        async with open_search_database(settings.search_database_url, max_size=2) as search_db:
            indexer = SearchIndexer(PostgresSearch(search_db))

            async def handler(event: Event) -> None:
                await indexer(event)
                if json.loads(event.fields["payload"]).get("id") == poc_id:
                    handled.append(event)
                    stop.set()

            consumer = StreamConsumer(
                redis,
                stream=settings.events_stream,
                group=group,
                consumer="obs-test",
                handler=handler,
                block_ms=200,
            )
            await asyncio.wait_for(consumer.run(stop), timeout=30)
    finally:
        await redis.xgroup_destroy(settings.events_stream, group)
        await redis.aclose()

    assert handled, "the indexer never saw the event"
    recorded = in_trace(spans, trace_id)
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in recorded:
        by_name.setdefault(span.name, []).append(span)

    (http,) = by_name["POST /v1/pocs"]
    assert http.kind == SpanKind.SERVER
    assert http.attributes is not None
    assert http.attributes["http.response.status_code"] == 201
    assert http.attributes["pocdojo.tenant_id"] == str(tenant.id)

    db_spans = [s for s in recorded if s.name.startswith("db ")]
    statements = [str((s.attributes or {}).get("db.statement", "")) for s in db_spans]
    assert any("insert into outbox" in st for st in statements)
    assert any("set_config('app.tenant_id', $1, true)" in st for st in statements)
    # Statements only: no bound value (the PoC's name, the tenant id) is ever recorded.
    assert not any("Traced PoC" in st or str(tenant.id) in st for st in statements)
    request_db = [s for s in db_spans if s.start_time and http.end_time and s.end_time]
    assert all(s.parent is not None for s in request_db)

    (publish,) = by_name["outbox publish"]
    assert publish.kind == SpanKind.PRODUCER
    (process,) = [s for s in by_name[f"{group} process"] if s.parent is not None]
    assert process.kind == SpanKind.CONSUMER
    # The chain: the consumer continues the relay's span, which continues the request.
    assert process.parent is not None
    assert publish.context is not None
    assert process.parent.span_id == publish.context.span_id
    indexer_db = [s for s in db_spans if s.parent and s.parent.span_id == process.context.span_id]
    assert any("search" in str((s.attributes or {}).get("db.statement", "")) for s in indexer_db)

    # The indexer ran in this process: its lag (commit -> indexed) is on this /metrics.
    metrics = (await client.get("/metrics")).text
    (lag,) = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("pocdojo_search_indexer_lag_seconds ")
    ]
    assert 0 <= lag < 60

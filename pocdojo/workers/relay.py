"""The outbox relay: committed outbox rows -> the Redis event stream, at least once.

Woken by ``NOTIFY outbox`` (a trigger on insert) and polling as a fallback. Rows are
claimed with ``FOR UPDATE SKIP LOCKED``, so several relays can run; a crash between XADD
and marking the row means the event is sent again, which consumers tolerate (versions).
The relay also measures the backlog (``pocdojo_outbox_backlog_events``) every
``backlog_every_s`` seconds, from the table, so every relay replica reports the same truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from opentelemetry.trace import SpanKind

from pocdojo.errors import Unavailable
from pocdojo.metrics import OUTBOX_BACKLOG
from pocdojo.observability.tracing import current_traceparent, span_from
from pocdojo.storage.db import Database

log = logging.getLogger("pocdojo.relay")
BATCH = 500


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        redis: aioredis.Redis,
        *,
        stream: str,
        dsn: str,
        poll_interval_s: float = 0.5,
        stream_maxlen: int = 1_000_000,
        backlog_every_s: float = 2.0,
    ) -> None:
        self._db = db
        self._redis = redis
        self._stream = stream
        self._dsn = dsn
        self._poll = poll_interval_s
        self._maxlen = stream_maxlen
        self._wake = asyncio.Event()
        self._backlog_every_s = backlog_every_s
        self._backlog_at = -1e9
        self.published = 0

    async def measure_backlog(self) -> int:
        """Committed events not yet relayed (a count over the partial index of unpublished
        rows); sets ``pocdojo_outbox_backlog_events``."""
        async with self._db.global_tx() as conn:
            backlog: int = await conn.fetchval(
                "select count(*) from outbox where published_at is null"
            )
        OUTBOX_BACKLOG.set(backlog)
        self._backlog_at = time.monotonic()
        return backlog

    async def _measure_quietly(self) -> None:
        # A measurement that fails never stops the relaying; the next round tries again.
        try:
            await self.measure_backlog()
        except Exception as exc:
            self._backlog_at = time.monotonic()
            log.info("relay: could not measure the backlog: %s", exc)

    async def publish_batch(self) -> int:
        """Move up to one batch of events; the number moved."""
        async with self._db.global_tx() as conn:
            rows = await conn.fetch(
                """select id, tenant_id, topic, event_type, aggregate_id, payload::text,
                          traceparent, created_at
                   from outbox where published_at is null
                   order by id limit $1 for update skip locked""",
                BATCH,
            )
            if not rows:
                return 0
            async with self._redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    # A producer span in the trace of the change; the entry carries it on.
                    with span_from(
                        row["traceparent"],
                        "outbox publish",
                        kind=SpanKind.PRODUCER,
                        attributes={"messaging.destination.name": self._stream},
                    ):
                        traceparent = current_traceparent() or row["traceparent"] or ""
                    fields: dict[Any, Any] = {
                        "event_id": str(row["id"]),
                        "tenant_id": str(row["tenant_id"]),
                        "topic": row["topic"],
                        "type": row["event_type"],
                        "aggregate_id": str(row["aggregate_id"]),
                        "payload": row["payload"],
                        "traceparent": traceparent,
                        "created_at": row["created_at"].isoformat(),
                    }
                    pipe.xadd(self._stream, fields, maxlen=self._maxlen, approximate=True)
                await pipe.execute()
            await conn.execute(
                "update outbox set published_at = now() where id = any($1::bigint[])",
                [r["id"] for r in rows],
            )
        self.published += len(rows)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() - self._backlog_at >= self._backlog_every_s:
                        await self._measure_quietly()
                    moved = await self.publish_batch()
                except (Unavailable, OSError, aioredis.RedisError) as exc:
                    log.warning("relay: %s; retrying", exc)
                    moved = 0
                    await asyncio.sleep(1.0)
                if moved == BATCH:
                    continue  # more waiting
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, stop: asyncio.Event) -> None:
        """Keep a LISTEN connection; reconnect when the database comes back."""
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self._dsn, timeout=2)
                try:
                    await conn.add_listener("outbox", lambda *_: self._wake.set())
                    while not stop.is_set() and not conn.is_closed():
                        # Wake every second to notice a closed connection.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), timeout=1.0)
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.info("relay listener: %s", exc)
                await asyncio.sleep(1.0)


def event_payload(fields: dict[str, str]) -> dict[str, object]:
    data: dict[str, object] = json.loads(fields["payload"])
    return data

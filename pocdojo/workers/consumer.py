"""A Redis Streams consumer-group worker: at least once, retries, a dead-letter stream.

On start it first re-reads its own pending entries (what it received but did not
acknowledge before a crash), then new ones; entries idle too long in a dead consumer are
claimed. A handler error leaves the entry pending for a retry with backoff; after
``max_deliveries`` it goes to ``<stream>:dead`` with the error, and is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from opentelemetry.trace import SpanKind
from redis.exceptions import ResponseError

from pocdojo.observability.tracing import span_from

log = logging.getLogger("pocdojo.consumer")


@dataclass(frozen=True, slots=True)
class Event:
    entry_id: str
    fields: dict[str, str]

    @property
    def type(self) -> str:
        return self.fields.get("type", "")

    @property
    def tenant_id(self) -> str:
        return self.fields.get("tenant_id", "")


Handler = Callable[[Event], Awaitable[None]]


class StreamConsumer:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        max_deliveries: int = 5,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        backoff_s: float = 0.2,
    ) -> None:
        self._redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._handler = handler
        self._max_deliveries = max_deliveries
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._backoff_s = backoff_s
        self.dead_letter_stream = f"{stream}:dead"
        self.handled = 0

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        await self.ensure_group()
        await self._drain("0")  # our own unacknowledged entries first
        while not stop.is_set():
            try:
                await self._claim_abandoned()
                if not await self._drain(">"):
                    continue
            except (OSError, aioredis.RedisError) as exc:
                log.warning("consumer %s: %s; retrying", self.consumer, exc)
                await asyncio.sleep(1.0)

    async def _drain(self, start: str) -> bool:
        """Read and handle one batch; False when there was nothing."""
        response: Any = await self._redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: start},
            count=100,
            block=None if start == "0" else self._block_ms,
        )
        entries = [(eid, fields) for _, batch in response or [] for eid, fields in batch]
        for entry_id, fields in entries:
            await self._handle(self._decode(entry_id), self._decode_fields(fields))
        return bool(entries)

    async def _claim_abandoned(self) -> None:
        result: Any = await self._redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=self._claim_idle_ms, count=100
        )
        for entry_id, fields in result[1] if len(result) > 1 else []:
            if fields:
                await self._handle(self._decode(entry_id), self._decode_fields(fields))

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        # Continue the trace of the change that produced the event (its traceparent field).
        with span_from(
            fields.get("traceparent"),
            f"{self.group} process",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.destination.name": self.stream,
                "messaging.consumer.group.name": self.group,
                "messaging.message.id": entry_id,
            },
        ):
            await self._handle_in_span(entry_id, fields)

    async def _handle_in_span(self, entry_id: str, fields: dict[str, str]) -> None:
        event = Event(entry_id, fields)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._handler(event)
            except Exception as exc:
                deliveries = await self._deliveries(entry_id) + attempt - 1
                if deliveries >= self._max_deliveries:
                    log.error("dead-lettering %s after %d attempts: %s", entry_id, deliveries, exc)
                    dead: dict[Any, Any] = {
                        **fields,
                        "error": repr(exc)[:500],
                        "original_id": entry_id,
                    }
                    await self._redis.xadd(self.dead_letter_stream, dead)
                    await self._redis.xack(self.stream, self.group, entry_id)
                    return
                log.warning("handler failed on %s (attempt %d): %s", entry_id, attempt, exc)
                await asyncio.sleep(min(self._backoff_s * 2 ** (attempt - 1), 5.0))
                continue
            await self._redis.xack(self.stream, self.group, entry_id)
            self.handled += 1
            return

    async def _deliveries(self, entry_id: str) -> int:
        pending = await self._redis.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    @staticmethod
    def _decode(value: bytes | str) -> str:
        return value.decode() if isinstance(value, bytes) else value

    @classmethod
    def _decode_fields(cls, fields: dict[bytes | str, bytes | str]) -> dict[str, str]:
        return {cls._decode(k): cls._decode(v) for k, v in fields.items()}

"""The event-loop lag metric sees a callback that holds the loop, and logs the stall."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from pocdojo.metrics import EVENT_LOOP_LAG
from pocdojo.observability.loop import watch_loop_lag


def _buckets(service: str) -> dict[float, float]:
    return {
        float(s.labels["le"]): s.value
        for metric in EVENT_LOOP_LAG.collect()
        for s in metric.samples
        if s.name.endswith("_bucket") and s.labels.get("service") == service
    }


async def test_a_blocked_loop_shows_as_lag_and_a_stall_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = f"test-{uuid.uuid4().hex[:8]}"
    watcher = asyncio.get_running_loop().create_task(
        watch_loop_lag(service, interval_s=0.01, stall_s=0.1)
    )
    with caplog.at_level(logging.WARNING, logger="pocdojo.loop"):
        await asyncio.sleep(0.1)  # ticks of a free loop: all late by well under 0.1 s
        quiet = _buckets(service)
        time.sleep(0.15)  # noqa: ASYNC251 (a callback that holds the loop)
        await asyncio.sleep(0.05)
    watcher.cancel()
    after = _buckets(service)
    inf = float("inf")
    assert quiet[inf] >= 3  # it observes every tick
    # the tick the blocking call held up is at least 0.1 s late (>= one more such tick:
    # a busy machine may add its own)
    assert (after[inf] - after[0.1]) - (quiet[inf] - quiet[0.1]) >= 1
    assert any("event loop stalled" in r.getMessage() for r in caplog.records)

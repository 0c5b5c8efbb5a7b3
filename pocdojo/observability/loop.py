"""The event loop's own lateness, as a metric and a log line: what a real-time process
(the dojo gateway) cannot see from inside any one request."""

from __future__ import annotations

import asyncio
import logging

from pocdojo.metrics import EVENT_LOOP_LAG

log = logging.getLogger("pocdojo.loop")

INTERVAL_S = 0.1
STALL_S = 0.1
"""Lateness logged as a warning: every socket of the process waited at least this long."""


async def watch_loop_lag(
    service: str, *, interval_s: float = INTERVAL_S, stall_s: float = STALL_S
) -> None:
    """Until cancelled: sleep ``interval_s``, observe how much later than asked the loop
    woke up (``pocdojo_event_loop_lag_seconds{service}``), and log a warning for a stall of
    ``stall_s`` or more. Ten wake-ups a second: no measurable cost."""
    loop = asyncio.get_running_loop()
    lag = EVENT_LOOP_LAG.labels(service)
    while True:
        asked = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        late = max(0.0, loop.time() - asked)
        lag.observe(late)
        if late >= stall_s:
            log.warning("event loop stalled: a timer fired %.0f ms late", late * 1000)

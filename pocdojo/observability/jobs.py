"""Render and export jobs as metrics: queue depth and age from the jobs tables, and the
outcome and run time of each attempt (``pocdojo_render_*``, label ``kind``).

Queue figures come from the database, not from a runner's memory, so every replica that
scans reports the same truth; the alert rules aggregate with ``max``. Attempts are counted
where they end: the video runner (video-api replicas) and the export task (a Ray worker).
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from pocdojo.metrics import (
    RENDER_JOB_DURATION,
    RENDER_JOBS,
    RENDER_QUEUE_DEPTH,
    RENDER_QUEUE_OLDEST_AGE,
)

if TYPE_CHECKING:
    from pocdojo.storage.db import Database

log = logging.getLogger("pocdojo.metrics")


class JobKind(enum.StrEnum):
    VIDEO = "video"
    EXPORT = "export"


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    """The attempt produced the result."""
    FAILED = "failed"
    """The job failed for good (no attempt left, or an error no retry can fix)."""
    RETRIED = "retried"
    """The attempt ended without a result and the job runs again (another attempt)."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Queued (not yet started) jobs of one kind, over every tenant."""

    kind: JobKind
    depth: int
    oldest_age_s: float


async def queue_stats(conn: asyncpg.Connection) -> dict[JobKind, QueueStats]:
    """Depth and oldest queued age per kind (any transaction: ``render_queue_stats`` is a
    SECURITY DEFINER function that returns counts only)."""
    rows = await conn.fetch("select kind, depth, oldest_age_s from render_queue_stats()")
    stats = [
        QueueStats(JobKind(r["kind"]), int(r["depth"]), float(r["oldest_age_s"])) for r in rows
    ]
    return {s.kind: s for s in stats}


async def record_queue(conn: asyncpg.Connection, kind: JobKind) -> QueueStats:
    """Read the queue of ``kind`` and set its gauges; the figures read."""
    stats = (await queue_stats(conn))[kind]
    RENDER_QUEUE_DEPTH.labels(kind=kind.value).set(stats.depth)
    RENDER_QUEUE_OLDEST_AGE.labels(kind=kind.value).set(stats.oldest_age_s)
    return stats


async def refresh_queue(db: Database, kind: JobKind) -> QueueStats | None:
    """`record_queue` in a transaction of its own; a failure is logged and never stops the
    caller's real work (scanning for jobs to run)."""
    try:
        async with db.global_tx() as conn:
            return await record_queue(conn, kind)
    except Exception:
        log.warning("could not measure the %s queue", kind.value, exc_info=True)
        return None


def record_attempt(kind: JobKind, outcome: Outcome, duration_s: float) -> None:
    RENDER_JOBS.labels(kind=kind.value, outcome=outcome.value).inc()
    RENDER_JOB_DURATION.labels(kind=kind.value).observe(max(0.0, duration_s))


class Attempt:
    """Times one job attempt; `done` records its outcome once (later calls are ignored).
    An attempt that never calls it (cancelled, its worker lost) is not counted."""

    def __init__(self, kind: JobKind) -> None:
        self.kind = kind
        self.started = time.monotonic()
        self.outcome: Outcome | None = None

    def done(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            record_attempt(self.kind, outcome, time.monotonic() - self.started)

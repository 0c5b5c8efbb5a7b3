"""Export job rows: the truth about a job. Runners hold a lease; every write checks it."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from pocdojo.errors import NotFound
from pocdojo.observability.tracing import current_traceparent
from pocdojo.reports.period import Period
from pocdojo.reports.summary import Scope
from pocdojo.types import TenantId, UserId

MAX_ATTEMPTS = 5


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    PDF = "pdf"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ExportJob:
    id: uuid.UUID
    tenant_id: TenantId
    requested_by: UserId
    scope: Scope
    format: ExportFormat
    period: Period
    status: JobStatus
    progress: int
    attempts: int
    lease: uuid.UUID
    blob_key: str | None
    size_bytes: int | None
    row_count: int | None
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    traceparent: str | None = None
    """W3C trace context of the request that created the job: its attempts continue it."""

    def to_json(
        self, download_url: str | None, url_expires_at: dt.datetime | None
    ) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "format": str(self.format),
            "scope": str(self.scope),
            "period": self.period.to_json(),
            "status": str(self.status),
            "progress": self.progress,
            "attempts": self.attempts,
            "row_count": self.row_count,
            "size_bytes": self.size_bytes,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "download_url": download_url,
            "download_url_expires_at": url_expires_at.isoformat() if url_expires_at else None,
        }


_COLUMNS = (
    "id, tenant_id, requested_by, scope, format, period_from, period_to, status, progress, "
    "attempts, lease, blob_key, size_bytes, row_count, error, created_at, finished_at, "
    "traceparent"
)


def _job(r: asyncpg.Record) -> ExportJob:
    return ExportJob(
        id=r["id"],
        tenant_id=TenantId(r["tenant_id"]),
        requested_by=UserId(r["requested_by"]),
        scope=Scope(r["scope"]),
        format=ExportFormat(r["format"]),
        period=Period(r["period_from"], r["period_to"]),
        status=JobStatus(r["status"]),
        progress=r["progress"],
        attempts=r["attempts"],
        lease=r["lease"],
        blob_key=r["blob_key"],
        size_bytes=r["size_bytes"],
        row_count=r["row_count"],
        error=r["error"],
        created_at=r["created_at"],
        finished_at=r["finished_at"],
        traceparent=r["traceparent"],
    )


async def insert_job(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    user_id: UserId,
    scope: Scope,
    fmt: ExportFormat,
    period: Period,
) -> ExportJob:
    """A queued job; it keeps the current trace context, so its attempts (Ray tasks, maybe
    re-launched much later by a sweeper) continue the trace of this request."""
    row = await conn.fetchrow(
        f"""insert into report_exports (tenant_id, requested_by, scope, format, period_from,
                                        period_to, traceparent)
            values ($1, $2, $3, $4, $5, $6, $7) returning {_COLUMNS}""",
        tenant_id,
        user_id,
        str(scope),
        str(fmt),
        period.first,
        period.last,
        current_traceparent(),
    )
    assert row is not None
    return _job(row)


async def get_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> ExportJob:
    row = await conn.fetchrow(f"select {_COLUMNS} from report_exports where id = $1", job_id)
    if row is None:
        raise NotFound("no such export")
    return _job(row)


async def claim(
    conn: asyncpg.Connection, job_id: uuid.UUID, lease: uuid.UUID, worker: str
) -> ExportJob | None:
    """Start an attempt under ``lease``; None if the lease moved on or the job ended.

    A Ray retry of a crashed attempt carries the same lease (Ray only retries once the
    previous attempt is gone); a re-launch by the sweeper carries a new one.
    """
    row = await conn.fetchrow(
        f"""update report_exports
            set status = 'running', attempts = attempts + 1, heartbeat_at = now(),
                progress = 0, worker = $3, error = null
            where id = $1 and lease = $2 and status in ('queued', 'running')
              and attempts < {MAX_ATTEMPTS}
            returning {_COLUMNS}""",
        job_id,
        lease,
        worker,
    )
    return _job(row) if row else None


async def heartbeat(
    conn: asyncpg.Connection, job_id: uuid.UUID, lease: uuid.UUID, progress: int
) -> bool:
    """Record progress; False when this attempt lost its lease (stop working)."""
    done = await conn.fetchval(
        """update report_exports set heartbeat_at = now(), progress = greatest(progress, $3)
           where id = $1 and lease = $2 and status = 'running' returning 1""",
        job_id,
        lease,
        progress,
    )
    return done is not None


async def finish(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    lease: uuid.UUID,
    *,
    blob_key: str,
    size_bytes: int,
    row_count: int,
) -> bool:
    done = await conn.fetchval(
        """update report_exports
           set status = 'done', progress = 100, blob_key = $3, size_bytes = $4,
               row_count = $5, finished_at = now(), heartbeat_at = now()
           where id = $1 and lease = $2 and status = 'running' returning 1""",
        job_id,
        lease,
        blob_key,
        size_bytes,
        row_count,
    )
    return done is not None


async def fail(conn: asyncpg.Connection, job_id: uuid.UUID, lease: uuid.UUID, error: str) -> None:
    await conn.execute(
        """update report_exports set status = 'failed', error = $3, finished_at = now()
           where id = $1 and lease = $2 and status in ('queued', 'running')""",
        job_id,
        lease,
        error[:500],
    )


async def claim_stale(
    conn: asyncpg.Connection, stale_after_s: int
) -> list[tuple[uuid.UUID, TenantId, uuid.UUID]]:
    """Jobs whose heartbeat went stale, each with a fresh lease (any tenant: a
    SECURITY DEFINER function that returns ids only)."""
    rows = await conn.fetch(
        "select id, tenant_id, lease from report_claim_stale_exports($1, $2)",
        stale_after_s,
        MAX_ATTEMPTS,
    )
    return [(r["id"], TenantId(r["tenant_id"]), r["lease"]) for r in rows]

"""The export job runner: a Ray task per job, retried when its worker dies, and a sweeper
that re-launches jobs whose heartbeat went stale (a lost task, a lost owner, a failed launch).

The job row is the truth. An attempt claims it under the job's lease, heartbeats its
progress and finishes only while it still holds the lease, so a re-launched job never has two
live writers of its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from opentelemetry.trace import SpanKind

from pocdojo.errors import Unavailable
from pocdojo.observability.jobs import Attempt, JobKind, Outcome, refresh_queue
from pocdojo.observability.tracing import span_from
from pocdojo.reports import jobs, rows
from pocdojo.reports.jobs import ExportFormat, ExportJob
from pocdojo.reports.pdf import write_pdf
from pocdojo.reports.summary import Scope, load_summary
from pocdojo.reports.writers import CONTENT_TYPES, CsvWriter, RowWriter, XlsxWriter
from pocdojo.settings import Settings
from pocdojo.storage.blobs import BlobKey, FileBlobStore, S3BlobStore, open_blob_store
from pocdojo.storage.db import Database
from pocdojo.types import TenantId

log = logging.getLogger("pocdojo.reports")
HEARTBEAT_EVERY_S = 1.0


class LeaseLost(Exception):
    """Another attempt owns the job now: stop without writing anything."""


def export_key(job: ExportJob) -> BlobKey:
    return BlobKey.for_tenant(job.tenant_id, "exports", f"{job.id}.{job.format}")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def _write_rows(db: Database, job: ExportJob, writer: RowWriter, lease: uuid.UUID) -> int:
    written, last_beat = 0, time.monotonic()
    async with db.tenant_tx(job.tenant_id) as conn:
        # The cursor is one statement, so one snapshot for the whole file (the count is only
        # for progress); heartbeats go through another connection.
        total = await rows.count_rows(conn, job.period, job.scope, job.requested_by)
        async for row in rows.stream_rows(conn, job.period, job.scope, job.requested_by):
            writer.write(row)
            written += 1
            if time.monotonic() - last_beat >= HEARTBEAT_EVERY_S:
                last_beat = time.monotonic()
                await _beat(db, job, lease, 95 * written // max(total, 1))
    writer.close()
    return written


async def _beat(db: Database, job: ExportJob, lease: uuid.UUID, progress: int) -> None:
    async with db.tenant_tx(job.tenant_id) as conn:
        if not await jobs.heartbeat(conn, job.id, lease, min(progress, 99)):
            raise LeaseLost(str(job.id))


async def run_export(
    settings: Settings, job_id: uuid.UUID, tenant_id: TenantId, lease: uuid.UUID
) -> str:
    """Run one attempt of an export job; returns the job's status afterwards.

    The attempt runs under a span continuing the trace of the request that created the job
    and is counted in ``pocdojo_render_jobs_total{kind="export"}`` by outcome."""
    blobs = open_blob_store(
        settings.blob_url,
        signing_key=settings.blob_signing_key,
        public_base_url=settings.public_base_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )
    async with Database(settings.database_url, max_size=2, command_timeout=60.0) as db:
        async with db.tenant_tx(tenant_id) as conn:
            job = await jobs.claim(conn, job_id, lease, worker_name())
        if job is None:
            return "not-claimed"
        attempt = Attempt(JobKind.EXPORT)
        with span_from(
            job.traceparent,
            "export run",
            kind=SpanKind.CONSUMER,
            attributes={
                "pocdojo.job_id": str(job.id),
                "pocdojo.attempt": job.attempts,
                "pocdojo.export.format": str(job.format),
            },
        ):
            status = await _attempt(db, blobs, job, lease, attempt)
        attempt.done(_OUTCOMES[status])
        return status


_OUTCOMES = {"done": Outcome.SUCCEEDED, "failed": Outcome.FAILED, "lease-lost": Outcome.RETRIED}


async def _attempt(
    db: Database,
    blobs: FileBlobStore | S3BlobStore,
    job: ExportJob,
    lease: uuid.UUID,
    attempt: Attempt,
) -> str:
    try:
        with tempfile.TemporaryDirectory(prefix="pocdojo-export-") as tmp:
            path = Path(tmp) / f"export.{job.format}"
            row_count = await _produce(db, job, lease, path)
            await _beat(db, job, lease, 96)
            key = export_key(job)
            await blobs.put_file(key, path, CONTENT_TYPES[str(job.format)])
            size = path.stat().st_size
        async with db.tenant_tx(job.tenant_id) as conn:
            done = await jobs.finish(
                conn, job.id, lease, blob_key=key.value, size_bytes=size, row_count=row_count
            )
        return "done" if done else "lease-lost"
    except LeaseLost:
        return "lease-lost"
    except (Unavailable, OSError):
        # Transient: the heartbeat goes stale and the sweeper runs the job again.
        attempt.done(Outcome.RETRIED)
        raise
    except Exception as exc:
        log.exception("export %s failed", job.id)
        async with db.tenant_tx(job.tenant_id) as conn:
            await jobs.fail(conn, job.id, lease, f"export failed: {type(exc).__name__}")
        return "failed"


async def _produce(db: Database, job: ExportJob, lease: uuid.UUID, path: Path) -> int:
    if job.format is ExportFormat.PDF:
        async with db.tenant_tx(job.tenant_id) as conn:
            summary = await load_summary(
                conn, job.tenant_id, job.scope, job.requested_by, job.period
            )
            tenant_name = await conn.fetchval(
                "select name from tenants where id = $1", job.tenant_id
            )
            who = ""
            if job.scope is Scope.ME:
                who = await conn.fetchval(
                    "select display_name from users where id = $1", job.requested_by
                )
        subject = f"Figures of {who}" if job.scope is Scope.ME else "Figures of the whole company"
        await asyncio.to_thread(
            write_pdf, path, summary, tenant_name=str(tenant_name), subject=subject
        )
        return 0
    writer: RowWriter = CsvWriter(path) if job.format is ExportFormat.CSV else XlsxWriter(path)
    return await _write_rows(db, job, writer, lease)


class ExportLauncher(Protocol):
    def launch(self, job_id: uuid.UUID, tenant_id: TenantId, lease: uuid.UUID) -> None: ...


class ExportSweeper:
    """Re-launches jobs whose heartbeat went stale; one per reports-api replica (the claim
    is a row-locking UPDATE, so replicas never launch the same job twice)."""

    def __init__(
        self, db: Database, launcher: ExportLauncher, *, stale_after_s: int, every_s: float
    ) -> None:
        self._db = db
        self._launcher = launcher
        self._stale_after_s = stale_after_s
        self._every_s = every_s

    async def sweep_once(self) -> int:
        async with self._db.global_tx() as conn:
            claimed = await jobs.claim_stale(conn, self._stale_after_s)
        # Every sweep: the export queue gauges follow the jobs table.
        await refresh_queue(self._db, JobKind.EXPORT)
        for job_id, tenant_id, lease in claimed:
            log.info("re-launching stale export %s", job_id)
            self._launcher.launch(job_id, tenant_id, lease)
        return len(claimed)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self.sweep_once()
            except Exception:
                log.exception("export sweep failed; retrying")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ExportSweeper]:
        task = asyncio.get_running_loop().create_task(self._loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

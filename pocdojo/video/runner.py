"""The job runner: turns queued video jobs into films; the job row is the truth.

A runner finds every tenant's unfinished jobs, takes a lease on one (so two replicas never
render the same job), renders the segments that are not done yet, joins them and records
the film. It renews its lease while it works; a runner that stops gives its leases back,
one that dies lets them expire, and either way the next runner resumes the job from the
segments already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Self

from opentelemetry.trace import SpanKind

from pocdojo.observability.jobs import Attempt, JobKind, Outcome, refresh_queue
from pocdojo.observability.tracing import span_from
from pocdojo.settings import Settings
from pocdojo.storage import videos
from pocdojo.storage.blobs import BlobKey, FileBlobStore, S3BlobStore
from pocdojo.storage.db import Database
from pocdojo.storage.videos import SegmentState, VideoJob
from pocdojo.types import TenantId
from pocdojo.video.executors import LocalExecutor, RayExecutor, SegmentExecutor
from pocdojo.video.plan import FilmFormat, RenderSpec
from pocdojo.video.render import BlobConfig, FilmKeys, SegmentResult

log = logging.getLogger("pocdojo.video")
MAX_CONCURRENT_JOBS = 2


def blob_config(settings: Settings) -> BlobConfig:
    return BlobConfig(
        blob_url=settings.blob_url,
        signing_key=settings.blob_signing_key,
        public_base_url=settings.public_base_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )


def render_spec(settings: Settings, film_format: FilmFormat) -> RenderSpec:
    return RenderSpec.for_format(
        film_format,
        scale=settings.video_scale,
        intro_s=settings.video_intro_s,
        poc_s=settings.video_poc_s,
        outro_s=settings.video_outro_s,
    )


def default_executor(settings: Settings) -> SegmentExecutor:
    """Ray tasks when connected to a cluster (Serve replicas are), else a process pool."""
    use_ray = settings.video_executor == "ray"
    if settings.video_executor == "auto":
        import ray

        use_ray = ray.is_initialized()
    if use_ray:
        return RayExecutor(
            settings.video_workers,
            timeout_s=settings.video_segment_timeout_s,
            max_attempts=settings.video_max_attempts,
        )
    return LocalExecutor(settings.video_workers)


def keys_for(job: VideoJob) -> FilmKeys:
    return FilmKeys(str(job.tenant_id), str(job.id))


class VideoRunner:
    """Runs unfinished jobs; an async context manager opened in the app's lifespan."""

    def __init__(
        self,
        db: Database,
        blobs: FileBlobStore | S3BlobStore,
        settings: Settings,
        executor: Callable[[], SegmentExecutor] | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self.owner = f"runner-{uuid.uuid4().hex[:12]}"
        self._executor = executor or (lambda: default_executor(settings))
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._jobs: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def __aenter__(self) -> Self:
        self._loop_task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks = [t for t in (self._loop_task, *self._jobs.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    @property
    def active_jobs(self) -> set[uuid.UUID]:
        return set(self._jobs)

    async def _loop(self) -> None:
        while True:
            try:
                await self._scan()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be down: try again at the next poll
                log.warning("video runner scan failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.video_poll_s)
            self._wake.clear()

    async def _scan(self) -> None:
        # Every scan, busy or not: the queue gauges follow the jobs table.
        await refresh_queue(self.db, JobKind.VIDEO)
        if len(self._jobs) >= MAX_CONCURRENT_JOBS:
            return
        async with self.db.global_tx() as conn:
            candidates = await videos.unfinished(conn)
        for tenant_id, job_id in candidates:
            if job_id in self._jobs or len(self._jobs) >= MAX_CONCURRENT_JOBS:
                continue
            async with self.db.tenant_tx(tenant_id) as conn:
                job = await videos.claim(conn, job_id, self.owner, self.settings.video_lease_s)
            if job is None:
                continue  # another runner holds it
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._jobs[job_id] = task
            task.add_done_callback(functools.partial(self._forget, job_id))

    def _forget(self, job_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._jobs.pop(job_id, None)

    async def _renew(self, job: VideoJob) -> None:
        while True:
            await asyncio.sleep(self.settings.video_lease_s / 3)
            try:
                async with self.db.tenant_tx(job.tenant_id) as conn:
                    await videos.claim(conn, job.id, self.owner, self.settings.video_lease_s)
            except Exception:
                log.warning("could not renew the lease of video job %s", job.id, exc_info=True)

    async def _run(self, job: VideoJob) -> None:
        renew = asyncio.get_running_loop().create_task(self._renew(job))
        attempt = Attempt(JobKind.VIDEO)
        try:
            # The attempt continues the trace of the request that queued the job; the
            # segment tasks continue it in their own processes.
            with span_from(
                job.traceparent,
                "video render",
                kind=SpanKind.CONSUMER,
                attributes={"pocdojo.job_id": str(job.id), "pocdojo.attempt": job.attempts + 1},
            ):
                await self.render(job)
            attempt.done(Outcome.SUCCEEDED)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                async with self.db.tenant_tx(job.tenant_id) as conn:
                    await videos.release(conn, job.id, self.owner)
            raise
        except Exception as exc:
            log.exception("video job %s failed an attempt", job.id)
            status: str | None = "queued"
            with contextlib.suppress(Exception):
                async with self.db.tenant_tx(job.tenant_id) as conn:
                    status = await videos.fail_attempt(
                        conn, job.id, self.owner, repr(exc), self.settings.video_max_attempts
                    )
            attempt.done(Outcome.FAILED if status == "failed" else Outcome.RETRIED)
            self._wake.set()
        finally:
            renew.cancel()

    async def render(self, job: VideoJob) -> None:
        """Render what is missing of ``job`` and record the film."""
        keys = keys_for(job)
        plan = job.plan
        total = len(plan.segments)
        todo = [
            i
            for i, state in enumerate(job.segments)
            if not state.done or await self.blobs.stat(keys.segment(i)) is None
        ]
        done = total - len(todo)
        tenant = TenantId(job.tenant_id)

        async def on_done(result: SegmentResult, attempts: int) -> None:
            nonlocal done
            done += 1
            state = SegmentState(True, attempts, result.frames)
            async with self.db.tenant_tx(tenant) as conn:
                kept = await videos.segment_done(
                    conn,
                    job.id,
                    self.owner,
                    result.index,
                    state,
                    list(result.notes),
                    min(99, done * 100 // total),
                )
            if not kept:
                raise RuntimeError("lost the lease on this job")

        async def on_retry(index: int, attempt: int, reason: str) -> None:
            log.warning("video job %s segment %s attempt %s: %s", job.id, index, attempt, reason)
            async with self.db.tenant_tx(tenant) as conn:
                await videos.record_attempts(conn, job.id, index, attempt)

        executor = self._executor()
        config = blob_config(self.settings)
        try:
            if todo:
                await executor.render(plan, todo, config, keys, on_done, on_retry)
            film = await executor.join(plan, config, keys)
        finally:
            if isinstance(executor, LocalExecutor):
                executor.close()
        thumbnail: BlobKey | None = keys.thumbnail
        if thumbnail is not None and await self.blobs.stat(thumbnail) is None:
            thumbnail = None
        async with self.db.tenant_tx(tenant) as conn:
            await videos.finish(
                conn,
                job.id,
                self.owner,
                output_key=keys.film.value,
                thumbnail_key=thumbnail.value if thumbnail else None,
                frames=film.frames,
                duration_s=film.duration_s,
                size_bytes=film.size_bytes,
                notes=list(film.notes),
            )
        # The segments were only a means: the film and thumbnail stay.
        for key in [keys.soundtrack, *(keys.segment(i) for i in range(total))]:
            with contextlib.suppress(Exception):
                await self.blobs.delete(key)

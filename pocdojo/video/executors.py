"""Where segments are rendered: Ray tasks (the service), or a local process pool (the CLI).

The Ray executor keeps at most ``workers`` segments in flight. Ray itself retries a task
whose worker died (``max_retries``); a segment that runs longer than ``timeout_s`` is
cancelled (its worker is killed) and submitted again, so one stuck segment cannot stall
the render; a segment that failed ``max_attempts`` times fails the render attempt.

Every Ray task gets the caller's W3C ``traceparent`` and runs under a span continuing it
(`_in_span`), so a segment render is part of the trace of the request that queued the film.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from opentelemetry.trace import SpanKind

from pocdojo.observability.process import TASK_SERVICE, observe_process
from pocdojo.observability.tracing import current_traceparent, flush_spans, span_from
from pocdojo.video.plan import FilmPlan
from pocdojo.video.render import (
    BlobConfig,
    FilmKeys,
    FilmResult,
    SegmentResult,
    join_film,
    render_segment,
    render_soundtrack,
)

OnDone = Callable[[SegmentResult, int], Awaitable[None]]
OnRetry = Callable[[int, int, str], Awaitable[None]]
RAY_TASK_RETRIES = 3
T = TypeVar("T")


class SegmentFailed(RuntimeError):
    """A segment failed every attempt."""


class SegmentExecutor(Protocol):
    async def render(
        self,
        plan: FilmPlan,
        indexes: list[int],
        blobs: BlobConfig,
        keys: FilmKeys,
        on_done: OnDone,
        on_retry: OnRetry | None = None,
    ) -> None: ...

    async def join(self, plan: FilmPlan, blobs: BlobConfig, keys: FilmKeys) -> FilmResult: ...


async def _noop_retry(index: int, attempt: int, reason: str) -> None:
    return None


def _in_span(
    traceparent: str | None, name: str, attributes: dict[str, str | int], work: Callable[[], T]
) -> T:
    """Run ``work`` in a Ray worker under a span continuing ``traceparent``; spans are
    flushed before the task returns (a timed-out segment's worker is killed)."""
    observe_process(TASK_SERVICE)  # JSON logs and tracing of this worker process
    try:
        with span_from(traceparent, name, kind=SpanKind.CONSUMER, attributes=attributes):
            return work()
    finally:
        flush_spans()


def render_segment_task(
    traceparent: str | None, plan: FilmPlan, index: int, blobs: BlobConfig, keys: FilmKeys
) -> SegmentResult:
    """Ray task: `render_segment` in the trace ``traceparent`` names."""
    return _in_span(
        traceparent,
        "video segment render",
        {"pocdojo.segment": index, "pocdojo.job_id": keys.render_id},
        lambda: render_segment(plan, index, blobs, keys),
    )


def join_film_task(
    traceparent: str | None,
    plan: FilmPlan,
    blobs: BlobConfig,
    keys: FilmKeys,
    notes: tuple[str, ...] | None,
) -> FilmResult:
    """Ray task: `join_film` in the trace ``traceparent`` names."""
    return _in_span(
        traceparent,
        "video join",
        {"pocdojo.job_id": keys.render_id},
        lambda: join_film(plan, blobs, keys, notes),
    )


def render_soundtrack_task(
    traceparent: str | None, plan: FilmPlan, blobs: BlobConfig, keys: FilmKeys
) -> tuple[str, ...]:
    """Ray task: `render_soundtrack` in the trace ``traceparent`` names."""
    return _in_span(
        traceparent,
        "video soundtrack render",
        {"pocdojo.job_id": keys.render_id},
        lambda: render_soundtrack(plan, blobs, keys),
    )


@functools.cache
def _ray_tasks() -> tuple[Any, Any, Any]:
    import ray

    # Ray retries a task whose worker process died; exceptions raised by our code are
    # not retried by Ray (we decide), hence retry_exceptions=False.
    options: dict[str, Any] = {
        "num_cpus": 1,
        "max_retries": RAY_TASK_RETRIES,
        "retry_exceptions": False,
    }
    render = ray.remote(**options)(render_segment_task)
    join = ray.remote(**options)(join_film_task)
    sound = ray.remote(**options)(render_soundtrack_task)
    return render, join, sound


@dataclass
class _Running:
    index: int
    started: float


class RayExecutor:
    """Segments as Ray tasks on the cluster this process is connected to."""

    def __init__(
        self,
        workers: int = 2,
        *,
        timeout_s: float = 120.0,
        max_attempts: int = 3,
        join_timeout_s: float = 300.0,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        """``runtime_env``: Ray's runtime environment for the tasks (e.g. extra environment
        variables for their processes); by default they inherit the cluster's."""
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.join_timeout_s = join_timeout_s
        self._options: dict[str, Any] = {"runtime_env": runtime_env} if runtime_env else {}
        self._sound: Any = None

    def _tasks(self) -> tuple[Any, Any, Any]:
        tasks = _ray_tasks()
        if not self._options:
            return tasks
        render, join, sound = (task.options(**self._options) for task in tasks)
        return render, join, sound

    async def render(
        self,
        plan: FilmPlan,
        indexes: list[int],
        blobs: BlobConfig,
        keys: FilmKeys,
        on_done: OnDone,
        on_retry: OnRetry | None = None,
    ) -> None:
        import ray

        retry = on_retry or _noop_retry
        render_task, _, sound_task = self._tasks()
        traceparent = current_traceparent()
        plan_ref = ray.put(plan)
        # The soundtrack is encoded beside the segments; the join then only remuxes.
        self._sound = sound_task.remote(traceparent, plan_ref, blobs, keys)
        queue = list(indexes)
        attempts: dict[int, int] = dict.fromkeys(indexes, 0)
        running: dict[Any, _Running] = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    index = queue.pop(0)
                    attempts[index] += 1
                    ref = render_task.remote(traceparent, plan_ref, index, blobs, keys)
                    running[ref] = _Running(index, time.monotonic())
                ready, _ = await asyncio.to_thread(
                    ray.wait, list(running), num_returns=1, timeout=0.5
                )
                for ref in ready:
                    item = running.pop(ref)
                    try:
                        result: SegmentResult = await asyncio.to_thread(ray.get, ref)
                    except Exception as exc:  # a task error, or a worker lost for good
                        await self._again(item.index, attempts, queue, retry, repr(exc))
                        continue
                    await on_done(result, attempts[item.index])
                now = time.monotonic()
                for ref, item in list(running.items()):
                    if now - item.started > self.timeout_s:
                        # Stuck: kill its worker and render the segment again.
                        ray.cancel(ref, force=True)
                        del running[ref]
                        reason = f"timed out after {self.timeout_s:g}s"
                        await self._again(item.index, attempts, queue, retry, reason)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    async def _again(
        self,
        index: int,
        attempts: dict[int, int],
        queue: list[int],
        retry: OnRetry,
        reason: str,
    ) -> None:
        if attempts[index] >= self.max_attempts:
            raise SegmentFailed(f"segment {index} failed {attempts[index]} times: {reason}")
        await retry(index, attempts[index], reason)
        queue.insert(0, index)

    async def join(self, plan: FilmPlan, blobs: BlobConfig, keys: FilmKeys) -> FilmResult:
        import ray

        _, join_task, _ = self._tasks()
        notes: tuple[str, ...] | None = None
        if self._sound is not None:
            try:
                notes = await asyncio.to_thread(ray.get, self._sound)
            except Exception:  # the join renders the soundtrack itself
                notes = None
        ref = join_task.remote(current_traceparent(), plan, blobs, keys, notes)
        try:
            result: FilmResult = await asyncio.wait_for(
                asyncio.to_thread(ray.get, ref), timeout=self.join_timeout_s
            )
        except TimeoutError:
            ray.cancel(ref, force=True)
            raise
        return result


class LocalExecutor:
    """Segments in a local process pool (``pocdojo video render`` without a cluster);
    with one worker, in a thread of this process (no process start-up)."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, workers)
        self._pool: concurrent.futures.Executor | None = None
        self._sound: asyncio.Future[tuple[str, ...]] | None = None

    def _executor(self) -> concurrent.futures.Executor:
        if self._pool is None and self.workers == 1:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="render")
        if self._pool is None:
            # spawn: forking a process that runs threads (asyncio, drivers) is unsafe.
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    async def render(
        self,
        plan: FilmPlan,
        indexes: list[int],
        blobs: BlobConfig,
        keys: FilmKeys,
        on_done: OnDone,
        on_retry: OnRetry | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        pool = self._executor()
        self._sound = loop.run_in_executor(pool, render_soundtrack, plan, blobs, keys)
        futures = [
            loop.run_in_executor(pool, render_segment, plan, index, blobs, keys)
            for index in indexes
        ]
        for next_done in asyncio.as_completed(futures):
            await on_done(await next_done, 1)

    async def join(self, plan: FilmPlan, blobs: BlobConfig, keys: FilmKeys) -> FilmResult:
        loop = asyncio.get_running_loop()
        notes = await self._sound if self._sound is not None else None
        return await loop.run_in_executor(self._executor(), join_film, plan, blobs, keys, notes)

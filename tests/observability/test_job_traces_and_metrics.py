"""Render and export jobs: the Ray tasks that do the work continue the trace of the request
that created the job, and the render metrics (queue depth and age per kind, attempt outcomes
and durations) show in ``/metrics``.

The video runner runs in this process (its spans reach the in-memory exporter, its metrics
the test server's ``/metrics``); the segment tasks and the export task run in Ray workers
whose runtime environment exports spans to a receiver on loopback (`Collector`) and writes
metrics to a directory that `pocdojo metrics serve` reports, as on a Ray pod.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from pocdojo.api.reports_app import create_reports_app
from pocdojo.observability.jobs import JobKind, queue_stats, refresh_queue
from pocdojo.observability.process import TASK_SERVICE
from pocdojo.reports import jobs
from pocdojo.reports.jobs import ExportFormat
from pocdojo.reports.period import Period
from pocdojo.reports.runner import ExportSweeper
from pocdojo.reports.summary import Scope
from pocdojo.reports.tasks import RayExportLauncher
from pocdojo.settings import Settings
from pocdojo.storage.blobs import open_blob_store
from pocdojo.storage.db import Database
from pocdojo.video.executors import RayExecutor
from pocdojo.video.runner import VideoRunner
from tests.conftest import TenantFixture, free_port, settings_env, uvicorn_thread, wait_serving
from tests.observability.collector import Collector, ReceivedSpan
from tests.reports.conftest import wait_for_export
from tests.video.conftest import make_year, wait_for

pytestmark = pytest.mark.ray

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def eventually(check: Callable[[], Any], within_s: float = 60.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.2)


async def eventually_async(check: Callable[[], Any], within_s: float = 60.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.3)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over processes (``pid``) and any label not given."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def present(samples: Samples, name: str, **labels: str) -> bool:
    return any(
        sample == name and set(labels.items()) <= set(sample_labels)
        for sample, sample_labels in samples
    )


async def scrape(client: httpx.AsyncClient, url: str = "/metrics") -> Samples:
    response = await client.get(url)
    assert response.status_code == 200
    return parse(response.text)


def trace_of(response: httpx.Response) -> str:
    return response.headers["traceparent"].split("-")[1]


def local_spans(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and format(s.context.trace_id, "032x") == trace_id
    ]


def remote_spans(collector: Collector, name: str, trace_id: str) -> list[ReceivedSpan]:
    return [s for s in collector.named(name) if s.trace_id == trace_id]


@pytest.fixture(scope="module")
def task_metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The metrics directory of this "pod": every task process below writes there."""
    return tmp_path_factory.mktemp("task-metrics")


@pytest.fixture(scope="module")
def task_env(otlp_collector: Collector, task_metrics_dir: Path) -> dict[str, Any]:
    """Ray runtime environment of the tasks: spans to our receiver, metrics to our dir."""
    return {
        "env_vars": {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "POCDOJO_METRICS_DIR": str(task_metrics_dir),
        }
    }


@pytest.fixture(scope="module")
def pod_metrics(settings: Settings, task_metrics_dir: Path) -> Iterator[str]:
    """`pocdojo metrics serve` over the tasks' directory: the app-metrics sidecar."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "pocdojo"), "metrics", "serve", "--port", str(port)],
        env=settings_env(settings, POCDOJO_METRICS_DIR=str(task_metrics_dir)),
    )
    url = f"http://127.0.0.1:{port}/metrics"
    wait_serving(url, process, "pocdojo metrics serve", within_s=60)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def reports_api(
    settings: Settings, ray_cluster: Settings, task_env: dict[str, Any], server: str
) -> Iterator[str]:
    """A reports-api replica whose export tasks run in the runtime environment above."""
    launcher = RayExportLauncher(settings, runtime_env=task_env)
    port = free_port()
    with uvicorn_thread(
        create_reports_app(settings, launcher=launcher), port, "reports-api", within_s=30
    ):
        yield f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(loop_scope="session")
async def app_db(settings: Settings, migrated: None) -> AsyncIterator[Database]:
    async with Database(settings.database_url, max_size=4) as db:
        yield db


async def test_video_render_tasks_continue_the_request_trace_and_are_counted(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    settings: Settings,
    ray_cluster: Settings,
    app_db: Database,
    spans: InMemorySpanExporter,
    otlp_collector: Collector,
    task_env: dict[str, Any],
) -> None:
    user = tenant.member
    await make_year(client, user, 1, images=0)
    before = await scrape(client)
    created = await client.post("/v1/videos", json={"year": 2026}, headers=user.headers)
    assert created.status_code == 202, created.text
    trace_id = trace_of(created)

    # Queued and not yet started (no runner yet): what each runner scan measures.
    stats = await refresh_queue(app_db, JobKind.VIDEO)
    assert stats is not None
    assert stats.depth >= 1
    queued = await scrape(client)
    assert total(queued, "pocdojo_render_queue_depth_jobs", kind="video") >= 1
    assert 0 <= total(queued, "pocdojo_render_queue_oldest_age_seconds", kind="video") < 3600

    blobs = open_blob_store(
        settings.blob_url,
        signing_key=settings.blob_signing_key,
        public_base_url=settings.public_base_url,
    )
    executor = lambda: RayExecutor(2, timeout_s=120, runtime_env=task_env)  # noqa: E731
    async with VideoRunner(app_db, blobs, settings, executor=executor):
        done = await wait_for(client, created.json()["id"], user, timeout_s=240)
        assert done["status"] == "done", done

        # The runner's scans keep the gauge equal to the jobs table.
        async def depth_matches() -> Samples | None:
            async with app_db.global_tx() as conn:
                truth = (await queue_stats(conn))[JobKind.VIDEO].depth
            found = await scrape(client)
            matches = total(found, "pocdojo_render_queue_depth_jobs", kind="video") == truth
            return found if matches else None

        after = await eventually_async(depth_matches)

    # Outcome and duration of the attempt (this process runs the runner).
    succeeded = total(after, "pocdojo_render_jobs_total", kind="video", outcome="succeeded")
    assert (
        succeeded - total(before, "pocdojo_render_jobs_total", kind="video", outcome="succeeded")
        >= 1
    )
    count = "pocdojo_render_job_duration_seconds_count"
    assert total(after, count, kind="video") - total(before, count, kind="video") >= 1
    spent = total(after, "pocdojo_render_job_duration_seconds_sum", kind="video") - total(
        before, "pocdojo_render_job_duration_seconds_sum", kind="video"
    )
    assert 0 < spent < 240

    # Trace: request > ... > "video render" (runner, here) > segment tasks (Ray workers).
    request = local_spans(spans, trace_id)
    (render,) = [s for s in request if s.name == "video render"]
    assert render.parent is not None
    assert render.parent.span_id in {s.context.span_id for s in request if s.context}
    render_id = format(render.context.span_id, "016x")
    segments = await eventually(
        lambda: (
            len(remote_spans(otlp_collector, "video segment render", trace_id)) >= 3
            and remote_spans(otlp_collector, "video segment render", trace_id)
        )
    )
    assert {s.service for s in segments} == {TASK_SERVICE}
    assert {s.parent_span_id for s in segments} == {render_id}
    assert any(s.attributes["pocdojo.segment"].strip() == "int_value: 0" for s in segments)
    (join,) = await eventually(lambda: remote_spans(otlp_collector, "video join", trace_id))
    assert join.parent_span_id == render_id


async def test_export_task_continues_the_request_trace_and_is_counted(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    settings: Settings,
    app_db: Database,
    spans: InMemorySpanExporter,
    otlp_collector: Collector,
    reports_api: str,
    pod_metrics: str,
) -> None:
    for name in ("exported one", "exported two"):
        created = await client.post(
            "/v1/pocs", json={"name": name, "languages": ["go"]}, headers=tenant.member.headers
        )
        assert created.status_code == 201
    async with httpx.AsyncClient(base_url=reports_api, timeout=15) as replica:
        response = await replica.post(
            "/v1/reports/exports", json={"format": "csv"}, headers=tenant.member.headers
        )
    assert response.status_code == 202, response.text
    trace_id = trace_of(response)
    job = await wait_for_export(client, response.json()["id"], tenant.member.headers)
    assert job["status"] == "done", job
    assert job["row_count"] == 2

    # The task's span: a child of a span of the creating request, in the task's process.
    (run,) = await eventually(lambda: remote_spans(otlp_collector, "export run", trace_id))
    assert run.service == TASK_SERVICE
    request_ids = {format(s.context.span_id, "016x") for s in local_spans(spans, trace_id)}
    assert run.parent_span_id in request_ids
    assert run.attributes["pocdojo.job_id"] == f'string_value: "{job["id"]}"\n'
    # ... and the task's database spans under it.
    db_spans = [s for s in otlp_collector.spans if s.trace_id == trace_id and s.name != run.name]
    assert any(s.parent_span_id == run.span_id for s in db_spans)

    # The attempt's outcome and duration, from the task's process, through the pod's
    # metrics endpoint.
    async with httpx.AsyncClient(timeout=10) as http:
        pod = await scrape(http, pod_metrics)
    assert total(pod, "pocdojo_render_jobs_total", kind="export", outcome="succeeded") >= 1
    assert total(pod, "pocdojo_render_job_duration_seconds_count", kind="export") >= 1
    assert 0 < total(pod, "pocdojo_render_job_duration_seconds_sum", kind="export") < 180

    # Queue figures: a job nobody launched waits in the queue; the sweep measures it.
    async with app_db.tenant_tx(tenant.id) as conn:
        waiting = await jobs.insert_job(
            conn,
            tenant.id,
            tenant.member.user_id,
            Scope.ME,
            ExportFormat.CSV,
            Period.parse(None, None),
        )
    try:
        await asyncio.sleep(1.1)
        sweeper = ExportSweeper(
            app_db, RayExportLauncher(settings), stale_after_s=3600, every_s=3600
        )
        assert await sweeper.sweep_once() == 0  # not stale: nothing re-launched
        queued = await scrape(client)
        assert total(queued, "pocdojo_render_queue_depth_jobs", kind="export") >= 1
        assert 1 <= total(queued, "pocdojo_render_queue_oldest_age_seconds", kind="export") < 3600
    finally:
        async with app_db.tenant_tx(tenant.id) as conn:
            await jobs.fail(conn, waiting.id, waiting.lease, "test: never launched")


async def test_queue_figures_cover_both_kinds_and_every_tenant(
    app_db: Database, owner_db: Database, make_tenant: Any
) -> None:
    """The runner's connection sees no tenant's rows (RLS), yet the figures count every
    tenant's queued jobs: what the SECURITY DEFINER function is for."""
    tenants = [await make_tenant(), await make_tenant()]
    async with app_db.global_tx() as conn:
        before = await queue_stats(conn)
        # Row-level security: no tenant in this transaction, no job rows.
        assert await conn.fetchval("select count(*) from report_exports") == 0
    assert set(before) == {JobKind.VIDEO, JobKind.EXPORT}
    created = []
    for t in tenants:
        async with app_db.tenant_tx(t.id) as conn:
            created.append(
                await jobs.insert_job(
                    conn,
                    t.id,
                    t.member.user_id,
                    Scope.ME,
                    ExportFormat.CSV,
                    Period.parse(None, None),
                )
            )
    try:
        async with app_db.global_tx() as conn:
            after = await queue_stats(conn)
        # Other tests' jobs may come and go meanwhile; ours are two more queued exports.
        assert after[JobKind.EXPORT].depth >= 2
        assert after[JobKind.EXPORT].oldest_age_s >= 0
        assert after[JobKind.VIDEO].depth >= 0
    finally:
        for t, job in zip(tenants, created, strict=True):
            async with app_db.tenant_tx(t.id) as conn:
                await jobs.fail(conn, job.id, job.lease, "test: never launched")

"""A dojo join is one trace from the gateway into the DojoSession actor, and the dojo
metrics of the actor's own process are scrapeable through any pocdojo ``/metrics`` of the
node (multiprocess files under ``POCDOJO_METRICS_DIR``).

The actor runs in a Ray worker process: it exports its spans over OTLP/HTTP to a receiver
on loopback (`Collector`), and writes its metrics to a directory that a real poc-api
process (uvicorn, started here) scrapes, as a Serve replica on the same node would.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from pocdojo.actors.dojo_session import NAMESPACE, DojoSessionRemote, actor_name
from pocdojo.settings import Settings
from tests.conftest import TenantFixture, free_port, settings_env, wait_serving
from tests.dojos.ywsclient import YClient
from tests.observability.collector import Collector

pytestmark = pytest.mark.ray


async def eventually(check: Callable[[], Any], within_s: float = 30.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("node-metrics")


@pytest.fixture(scope="module")
def node_scraper(settings: Settings, metrics_dir: Path, migrated: None) -> Iterator[str]:
    """A poc-api process of this "node" (uvicorn), sharing the actors' metrics directory."""
    port = free_port()
    env = settings_env(settings, POCDOJO_METRICS_DIR=str(metrics_dir))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "pocdojo.api.poc_app:create_poc_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_serving(f"{base}/healthz", process, "the scraping poc-api process", within_s=60)
    yield base
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def node_cli(settings: Settings, metrics_dir: Path) -> Iterator[str]:
    """`pocdojo metrics serve` over the same directory (pods without a poc-api replica)."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "pocdojo"), "metrics", "serve", "--port", str(port)],
        env=settings_env(settings, POCDOJO_METRICS_DIR=str(metrics_dir)),
    )
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def scrape_or_none(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        return scrape(base)
    except httpx.HTTPError:
        return None


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """Sum of a metric over processes (``pid``) and any label not given."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def present(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> bool:
    return any(sample == name for sample, _ in samples)


async def test_dojo_join_is_one_trace_and_dojo_metrics_are_scrapeable(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    settings: Settings,
    ray_cluster: Settings,
    actor_dojo_gateway: str,
    spans: InMemorySpanExporter,
    otlp_collector: Collector,
    metrics_dir: Path,
    node_scraper: str,
    node_cli: str,
    server: str,
) -> None:
    created = await client.post(
        "/v1/dojos",
        json={"title": "traced", "language": "python", "files": {"main.py": "x = 1\n"}},
        headers=tenant.member.headers,
    )
    assert created.status_code == 201, created.text
    dojo_id = created.json()["id"]
    # The session actor as the gateway would create it, in a worker whose environment
    # exports spans to our receiver and writes metrics to this node's directory.
    actor = DojoSessionRemote.options(
        name=actor_name(tenant.id, uuid.UUID(dojo_id)),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        runtime_env={
            "env_vars": {
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_collector.endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "POCDOJO_METRICS_DIR": str(metrics_dir),
            }
        },
    ).remote(settings.model_dump_json(), str(tenant.id), dojo_id)

    # Sessions as Ray actors: the join crosses a process (hosted sessions join in-process).
    url = f"{actor_dojo_gateway}/v1/dojos/{dojo_id}/sync?token={tenant.member.token}"
    peer = await YClient(url).connect()
    try:
        first_seq = ray.get(actor.stats.remote())["last_seq"]
        peer.edit("main.py", 0, "# traced\n")
        await eventually(lambda: ray.get(actor.stats.remote())["last_seq"] > first_seq)
        # While connected: the gateway (this process) counts the client.
        local = scrape(server)
        assert total(local, "pocdojo_dojo_clients_connected", channel="sync") >= 1
        # and watches its event loop (ten ticks a second)
        assert total(local, "pocdojo_event_loop_lag_seconds_count", service="dojo-gateway") >= 1
        node = await eventually(
            lambda: (
                (found := scrape(node_scraper))
                and total(found, "pocdojo_dojo_update_log_flush_duration_seconds_count") >= 1
                and found
            )
        )
    finally:
        await peer.close()

    # Traces: gateway connection span > join span > the actor's join span (other process).
    gateway_join = await eventually(
        lambda: [s for s in spans.get_finished_spans() if s.name == "dojo join"]
    )
    connection = await eventually(
        lambda: [s for s in spans.get_finished_spans() if s.name == "dojo sync connection"]
    )
    (join,) = gateway_join
    (conn_span,) = connection
    assert join.parent is not None
    assert join.parent.span_id == conn_span.context.span_id
    trace_id = format(join.context.trace_id, "032x")
    actor_spans = await eventually(lambda: otlp_collector.named("dojo session join"))
    (actor_join,) = [s for s in actor_spans if s.trace_id == trace_id]
    assert actor_join.service == "dojo-session"
    assert actor_join.parent_span_id == format(join.context.span_id, "016x")

    # Metrics of the actor's process, through the node's /metrics.
    assert total(node, "pocdojo_dojos_live") >= 1
    assert total(node, "pocdojo_dojo_updates_total", outcome="applied") >= 1
    assert total(node, "pocdojo_dojo_update_log_flush_duration_seconds_count") >= 1
    assert 0 < total(node, "pocdojo_dojo_update_log_flush_duration_seconds_sum") < 30
    assert present(node, "pocdojo_dojo_update_log_backlog_updates")
    assert 0 <= total(node, "pocdojo_dojo_update_log_oldest_unflushed_age_seconds") < 30
    # Pools of the node: the actor's (2) plus the scraping poc-api's own.
    assert total(node, "pocdojo_db_pool_max_connections") >= 2 + settings.db_pool_max
    assert total(node, "pocdojo_db_pool_connections", state="in_use") >= 0
    assert present(node, "pocdojo_http_requests_total")

    # A crashed actor is restarted by Ray: the restart counter moves, the dead process's
    # gauges disappear, the live-dojo count does not double.
    ray.kill(actor, no_restart=False)
    again = await YClient(url).connect()
    try:
        await eventually(
            lambda: total(scrape(node_scraper), "pocdojo_dojo_actor_restarts_total") >= 1
        )
        after = scrape(node_scraper)
        assert total(after, "pocdojo_dojos_live") == 1
        assert total(after, "pocdojo_dojo_updates_total", outcome="applied") >= 1
    finally:
        await again.close()

    # The per-node endpoint for pods without a poc-api replica reports the same.
    from_cli = await eventually(lambda: scrape_or_none(node_cli))
    assert total(from_cli, "pocdojo_dojos_live") == 1
    assert total(from_cli, "pocdojo_dojo_actor_restarts_total") >= 1


async def test_hosted_dojo_join_is_one_trace(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    dojo_gateway: str,
    spans: InMemorySpanExporter,
) -> None:
    """Sessions hosted by the gateway: connection, join and the session's join span are
    one trace, each the parent of the next."""
    created = await client.post(
        "/v1/dojos", json={"title": "hosted", "language": "python"}, headers=tenant.member.headers
    )
    assert created.status_code == 201, created.text
    url = f"{dojo_gateway}/v1/dojos/{created.json()['id']}/sync?token={tenant.member.token}"
    peer = await YClient(url).connect()
    await peer.close()

    def named(name: str) -> list[Any]:
        return [s for s in spans.get_finished_spans() if s.name == name]

    (session_join,) = await eventually(lambda: named("dojo session join"))
    (join,) = await eventually(lambda: named("dojo join"))
    (connection,) = await eventually(lambda: named("dojo sync connection"))
    assert session_join.context.trace_id == join.context.trace_id == connection.context.trace_id
    assert session_join.parent is not None
    assert session_join.parent.span_id == join.context.span_id
    assert join.parent is not None
    assert join.parent.span_id == connection.context.span_id

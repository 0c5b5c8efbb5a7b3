"""End to end through the real Ray Serve HTTP ingress (HAProxy), on a cluster of its own.

The cluster uses shifted ports and its own temp dir, so it runs beside a developer's
`pocdojo up` without touching it; it is stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from pocdojo import local_cluster
from pocdojo.settings import Settings
from tests.conftest import TenantFixture, isolated_cluster_settings

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def serve_cluster(settings: Settings, migrated: None) -> Iterator[Settings]:
    cluster = isolated_cluster_settings(settings, offset=200)
    base = cluster.public_base_url
    config = Path(__file__).resolve().parents[2] / "cluster/kuberay/serve-config.yaml"
    local_cluster.start_ray(cluster)
    try:
        apps = local_cluster.deploy(cluster, config)
        local_cluster.wait_until_running(cluster, apps, timeout_s=240)
        local_cluster.wait_for_http(f"{base}/healthz", timeout_s=60)
        yield cluster
    finally:
        local_cluster.shutdown_serve(cluster)
        local_cluster.stop_ray(cluster)


@pytest.fixture(scope="module")
def serve_url(serve_cluster: Settings) -> str:
    return serve_cluster.public_base_url


def replica_processes(cluster: Settings) -> dict[str, psutil.Process]:
    """The Serve replicas of this cluster (children of its raylet), by deployment name."""
    assert cluster.ray_temp_dir is not None
    raylets = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "raylet" and cluster.ray_temp_dir in " ".join(p.info["cmdline"] or [])
    ]
    assert len(raylets) == 1, raylets
    replicas = {}
    for child in raylets[0].children():
        title = " ".join(child.cmdline())
        if title.startswith("ray::ServeReplica:"):
            replicas[title.split(":")[-1].strip()] = child
    return replicas


def test_interactive_replicas_keep_the_default_priority(serve_cluster: Settings) -> None:
    """Ray starts workers at niceness 15; the dojo gateway and search replicas ask for 0 in
    the Serve config (every thread of the process), the others (video jobs and
    their render tasks, the indexer) keep Ray's value."""
    replicas = replica_processes(serve_cluster)
    assert {"DojoGateway", "SearchApi", "VideoApi", "SearchIndexer"} <= replicas.keys(), replicas
    for name in ("DojoGateway", "SearchApi"):
        threads = [t.id for t in replicas[name].threads()]
        assert len(threads) > 1
        assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in threads} == {0}, name
    for name in ("VideoApi", "SearchIndexer"):
        assert os.getpriority(os.PRIO_PROCESS, replicas[name].pid) == 15, name


async def test_create_and_find_a_poc_through_serve(
    serve_url: str, server: str, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    async with httpx.AsyncClient(base_url=serve_url, timeout=30) as client:
        assert (await client.get("/readyz")).status_code == 200
        created = await client.post(
            "/v1/pocs",
            json={"name": "Integração via Serve", "languages": ["kotlin"], "tags": ["e2e"]},
            headers=tenant.member.headers,
        )
        assert created.status_code == 201, created.text
        poc_id = created.json()["id"]
        got = await client.get(f"/v1/pocs/{poc_id}", headers=tenant.member.headers)
        assert got.json()["name"] == "Integração via Serve"
        listed = await client.get("/v1/pocs", params={"tag": "e2e"}, headers=tenant.member.headers)
        assert [p["id"] for p in listed.json()["items"]] == [poc_id]
        foreign = await client.get(f"/v1/pocs/{poc_id}", headers=other_tenant.admin.headers)
        assert foreign.status_code == 404
        assert foreign.headers["content-type"] == "application/problem+json"
        token = await client.post(
            "/auth/token",
            data={"grant_type": "password", "username": tenant.member.email, "password": "x"},
        )
        assert token.status_code == 400  # the identity deployment answers, wrong password
        metrics = await client.get("/metrics")
        assert 'route="/v1/pocs"' in metrics.text
        # The outbox-relay and search-indexer deployments carry the PoC into search-api.
        for _ in range(300):
            found = await client.get(
                "/v1/search", params={"q": "integracao serve"}, headers=tenant.member.headers
            )
            assert found.status_code == 200, found.text
            if [h["id"] for h in found.json()["hits"]] == [poc_id]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the PoC never became searchable through Serve")

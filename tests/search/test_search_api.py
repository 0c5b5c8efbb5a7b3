"""Search through the HTTP API, fed by the real outbox relay and indexer processes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.conftest import TenantFixture, Worker


async def wait_searchable(
    client: httpx.AsyncClient, who: Any, poc_id: str, *, within_s: float = 30.0, **params: Any
) -> float:
    """Seconds until ``poc_id`` is a hit of the query."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        response = await client.get("/v1/search", params=params, headers=who.headers)
        assert response.status_code == 200, response.text
        if poc_id in {h["id"] for h in response.json()["hits"]}:
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"{poc_id} not searchable after {within_s}s")


async def create(client: httpx.AsyncClient, who: Any, **body: Any) -> dict[str, Any]:
    body.setdefault("languages", ["python"])
    response = await client.post("/v1/pocs", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    data["etag"] = response.headers["etag"]
    return data


async def test_write_is_searchable_quickly_and_follows_updates(
    client: httpx.AsyncClient, tenant: TenantFixture, event_workers: dict[str, Worker]
) -> None:
    poc = await create(client, tenant.member, name="Integração Pix com Kafka", tags=["payments"])
    # How fast is measured by `make bench-search`; here only that the pipeline flows.
    await wait_searchable(client, tenant.member, poc["id"], q="integracao")
    found = await client.get("/v1/search", params={"q": "pix integ"}, headers=tenant.member.headers)
    body = found.json()
    [hit] = body["hits"]
    assert hit["name"] == "Integração Pix com Kafka"
    assert hit["highlights"]["name"].count("<mark>") == 2
    assert {"value": "payments", "count": 1} in body["facets"]["tags"]

    renamed = await client.patch(
        f"/v1/pocs/{poc['id']}",
        json={"name": "Boleto gateway", "tags": ["boleto"]},
        headers={**tenant.member.headers, "If-Match": poc["etag"]},
    )
    assert renamed.status_code == 200
    await wait_searchable(client, tenant.member, poc["id"], q="boleto")
    old = await client.get("/v1/search", params={"q": "integracao"}, headers=tenant.member.headers)
    assert old.json()["hits"] == []

    await client.delete(f"/v1/pocs/{poc['id']}", headers=tenant.member.headers)
    for _ in range(200):
        gone = await client.get("/v1/search", params={"q": "boleto"}, headers=tenant.member.headers)
        if not gone.json()["hits"]:
            break
        await asyncio.sleep(0.02)
    assert gone.json()["hits"] == []


async def test_suggest_and_validation(
    client: httpx.AsyncClient, tenant: TenantFixture, event_workers: dict[str, Worker]
) -> None:
    poc = await create(client, tenant.member, name="Kubernetes operator", tags=["kubernetes"])
    await wait_searchable(client, tenant.member, poc["id"], q="kube")
    suggestions = await client.get(
        "/v1/search/suggest", params={"q": "kub"}, headers=tenant.member.headers
    )
    kinds = {(s["kind"], s["value"]) for s in suggestions.json()["items"]}
    assert ("tag", "kubernetes") in kinds
    assert ("name", "Kubernetes operator") in kinds
    for params in (
        {"limit": "0"},
        {"limit": "500"},
        {"sort": "random"},
        {"year": "99"},
        {"language": "klingon"},
        {"status": "x"},
        {"owner": "nobody"},
        {"cursor": "###"},
        {"q": "x" * 201},
    ):
        response = await client.get("/v1/search", params=params, headers=tenant.member.headers)
        assert response.status_code == 422, (params, response.text)
    assert (await client.get("/v1/search")).status_code == 401


async def test_indexer_killed_under_writes_loses_nothing(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    settings: Any,
    event_workers: dict[str, Worker],
) -> None:
    indexer = event_workers["indexer"]
    pocs = [await create(client, tenant.member, name=f"resilient {i}") for i in range(20)]

    async def update_all(round_no: int) -> None:
        for poc in pocs:
            response = await client.patch(
                f"/v1/pocs/{poc['id']}",
                json={"name": f"resilient {poc['id'][:8]} round {round_no}"},
                headers={**tenant.member.headers, "If-Match": poc["etag"]},
            )
            assert response.status_code == 200
            poc["etag"] = response.headers["etag"]
            poc["name"] = response.json()["name"]

    await update_all(1)
    indexer.kill()  # SIGKILL mid-stream: entries it read but did not acknowledge stay pending
    await update_all(2)
    indexer.start()
    await update_all(3)
    deadline = time.monotonic() + 60  # a liveness bound, not a speed claim
    expected = {p["id"]: p["name"] for p in pocs}
    while True:
        response = await client.get(
            "/v1/search", params={"q": "resilient", "limit": 100}, headers=tenant.member.headers
        )
        indexed = {h["id"]: h["name"] for h in response.json()["hits"]}
        if indexed == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert indexed == expected  # every PoC at its last version

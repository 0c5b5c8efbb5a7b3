"""Permissions, tenant isolation and bad input of the report API (problem+json, never 500)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from pocdojo.storage.db import Database
from tests.conftest import TenantFixture
from tests.reports.conftest import seed_pocs


async def test_member_gets_403_for_the_tenant_and_their_own_figures(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    await seed_pocs(owner_db, tenant.id, [tenant.admin.user_id, tenant.member.user_id], 50, seed=1)
    denied = await client.get(
        "/v1/reports/summary", params={"scope": "tenant"}, headers=tenant.member.headers
    )
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert denied.json()["status"] == 403
    export = await client.post(
        "/v1/reports/exports",
        json={"format": "csv", "scope": "tenant"},
        headers=tenant.member.headers,
    )
    assert export.status_code == 403
    mine = await client.get("/v1/reports/summary", headers=tenant.member.headers)
    assert mine.status_code == 200
    assert mine.json()["scope"] == "me"
    contributors = mine.json()["top_contributors"]
    assert [c["user_id"] for c in contributors] in ([], [str(tenant.member.user_id)])
    everyone = await client.get(
        "/v1/reports/summary", params={"scope": "tenant"}, headers=tenant.admin.headers
    )
    assert everyone.status_code == 200
    assert everyone.json()["totals"]["pocs_created"] >= mine.json()["totals"]["pocs_created"]


async def test_tenants_see_only_their_own_figures(
    client: httpx.AsyncClient,
    owner_db: Database,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
) -> None:
    await seed_pocs(owner_db, tenant.id, [tenant.admin.user_id], 120, seed=2)
    theirs = await client.get(
        "/v1/reports/summary", params={"scope": "tenant"}, headers=other_tenant.admin.headers
    )
    assert theirs.status_code == 200
    assert theirs.json()["totals"]["pocs_created"] == 0
    assert theirs.json()["by_language"] == []
    assert str(tenant.admin.user_id) not in theirs.text


async def test_exports_are_404_across_tenants_and_members(
    client: httpx.AsyncClient, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    created = await client.post(
        "/v1/reports/exports",
        json={"format": "pdf", "scope": "me"},
        headers=tenant.member.headers,
    )
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"] == f"/v1/reports/exports/{job['id']}"
    assert job["status"] in {"queued", "running", "done"}
    url = f"/v1/reports/exports/{job['id']}"
    assert (await client.get(url, headers=tenant.member.headers)).status_code == 200
    assert (await client.get(url, headers=tenant.admin.headers)).status_code == 200
    for outsider in (tenant.other_member, other_tenant.admin, other_tenant.member):
        response = await client.get(url, headers=outsider.headers)
        assert response.status_code == 404
        assert job["id"] not in response.text.replace(url, "")
    missing = await client.get(f"/v1/reports/exports/{uuid.uuid4()}", headers=tenant.admin.headers)
    assert missing.status_code == 404
    garbage = await client.get("/v1/reports/exports/not-a-uuid", headers=tenant.admin.headers)
    assert garbage.status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-13"},
        {"from": "2026-1"},
        {"to": "yesterday"},
        {"from": "2026-05", "to": "2026-01"},
        {"from": "1990-01", "to": "2026-01"},
        {"scope": "everyone"},
        {"from": "2026-01-15"},
    ],
)
async def test_bad_summary_queries_are_422(
    client: httpx.AsyncClient, tenant: TenantFixture, params: dict[str, str]
) -> None:
    response = await client.get("/v1/reports/summary", params=params, headers=tenant.admin.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


@pytest.mark.parametrize(
    "body",
    [
        {"format": "docx"},
        {"format": "csv", "scope": "all"},
        {"format": "csv", "from": "2026-99"},
        {"format": "csv", "extra": 1},
        {"scope": "me"},
        ["csv"],
        {"format": "csv", "from": "x" * 5000},
    ],
)
async def test_bad_export_requests_are_422(
    client: httpx.AsyncClient, tenant: TenantFixture, body: object
) -> None:
    response = await client.post("/v1/reports/exports", json=body, headers=tenant.admin.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_no_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/reports/summary")).status_code == 401
    assert (await client.post("/v1/reports/exports", json={"format": "csv"})).status_code == 401

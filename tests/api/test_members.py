"""Tenant member administration: admins only, paginated, roles take effect."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import TenantFixture


async def test_admin_lists_adds_and_promotes(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    listed = await client.get("/v1/tenant/members", headers=tenant.admin.headers)
    assert listed.status_code == 200
    emails = {m["email"] for m in listed.json()["items"]}
    assert emails == {tenant.admin.email, tenant.member.email, tenant.other_member.email}

    email = f"new-{uuid.uuid4().hex[:8]}@example.test"
    added = await client.post(
        "/v1/tenant/members",
        json={"email": email, "display_name": "Newcomer"},
        headers=tenant.admin.headers,
    )
    assert added.status_code == 201, added.text
    assert added.json()["role"] == "member"
    again = await client.post(
        "/v1/tenant/members",
        json={"email": email, "display_name": "Newcomer"},
        headers=tenant.admin.headers,
    )
    assert again.status_code == 409

    promoted = await client.patch(
        f"/v1/tenant/members/{added.json()['user_id']}",
        json={"role": "admin"},
        headers=tenant.admin.headers,
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"

    first = await client.get("/v1/tenant/members?limit=2", headers=tenant.admin.headers)
    page = first.json()
    assert len(page["items"]) == 2
    second = await client.get(
        "/v1/tenant/members",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=tenant.admin.headers,
    )
    assert len(second.json()["items"]) == 2
    assert not {m["email"] for m in page["items"]} & {m["email"] for m in second.json()["items"]}


async def test_members_cannot_administer(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    headers = tenant.member.headers
    assert (await client.get("/v1/tenant/members", headers=headers)).status_code == 403
    add = await client.post(
        "/v1/tenant/members", json={"email": "x@y.test", "display_name": "x"}, headers=headers
    )
    assert add.status_code == 403
    promote = await client.patch(
        f"/v1/tenant/members/{tenant.member.user_id}", json={"role": "admin"}, headers=headers
    )
    assert promote.status_code == 403


async def test_member_validation(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    for body in (
        {"email": "not-an-email", "display_name": "x"},
        {"email": "a@b.test", "display_name": ""},
        {"email": "a@b.test", "display_name": "x", "role": "owner"},
        {"email": "a@b.test", "display_name": "x", "tenant_id": str(uuid.uuid4())},
    ):
        response = await client.post("/v1/tenant/members", json=body, headers=tenant.admin.headers)
        assert response.status_code == 422, body
    missing = await client.patch(
        f"/v1/tenant/members/{uuid.uuid4()}", json={"role": "admin"}, headers=tenant.admin.headers
    )
    assert missing.status_code == 404

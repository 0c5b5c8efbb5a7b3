"""Dojos as a resource over HTTP: create, list, get, end, chat, replay."""

from __future__ import annotations

import datetime as dt

import httpx

from tests.conftest import TenantFixture


async def test_create_list_get_end(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    created = await client.post(
        "/v1/dojos",
        json={
            "title": "FizzBuzz kata",
            "language": "py",
            "kata": "Classic.",
            "files": {"src/fizz.py": "def fizz(n):\n    pass\n"},
        },
        headers=tenant.member.headers,
    )
    assert created.status_code == 201, created.text
    dojo = created.json()
    assert dojo["language"] == "python"
    assert dojo["host"] == str(tenant.member.user_id)
    assert dojo["status"] == "live"

    got = await client.get(f"/v1/dojos/{dojo['id']}", headers=tenant.other_member.headers)
    assert got.status_code == 200
    assert got.json()["participants_online"] == []
    assert got.json()["ice_servers"] == []  # none configured: host candidates only

    listed = await client.get("/v1/dojos", params={"status": "live"}, headers=tenant.admin.headers)
    assert dojo["id"] in [d["id"] for d in listed.json()["items"]]

    history = await client.get(f"/v1/dojos/{dojo['id']}/history", headers=tenant.member.headers)
    assert history.json()["files"] == {"src/fizz.py": "def fizz(n):\n    pass\n"}
    before = (dt.datetime.fromisoformat(dojo["created_at"]) - dt.timedelta(seconds=5)).isoformat()
    empty = await client.get(
        f"/v1/dojos/{dojo['id']}/history", params={"at": before}, headers=tenant.member.headers
    )
    assert empty.json()["files"] == {}

    refused = await client.post(f"/v1/dojos/{dojo['id']}/end", headers=tenant.other_member.headers)
    assert refused.status_code == 403
    ended = await client.post(f"/v1/dojos/{dojo['id']}/end", headers=tenant.member.headers)
    assert ended.json()["status"] == "ended"
    late = await client.post(
        f"/v1/dojos/{dojo['id']}/chat", json={"body": "hi"}, headers=tenant.member.headers
    )
    assert late.status_code == 409
    by_admin = await client.post(f"/v1/dojos/{dojo['id']}/end", headers=tenant.admin.headers)
    assert by_admin.status_code == 200  # idempotent


async def test_chat_is_authored_from_the_token_and_paginated(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    dojo = (
        await client.post(
            "/v1/dojos", json={"title": "chatty", "language": "go"}, headers=tenant.member.headers
        )
    ).json()
    url = f"/v1/dojos/{dojo['id']}/chat"
    spoof = await client.post(
        url, json={"body": "x", "author": str(tenant.admin.user_id)}, headers=tenant.member.headers
    )
    assert spoof.status_code == 422  # no author field: the token says who wrote it
    for i in range(5):
        sent = await client.post(url, json={"body": f"m{i}"}, headers=tenant.other_member.headers)
        assert sent.status_code == 201
        assert sent.json()["author"] == str(tenant.other_member.user_id)
    first = (await client.get(url, params={"limit": 3}, headers=tenant.member.headers)).json()
    assert [m["body"] for m in first["items"]] == ["m4", "m3", "m2"]
    rest = (
        await client.get(
            url, params={"limit": 3, "cursor": first["next_cursor"]}, headers=tenant.member.headers
        )
    ).json()
    assert [m["body"] for m in rest["items"]] == ["m1", "m0"]
    assert rest["next_cursor"] is None


async def test_validation(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    for body in (
        {"title": "", "language": "go"},
        {"title": "x", "language": "klingon"},
        {"title": "x", "language": "go", "files": {"../etc/passwd": "x"}},
        {"title": "x", "language": "go", "files": {f"f{i}": "" for i in range(51)}},
        {"title": "x", "language": "go", "files": {"big.txt": "x" * (1024 * 1024 + 1)}},
        {"title": "x", "language": "go", "host": "someone"},
    ):
        response = await client.post("/v1/dojos", json=body, headers=tenant.member.headers)
        assert response.status_code in (413, 422), (body.keys(), response.text)
    for params in ({"status": "gone"}, {"limit": "0"}, {"cursor": "??"}):
        response = await client.get("/v1/dojos", params=params, headers=tenant.member.headers)
        assert response.status_code == 422
    dojo = (
        await client.post(
            "/v1/dojos", json={"title": "x", "language": "go"}, headers=tenant.member.headers
        )
    ).json()
    bad_at = await client.get(
        f"/v1/dojos/{dojo['id']}/history", params={"at": "yesterday"}, headers=tenant.member.headers
    )
    assert bad_at.status_code == 422

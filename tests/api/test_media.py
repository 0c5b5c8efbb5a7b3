"""Media uploads through the file store's signed URLs, over real HTTP."""

from __future__ import annotations

import httpx

from tests.conftest import TenantFixture


async def _poc(client: httpx.AsyncClient, tenant: TenantFixture) -> str:
    response = await client.post(
        "/v1/pocs",
        json={"name": "with media", "languages": ["swift"]},
        headers=tenant.member.headers,
    )
    poc_id: str = response.json()["id"]
    return poc_id


async def test_upload_complete_list_download(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    poc_id = await _poc(client, tenant)
    payload = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    created = await client.post(
        f"/v1/pocs/{poc_id}/media",
        json={"filename": "screen.png", "content_type": "image/png", "size_bytes": len(payload)},
        headers=tenant.member.headers,
    )
    assert created.status_code == 201, created.text
    media, ticket = created.json()["media"], created.json()["upload"]
    assert media["status"] == "pending"
    assert media["download_url"] is None
    assert f"tenants%2F{tenant.id}" in ticket["url"] or f"tenants/{tenant.id}" in ticket["url"]

    early = await client.post(
        f"/v1/pocs/{poc_id}/media/{media['id']}/complete", headers=tenant.member.headers
    )
    assert early.status_code == 422

    uploaded = await client.put(ticket["url"], content=payload, headers=ticket["headers"])
    assert uploaded.status_code == 201, uploaded.text
    done = await client.post(
        f"/v1/pocs/{poc_id}/media/{media['id']}/complete", headers=tenant.member.headers
    )
    assert done.status_code == 200
    assert done.json()["status"] == "ready"

    listed = await client.get(f"/v1/pocs/{poc_id}/media", headers=tenant.other_member.headers)
    [item] = listed.json()["items"]
    downloaded = await client.get(item["download_url"])
    assert downloaded.status_code == 200
    assert downloaded.content == payload
    assert downloaded.headers["content-type"] == "image/png"


async def test_upload_limits_and_signature(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    poc_id = await _poc(client, tenant)
    url = f"/v1/pocs/{poc_id}/media"
    headers = tenant.member.headers
    too_big = await client.post(
        url,
        json={"filename": "big.mp4", "content_type": "video/mp4", "size_bytes": 50 * 2**20 + 1},
        headers=headers,
    )
    assert too_big.status_code == 413
    wrong_type = await client.post(
        url,
        json={"filename": "x.exe", "content_type": "application/x-msdownload", "size_bytes": 10},
        headers=headers,
    )
    assert wrong_type.status_code == 422
    other = await client.post(
        url,
        json={"filename": "a.png", "content_type": "image/png", "size_bytes": 10},
        headers=tenant.other_member.headers,
    )
    assert other.status_code == 403  # only the owner or an admin adds media

    ticket = (
        await client.post(
            url,
            json={"filename": "a.png", "content_type": "image/png", "size_bytes": 10},
            headers=headers,
        )
    ).json()["upload"]
    over = await client.put(ticket["url"], content=b"x" * 11, headers=ticket["headers"])
    assert over.status_code == 413
    wrong_ct = await client.put(
        ticket["url"], content=b"x" * 10, headers={"Content-Type": "image/jpeg"}
    )
    assert wrong_ct.status_code == 403
    tampered = ticket["url"].replace("max=10", "max=99999")
    assert (await client.put(tampered, content=b"x", headers=ticket["headers"])).status_code == 403
    unsigned = ticket["url"].split("?")[0]
    assert (await client.put(unsigned, content=b"x", headers=ticket["headers"])).status_code == 403
    ok = await client.put(ticket["url"], content=b"x" * 10, headers=ticket["headers"])
    assert ok.status_code == 201

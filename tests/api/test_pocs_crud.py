"""PoC registry: CRUD, validation limits, pagination, ETags, idempotency, permissions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.conftest import TenantFixture


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Realtime fraud scoring",
        "description": "Kafka Streams + **ONNX** model",
        "languages": ["Python", "golang"],
        "tags": ["Machine Learning", "kafka"],
        "repo_url": "https://git.example.test/fraud",
    }
    data.update(overrides)
    return data


async def create(client: httpx.AsyncClient, who: Any, **overrides: Any) -> httpx.Response:
    return await client.post("/v1/pocs", json=body(**overrides), headers=who.headers)


async def test_create_get_update_delete(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    created = await create(client, tenant.member)
    assert created.status_code == 201, created.text
    poc = created.json()
    assert poc["languages"] == ["python", "go"]
    assert poc["tags"] == ["machine-learning", "kafka"]
    assert poc["owner"] == str(tenant.member.user_id)
    assert poc["status"] == "active"
    assert created.headers["location"] == f"/v1/pocs/{poc['id']}"
    etag = created.headers["etag"]

    got = await client.get(f"/v1/pocs/{poc['id']}", headers=tenant.member.headers)
    assert got.status_code == 200
    assert got.json() == poc
    assert got.headers["etag"] == etag
    not_modified = await client.get(
        f"/v1/pocs/{poc['id']}", headers={**tenant.member.headers, "If-None-Match": etag}
    )
    assert not_modified.status_code == 304

    patched = await client.patch(
        f"/v1/pocs/{poc['id']}",
        json={"status": "archived", "tags": ["Edge"], "repo_url": None},
        headers={**tenant.member.headers, "If-Match": etag},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "archived"
    assert patched.json()["tags"] == ["edge"]
    assert patched.json()["repo_url"] is None
    assert patched.json()["version"] == 2
    assert patched.headers["etag"] != etag

    deleted = await client.delete(f"/v1/pocs/{poc['id']}", headers=tenant.member.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/v1/pocs/{poc['id']}", headers=tenant.member.headers)
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


async def test_stale_if_match_is_412_and_missing_is_428(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    poc = await create(client, tenant.member)
    url, etag = f"/v1/pocs/{poc.json()['id']}", poc.headers["etag"]
    first = await client.patch(
        url, json={"name": "v2"}, headers={**tenant.member.headers, "If-Match": etag}
    )
    assert first.status_code == 200
    stale = await client.patch(
        url, json={"name": "v3"}, headers={**tenant.member.headers, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["status"] == 412
    missing = await client.patch(url, json={"name": "v3"}, headers=tenant.member.headers)
    assert missing.status_code == 428
    garbage = await client.patch(
        url, json={"name": "v3"}, headers={**tenant.member.headers, "If-Match": '"nonsense"'}
    )
    assert garbage.status_code == 412
    stale_delete = await client.delete(url, headers={**tenant.member.headers, "If-Match": etag})
    assert stale_delete.status_code == 412
    current = await client.get(url, headers=tenant.member.headers)
    assert current.json()["name"] == "v2"


async def test_validation_limits(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "body.name"),
        ({"name": "x" * 121}, "body.name"),
        ({"description": "d" * 20_001}, "body.description"),
        ({"languages": []}, "body.languages"),
        ({"languages": ["python"] * 11}, "body.languages"),
        ({"tags": [f"t{i}" for i in range(21)]}, "body.tags"),
        ({"tags": ["x" * 41]}, "body.tags"),
        ({"tags": ["!!!"]}, "body.tags"),
        ({"repo_url": "http://insecure.example"}, "body.repo_url"),
        ({"demo_url": "javascript:alert(1)"}, "body.demo_url"),
        ({"status": "published"}, "body.status"),
        ({"built_on": "2026-13-01"}, "body.built_on"),
        ({"owner": str(uuid.uuid4())}, "body.owner"),
    ]
    for overrides, loc in cases:
        response = await create(client, tenant.member, **overrides)
        assert response.status_code == 422, (overrides, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert any(e["loc"].startswith(loc) for e in problem["errors"]), (loc, problem)
    # Exactly at the limits is fine.
    ok = await create(
        client,
        tenant.member,
        name="n" * 120,
        description="d" * 20_000,
        tags=[f"t{i}" for i in range(20)],
        languages=["python", "go", "rust", "java", "kotlin", "swift", "c", "cpp", "ruby", "php"],
    )
    assert ok.status_code == 201, ok.text


async def test_unknown_language_suggests_close_names(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    response = await create(client, tenant.member, languages=["pythn"])
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert "python" in error["suggestions"]
    assert "python" in error["message"]


async def test_bad_json_and_content_type(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    headers = {**tenant.member.headers, "content-type": "application/json"}
    broken = await client.post("/v1/pocs", content=b"{not json", headers=headers)
    assert broken.status_code == 400
    wrong_type = await client.post(
        "/v1/pocs",
        content=b"name=x",
        headers={**tenant.member.headers, "content-type": "text/plain"},
    )
    assert wrong_type.status_code == 415
    array = await client.post("/v1/pocs", json=[1, 2], headers=tenant.member.headers)
    assert array.status_code == 422
    huge = await client.post("/v1/pocs", content=b"[" + b"1," * 200_000 + b"1]", headers=headers)
    assert huge.status_code == 413


async def test_cursor_pagination_and_filters(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    made = []
    for i in range(7):
        response = await create(
            client,
            tenant.member if i % 2 else tenant.admin,
            name=f"poc {i}",
            languages=["rust"] if i < 3 else ["python"],
            tags=["alpha", "beta"] if i % 3 == 0 else ["alpha"],
            status="draft" if i == 6 else "active",
        )
        made.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/pocs", params=params, headers=tenant.member.headers)).json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))  # newest first, no duplicates, nothing missing

    async def ids(**params: Any) -> set[str]:
        response = await client.get("/v1/pocs", params=params, headers=tenant.member.headers)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert await ids(language="Rust") == set(made[:3])
    assert await ids(language=["rust", "py"]) == set(made)  # OR
    assert await ids(tag=["alpha", "beta"]) == {made[0], made[3], made[6]}  # AND
    assert await ids(owner=str(tenant.member.user_id)) == {made[1], made[3], made[5]}
    assert await ids(owner="me") == {made[1], made[3], made[5]}
    assert await ids(status="draft") == {made[6]}

    for bad in (
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"cursor": "%%%"},
        {"status": "gone"},
        {"owner": "nobody"},
        {"language": "klingon"},
    ):
        response = await client.get("/v1/pocs", params=bad, headers=tenant.member.headers)
        assert response.status_code == 422, (bad, response.text)


async def test_idempotent_create(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    headers = {**tenant.member.headers, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = await client.post("/v1/pocs", json=body(name="once"), headers=headers)
    again = await client.post("/v1/pocs", json=body(name="once"), headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    other_body = await client.post("/v1/pocs", json=body(name="twice"), headers=headers)
    assert other_body.status_code == 409

    # Concurrent retries with one key: exactly one PoC.
    key = {**tenant.member.headers, "Idempotency-Key": f"race-{uuid.uuid4()}"}
    responses = await asyncio.gather(
        *(client.post("/v1/pocs", json=body(name="race"), headers=key) for _ in range(8))
    )
    assert {r.status_code for r in responses} <= {200, 201}
    assert len({r.json()["id"] for r in responses}) == 1
    listed = await client.get("/v1/pocs", params={"limit": 100}, headers=tenant.member.headers)
    assert [p["name"] for p in listed.json()["items"]].count("race") == 1


async def test_members_edit_own_admins_edit_any(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    mine = await create(client, tenant.member)
    url = f"/v1/pocs/{mine.json()['id']}"
    etag = mine.headers["etag"]
    by_other = await client.patch(
        url, json={"name": "hijack"}, headers={**tenant.other_member.headers, "If-Match": etag}
    )
    assert by_other.status_code == 403
    assert (await client.delete(url, headers=tenant.other_member.headers)).status_code == 403
    # Members still read each other's PoCs within the tenant.
    assert (await client.get(url, headers=tenant.other_member.headers)).status_code == 200
    by_admin = await client.patch(
        url, json={"name": "curated"}, headers={**tenant.admin.headers, "If-Match": etag}
    )
    assert by_admin.status_code == 200
    assert (await client.delete(url, headers=tenant.admin.headers)).status_code == 204


async def test_every_change_writes_an_outbox_event(
    client: httpx.AsyncClient, tenant: TenantFixture, owner_db: Any
) -> None:
    created = await create(client, tenant.member)
    poc_id = created.json()["id"]
    await client.patch(
        f"/v1/pocs/{poc_id}",
        json={"name": "renamed"},
        headers={**tenant.member.headers, "If-Match": created.headers["etag"]},
    )
    await client.delete(f"/v1/pocs/{poc_id}", headers=tenant.member.headers)
    async with owner_db.tenant_tx(tenant.id) as conn:
        rows = await conn.fetch(
            "select event_type, payload->>'name' as name from outbox "
            "where aggregate_id = $1 order by id",
            uuid.UUID(poc_id),
        )
    assert [r["event_type"] for r in rows] == ["poc.created", "poc.updated", "poc.deleted"]
    assert rows[1]["name"] == "renamed"


async def test_requires_a_token(client: httpx.AsyncClient) -> None:
    for method, url in (
        ("GET", "/v1/pocs"),
        ("POST", "/v1/pocs"),
        ("GET", f"/v1/pocs/{uuid.uuid4()}"),
    ):
        response = await client.request(method, url)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

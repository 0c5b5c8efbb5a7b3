"""The dashboard cache: a repeated read is served from Redis, and every write that moves a
figure is seen by the very next read (exact invalidation through the rollup version)."""

from __future__ import annotations

from typing import Any

import httpx
import redis.asyncio as aioredis

from pocdojo.reports.cache import SummaryCache
from pocdojo.reports.summary import Scope
from pocdojo.storage.db import Database
from tests.conftest import TenantFixture
from tests.reports.conftest import (
    comparable,
    default_period,
    expected_summary,
    load_source,
    seed_dojos,
    seed_pocs,
)


async def _read(client: httpx.AsyncClient, user: Any, scope: str) -> tuple[dict[str, Any], str]:
    response = await client.get(
        "/v1/reports/summary", params={"scope": scope}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body, response.headers["x-report-cache"]


async def _exact(
    owner_db: Database, tenant: TenantFixture, served: dict[str, Any], owner: Any = None
) -> None:
    source = await load_source(owner_db, tenant.id)
    assert comparable(served) == expected_summary(source, default_period(), owner)


async def test_a_write_after_a_cached_read_is_in_the_next_read(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    admin, member = tenant.admin, tenant.member
    await seed_pocs(owner_db, tenant.id, [admin.user_id, member.user_id], 300, seed=5)
    first, state = await _read(client, admin, "tenant")
    assert state == "miss"
    again, state = await _read(client, admin, "tenant")
    assert (again, state) == (first, "hit")

    created = await client.post(
        "/v1/pocs",
        json={"name": "cached?", "languages": ["zig"], "tags": ["cache-test"]},
        headers=member.headers,
    )
    assert created.status_code == 201
    after, state = await _read(client, admin, "tenant")
    assert state == "miss"
    assert after["totals"]["pocs_created"] == first["totals"]["pocs_created"] + 1
    assert {"key": "zig", "count": 1} in after["by_language"]
    await _exact(owner_db, tenant, after)
    assert (await _read(client, admin, "tenant")) == (after, "hit")

    # Every kind of figure-moving write invalidates; a write that moves none does not.
    poc_id, etag = created.json()["id"], created.headers["etag"]
    for change, invalidates in (
        ({"name": "renamed"}, False),
        ({"tags": ["cache-test", "second"]}, True),
        ({"languages": ["go"]}, True),
        ({"status": "archived"}, True),
    ):
        response = await client.patch(
            f"/v1/pocs/{poc_id}", json=change, headers={**member.headers, "If-Match": etag}
        )
        assert response.status_code == 200, response.text
        etag = response.headers["etag"]
        served, state = await _read(client, admin, "tenant")
        assert state == ("miss" if invalidates else "hit"), change
        await _exact(owner_db, tenant, served)
        assert (await _read(client, admin, "tenant"))[1] == "hit"

    deleted = await client.delete(f"/v1/pocs/{poc_id}", headers=member.headers)
    assert deleted.status_code == 204
    served, state = await _read(client, admin, "tenant")
    assert state == "miss"
    await _exact(owner_db, tenant, served)


async def test_scopes_are_invalidated_by_their_own_figures(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    admin, member = tenant.admin, tenant.member
    await seed_pocs(owner_db, tenant.id, [admin.user_id, member.user_id], 50, seed=9)
    mine, state = await _read(client, member, "me")
    assert state == "miss"
    await _read(client, admin, "tenant")
    # The admin's own PoC moves the tenant's figures, not the member's.
    response = await client.post(
        "/v1/pocs", json={"name": "admin's", "languages": ["c"]}, headers=admin.headers
    )
    assert response.status_code == 201
    assert (await _read(client, member, "me")) == (mine, "hit")
    assert (await _read(client, admin, "tenant"))[1] == "miss"
    # The member's PoC moves both.
    response = await client.post(
        "/v1/pocs", json={"name": "member's", "languages": ["c"]}, headers=member.headers
    )
    assert response.status_code == 201
    served, state = await _read(client, member, "me")
    assert state == "miss"
    assert served["totals"]["pocs_created"] == mine["totals"]["pocs_created"] + 1
    await _exact(owner_db, tenant, served, member.user_id)
    assert (await _read(client, admin, "tenant"))[1] == "miss"


async def test_dojo_activity_and_names_are_current_on_cached_reads(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    users = [tenant.admin.user_id, tenant.member.user_id]
    dojo_ids = await seed_dojos(owner_db, tenant.id, users, seed=4)
    await seed_pocs(owner_db, tenant.id, users, 40, seed=4)
    before, _ = await _read(client, tenant.admin, "tenant")
    async with owner_db.tenant_tx(tenant.id) as conn:
        await conn.execute(
            """insert into dojo_chat (tenant_id, dojo_id, author_id, body)
               values ($1, $2, $3, 'one more')""",
            tenant.id,
            dojo_ids[2],
            tenant.member.user_id,
        )
    served, state = await _read(client, tenant.admin, "tenant")
    assert state == "miss"
    assert served["dojos"]["chat_messages"] == before["dojos"]["chat_messages"] + 1
    await _exact(owner_db, tenant, served)
    # Names and titles are not figures: read fresh even when the figures come from the cache.
    top = served["dojos"]["most_active"][0]["id"]
    async with owner_db.tenant_tx(tenant.id) as conn:
        await conn.execute("update dojos set title = 'Renamed kata' where id = $1::uuid", top)
    async with owner_db.global_tx() as conn:
        await conn.execute(
            "update users set display_name = 'Renamed member' where id = $1",
            tenant.member.user_id,
        )
    renamed, state = await _read(client, tenant.admin, "tenant")
    assert state == "hit"
    assert comparable(renamed) == comparable(served)
    assert renamed["dojos"]["most_active"][0] == {
        **served["dojos"]["most_active"][0],
        "title": "Renamed kata",
    }
    names = {c["user_id"]: c["display_name"] for c in renamed["top_contributors"]}
    assert names[str(tenant.member.user_id)] == "Renamed member"


async def test_without_redis_the_dashboard_is_computed(
    owner_db: Database, tenant: TenantFixture
) -> None:
    await seed_pocs(owner_db, tenant.id, [tenant.admin.user_id], 30, seed=6)
    unreachable = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    cache = SummaryCache(unreachable)
    try:
        period = default_period()
        entry = await cache.lookup(tenant.id, Scope.TENANT, tenant.admin.user_id, period)
        assert entry is None
        async with owner_db.tenant_tx(tenant.id) as conn:
            summary, hit = await cache.summary(
                conn, tenant.id, Scope.TENANT, tenant.admin.user_id, period, entry
            )
    finally:
        await unreachable.aclose()
    assert not hit
    source = await load_source(owner_db, tenant.id)
    assert comparable(summary.to_json()) == expected_summary(source, default_period(), None)

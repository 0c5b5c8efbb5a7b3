"""The dashboard's figures equal an independent recomputation from the source tables, on
seeded data and through every kind of PoC write (create, update, tags, languages, archive,
delete) and dojo activity."""

from __future__ import annotations

from typing import Any

import httpx

from pocdojo.reports.period import Period
from pocdojo.storage.db import Database
from tests.conftest import TenantFixture
from tests.reports.conftest import (
    comparable,
    default_period,
    expected_rollup,
    expected_summary,
    load_source,
    rollup_rows,
    seed_dojos,
    seed_pocs,
)


async def _summary(
    client: httpx.AsyncClient, user: Any, scope: str, **params: str
) -> dict[str, Any]:
    response = await client.get(
        "/v1/reports/summary", params={"scope": scope, **params}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _check(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> dict[str, Any]:
    source = await load_source(owner_db, tenant.id)
    # The whole rollup table, every month and every user, equals the recomputation.
    assert await rollup_rows(owner_db, tenant.id) == expected_rollup(source)
    period = default_period()
    served = await _summary(client, tenant.admin, "tenant")
    assert comparable(served) == expected_summary(source, period, None)
    mine = await _summary(client, tenant.member, "me")
    assert comparable(mine) == expected_summary(source, period, tenant.member.user_id)
    return served


async def test_seeded_figures_are_exact(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    users = [tenant.admin.user_id, tenant.member.user_id, tenant.other_member.user_id]
    await seed_pocs(owner_db, tenant.id, users, 1500, seed=7)
    await seed_dojos(owner_db, tenant.id, users, seed=7)
    served = await _check(client, owner_db, tenant)
    # Non-trivial data: months outside the period exist and were left out.
    assert 0 < served["totals"]["pocs_created"] < 1500
    assert len(served["by_tag"]) == 20
    assert served["dojos"]["held"] > 0
    assert served["dojos"]["chat_messages"] > 0
    assert served["dojos"]["most_active"][0]["title"].startswith("dojo ")
    assert {c["display_name"] for c in served["top_contributors"]} <= {"admin", "member", "other"}
    # A narrower period: still exact.
    narrow = await _summary(
        client,
        tenant.admin,
        "tenant",
        **{"from": served["per_month"][3]["month"], "to": served["per_month"][5]["month"]},
    )
    source = await load_source(owner_db, tenant.id)
    period = Period.parse(narrow["period"]["from"], narrow["period"]["to"])
    assert comparable(narrow) == expected_summary(source, period, None)


async def test_figures_follow_every_kind_of_write(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    users = [tenant.admin.user_id, tenant.member.user_id]
    await seed_pocs(owner_db, tenant.id, users, 200, seed=11)
    member = tenant.member.headers
    created = await client.post(
        "/v1/pocs",
        json={"name": "Integração Pix", "languages": ["py", "TS"], "tags": ["payments", "br"]},
        headers=member,
    )
    assert created.status_code == 201
    poc_id, etag = created.json()["id"], created.headers["etag"]
    await _check(client, owner_db, tenant)

    changes = [
        {"name": "renamed"},  # no figure changes
        {"tags": ["payments", "pix", "fintech"]},  # tag change
        {"languages": ["go"]},  # language change
        {"status": "archived"},  # archive (dated now)
        {"status": "active"},  # un-archive
        {"status": "archived", "tags": []},
    ]
    for change in changes:
        response = await client.patch(
            f"/v1/pocs/{poc_id}", json=change, headers={**member, "If-Match": etag}
        )
        assert response.status_code == 200, response.text
        etag = response.headers["etag"]
        await _check(client, owner_db, tenant)

    # An admin edits the member's PoC: the figures stay the owner's.
    response = await client.patch(
        f"/v1/pocs/{poc_id}",
        json={"languages": ["rust", "c"]},
        headers={**tenant.admin.headers, "If-Match": etag},
    )
    assert response.status_code == 200
    await _check(client, owner_db, tenant)

    deleted = await client.delete(f"/v1/pocs/{poc_id}", headers=member)
    assert deleted.status_code == 204
    await _check(client, owner_db, tenant)


async def test_dojo_activity_follows_writes(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    users = [tenant.admin.user_id, tenant.member.user_id, tenant.other_member.user_id]
    dojo_ids = await seed_dojos(owner_db, tenant.id, users, seed=3)
    await _check(client, owner_db, tenant)
    async with owner_db.tenant_tx(tenant.id) as conn:
        # Open participations close; a dojo goes away with its chat and participation.
        await conn.execute(
            "update dojo_participation set left_at = joined_at + interval '42 minutes' "
            "where left_at is null"
        )
        await conn.execute("delete from dojos where id = $1", dojo_ids[1])
        await conn.execute("delete from dojo_chat where dojo_id = $1 and id % 2 = 0", dojo_ids[2])
    served = await _check(client, owner_db, tenant)
    assert str(dojo_ids[1]) not in {d["id"] for d in served["dojos"]["most_active"]}

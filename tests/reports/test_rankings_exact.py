"""The tenant dashboard's rankings (``report_top``, migration 0011) are exact whatever the
figures look like: skewed (the largest rows settle them), flat or tied at the cut (every key
summed), with zeros and negative figures, and through real writes with more keys than one
listing round reads."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections import Counter
from typing import Any

import httpx

from pocdojo.reports.period import Period, add_months, buckets
from pocdojo.storage.db import Database
from tests.conftest import TenantFixture
from tests.reports.conftest import (
    EVER,
    TENANT_WIDE,
    comparable,
    default_period,
    expected_summary,
    load_source,
    this_month,
)


def _rows(rng: random.Random, shape: str, tiles: list[tuple[dt.date, int]]) -> list[Any]:
    """Rollup rows ``(span, month, key, n)`` of one metric over ``tiles`` in a given shape."""
    keys = [f"k{i:03d}" for i in range(rng.choice((5, 30, 150, 400)))]
    rows = []
    for month, span in tiles:
        for rank, key in enumerate(rng.sample(keys, rng.randint(0, len(keys)))):
            if shape == "skewed":
                n = int(5000 / (1 + rank + rng.random() * 3))
            elif shape == "flat":
                n = rng.randint(90, 110)
            elif shape == "tied":
                n = rng.choice((7, 7, 7, 3, 0))
            else:  # "negative": a participation that ended before it began
                n = rng.choice((-400, -30, 5, 60, 400))
            rows.append((span, month, key, n))
    return rows


def _expected(rows: list[Any], k: int) -> list[tuple[str, int]]:
    sums: Counter[str] = Counter()
    for _, _, key, n in rows:
        sums[key] += n
    ranked = sorted(((key, n) for key, n in sums.items() if n != 0), key=lambda r: (-r[1], r[0]))
    return ranked[:k]


async def test_report_top_equals_summing_every_key(
    owner_db: Database, tenant: TenantFixture
) -> None:
    rng = random.Random(2011)
    shapes = ("skewed", "flat", "tied", "negative")
    for case in range(48):
        shape = shapes[case % len(shapes)]
        metric = "dojo_seconds" if shape == "negative" else rng.choice(("tag", "owner"))
        last = add_months(this_month(), -rng.randint(0, 20))
        period = Period(add_months(last, -rng.randint(0, 40)), last)
        tiles = buckets(period)
        rows = _rows(rng, shape, tiles)
        k = rng.choice((1, 5, 10, 20))
        async with owner_db.tenant_tx(tenant.id) as conn:
            await conn.execute("delete from report_rollup")
            await conn.executemany(
                """insert into report_rollup (tenant_id, owner_id, span, month, metric, key, n)
                   values ($1, $2, $3, $4, $5, $6, $7)""",
                [(tenant.id, TENANT_WIDE, s, m, metric, key, n) for s, m, key, n in rows],
            )
            got = await conn.fetch(
                """select key, n from report_top($1, $2, $3, $4, $5)
                   order by n desc, key collate "C" limit $5""",
                tenant.id,
                metric,
                [t[0] for t in tiles],
                [t[1] for t in tiles],
                k,
            )
        assert [(r["key"], r["n"]) for r in got] == _expected(rows, k), (case, shape, k)


async def test_report_top_ever_equals_summing_every_key(
    owner_db: Database, tenant: TenantFixture
) -> None:
    """Dojo-like keys (active in one or two months, or spread over many; a few negative
    durations), their rows for the period's buckets and their seconds ever."""
    rng = random.Random(1970)
    months = [add_months(this_month(), -i) for i in range(60)]
    for case in range(40):
        facts: list[tuple[str, dt.date, int]] = []
        for i in range(rng.choice((3, 40, 120, 600))):
            active = rng.sample(months, 1 if case % 3 else rng.randint(1, 30))
            for month in active:
                for _ in range(rng.randint(1, 3)):
                    low = -300 if case % 4 == 0 else 0
                    facts.append((f"d{i:03d}", month, rng.choice((rng.randint(low, 9000), 600))))
        last = add_months(this_month(), -rng.randint(0, 24))
        period = Period(add_months(last, -rng.randint(0, 35)), last)
        tiles = buckets(period)
        rows: Counter[tuple[int, dt.date, str, str]] = Counter()
        inside: list[tuple[int, dt.date, str, int]] = []
        for key, month, n in facts:
            rows[(1, EVER, "dojo_seconds_ever", key)] += max(n, 0)
            for start, span in tiles:
                if start <= month < add_months(start, span):
                    rows[(span, start, "dojo_seconds", key)] += n
                    inside.append((span, start, key, n))
        k = rng.choice((1, 5, 10))
        async with owner_db.tenant_tx(tenant.id) as conn:
            await conn.execute("delete from report_rollup")
            await conn.executemany(
                """insert into report_rollup (tenant_id, owner_id, span, month, metric, key, n)
                   values ($1, $2, $3, $4, $5, $6, $7)""",
                [(tenant.id, TENANT_WIDE, *row, n) for row, n in rows.items() if n != 0],
            )
            got = await conn.fetch(
                """select key, n from report_top_ever($1, 'dojo_seconds', $2, $3, $4)
                   order by n desc, key collate "C" limit $4""",
                tenant.id,
                [t[0] for t in tiles],
                [t[1] for t in tiles],
                k,
            )
        assert [(r["key"], r["n"]) for r in got] == _expected(inside, k), (case, k)


async def _seed_many_tags(
    db: Database, tenant: TenantFixture, count: int, *, flat: bool, seed: int
) -> None:
    """``count`` PoCs over 14 months with up to 4 of 300 tags each (skewed or flat)."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    owners = [tenant.admin.user_id, tenant.member.user_id, tenant.other_member.user_id]
    tags = [f"t{i:03d}" for i in range(300)]
    weights = [1.0 if flat else 1 / (1 + i) for i in range(len(tags))]
    rows = [
        {
            "owner_id": str(rng.choice(owners)),
            "name": f"many tags {i}",
            "languages": ["go"],
            "tags": sorted(set(rng.choices(tags, weights, k=rng.randint(0, 4)))),
            "status": "active",
            "created_at": (now - dt.timedelta(days=rng.uniform(0, 420))).isoformat(),
        }
        for i in range(count)
    ]
    async with db.tenant_tx(tenant.id) as conn:
        await conn.execute(
            """insert into pocs (tenant_id, owner_id, name, languages, tags, status, created_at)
               select $1, x.owner_id, x.name, x.languages, x.tags, x.status, x.created_at
               from jsonb_to_recordset($2::jsonb) as x(owner_id uuid, name text,
                    languages text[], tags text[], status text, created_at timestamptz)""",
            tenant.id,
            json.dumps(rows),
        )


async def _check(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture, period: Period
) -> dict[str, Any]:
    response = await client.get(
        "/v1/reports/summary",
        params={
            "scope": "tenant",
            "from": period.first.strftime("%Y-%m"),
            "to": period.last.strftime("%Y-%m"),
        },
        headers=tenant.admin.headers,
    )
    assert response.status_code == 200, response.text
    served: dict[str, Any] = response.json()
    source = await load_source(owner_db, tenant.id)
    assert comparable(served) == expected_summary(source, period, None)
    return served


async def test_rankings_with_hundreds_of_tags_are_exact(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    await _seed_many_tags(owner_db, tenant, 2500, flat=False, seed=3)
    for months in (1, 5, 12):
        period = Period(add_months(this_month(), -(months - 1)), this_month())
        served = await _check(client, owner_db, tenant, period)
        assert len(served["by_tag"]) == 20
    # Flat counts (ties at the cut) on top: the largest rows no longer settle the ranking.
    await _seed_many_tags(owner_db, tenant, 2500, flat=True, seed=4)
    await _check(client, owner_db, tenant, default_period())
    # A tag moves on one PoC: the ranking follows.
    async with owner_db.tenant_tx(tenant.id) as conn:
        await conn.execute(
            "update pocs set tags = tags || '{t299}' where id in "
            "(select id from pocs where not 't299' = any(tags) limit 40)"
        )
    await _check(client, owner_db, tenant, default_period())


async def test_most_active_dojos_break_ties_by_chat(
    client: httpx.AsyncClient, owner_db: Database, tenant: TenantFixture
) -> None:
    """Thirty dojos: equal participant seconds for several (chat decides), one with chat
    only; then fewer than five with any seconds (the chat-only dojo can rank)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    users = [tenant.admin.user_id, tenant.member.user_id]
    ids: list[uuid.UUID] = []
    async with owner_db.tenant_tx(tenant.id) as conn:
        for i in range(30):
            started = now - dt.timedelta(days=i * 9 % 300, hours=1)
            dojo_id = await conn.fetchval(
                """insert into dojos (tenant_id, title, language, host_id, created_at)
                   values ($1, $2, 'go', $3, $4) returning id""",
                tenant.id,
                f"dojo {i}",
                users[i % 2],
                started,
            )
            ids.append(dojo_id)
            seconds = 600 if i < 8 else 60 + i  # eight dojos tie at the top
            if i != 29:  # the last dojo has chat only
                await conn.execute(
                    """insert into dojo_participation (tenant_id, dojo_id, user_id, joined_at,
                                                       left_at) values ($1, $2, $3, $4, $5)""",
                    tenant.id,
                    dojo_id,
                    users[0],
                    started,
                    started + dt.timedelta(seconds=seconds),
                )
            await conn.execute(
                """insert into dojo_chat (tenant_id, dojo_id, author_id, body, created_at)
                   select $1, $2, $3, 'hi', $4 from generate_series(1, $5)""",
                tenant.id,
                dojo_id,
                users[1],
                started,
                (i * 7) % 11 + (40 if i == 29 else 0),
            )
    served = await _check(client, owner_db, tenant, default_period())
    assert len(served["dojos"]["most_active"]) == 5
    assert {d["participant_minutes"] for d in served["dojos"]["most_active"]} == {10.0}
    async with owner_db.tenant_tx(tenant.id) as conn:
        await conn.execute("delete from dojo_participation where dojo_id <> all($1)", ids[:3])
    served = await _check(client, owner_db, tenant, default_period())
    assert str(ids[29]) in {d["id"] for d in served["dojos"]["most_active"]}

"""Seeding and an independent recomputation of every report figure from the source rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from pocdojo.reports.period import Period, add_months
from pocdojo.storage.db import Database
from pocdojo.types import TenantId
from tests.storage.conftest import s3_bucket, s3_endpoint  # noqa: F401  (re-exported fixtures)

LANGS = ["python", "go", "rust", "typescript", "kotlin", "swift", "java", "c"]
TAGS = [f"tag-{i}" for i in range(40)]
TENANT_WIDE = uuid.UUID(int=0)
EVER = dt.date(1970, 1, 1)
"""The month of the rows that count a key over all time (migration 0011)."""


def this_month() -> dt.date:
    return dt.datetime.now(dt.UTC).date().replace(day=1)


def month_of(ts: dt.datetime) -> dt.date:
    return ts.astimezone(dt.UTC).date().replace(day=1)


async def seed_pocs(
    db: Database, tenant_id: TenantId, owners: list[uuid.UUID], count: int, *, seed: int
) -> None:
    """``count`` PoCs over the last 14 months with varied languages, tags and statuses."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for i in range(count):
        rows.append(
            {
                "owner_id": str(rng.choice(owners)),
                "name": f"seeded poc {i}",
                "languages": rng.sample(LANGS, rng.randint(1, 3)),
                "tags": rng.sample(TAGS, rng.randint(0, 4)),
                "status": rng.choice(["draft", "active", "active", "archived"]),
                "created_at": (now - dt.timedelta(days=rng.uniform(0, 420))).isoformat(),
            }
        )
    async with db.tenant_tx(tenant_id) as conn:
        await conn.execute(
            """insert into pocs (tenant_id, owner_id, name, languages, tags, status, created_at)
               select $1, x.owner_id, x.name, x.languages, x.tags, x.status, x.created_at
               from jsonb_to_recordset($2::jsonb) as x(owner_id uuid, name text,
                    languages text[], tags text[], status text, created_at timestamptz)""",
            tenant_id,
            json.dumps(rows),
        )


async def seed_dojos(
    db: Database, tenant_id: TenantId, users: list[uuid.UUID], *, seed: int
) -> list[uuid.UUID]:
    """Dojos with chat and participation (closed and still open) over the last months."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    ids: list[uuid.UUID] = []
    async with db.tenant_tx(tenant_id) as conn:
        for i in range(6):
            started = now - dt.timedelta(days=rng.uniform(0, 200))
            dojo_id = await conn.fetchval(
                """insert into dojos (tenant_id, title, language, host_id, created_at)
                   values ($1, $2, 'go', $3, $4) returning id""",
                tenant_id,
                f"dojo {i}",
                rng.choice(users),
                started,
            )
            ids.append(dojo_id)
            for user in users:
                joined = started + dt.timedelta(seconds=rng.uniform(0, 600))
                left = None if i == 0 else joined + dt.timedelta(seconds=rng.uniform(30, 5000))
                await conn.execute(
                    """insert into dojo_participation (tenant_id, dojo_id, user_id, joined_at,
                                                       left_at) values ($1, $2, $3, $4, $5)""",
                    tenant_id,
                    dojo_id,
                    user,
                    joined,
                    left,
                )
            await conn.execute(
                """insert into dojo_chat (tenant_id, dojo_id, author_id, body, created_at)
                   select $1, $2, ($3::uuid[])[1 + g % cardinality($3::uuid[])], 'hi ' || g,
                          $4::timestamptz + g * interval '1 second'
                   from generate_series(1, $5) g""",
                tenant_id,
                dojo_id,
                users,
                started,
                rng.randint(1, 30),
            )
    return ids


@dataclass
class Source:
    pocs: list[Any]
    dojos: list[Any]
    chat: list[Any]
    participation: list[Any]
    names: dict[uuid.UUID, str] = field(default_factory=dict)


async def load_source(db: Database, tenant_id: TenantId) -> Source:
    async with db.tenant_tx(tenant_id) as conn:
        return Source(
            pocs=list(
                await conn.fetch(
                    "select owner_id, languages, tags, status, created_at, archived_at from pocs"
                )
            ),
            dojos=list(await conn.fetch("select id, title, host_id, created_at from dojos")),
            chat=list(await conn.fetch("select dojo_id, author_id, created_at from dojo_chat")),
            participation=list(
                await conn.fetch(
                    "select dojo_id, user_id, joined_at, left_at from dojo_participation"
                )
            ),
        )


RANKED = {"status", "language", "tag", "owner", "chat", "dojo_seconds"}
Row = tuple[uuid.UUID, int, dt.date, str, str]


def expected_rollup(source: Source) -> dict[Row, int]:
    """The rollup table as it must be, computed here in Python from the source rows:
    monthly rows per user and for the tenant, plus for the tenant's rankings the aligned
    2..32-month buckets, the tenant's monthly dojo totals and each dojo's seconds ever."""
    out: Counter[Row] = Counter()

    def add(owner: uuid.UUID, month: dt.date, metric: str, key: str, n: int = 1) -> None:
        # Contributors are ranked only for the whole tenant.
        for scope in (TENANT_WIDE,) if metric == "owner" else (owner, TENANT_WIDE):
            spans = (1, 2, 4, 8, 16, 32) if scope == TENANT_WIDE and metric in RANKED else (1,)
            for span in spans:
                index = month.year * 12 + month.month - 1
                start = index - index % span
                bucket = dt.date(start // 12, start % 12 + 1, 1)
                out[(scope, span, bucket, metric, key)] += n

    for p in source.pocs:
        m = month_of(p["created_at"])
        add(p["owner_id"], m, "created", "")
        add(p["owner_id"], m, "status", p["status"])
        add(p["owner_id"], m, "owner", str(p["owner_id"]))
        for lang in set(p["languages"]):
            add(p["owner_id"], m, "language", lang)
        for tag in set(p["tags"]):
            add(p["owner_id"], m, "tag", tag)
        if p["archived_at"] is not None:
            add(p["owner_id"], month_of(p["archived_at"]), "archived", "")
    for d in source.dojos:
        add(d["host_id"], month_of(d["created_at"]), "dojos", "")
    for c in source.chat:
        add(c["author_id"], month_of(c["created_at"]), "chat", str(c["dojo_id"]))
        # The tenant's monthly totals (migration 0011): one row per month, no buckets.
        out[(TENANT_WIDE, 1, month_of(c["created_at"]), "chat_total", "")] += 1
    for p in source.participation:
        if p["left_at"] is not None:
            seconds = math.floor((p["left_at"] - p["joined_at"]).total_seconds())
            add(p["user_id"], month_of(p["joined_at"]), "dojo_seconds", str(p["dojo_id"]), seconds)
            out[(TENANT_WIDE, 1, month_of(p["joined_at"]), "dojo_seconds_total", "")] += seconds
            # Each dojo's seconds ever (negative durations count 0): one row per dojo.
            out[(TENANT_WIDE, 1, EVER, "dojo_seconds_ever", str(p["dojo_id"]))] += max(seconds, 0)
    return {k: v for k, v in out.items() if v != 0}


def expected_summary(source: Source, period: Period, owner: uuid.UUID | None) -> dict[str, Any]:
    """The dashboard JSON's figures, from the source rows (``owner`` None: whole tenant)."""

    def inside(ts: dt.datetime | None) -> bool:
        return ts is not None and period.start <= ts < period.end

    def mine(user: uuid.UUID) -> bool:
        return owner is None or user == owner

    pocs = [p for p in source.pocs if inside(p["created_at"]) and mine(p["owner_id"])]
    langs = Counter(lang for p in pocs for lang in set(p["languages"]))
    tags = Counter(tag for p in pocs for tag in set(p["tags"]))
    owners = Counter(str(p["owner_id"]) for p in pocs)
    created = Counter(month_of(p["created_at"]) for p in pocs)
    archived = Counter(
        month_of(p["archived_at"])
        for p in source.pocs
        if inside(p["archived_at"]) and mine(p["owner_id"])
    )
    dojos_per_month = Counter(
        month_of(d["created_at"])
        for d in source.dojos
        if inside(d["created_at"]) and mine(d["host_id"])
    )
    seconds: Counter[str] = Counter()
    chats: Counter[str] = Counter()
    for p in source.participation:
        if p["left_at"] is not None and inside(p["joined_at"]) and mine(p["user_id"]):
            seconds[str(p["dojo_id"])] += math.floor(
                (p["left_at"] - p["joined_at"]).total_seconds()
            )
    for c in source.chat:
        if inside(c["created_at"]) and mine(c["author_id"]):
            chats[str(c["dojo_id"])] += 1
    active = sorted(set(seconds) | set(chats), key=lambda d: (-seconds[d], -chats[d], d))[:5]

    def ranked(counter: Counter[str], limit: int | None) -> list[dict[str, Any]]:
        items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        return [{"key": k, "count": v} for k, v in items[:limit]]

    months, month = [], period.first
    while month <= period.last:
        months.append(
            {
                "month": month.strftime("%Y-%m"),
                "created": created[month],
                "archived": archived[month],
                "dojos": dojos_per_month[month],
            }
        )
        month = add_months(month, 1)
    return {
        "totals": {"pocs_created": len(pocs), "pocs_archived": sum(archived.values())},
        "per_month": months,
        "by_language": ranked(langs, None),
        "by_tag": ranked(tags, 20),
        "by_status": {
            s: sum(1 for p in pocs if p["status"] == s) for s in ("draft", "active", "archived")
        },
        "top_contributors": [{"user_id": r["key"], "pocs": r["count"]} for r in ranked(owners, 10)],
        "dojos": {
            "held": sum(dojos_per_month.values()),
            "participant_minutes": round(sum(seconds.values()) / 60, 1),
            "chat_messages": sum(chats.values()),
            "most_active": [
                {
                    "id": d,
                    "participant_minutes": round(seconds[d] / 60, 1),
                    "chat_messages": chats[d],
                }
                for d in active
            ],
        },
    }


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """The served summary without display-only fields (names, titles)."""
    return {
        "totals": summary["totals"],
        "per_month": summary["per_month"],
        "by_language": summary["by_language"],
        "by_tag": summary["by_tag"],
        "by_status": summary["by_status"],
        "top_contributors": [
            {"user_id": c["user_id"], "pocs": c["pocs"]} for c in summary["top_contributors"]
        ],
        "dojos": {
            **summary["dojos"],
            "most_active": [
                {k: v for k, v in d.items() if k != "title"}
                for d in summary["dojos"]["most_active"]
            ],
        },
    }


def default_period() -> Period:
    return Period(add_months(this_month(), -11), this_month())


async def rollup_rows(db: Database, tenant_id: TenantId) -> dict[Row, int]:
    async with db.tenant_tx(tenant_id) as conn:
        rows = await conn.fetch(
            "select owner_id, span, month, metric, key, n from report_rollup where n <> 0"
        )
    found: dict[Row, int] = defaultdict(int)
    for r in rows:
        found[(r["owner_id"], r["span"], r["month"], r["metric"], r["key"])] = r["n"]
    return dict(found)


async def wait_for_export(
    client: httpx.AsyncClient, job_id: str, headers: dict[str, str], timeout_s: float = 180
) -> dict[str, Any]:
    """Poll the API until the export is done or failed."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await client.get(f"/v1/reports/exports/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        assert 0 <= job["progress"] <= 100
        if job["status"] in {"done", "failed"}:
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"export still {job['status']} after {timeout_s} s: {job}")
        await asyncio.sleep(0.3)


async def bulk_pocs(db: Database, tenant_id: TenantId, owners: list[uuid.UUID], count: int) -> None:
    """Many PoCs in one statement, all created within the last 300 days."""
    async with db.tenant_tx(tenant_id) as conn:
        await conn.execute(
            """insert into pocs (tenant_id, owner_id, name, languages, tags, status, created_at)
               select $1, ($2::uuid[])[1 + g % cardinality($2::uuid[])], 'bulk poc ' || g,
                      array[(array['python','go','rust','swift'])[1 + g % 4]],
                      array['tag-' || (g % 30), 'team-' || (g % 7)],
                      (array['draft','active','archived'])[1 + g % 3],
                      now() - (g % 300) * interval '1 day' - (g % 997) * interval '1 second'
               from generate_series(1, $3) g""",
            tenant_id,
            owners,
            count,
        )

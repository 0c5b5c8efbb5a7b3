"""Dashboard figures, read from the trigger-maintained ``report_rollup`` (never from PoCs).

Every query is bounded by (tenant, scope owner, months): a tenant's dashboard reads a few
thousand small rollup rows however many PoCs it has.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from pocdojo.reports.period import Period, buckets
from pocdojo.types import TenantId, UserId

TENANT_WIDE = uuid.UUID(int=0)
"""The rollup's owner id for figures of the whole tenant."""
TOP_TAGS, TOP_CONTRIBUTORS, TOP_DOJOS = 20, 10, 5


class Scope(enum.StrEnum):
    TENANT = "tenant"
    ME = "me"


@dataclass(frozen=True, slots=True)
class Count:
    key: str
    count: int


@dataclass(frozen=True, slots=True)
class MonthFigures:
    month: dt.date
    created: int
    archived: int
    dojos: int


@dataclass(frozen=True, slots=True)
class Contributor:
    user_id: uuid.UUID
    display_name: str
    pocs: int


@dataclass(frozen=True, slots=True)
class DojoFigures:
    id: uuid.UUID
    title: str
    participant_minutes: float
    chat_messages: int


@dataclass(frozen=True, slots=True)
class Summary:
    scope: Scope
    period: Period
    per_month: list[MonthFigures]
    by_language: list[Count]
    by_tag: list[Count]
    by_status: dict[str, int]
    top_contributors: list[Contributor]
    dojos_held: int
    participant_seconds: int
    chat_messages: int
    most_active_dojos: list[DojoFigures] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(m.created for m in self.per_month)

    @property
    def archived(self) -> int:
        return sum(m.archived for m in self.per_month)

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": str(self.scope),
            "period": self.period.to_json(),
            "totals": {"pocs_created": self.created, "pocs_archived": self.archived},
            "new_vs_archived": {"new": self.created, "archived": self.archived},
            "per_month": [
                {
                    "month": m.month.strftime("%Y-%m"),
                    "created": m.created,
                    "archived": m.archived,
                    "dojos": m.dojos,
                }
                for m in self.per_month
            ],
            "by_language": [{"key": c.key, "count": c.count} for c in self.by_language],
            "by_tag": [{"key": c.key, "count": c.count} for c in self.by_tag],
            "by_status": self.by_status,
            "top_contributors": [
                {"user_id": str(c.user_id), "display_name": c.display_name, "pocs": c.pocs}
                for c in self.top_contributors
            ],
            "dojos": {
                "held": self.dojos_held,
                "participant_minutes": round(self.participant_seconds / 60, 1),
                "chat_messages": self.chat_messages,
                "most_active": [
                    {
                        "id": str(d.id),
                        "title": d.title,
                        "participant_minutes": d.participant_minutes,
                        "chat_messages": d.chat_messages,
                    }
                    for d in self.most_active_dojos
                ],
            },
        }


_SERIES = """
    select month, metric, sum(n) as n from report_rollup
    where tenant_id = $1 and owner_id = $2 and span = 1 and month between $3 and $4
      and metric in ('created', 'archived', 'dojos')
    group by month, metric having sum(n) <> 0
"""
_RANKED = f"""
    with agg as (
        select metric, key, sum(n) as n
        from unnest($3::date[], $4::smallint[]) as b(month, span)
        join report_rollup r using (month, span)
        where r.tenant_id = $1 and r.owner_id = $2
          and metric in ('status', 'language', 'tag', 'owner')
        group by metric, key having sum(n) <> 0)
    select metric, key, n from (
        select metric, key, n,
               row_number() over (partition by metric order by n desc, key collate "C") as rank
        from agg) ranked
    where metric in ('status', 'language')
       or (metric = 'tag' and rank <= {TOP_TAGS})
       or (metric = 'owner' and rank <= {TOP_CONTRIBUTORS})
"""
_DOJO_ACTIVITY = f"""
    with per_dojo as (
        select key, coalesce(sum(n) filter (where metric = 'dojo_seconds'), 0) as seconds,
               coalesce(sum(n) filter (where metric = 'chat'), 0) as chat
        from unnest($3::date[], $4::smallint[]) as b(month, span)
        join report_rollup r using (month, span)
        where r.tenant_id = $1 and r.owner_id = $2
          and metric in ('dojo_seconds', 'chat')
        group by key)
    select key, seconds, chat, sum(seconds) over () as all_seconds, sum(chat) over () as all_chat
    from per_dojo order by seconds desc, chat desc, key collate "C" limit {TOP_DOJOS}
"""


async def load_summary(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    scope: Scope,
    user_id: UserId,
    period: Period,
) -> Summary:
    """The dashboard for ``scope``; ``conn`` comes from ``Database.tenant_tx(tenant_id)``."""
    owner = TENANT_WIDE if scope is Scope.TENANT else user_id
    args = (tenant_id, owner, period.first, period.last)
    # Tenant-wide rankings read a few aligned multi-month buckets; a user's rows are monthly.
    tiles = buckets(period) if scope is Scope.TENANT else buckets(period, spans=(1,))
    ranged = (tenant_id, owner, [t[0] for t in tiles], [t[1] for t in tiles])
    series: dict[dt.date, dict[str, int]] = defaultdict(dict)
    for row in await conn.fetch(_SERIES, *args):
        series[row["month"]][row["metric"]] = row["n"]
    ranked: dict[str, list[Count]] = defaultdict(list)
    for row in await conn.fetch(_RANKED, *ranged):
        ranked[row["metric"]].append(Count(row["key"], row["n"]))
    top_rows = await conn.fetch(_DOJO_ACTIVITY, *ranged)
    top = [(uuid.UUID(r["key"]), int(r["seconds"]), int(r["chat"])) for r in top_rows]
    all_seconds = int(top_rows[0]["all_seconds"]) if top_rows else 0
    all_chat = int(top_rows[0]["all_chat"]) if top_rows else 0
    titles = {
        r["id"]: r["title"]
        for r in await conn.fetch(
            "select id, title from dojos where id = any($1::uuid[])", [a[0] for a in top]
        )
    }
    created = sum(m.get("created", 0) for m in series.values())
    if scope is Scope.ME and created:
        # Only the whole tenant's rollup ranks contributors; here it is the caller alone.
        ranked["owner"] = [Count(str(user_id), created)]
    owners = [uuid.UUID(c.key) for c in ranked["owner"]]
    names = {
        r["id"]: r["display_name"]
        for r in await conn.fetch(
            "select id, display_name from users where id = any($1::uuid[])", owners
        )
    }
    return Summary(
        scope=scope,
        period=period,
        per_month=[
            MonthFigures(
                m,
                series[m].get("created", 0),
                series[m].get("archived", 0),
                series[m].get("dojos", 0),
            )
            for m in period.months()
        ],
        by_language=ranked["language"],
        by_tag=ranked["tag"],
        by_status={
            s: next((c.count for c in ranked["status"] if c.key == s), 0)
            for s in ("draft", "active", "archived")
        },
        top_contributors=[
            Contributor(uuid.UUID(c.key), names.get(uuid.UUID(c.key), "(former member)"), c.count)
            for c in ranked["owner"]
        ],
        dojos_held=sum(m.get("dojos", 0) for m in series.values()),
        participant_seconds=all_seconds,
        chat_messages=all_chat,
        most_active_dojos=[
            DojoFigures(d, titles.get(d, "(deleted dojo)"), round(s / 60, 1), c) for d, s, c in top
        ],
    )

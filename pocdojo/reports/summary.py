"""Dashboard figures, read from the trigger-maintained ``report_rollup`` (never from PoCs).

Every query is bounded by (tenant, scope owner, months): a tenant's dashboard reads a few
hundred small rollup rows however many PoCs it has (the rankings read each bucket's largest
rows first, migration 0011); a user's reads their own monthly rows.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
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


_NAMES_OF = """json_build_object(
        'users', (select coalesce(json_object_agg(u.id, u.display_name), '{{}}')
                  from users u where u.id = any(array({users}))),
        'dojos', (select coalesce(json_object_agg(d.id, d.title), '{{}}')
                  from dojos d where d.id = any(array({dojos}))))::text"""
_DASHBOARD_NAMES = _NAMES_OF.format(
    users="select key::uuid from kept where metric = 'owner' union all select $2",
    dojos="select key::uuid from top",
)
_HIT_NAMES = _NAMES_OF.format(users="select unnest($3::uuid[])", dojos="select unnest($4::uuid[])")

# The parts both dashboards share: the buckets ($5/$6), the monthly series and the
# statuses and languages (every key: a few dozen). Each bucket is its own index range
# (LATERAL, and OFFSET 0 so the planner cannot flatten it into a join): asyncpg prepares
# statements, and after five runs Postgres may switch to a generic plan, which for a plain
# join read every rollup row of the (tenant, owner) and filtered (measured 357 ms instead of
# 20 ms); this form cannot go that wrong.
_TILES_AND_SERIES = """
    with tiles as (select * from unnest($5::date[], $6::smallint[]) as b(month, span)),
    series as (
        select r.month, m.metric, sum(r.n) as n
        from (values {series}) m(metric) cross join lateral (
            select month, n from report_rollup r
            where r.tenant_id = $1 and r.owner_id = $2 and r.span = 1 and r.metric = m.metric
              and r.month between $3 and $4 offset 0) r
        group by 1, 2 having sum(r.n) <> 0),
    agg as (
        select r.metric collate "C" as metric, r.key collate "C" as key, sum(r.n) as n
        from tiles cross join (values {summed}) m(metric) cross join lateral (
            select r.metric, r.key, r.n from report_rollup r
            where r.tenant_id = $1 and r.owner_id = $2 and r.span = tiles.span
              and r.metric = m.metric and r.month = tiles.month offset 0) r
        group by 1, 2 having sum(r.n) <> 0),
"""
_ALL_DOJOS = """
        select key collate "C" as key,
               coalesce(sum(n) filter (where metric = 'dojo_seconds'), 0) as seconds,
               coalesce(sum(n) filter (where metric = 'chat'), 0) as chat
        from tiles cross join lateral (
            select metric, key, n from report_rollup r
            where r.tenant_id = $1 and r.owner_id = $2 and r.span = tiles.span
              and r.metric in ('dojo_seconds', 'chat') and r.month = tiles.month offset 0) r
"""


def _figures(seconds: str, chat: str) -> str:
    """The end of a dashboard statement: the five most active dojos of ``per_dojo`` and the
    JSON document, with the dojo totals from the ``seconds`` and ``chat`` subqueries."""
    return f"""
    top as (
        select key, seconds, chat from per_dojo where seconds <> 0 or chat <> 0
        order by seconds desc, chat desc, key limit {TOP_DOJOS}),
    figures as (
        select json_build_object(
            'series', (select coalesce(json_agg(json_build_array(month, metric, n)), '[]')
                       from series where metric in ('created', 'archived', 'dojos')),
            'ranked', (select coalesce(json_agg(json_build_array(metric, key, n)
                                                order by metric, n desc, key), '[]')
                       from kept),
            'dojos', (select coalesce(json_agg(json_build_array(key, seconds, chat)
                                               order by seconds desc, chat desc, key), '[]')
                       from top),
            'seconds', ({seconds}),
            'chat', ({chat})) as doc)
    select doc::text as figures, {_DASHBOARD_NAMES} as names
    from figures
"""


# One user's dashboard in one statement (one round trip, one snapshot): the monthly rows of
# the user, every key summed (a user has few). "figures" is what the cache keeps; "names"
# is looked up fresh on a hit.
_MY_DASHBOARD = (
    _TILES_AND_SERIES.format(
        series="('created'), ('archived'), ('dojos')",
        summed="('status'), ('language'), ('tag'), ('owner')",
    )
    + f"""
    -- Top-N per metric (a bounded heap) instead of ranking every key with a window.
    kept as (
        (select metric, key, n from agg where metric in ('status', 'language'))
        union all (select metric, key, n from agg where metric = 'tag'
                   order by n desc, key limit {TOP_TAGS})
        union all (select metric, key, n from agg where metric = 'owner'
                   order by n desc, key limit {TOP_CONTRIBUTORS})),
    per_dojo as ({_ALL_DOJOS}
        group by 1),
"""
    + _figures(
        seconds="select coalesce(sum(seconds), 0) from per_dojo",
        chat="select coalesce(sum(chat), 0) from per_dojo",
    )
)

# The whole tenant's dashboard in one statement. The rankings (thousands of tags and dojos,
# hundreds of contributors) come from report_top() (migration 0011), which reads the
# largest rows of each bucket first and sums only the keys that can still rank; the dojo
# totals from their monthly rows. The five most active dojos: the dojos that can rank by
# seconds (report_top_ever: walking the dojos by their seconds ever), then their chat as
# the tie-break; only when fewer than five dojos of the period have any seconds can a dojo
# with chat alone rank, and then every dojo is summed.
_TENANT_DASHBOARD = (
    _TILES_AND_SERIES.format(
        series="('created'), ('archived'), ('dojos'), ('chat_total'), ('dojo_seconds_total')",
        summed="('status'), ('language')",
    )
    + f"""
    kept as (
        (select metric, key, n from agg)
        union all (select 'tag', key collate "C", n from report_top($1, 'tag', $5, $6, {TOP_TAGS})
                   order by n desc, key collate "C" limit {TOP_TAGS})
        union all (select 'owner', key collate "C", n
                   from report_top($1, 'owner', $5, $6, {TOP_CONTRIBUTORS})
                   order by n desc, key collate "C" limit {TOP_CONTRIBUTORS})),
    busiest as materialized (
        select key collate "C" as key, n as seconds
        from report_top_ever($1, 'dojo_seconds', $5, $6, {TOP_DOJOS})),
    ranked_by_seconds as (select count(*) filter (where seconds > 0) >= {TOP_DOJOS} as ok
                          from busiest),
    busiest_chat as (
        select key collate "C" as key, sum(n) as chat
        from tiles cross join lateral (
            select key, n from report_rollup r
            where r.tenant_id = $1 and r.owner_id = $2 and r.span = tiles.span
              and r.metric = 'chat' and r.month = tiles.month
              and r.key = any(array(select key from busiest)) offset 0) r
        group by 1),
    per_dojo as (
        select b.key, b.seconds, coalesce(c.chat, 0) as chat
        from busiest b left join busiest_chat c using (key)
        where (select ok from ranked_by_seconds)
        union all
        ({_ALL_DOJOS}
         where not (select ok from ranked_by_seconds)
         group by 1)),
"""
    + _figures(
        seconds="select coalesce(sum(n), 0) from series where metric = 'dojo_seconds_total'",
        chat="select coalesce(sum(n), 0) from series where metric = 'chat_total'",
    )
)

# The version of a scope's figures (migration 0007) and, in the same round trip, the names a
# cached dashboard shows: on a hit this is the only statement.
_VERSION_AND_NAMES = f"""
    select (select coalesce(sum(n), 0)::bigint from report_versions
            where tenant_id = $1 and owner_id = $2) as version,
           {_HIT_NAMES} as names
"""


@dataclass(frozen=True, slots=True)
class Figures:
    """A dashboard's numbers as the rollup gives them, without names: what the cache holds
    (the JSON text Postgres built, stored as is)."""

    doc: str

    def people(self) -> list[uuid.UUID]:
        data = json.loads(self.doc)
        return [uuid.UUID(key) for metric, key, _ in data["ranked"] if metric == "owner"]

    def dojos(self) -> list[uuid.UUID]:
        return [uuid.UUID(key) for key, _, _ in json.loads(self.doc)["dojos"]]


@dataclass(frozen=True, slots=True)
class Names:
    users: dict[uuid.UUID, str]
    dojos: dict[uuid.UUID, str]

    @classmethod
    def parse(cls, raw: str) -> Names:
        data = json.loads(raw)
        return cls(
            {uuid.UUID(k): v for k, v in data["users"].items()},
            {uuid.UUID(k): v for k, v in data["dojos"].items()},
        )


def scope_owner(scope: Scope, user_id: UserId) -> uuid.UUID:
    """The rollup's owner id of a scope's figures."""
    return TENANT_WIDE if scope is Scope.TENANT else user_id


async def version_and_names(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    owner: uuid.UUID,
    figures: Figures | None,
    user_id: UserId,
) -> tuple[int, Names]:
    """The version of (tenant, owner)'s figures, which changes whenever one of them does, and
    the current names for ``figures`` (none without)."""
    people = [*figures.people(), user_id] if figures else []
    dojos = figures.dojos() if figures else []
    row = await conn.fetchrow(_VERSION_AND_NAMES, tenant_id, owner, people, dojos)
    assert row is not None
    return int(row["version"]), Names.parse(row["names"])


async def load_figures(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    scope: Scope,
    user_id: UserId,
    period: Period,
) -> tuple[Figures, Names]:
    """The dashboard's numbers and names, read from the rollup in one statement."""
    owner = scope_owner(scope, user_id)
    # Tenant-wide rankings read a few aligned multi-month buckets; a user's rows are monthly.
    tiles = buckets(period) if scope is Scope.TENANT else buckets(period, spans=(1,))
    # A user's statement is planned for its own arguments every time: the generic plan, not
    # knowing how many rows a bucket has, aggregates by sorting (measured p50 45 vs 25 ms
    # with planning, load 8). The tenant's aggregates a few dozen rows (the rankings come
    # from functions with their own plans): its generic plan, made once per connection,
    # runs as fast as a custom one and saves ~0.8 ms of planning per read (36 months: 2.4
    # vs 3.2 ms on the bench).
    mode = "force_generic_plan" if scope is Scope.TENANT else "force_custom_plan"
    await conn.execute("select set_config('plan_cache_mode', $1, true)", mode)
    row = await conn.fetchrow(
        _TENANT_DASHBOARD if scope is Scope.TENANT else _MY_DASHBOARD,
        tenant_id,
        owner,
        period.first,
        period.last,
        [t[0] for t in tiles],
        [t[1] for t in tiles],
    )
    assert row is not None
    return Figures(row["figures"]), Names.parse(row["names"])


async def load_summary(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    scope: Scope,
    user_id: UserId,
    period: Period,
) -> Summary:
    """The dashboard for ``scope``; ``conn`` comes from ``Database.tenant_tx(tenant_id)``."""
    figures, names = await load_figures(conn, tenant_id, scope, user_id, period)
    return build_summary(scope, user_id, period, figures, names)


def build_summary(
    scope: Scope, user_id: UserId, period: Period, figures: Figures, names: Names
) -> Summary:
    data = json.loads(figures.doc)
    series: dict[dt.date, dict[str, int]] = defaultdict(dict)
    for month, metric, n in data["series"]:
        series[dt.date.fromisoformat(month)][metric] = int(n)
    ranked: dict[str, list[Count]] = defaultdict(list)
    for metric, key, n in data["ranked"]:
        ranked[metric].append(Count(key, int(n)))
    created = sum(m.get("created", 0) for m in series.values())
    if scope is Scope.ME and created:
        # Only the whole tenant's rollup ranks contributors; here it is the caller alone.
        ranked["owner"] = [Count(str(user_id), created)]
    statuses = {c.key: c.count for c in ranked["status"]}
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
        by_status={s: statuses.get(s, 0) for s in ("draft", "active", "archived")},
        top_contributors=[
            Contributor(
                uuid.UUID(c.key), names.users.get(uuid.UUID(c.key), "(former member)"), c.count
            )
            for c in ranked["owner"]
        ],
        dojos_held=sum(m.get("dojos", 0) for m in series.values()),
        participant_seconds=int(data["seconds"]),
        chat_messages=int(data["chat"]),
        most_active_dojos=[
            DojoFigures(
                uuid.UUID(key),
                names.dojos.get(uuid.UUID(key), "(deleted dojo)"),
                round(int(seconds) / 60, 1),
                int(chat),
            )
            for key, seconds, chat in data["dojos"]
        ],
    )

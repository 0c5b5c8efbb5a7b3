"""The benchmark's baseline dashboard: the same figures by plain aggregate queries over the
PoC and dojo tables (what a report would do without rollups), behind the same HTTP route
shape, auth and tenant transaction as reports-api. Also a naive, in-memory export."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from pathlib import Path

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pocdojo.api.context import authenticate, open_services, services
from pocdojo.api.params import json_response
from pocdojo.api.problems import EXCEPTION_HANDLERS
from pocdojo.api.reports import _scope
from pocdojo.reports.period import Period
from pocdojo.reports.rows import COLUMNS
from pocdojo.reports.summary import (
    TOP_CONTRIBUTORS,
    TOP_DOJOS,
    TOP_TAGS,
    Contributor,
    Count,
    DojoFigures,
    MonthFigures,
    Scope,
    Summary,
)
from pocdojo.settings import Settings
from pocdojo.types import TenantId, UserId

_P = "created_at >= $1 and created_at < $2 and ($3::uuid is null or owner_id = $3)"
_PP = "p.created_at >= $1 and p.created_at < $2 and ($3::uuid is null or p.owner_id = $3)"


async def aggregate_summary(
    conn: asyncpg.Connection, tenant_id: TenantId, scope: Scope, user_id: UserId, period: Period
) -> Summary:
    owner = None if scope is Scope.TENANT else user_id
    args = (period.start, period.end, owner)
    created = {
        r["m"]: r["n"]
        for r in await conn.fetch(
            f"select report_month(created_at) m, count(*) n from pocs where {_P} group by 1", *args
        )
    }
    archived = {
        r["m"]: r["n"]
        for r in await conn.fetch(
            "select report_month(archived_at) m, count(*) n from pocs where archived_at >= $1 "
            "and archived_at < $2 and ($3::uuid is null or owner_id = $3) group by 1",
            *args,
        )
    }
    dojos = {
        r["m"]: r["n"]
        for r in await conn.fetch(
            "select report_month(created_at) m, count(*) n from dojos where created_at >= $1 "
            "and created_at < $2 and ($3::uuid is null or host_id = $3) group by 1",
            *args,
        )
    }
    languages = [
        Count(r["k"], r["n"])
        for r in await conn.fetch(
            f"select l k, count(*) n from pocs, unnest(languages) l where {_P} "
            'group by l order by n desc, l collate "C"',
            *args,
        )
    ]
    tags = [
        Count(r["k"], r["n"])
        for r in await conn.fetch(
            f"select t k, count(*) n from pocs, unnest(tags) t where {_P} "
            f'group by t order by n desc, t collate "C" limit {TOP_TAGS}',
            *args,
        )
    ]
    status = {
        r["status"]: r["n"]
        for r in await conn.fetch(
            f"select status, count(*) n from pocs where {_P} group by status", *args
        )
    }
    owners = await conn.fetch(
        f"select p.owner_id, coalesce(u.display_name, '(former member)') name, count(*) n "
        f"from pocs p left join users u on u.id = p.owner_id where {_PP} "
        f'group by p.owner_id, u.display_name order by n desc, p.owner_id::text collate "C" '
        f"limit {TOP_CONTRIBUTORS}",
        *args,
    )
    activity: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0])
    for r in await conn.fetch(
        "select dojo_id, sum(report_seconds(joined_at, left_at))::bigint s from dojo_participation "
        "where left_at is not null and joined_at >= $1 and joined_at < $2 "
        "and ($3::uuid is null or user_id = $3) group by dojo_id",
        *args,
    ):
        activity[r["dojo_id"]][0] = r["s"]
    for r in await conn.fetch(
        "select dojo_id, count(*) n from dojo_chat where created_at >= $1 and created_at < $2 "
        "and ($3::uuid is null or author_id = $3) group by dojo_id",
        *args,
    ):
        activity[r["dojo_id"]][1] = r["n"]
    top = sorted(activity.items(), key=lambda a: (-a[1][0], -a[1][1], str(a[0])))[:TOP_DOJOS]
    titles = {
        r["id"]: r["title"]
        for r in await conn.fetch(
            "select id, title from dojos where id = any($1::uuid[])", [t[0] for t in top]
        )
    }
    return Summary(
        scope=scope,
        period=period,
        per_month=[
            MonthFigures(m, created.get(m, 0), archived.get(m, 0), dojos.get(m, 0))
            for m in period.months()
        ],
        by_language=languages,
        by_tag=tags,
        by_status={s: status.get(s, 0) for s in ("draft", "active", "archived")},
        top_contributors=[Contributor(r["owner_id"], r["name"], r["n"]) for r in owners],
        dojos_held=sum(dojos.values()),
        participant_seconds=sum(a[0] for a in activity.values()),
        chat_messages=sum(a[1] for a in activity.values()),
        most_active_dojos=[
            DojoFigures(d, titles.get(d, "(deleted dojo)"), round(v[0] / 60, 1), v[1])
            for d, v in top
        ],
    )


async def baseline_summary(request: Request) -> Response:
    principal = await authenticate(request)
    scope = _scope(request.query_params.get("scope"), principal, "query.scope")
    period = Period.parse(request.query_params.get("from"), request.query_params.get("to"))
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        summary = await aggregate_summary(
            conn, principal.tenant_id, scope, principal.user_id, period
        )
    return json_response(summary.to_json())


def create_baseline_app(settings: Settings) -> Starlette:
    import contextlib
    from collections.abc import AsyncIterator

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as svc:
            app.state.services = svc
            app.state.verifier = svc.verifier
            yield

    return Starlette(
        routes=[Route("/baseline/summary", baseline_summary, methods=["GET"])],
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )


async def naive_export(conn: asyncpg.Connection, fmt: str, period: Period, path: Path) -> int:
    """Everything in memory first, then the file: what the streaming writers avoid."""
    rows = await conn.fetch(
        "select p.id::text, p.name, p.owner_id::text, coalesce(u.display_name, ''), p.status, "
        "array_to_string(p.languages, ';'), array_to_string(p.tags, ';'), p.built_on, "
        "p.created_at, p.updated_at, p.archived_at, p.repo_url, p.demo_url "
        "from pocs p left join users u on u.id = p.owner_id "
        "where p.created_at >= $1 and p.created_at < $2 order by p.created_at, p.id",
        period.start,
        period.end,
    )
    _write_naive(fmt, [list(r) for r in rows], path)
    return len(rows)


def _write_naive(fmt: str, rows: list[list[object]], path: Path) -> None:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
        path.write_text(buffer.getvalue())
    else:
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.append(list(COLUMNS))
        for r in rows:
            sheet.append(
                [v.replace(tzinfo=None) if hasattr(v, "tzinfo") and v.tzinfo else v for v in r]
            )
        book.save(path)

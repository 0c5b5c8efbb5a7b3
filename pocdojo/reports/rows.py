"""The rows of a PoC export: one per PoC of the period, streamed from a server-side cursor."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from pocdojo.reports.period import Period
from pocdojo.reports.summary import Scope
from pocdojo.types import UserId

COLUMNS = (
    "id",
    "name",
    "owner_id",
    "owner",
    "status",
    "languages",
    "tags",
    "built_on",
    "created_at",
    "updated_at",
    "archived_at",
    "repo_url",
    "demo_url",
)
PREFETCH = 2000


@dataclass(frozen=True, slots=True)
class ExportRow:
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    owner: str
    status: str
    languages: list[str]
    tags: list[str]
    built_on: dt.date
    created_at: dt.datetime
    updated_at: dt.datetime
    archived_at: dt.datetime | None
    repo_url: str | None
    demo_url: str | None

    def cells(self) -> list[str | dt.date | dt.datetime | None]:
        """Values in ``COLUMNS`` order; lists joined with ``;``; times as naive UTC."""

        def utc(value: dt.datetime | None) -> dt.datetime | None:
            return value.astimezone(dt.UTC).replace(tzinfo=None) if value else None

        return [
            str(self.id),
            self.name,
            str(self.owner_id),
            self.owner,
            self.status,
            ";".join(self.languages),
            ";".join(self.tags),
            self.built_on,
            utc(self.created_at),
            utc(self.updated_at),
            utc(self.archived_at),
            self.repo_url,
            self.demo_url,
        ]


def _filter(scope: Scope, user_id: UserId) -> tuple[str, list[object]]:
    if scope is Scope.ME:
        return "and p.owner_id = $3", [user_id]
    return "", []


async def count_rows(
    conn: asyncpg.Connection, period: Period, scope: Scope, user_id: UserId
) -> int:
    extra, args = _filter(scope, user_id)
    count: int = await conn.fetchval(
        f"select count(*) from pocs p where p.created_at >= $1 and p.created_at < $2 {extra}",
        period.start,
        period.end,
        *args,
    )
    return count


async def stream_rows(
    conn: asyncpg.Connection, period: Period, scope: Scope, user_id: UserId
) -> AsyncIterator[ExportRow]:
    """PoCs created in the period, oldest first; needs a transaction (a cursor)."""
    extra, args = _filter(scope, user_id)
    query = f"""
        select p.id, p.name, p.owner_id, coalesce(u.display_name, '') as owner, p.status,
               p.languages, p.tags, p.built_on, p.created_at, p.updated_at, p.archived_at,
               p.repo_url, p.demo_url
        from pocs p left join users u on u.id = p.owner_id
        where p.created_at >= $1 and p.created_at < $2 {extra}
        order by p.created_at, p.id"""
    # The planner would otherwise pick a fast-start plan for a cursor (10% of the rows).
    await conn.execute("set local cursor_tuple_fraction = 1.0")
    cursor = await conn.cursor(query, period.start, period.end, *args)
    while batch := await cursor.fetch(PREFETCH):
        for r in batch:
            yield _row(r)


def _row(r: asyncpg.Record) -> ExportRow:
    return ExportRow(
        r["id"],
        r["name"],
        r["owner_id"],
        r["owner"],
        r["status"],
        list(r["languages"]),
        list(r["tags"]),
        r["built_on"],
        r["created_at"],
        r["updated_at"],
        r["archived_at"],
        r["repo_url"],
        r["demo_url"],
    )

"""The naive search baseline for ``make bench-search``: ILIKE and array filters, no indexes.

``NaiveSearch`` answers the same ``search``/``suggest`` calls as ``PostgresSearch`` (the
``SearchIndex`` Protocol) over one plain table, ``bench_naive.pocs``, whose only index is
its primary key ``(tenant_id, id)``: what a first version without a search design would
do. Text matches by ``ILIKE '%q%'`` on the name or the description (no typo tolerance,
no relevance: newest first), filters are array operators, facets count every matching
row (no cap), typeahead is ``name ILIKE 'q%'`` plus the distinct tags and languages.

The benchmark driver (``loadtests.bench_search``) creates and loads the table (as the
owner role, then grants ``pocdojo_search`` read access); the service opens this class
through ``open_naive_index`` in ``loadtests.search_service``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from pocdojo.domain.text import highlight, terms
from pocdojo.errors import FieldError, ValidationFailed
from pocdojo.settings import Settings
from pocdojo.storage.db import Database
from pocdojo.storage.search import (
    FACET_SIZE,
    MAX_LIMIT,
    FacetCount,
    SearchDoc,
    SearchHit,
    SearchQuery,
    SearchResult,
    Suggestion,
    decode_cursor,
    encode_cursor,
)
from pocdojo.types import TenantId

SCHEMA = "bench_naive"
TABLE = f"{SCHEMA}.pocs"
COLUMNS = (
    "tenant_id",
    "id",
    "name",
    "description",
    "languages",
    "tags",
    "owner_id",
    "status",
    "built_on",
    "created_at",
)
# Run as the owner role (the database owner): the table's only index is its primary key.
DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {TABLE} (
    tenant_id uuid not null,
    id uuid not null,
    name text not null,
    description text not null,
    languages text[] not null,
    tags text[] not null,
    owner_id uuid,
    status text,
    built_on date,
    created_at timestamptz,
    primary key (tenant_id, id)
);
grant usage on schema {SCHEMA} to pocdojo_search;
grant select on {TABLE} to pocdojo_search;
"""


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (``\\`` is the default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def copy_record(tenant_id: TenantId, doc: SearchDoc) -> tuple[Any, ...]:
    """One row of ``bench_naive.pocs`` in ``COLUMNS`` order, for COPY."""
    return (
        tenant_id,
        doc.id,
        doc.name,
        doc.description,
        list(doc.languages),
        list(doc.tags),
        doc.owner_id,
        doc.status,
        doc.built_on,
        doc.created_at,
    )


class NaiveSearch:
    """``search`` and ``suggest`` of the SearchIndex Protocol, the naive way; read-only."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writes: not part of the baseline (the driver loads the table with COPY) ---------

    async def upsert(self, tenant_id: TenantId, doc: SearchDoc) -> bool:
        raise NotImplementedError("the naive baseline is loaded by the benchmark driver")

    async def delete(self, tenant_id: TenantId, poc_id: uuid.UUID, version: int) -> bool:
        raise NotImplementedError("the naive baseline is loaded by the benchmark driver")

    async def replace_tenant(self, tenant_id: TenantId, docs: list[SearchDoc]) -> int:
        raise NotImplementedError("the naive baseline is loaded by the benchmark driver")

    # -- reads ----------------------------------------------------------------------------

    async def search(self, tenant_id: TenantId, query: SearchQuery) -> SearchResult:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValidationFailed([FieldError("query.limit", f"from 1 to {MAX_LIMIT}")])
        args: list[Any] = [tenant_id]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        where = ["tenant_id = $1"]
        text = query.q.strip()
        if text:
            pattern = arg(f"%{like_escape(text)}%")
            where.append(f"(name ilike {pattern} or description ilike {pattern})")
        if query.languages:
            where.append(f"languages && {arg(list(query.languages))}::text[]")
        if query.tags_all:
            where.append(f"tags @> {arg(list(query.tags_all))}::text[]")
        if query.tags_any:
            where.append(f"tags && {arg(list(query.tags_any))}::text[]")
        if query.owner is not None:
            where.append(f"owner_id = {arg(query.owner)}")
        if query.status is not None:
            where.append(f"status = {arg(query.status)}")
        if query.year is not None:
            where.append(f"extract(year from built_on) = {arg(query.year)}")
        facet_where = " and ".join(where)
        facet_args = list(args)
        by_name = query.sort == "name"
        if query.cursor:
            where.append(self._after(arg, by_name, decode_cursor(query.cursor)))
        order = "name asc, id asc" if by_name else "created_at desc, id desc"
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                f"""select id, name, description, languages, tags, owner_id, status, built_on,
                           created_at
                    from {TABLE} where {" and ".join(where)}
                    order by {order} limit {arg(query.limit + 1)}""",
                *args,
            )
            facets = await conn.fetch(
                f"""select 'l' as kind, v, count(*) as n
                    from {TABLE}, unnest(languages) v where {facet_where} group by v
                    union all
                    select 't', v, count(*) from {TABLE}, unnest(tags) v
                    where {facet_where} group by v""",
                *facet_args,
            )
        words = terms(text)
        hits = [self._hit(r, words) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = rows[query.limit - 1]
            key = last["name"] if by_name else last["created_at"].isoformat()
            next_cursor = encode_cursor(["name" if by_name else "newest", key, str(last["id"])])
        counts: dict[str, list[FacetCount]] = {"l": [], "t": []}
        for row in facets:
            counts[row["kind"]].append(FacetCount(row["v"], row["n"]))
        languages, tags = (
            sorted(counts[k], key=lambda f: (-f.count, f.value))[:FACET_SIZE] for k in ("l", "t")
        )
        return SearchResult(hits, languages, tags, next_cursor)

    @staticmethod
    def _after(arg: Any, by_name: bool, values: list[Any]) -> str:
        try:
            if values[0] != ("name" if by_name else "newest"):
                raise ValueError("cursor of another sort order")
            ident = uuid.UUID(values[2])
            if by_name:
                return f"(name, id) > ({arg(str(values[1]))}, {arg(ident)})"
            created = dt.datetime.fromisoformat(values[1])
            return f"(created_at, id) < ({arg(created)}, {arg(ident)})"
        except (IndexError, ValueError, TypeError) as exc:
            raise ValidationFailed([FieldError("query.cursor", "invalid cursor")]) from exc

    @staticmethod
    def _hit(row: asyncpg.Record, words: list[str]) -> SearchHit:
        highlights: dict[str, str] = {}
        if words:
            if name := highlight(row["name"], words):
                highlights["name"] = name
            if description := highlight(row["description"], words, width=160):
                highlights["description"] = description
        return SearchHit(
            id=row["id"],
            name=row["name"],
            languages=tuple(row["languages"]),
            tags=tuple(row["tags"]),
            owner_id=row["owner_id"],
            status=row["status"],
            built_on=row["built_on"],
            score=0.0,
            highlights=highlights,
        )

    async def suggest(self, tenant_id: TenantId, prefix: str, limit: int = 10) -> list[Suggestion]:
        text = prefix.strip()
        if not text or not 1 <= limit <= 50:
            return []
        pattern = like_escape(text) + "%"
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                f"""(select 'name' as kind, name as value, id from {TABLE}
                     where tenant_id = $1 and name ilike $2 order by created_at desc limit $3)
                    union all
                    (select distinct 'language', v, null::uuid
                     from {TABLE}, unnest(languages) v where tenant_id = $1 and v ilike $2
                     limit $3)
                    union all
                    (select distinct 'tag', v, null::uuid
                     from {TABLE}, unnest(tags) v where tenant_id = $1 and v ilike $2
                     limit $3)""",
                tenant_id,
                pattern,
                limit,
            )
        names = [Suggestion("name", r["value"], r["id"]) for r in rows if r["kind"] == "name"]
        others = [Suggestion(r["kind"], r["value"]) for r in rows if r["kind"] != "name"]
        mixed = others[: limit // 2] + names
        return (mixed + others[limit // 2 :])[:limit]


@contextlib.asynccontextmanager
async def open_naive_index(settings: Settings) -> AsyncIterator[object]:
    """The baseline, on the search role's connection, with the same pool settings as the
    production backend (``open_search_index``)."""
    async with Database(settings.search_database_url, max_size=settings.db_pool_max) as db:
        yield NaiveSearch(db)

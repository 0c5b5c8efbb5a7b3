"""PostgresSearch: the default SearchIndex, over the ``search`` schema.

Every statement carries ``tenant_id = $1`` (the first column of every index); there is no
method without a tenant. Names match by word prefix (tsquery ``:*`` on weight A), by
trigram word similarity (typos) and descriptions by full text (weight D).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import asyncpg

from pocdojo.domain.text import fold, highlight, terms
from pocdojo.errors import FieldError, ValidationFailed
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

# Facets are counted over at most this many matching documents; below it they are exact.
FACET_CAP = 1_000
_HIT_COLUMNS = (
    "id, name, name_norm, description, languages, tags, owner_id, status, built_on, created_at"
)
# Bulk loads and reindexing may take minutes for large tenants.
BULK_TIMEOUT_S = 900.0
_ON_CONFLICT_REPLACE = """on conflict (tenant_id, id) do update set
    version = excluded.version, deleted = false, name = excluded.name,
    name_norm = excluded.name_norm, description = excluded.description, tsv = excluded.tsv,
    name_tsv = excluded.name_tsv,
    languages = excluded.languages, tags = excluded.tags, owner_id = excluded.owner_id,
    status = excluded.status, built_on = excluded.built_on, year = excluded.year,
    created_at = excluded.created_at, updated_at = excluded.updated_at, indexed_at = now()"""
_TIER_EXACT, _TIER_PREFIX, _TIER_FUZZY, _TIER_TEXT = 4, 3, 2, 1


# Per-connection settings of the search role: typos with a dropped letter score ~0.55
# (0.6 missed one in four in the benchmark); queries are small, so no parallel workers or JIT.
SEARCH_SERVER_SETTINGS = {
    "pg_trgm.word_similarity_threshold": "0.5",
    "max_parallel_workers_per_gather": "0",
    "jit": "off",
}


def open_search_database(url: str, *, max_size: int = 10) -> Database:
    """The search role's pool, with the settings the queries below are tuned for."""
    return Database(url, max_size=max_size, server_settings=SEARCH_SERVER_SETTINGS)


class _Sql:
    """Collects a WHERE clause and its bind arguments; the tenant is always ``$1``."""

    def __init__(self, tenant_id: TenantId) -> None:
        self.args: list[Any] = [tenant_id]
        self.where: list[str] = ["tenant_id = $1", "not deleted"]

    @classmethod
    def copy(cls, other: _Sql) -> _Sql:
        new = cls.__new__(cls)
        new.args, new.where = list(other.args), list(other.where)
        return new

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


class PostgresSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writes -------------------------------------------------------------------------

    async def upsert(self, tenant_id: TenantId, doc: SearchDoc) -> bool:
        async with self._db.connection() as conn, conn.transaction():
            return await self._upsert(conn, tenant_id, doc)

    @staticmethod
    async def _lock_tenants(conn: asyncpg.Connection, tenants: list[uuid.UUID]) -> None:
        """Writers of one tenant's projection take turns (document rows and term counts are
        locked in different orders by single upserts and by reindexing); sorted, so that
        multi-tenant writers cannot deadlock each other."""
        for tenant in sorted(set(tenants)):
            await conn.execute(
                "select pg_advisory_xact_lock(hashtextextended($1::text, 7))", str(tenant)
            )

    async def _upsert(self, conn: asyncpg.Connection, tenant_id: TenantId, doc: SearchDoc) -> bool:
        await self._lock_tenants(conn, [tenant_id])
        old = await conn.fetchrow(
            "select version, deleted, languages, tags from search.pocs "
            "where tenant_id = $1 and id = $2 for update",
            tenant_id,
            doc.id,
        )
        if old is not None and old["version"] >= doc.version:
            return False  # a replay or an out-of-order older event
        await conn.execute(
            f"""insert into search.pocs as p (tenant_id, id, version, deleted, name, name_norm,
                   description, tsv, name_tsv, languages, tags, owner_id, status, built_on,
                   year, created_at, updated_at, indexed_at)
               values ($1, $2, $3, false, $4, $5, $6,
                   setweight(to_tsvector('simple', $5), 'A')
                   || setweight(to_tsvector('simple', $7), 'D'),
                   to_tsvector('simple', $5),
                   $8, $9, $10, $11, $12, $13, $14, $15, now())
               {_ON_CONFLICT_REPLACE}""",
            tenant_id,
            doc.id,
            doc.version,
            doc.name,
            fold(doc.name),
            doc.description,
            fold(doc.description),
            list(doc.languages),
            list(doc.tags),
            doc.owner_id,
            doc.status,
            doc.built_on,
            doc.built_on.year,
            doc.created_at,
            doc.updated_at,
        )
        live_before = old is not None and not old["deleted"]
        await self._count_terms(
            conn,
            tenant_id,
            before=(old["languages"], old["tags"]) if live_before and old else ([], []),
            after=(list(doc.languages), list(doc.tags)),
        )
        return True

    async def delete(self, tenant_id: TenantId, poc_id: uuid.UUID, version: int) -> bool:
        async with self._db.connection() as conn, conn.transaction():
            await self._lock_tenants(conn, [tenant_id])
            old = await conn.fetchrow(
                "select version, deleted, languages, tags from search.pocs "
                "where tenant_id = $1 and id = $2 for update",
                tenant_id,
                poc_id,
            )
            if old is not None and old["version"] >= version:
                return False
            await conn.execute(
                """insert into search.pocs (tenant_id, id, version, deleted)
                   values ($1, $2, $3, true)
                   on conflict (tenant_id, id) do update set version = excluded.version,
                       deleted = true, name = '', name_norm = '', description = '',
                       tsv = ''::tsvector, name_tsv = ''::tsvector, languages = '{}', tags = '{}',
                       indexed_at = now()""",
                tenant_id,
                poc_id,
                version,
            )
            if old is not None and not old["deleted"]:
                await self._count_terms(
                    conn, tenant_id, before=(old["languages"], old["tags"]), after=([], [])
                )
            return True

    @staticmethod
    async def _count_terms(
        conn: asyncpg.Connection,
        tenant_id: TenantId,
        *,
        before: tuple[list[str], list[str]],
        after: tuple[list[str], list[str]],
    ) -> None:
        for kind, old, new in (
            ("language", before[0], after[0]),
            ("tag", before[1], after[1]),
        ):
            added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
            if added:
                await conn.execute(
                    """insert into search.terms (tenant_id, kind, value, docs)
                       select $1, $2, v, 1 from unnest($3::text[]) v
                       on conflict (tenant_id, kind, value)
                       do update set docs = search.terms.docs + 1""",
                    tenant_id,
                    kind,
                    added,
                )
            if removed:
                await conn.execute(
                    "update search.terms set docs = greatest(docs - 1, 0) "
                    "where tenant_id = $1 and kind = $2 and value = any($3::text[])",
                    tenant_id,
                    kind,
                    removed,
                )

    async def bulk_load(self, items: Iterable[tuple[TenantId, SearchDoc]]) -> int:
        """Load many documents at once (COPY into a staging table, then one upsert);
        versions are respected as in :meth:`upsert`. Returns the rows written."""
        async with self._db.connection() as conn, conn.transaction():
            return await self._bulk(conn, items)

    async def _bulk(
        self, conn: asyncpg.Connection, items: Iterable[tuple[TenantId, SearchDoc]]
    ) -> int:
        await conn.execute(
            """create temp table stage (
                   tenant_id uuid, id uuid, version integer, name text, name_norm text,
                   description text, description_norm text, languages text[], tags text[],
                   owner_id uuid, status text, built_on date, created_at timestamptz,
                   updated_at timestamptz) on commit drop"""
        )
        records = (
            (
                tenant,
                d.id,
                d.version,
                d.name,
                fold(d.name),
                d.description,
                fold(d.description),
                list(d.languages),
                list(d.tags),
                d.owner_id,
                d.status,
                d.built_on,
                d.created_at,
                d.updated_at,
            )
            for tenant, d in items
        )
        await conn.copy_records_to_table("stage", records=records, timeout=BULK_TIMEOUT_S)
        tenants = [r["tenant_id"] for r in await conn.fetch("select distinct tenant_id from stage")]
        await self._lock_tenants(conn, tenants)
        result = await conn.execute(
            f"""insert into search.pocs as p (tenant_id, id, version, deleted, name, name_norm,
                   description, tsv, name_tsv, languages, tags, owner_id, status, built_on,
                   year, created_at, updated_at)
               select tenant_id, id, version, false, name, name_norm, description,
                   setweight(to_tsvector('simple', name_norm), 'A')
                   || setweight(to_tsvector('simple', description_norm), 'D'),
                   to_tsvector('simple', name_norm),
                   languages, tags, owner_id, status, built_on,
                   extract(year from built_on)::smallint, created_at, updated_at
               from stage
               {_ON_CONFLICT_REPLACE}
               where p.version < excluded.version""",
            timeout=BULK_TIMEOUT_S,
        )
        await self._recount_terms(conn, tenants)
        return int(result.rsplit(" ", 1)[-1])

    @staticmethod
    async def _recount_terms(conn: asyncpg.Connection, tenants: list[uuid.UUID]) -> None:
        """Recount the typeahead terms of these tenants from their documents."""
        await conn.execute(
            "delete from search.terms where tenant_id = any($1::uuid[])",
            tenants,
            timeout=BULK_TIMEOUT_S,
        )
        await conn.execute(
            """insert into search.terms (tenant_id, kind, value, docs)
               select tenant_id, 'language', v, count(*) from search.pocs, unnest(languages) v
               where tenant_id = any($1::uuid[]) and not deleted group by tenant_id, v
               union all
               select tenant_id, 'tag', v, count(*) from search.pocs, unnest(tags) v
               where tenant_id = any($1::uuid[]) and not deleted group by tenant_id, v""",
            tenants,
            timeout=BULK_TIMEOUT_S,
        )

    async def replace_tenant(self, tenant_id: TenantId, docs: list[SearchDoc]) -> int:
        """One transaction: readers keep seeing the old state until it commits."""
        async with self._db.connection() as conn, conn.transaction():
            await self._bulk(conn, ((tenant_id, d) for d in docs))
            # What the source no longer has becomes a tombstone at its last version.
            await conn.execute(
                """update search.pocs set deleted = true, name = '', name_norm = '',
                       description = '', tsv = ''::tsvector, name_tsv = ''::tsvector,
                       languages = '{}', tags = '{}'
                   where tenant_id = $1 and not deleted
                     and not exists (select 1 from stage s where s.id = search.pocs.id)""",
                tenant_id,
                timeout=BULK_TIMEOUT_S,
            )
            await self._recount_terms(conn, [tenant_id])
        return len(docs)

    # -- reads --------------------------------------------------------------------------

    async def search(self, tenant_id: TenantId, query: SearchQuery) -> SearchResult:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValidationFailed([FieldError("query.limit", f"from 1 to {MAX_LIMIT}")])
        words = terms(query.q)
        if query.q.strip() and not words:
            return SearchResult([], [], [], None)  # only punctuation: nothing can match
        sql = _Sql(tenant_id)
        self._filters(sql, query)
        tiers = self._tiers(sql, words)
        sort = query.sort if words or query.sort != "relevance" else "newest"
        after = decode_cursor(query.cursor) if query.cursor else None
        if after is not None and after[:1] != [sort]:
            raise ValidationFailed([FieldError("query.cursor", "cursor of another sort order")])
        matching = _Sql.copy(sql)
        if words:
            # Exact names are word-prefix matches too: three conditions cover every tier.
            # Relevance branches leave it out: each has its own tier's condition, and the
            # redundant OR made the planner scan all three indexes for every branch.
            matching.where.append("(" + " or ".join(c for _, c in tiers[1:]) + ")")
        facets: asyncio.Future[tuple[list[FacetCount], list[FacetCount], bool]] | None = None
        if after is None:  # facets come with the first page; later pages only page hits
            facets = asyncio.ensure_future(
                self._facets(" and ".join(matching.where), list(matching.args))
            )
        try:
            if sort == "relevance":
                rows = await self._relevance_page(sql, tiers, after, query.limit + 1)
            else:
                rows = await self._sorted_page(matching, tiers, sort, after, query.limit + 1)
        except BaseException:
            if facets is not None:
                facets.cancel()
            raise
        languages, tags, exact = await facets if facets is not None else ([], [], True)
        hits = [self._hit(r, words) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = rows[query.limit - 1]
            key = {
                "relevance": ("tier", "created_at", "id"),
                "newest": ("created_at", "id"),
                "name": ("name_norm", "id"),
            }[sort]
            next_cursor = encode_cursor([sort, *(self._key(last[c]) for c in key)])
        return SearchResult(
            hits, languages, tags, next_cursor, facets_exact=exact, with_facets=after is None
        )

    @staticmethod
    def _tiers(sql: _Sql, words: list[str]) -> list[tuple[int, str]]:
        """(tier, condition) from the best match kind to the weakest; a row belongs to the
        first tier whose condition it meets."""
        if not words:
            return []
        q_norm = sql.arg(" ".join(words))
        # name_tsv holds only name words: the GIN answer is exact, no heap recheck.
        prefix = f"name_tsv @@ to_tsquery('simple', {sql.arg(' & '.join(f'{w}:*' for w in words))})"
        fuzzy = f"{q_norm} <% name_norm"
        text = f"tsv @@ to_tsquery('simple', {sql.arg(' & '.join(words))})"
        return [
            (_TIER_EXACT, f"name_norm = {q_norm}"),
            (_TIER_PREFIX, prefix),
            (_TIER_FUZZY, fuzzy),
            (_TIER_TEXT, text),
        ]

    @staticmethod
    def _tier_expression(tiers: list[tuple[int, str]]) -> str:
        if not tiers:
            return "0"
        cases = " ".join(f"when {condition} then {tier}" for tier, condition in tiers)
        return f"case {cases} else 0 end"

    async def _relevance_page(
        self,
        sql: _Sql,
        tiers: list[tuple[int, str]],
        after: list[Any] | None,
        wanted: int,
    ) -> list[asyncpg.Record]:
        """One statement: a LIMITed, newest-first branch per tier, in tier order. The outer
        LIMIT stops the Append once it has enough rows, so later tiers are not even read, and
        a broad match walks the recency index and stops early."""
        start_tier, after_key = _TIER_EXACT + 1, None
        if after is not None:
            try:
                start_tier = int(after[1])
                after_key = (dt.datetime.fromisoformat(after[2]), uuid.UUID(after[3]))
            except (IndexError, ValueError, TypeError) as exc:
                raise ValidationFailed([FieldError("query.cursor", "invalid cursor")]) from exc
        local = _Sql.copy(sql)
        limit = local.arg(wanted)
        branches: list[str] = []
        for position, (tier, condition) in enumerate(tiers):
            if tier > start_tier:
                continue
            clauses = [*local.where, condition, *(f"not ({c})" for _, c in tiers[:position])]
            if tier == start_tier and after_key is not None:
                clauses.append(
                    f"(created_at, id) < ({local.arg(after_key[0])}, {local.arg(after_key[1])})"
                )
            branches.append(
                f"""(select {_HIT_COLUMNS}, {tier} as tier from search.pocs
                     where {" and ".join(clauses)}
                     order by created_at desc, id desc limit {limit})"""
            )
        if not branches:
            return []
        rows = await self._fetch(
            f"select * from ({' union all '.join(branches)}) page limit {limit}", local.args
        )
        # Append keeps branch order; sorting again costs nothing and states the contract.
        return sorted(rows, key=lambda r: (r["tier"], r["created_at"], r["id"]), reverse=True)

    async def _sorted_page(
        self,
        sql: _Sql,
        tiers: list[tuple[int, str]],
        sort: str,
        after: list[Any] | None,
        wanted: int,
    ) -> list[asyncpg.Record]:
        local = _Sql.copy(sql)
        try:
            if sort == "newest":
                order = "created_at desc, id desc"
                if after is not None:
                    created, ident = dt.datetime.fromisoformat(after[1]), uuid.UUID(after[2])
                    local.where.append(
                        f"(created_at, id) < ({local.arg(created)}, {local.arg(ident)})"
                    )
            else:
                order = "name_norm asc, id asc"
                if after is not None:
                    name, ident = str(after[1]), uuid.UUID(after[2])
                    local.where.append(f"(name_norm, id) > ({local.arg(name)}, {local.arg(ident)})")
        except (IndexError, ValueError, TypeError) as exc:
            raise ValidationFailed([FieldError("query.cursor", "invalid cursor")]) from exc
        return await self._fetch(
            f"""select {_HIT_COLUMNS}, {self._tier_expression(tiers)} as tier from search.pocs
                where {" and ".join(local.where)} order by {order} limit {local.arg(wanted)}""",
            local.args,
        )

    @staticmethod
    def _key(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.isoformat()
        return str(value) if isinstance(value, uuid.UUID) else value

    @staticmethod
    def _filters(sql: _Sql, query: SearchQuery) -> None:
        if query.languages:
            sql.where.append(f"languages && {sql.arg(list(query.languages))}::text[]")
        if query.tags_all:
            sql.where.append(f"tags @> {sql.arg(list(query.tags_all))}::text[]")
        if query.tags_any:
            sql.where.append(f"tags && {sql.arg(list(query.tags_any))}::text[]")
        if query.owner is not None:
            sql.where.append(f"owner_id = {sql.arg(query.owner)}")
        if query.status is not None:
            sql.where.append(f"status = {sql.arg(query.status)}")
        if query.year is not None:
            sql.where.append(f"year = {sql.arg(query.year)}")

    async def _facets(
        self, where: str, args: list[Any]
    ) -> tuple[list[FacetCount], list[FacetCount], bool]:
        """Top languages and tags of the matches: exact up to FACET_CAP matching documents,
        counted over the first FACET_CAP of them beyond that (third value False)."""
        rows = await self._fetch(
            f"""with m as materialized (
                    select languages, tags from search.pocs where {where} limit {FACET_CAP + 1})
                select 'n' as kind, null as v, count(*) as n from m
                union all
                select 'l', v, count(*) from (select * from m limit {FACET_CAP}) s,
                    unnest(s.languages) v group by v
                union all
                select 't', v, count(*) from (select * from m limit {FACET_CAP}) s,
                    unnest(s.tags) v group by v""",
            args,
        )
        counts: dict[str, Counter[str]] = {"l": Counter(), "t": Counter()}
        matched = 0
        for row in rows:
            if row["kind"] == "n":
                matched = row["n"]
            else:
                counts[row["kind"]][row["v"]] = row["n"]

        def top(counter: Counter[str]) -> list[FacetCount]:
            ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:FACET_SIZE]
            return [FacetCount(v, n) for v, n in ranked]

        return top(counts["l"]), top(counts["t"]), matched <= FACET_CAP

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
            score=float(row["tier"]),
            highlights=highlights,
        )

    async def suggest(self, tenant_id: TenantId, prefix: str, limit: int = 10) -> list[Suggestion]:
        words = terms(prefix)
        if not words or not 1 <= limit <= 50:
            return []
        # Words are [a-z0-9]+ only, so neither pattern can carry LIKE or tsquery syntax.
        name_like, term_like = " ".join(words) + "%", "-".join(words) + "%"
        tsq = " & ".join(f"{w}:*" for w in words)
        rows = await self._fetch(
            """(select 'tag' as kind, value, null::uuid as id from search.terms
                where tenant_id = $1 and kind = 'tag' and docs > 0 and value like $4
                order by docs desc, value limit $3)
               union all
               (select 'language', value, null from search.terms
                where tenant_id = $1 and kind = 'language' and docs > 0 and value like $4
                order by docs desc, value limit $3)
               union all
               (select 'name', name, id from search.pocs
                where tenant_id = $1 and not deleted and name_norm like $5
                order by name_norm limit $3)
               union all
               (select 'name', name, id from search.pocs
                where tenant_id = $1 and not deleted and name_tsv @@ to_tsquery('simple', $2)
                limit $3)""",
            [tenant_id, tsq, limit, term_like, name_like],
        )
        names: list[Suggestion] = []
        seen: set[str] = set()
        for r in rows:
            if r["kind"] == "name" and r["value"] not in seen:
                seen.add(r["value"])
                names.append(Suggestion("name", r["value"], r["id"]))
        others = [Suggestion(r["kind"], r["value"]) for r in rows if r["kind"] != "name"]
        # Tags and languages first when they match (short, exact vocabulary), then names.
        mixed = others[: limit // 2] + names
        return (mixed + others[limit // 2 :])[:limit]

    async def _fetch(self, statement: str, args: list[Any]) -> list[asyncpg.Record]:
        async with self._db.connection() as conn:
            return list(await conn.fetch(statement, *args))

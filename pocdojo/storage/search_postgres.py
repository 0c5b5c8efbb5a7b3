"""PostgresSearch: the default SearchIndex, over the ``search`` schema.

Every statement carries ``tenant_id = $1``; there is no method without a tenant. Names
match by word prefix (``name_tsv`` with ``:*``) and by typos: the tenant's name vocabulary
(``search.name_words``) gives the words resembling each query word (trigram word
similarity), then ``name_tsv`` finds their documents; descriptions match by full text.
Facets and typeahead read one tenant-keyed GIN index (``search.tenant_keys``, migrations
0012, 0013 and 0015) whose posting lists hold one tenant's documents only and which answers a word
tier and every filter as one tsquery; it also holds each document's creation month, so that
relevance pages read the newest months of a broad match first. The facets of a search
without words and with at most one language or tag filter come exact from a per-tenant
table of counts (``search.facets``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

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
from pocdojo.storage.search_cache import DEFAULT_CACHE_SIZE, ResultCache
from pocdojo.types import TenantId

# Facets are counted over at most this many matching documents; below it they are exact.
FACET_CAP = 1_000
# When the tenant's counts prove before the statement that a query matches more than
# FACET_CAP documents (its facets cannot be exact anyway), they are counted over this many:
# reading FACET_CAP + 1 rows of a 100,000-PoC tenant cost 8-16 ms, most of a cold request.
FACET_SAMPLE = 250
# ... and over FACET_SAMPLE when the tenant's counts estimate the free-text matches above
# FACET_CAP (search.text_words, migration 0018: a common description word of a large
# tenant), where exact facets could not be had either. An estimate can be wrong (words and
# filters are taken as independent): a query it overrates with between FACET_SAMPLE and
# FACET_CAP matches gets facets over a sample (flagged) where exact ones were possible.
# On the bench (text + language + status, 400 queries) the estimates were within 4 % of
# the matches but for words tied to a language (underrated: no harm), and no facets were
# less exact; 1,001 rows read and aggregated cost 5-8 ms of a 100,000-PoC tenant's request.
BROAD_ESTIMATE = FACET_CAP
# What the writers read of a document's row before changing it, to keep the counts in step.
_COUNTED_COLUMNS = (
    "languages, tags, status, tsvector_to_array(name_tsv) as words, "
    "tsvector_to_array(tsv) as text_words"
)
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
# Typos: at most this many vocabulary words resembling a query word (the most similar).
NEAR_WORDS = 8
# Counting the documents of the words starting like a query word stops after this many
# words: past it the prefix is broad anyway.
_WORDS_COUNTED = 200
# Keyed tsqueries name the words starting like a query word one by one up to this many
# (see _tsqueries), otherwise a prefix.
EXPLICIT_PREFIX_WORDS = 64
# A word tier whose documents the vocabulary bounds by this many is read from the
# tenant-keyed index (exactly its rows, then sorted), not from the (tenant_id, name_tsv)
# index, whose prefix scans read every tenant's matches (2-3 ms for "pho" in a tenant of
# 583 PoCs), or from the recency index, which pays off only for broad matches.
KEYED_PAGE_MAX = 500
# Words PostgreSQL's parser splits into parts it indexes too (asciihword): see
# _has_part_starting.
_HYPHENATED = re.compile(r"[a-z]+(?:-[a-z]+)+")
# Above every character: the words starting like w are those in [w, w || _LAST_CHAR).
_LAST_CHAR = chr(0x10FFFF)
# The tenant-keyed tsvector of a row (migrations 0012, 0013 and 0015), written exactly as its
# index is: one call of a function the planner does not inline (matching the inlined
# expression against the index cost ~0.16 ms of planning per keyed branch).
_DOC_KEYS = (
    "search.tenant_keys("
    "tenant_id, name_tsv, tsv, languages, tags, status, year, owner_id, created_at)"
)
# A keyed relevance branch that may match many documents asks for the newest months first:
# a window of the newest document's month (and the one after it), then of the 5 months
# before, then everything else. GIN hands over a tier's matches in no order, so a single
# branch read and sorted all of them (4,000-4,600 rows, 17 ms, for a description word with a
# language and a status in a 100,000-PoC tenant over 4 years); a window holds a few percent.
# Each window is one more index scan (~1 ms with a language and a status: their posting
# lists are long), hence few windows.
MONTH_WINDOWS = (1, 5)
# A name word whose most common matching word has at least this many documents matches so
# many that the recency index finds a page after a few dozen rows: no windows.
BROAD_DOCS = 3_000
# Searches whose matches the tenant's counts bound by this many (its (document, language)
# pairs, the documents of a filter's languages or tags) are read without windows: one scan
# reads few rows, and each window is one more index scan (~1 ms with a language and a
# status: +5-7 ms for a rare language in a 100,000-PoC tenant).
WINDOWED_TENANT_MIN = 3_000


# Per-connection settings of the search role: typos with a dropped letter score ~0.55
# (0.6 missed one in four in the benchmark); queries are small, so no parallel workers or JIT.
# Custom plans always: asyncpg prepares every statement, and after five executions PostgreSQL
# switches to the generic plan when its estimate is cheaper. Without the parameter values the
# estimates are blind to the tenant's size and to how common a value is, and the generic plans
# it chose on the 1,000,000-PoC bench read every matching row of a 100,000-PoC tenant: a
# language filter as a bitmap over 25,000 rows and a sort (380 ms) instead of a walk of the
# recency index that stops after 21 rows (0.4 ms), typeahead 100 ms instead of 3 ms at p95.
# Planning each statement costs 0.1-2 ms, far less.
SEARCH_SERVER_SETTINGS = {
    "plan_cache_mode": "force_custom_plan",
    "pg_trgm.word_similarity_threshold": "0.5",
    "max_parallel_workers_per_gather": "0",
    "jit": "off",
}


def open_search_database(url: str, *, max_size: int = 10) -> Database:
    """The search role's pool, with the settings the queries below are tuned for.

    Its connections are not reset between uses: nothing here leaves session state behind
    (settings come from ``server_settings`` and the role, locks are transaction-scoped,
    the staging table is ``on commit drop``), and the reset's round trip was 0.18 of the
    0.30 ms a pooled ``select 1`` took (an open transaction is still rolled back)."""
    return Database(
        url, max_size=max_size, server_settings=SEARCH_SERVER_SETTINGS, reset_sessions=False
    )


@dataclass(frozen=True, slots=True)
class _Word:
    """A query word as the tenant's name vocabulary sees it."""

    exact: bool
    """Some live name has this word."""
    prefix: bool
    """Some live name has a word starting with it."""
    near: tuple[str, ...]
    """Name words resembling it (typos) that do not start with it."""
    prefix_docs: int = 0
    """Documents whose name has a word starting with it, counted once per such word (an
    upper bound; at most the first _WORDS_COUNTED such words are counted)."""
    near_docs: int = 0
    """Documents whose name has one of the ``near`` words (again an upper bound)."""
    prefix_most: int = 0
    """Documents whose name has the most common word starting with it (a lower bound)."""
    prefix_words: tuple[str, ...] = ()
    """The words starting with it (the first _WORDS_COUNTED, in byte order)."""
    near_most: int = 0
    """Documents whose name has the most common of the ``near`` words (a lower bound)."""


def _lexeme(word: str) -> str:
    """A tsquery operand for this exact lexeme (quoted; no parser, no syntax)."""
    escaped = word.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"


def _tenant_key(tenant_id: uuid.UUID) -> str:
    """The prefix ``search.keyed`` gives this tenant's lexemes (same formula as the SQL)."""
    return hashlib.md5(str(tenant_id).encode(), usedforsecurity=False).hexdigest()[:10] + "."


def _month(moment: dt.datetime) -> int:
    """The month lexeme number of ``created_at`` (migration 0013): year * 12 + month - 1, UTC."""
    utc = moment.astimezone(dt.UTC)
    return utc.year * 12 + utc.month - 1


def _month_start(month: int) -> dt.datetime:
    return dt.datetime(month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class _Window:
    """Part of a keyed branch: the documents created in ``months`` (lexemes), or with
    ``outside`` (start, end) those created before start or from end on."""

    months: tuple[int, ...] = ()
    outside: tuple[dt.datetime, dt.datetime] | None = None


def _windows(newest: int) -> list[_Window] | None:
    """The month windows of a keyed branch, newest first, covering every document once
    (see MONTH_WINDOWS): the newest month and the one after it, then the months before in
    windows of the next sizes, then the rest (older, or created after the windows were
    chosen). None when a window would start outside the years datetime can hold (a
    cursor may carry any date): the caller reads the tier in one scan."""
    lowest, highest = newest - sum(MONTH_WINDOWS[1:]), newest + 2
    if lowest < 1 * 12 or highest > 9999 * 12 + 11:
        return None
    windows = [_Window((newest + 1, newest))]
    end = newest
    for size in MONTH_WINDOWS[1:]:
        windows.append(_Window(tuple(range(end - 1, end - 1 - size, -1))))
        end -= size
    windows.append(_Window(outside=(_month_start(end), _month_start(newest + 2))))
    return windows


def _tsqueries(words: list[str], vocabulary: list[_Word], key: str | None = None) -> dict[int, str]:
    """The tsquery of each word tier that can match (prefix, fuzzy, text). With the tenant's
    ``key``, for ``search.tenant_keys``: name words as ``<key>n.<w>``, words of the name and
    description as ``<key>w.<w>``; without, for ``name_tsv`` and ``tsv``. Quoted lexemes,
    cast without parsing: vocabulary words may hold any character, query words are
    [a-z0-9]+."""
    name, text = (key + "n.", key + "w.") if key is not None else ("", "")

    def starting(w: str, v: _Word) -> list[str]:
        # In the keyed index, the tenant's words starting like w when the vocabulary
        # listed them all: GIN reads a prefix (:*) as the union of every matching posting
        # list, built in full before anything else (6 ms for "with" in a 100,000-PoC
        # tenant, again in each month window), while exact lexemes ANDed with a window
        # or a filter are skipped through.
        if key is not None and 0 < len(v.prefix_words) <= EXPLICIT_PREFIX_WORDS:
            return [_lexeme(name + word) for word in v.prefix_words]
        return [f"{_lexeme(name + w)}:*"] if v.prefix or key is None else []

    queries: dict[int, str] = {}
    # A prefix match needs every query word to start some name word; a fuzzy one, every
    # query word to start or resemble one (and one of them to resemble one).
    if all(v.prefix for v in vocabulary):
        queries[_TIER_PREFIX] = " & ".join(
            "(" + " | ".join(starting(w, v)) + ")" for w, v in zip(words, vocabulary, strict=True)
        )
    if len(words) == 1 and vocabulary[0].near:
        # One word: a name with a word starting like it is in the prefix tier, tested
        # first, so the fuzzy tier is the names with a resembling word. Naming the prefix
        # words here too made the fuzzy branches read every prefix match again, only to
        # drop them (138 rows for "latency" with a language and a status in a 100,000-PoC
        # tenant, ~1 ms per branch).
        queries[_TIER_FUZZY] = " | ".join(_lexeme(name + n) for n in vocabulary[0].near)
    elif any(v.near for v in vocabulary) and all(v.prefix or v.near for v in vocabulary):
        queries[_TIER_FUZZY] = " & ".join(
            "(" + " | ".join([*starting(w, v), *(_lexeme(name + n) for n in v.near)]) + ")"
            for w, v in zip(words, vocabulary, strict=True)
        )
    queries[_TIER_TEXT] = " & ".join(_lexeme(text + w) for w in words)
    return queries


def _filter_tsquery(key: str, query: SearchQuery) -> str | None:
    """Every filter of ``query`` as one tsquery over ``search.tenant_keys`` (None without
    filters, or when a value is empty: ``doc_keys`` has no lexeme for an empty value, so
    the plain conditions must decide)."""
    parts: list[str] = []
    for kind, values, op in (
        ("l.", query.languages, " | "),
        ("t.", query.tags_all, " & "),
        ("t.", query.tags_any, " | "),
    ):
        if values:
            if not all(values):
                return None
            parts.append("(" + op.join(_lexeme(key + kind + v) for v in values) + ")")
    if query.owner is not None:
        parts.append(_lexeme(f"{key}o.{query.owner}"))
    if query.status is not None:
        if not query.status:
            return None
        parts.append(_lexeme(f"{key}s.{query.status}"))
    if query.year is not None:
        parts.append(_lexeme(f"{key}y.{query.year}"))
    return " & ".join(parts) or None


def _facet_filter(query: SearchQuery) -> str | None:
    """The ``search.facets`` row group holding this query's exact facets: a query without
    words and with no filter (``''``) or one language (``'l.<l>'``) or one tag
    (``'t.<t>'``); None for any other query."""
    if terms(query.q) or query.owner is not None or query.status is not None:
        return None
    if query.year is not None:  # not a dimension of the counts either
        return None
    chosen = [("l.", v) for v in query.languages] + [
        ("t.", v) for v in (*query.tags_all, *query.tags_any)
    ]
    if not chosen:
        return ""
    if len(chosen) == 1 and chosen[0][1]:
        return chosen[0][0] + chosen[0][1]
    return None


def _least_matches(query: SearchQuery, vocabulary: list[_Word]) -> int:
    """A lower bound of the documents matching ``query`` from the name vocabulary: the
    documents of the most common name word matching its one word, when it has no filters;
    0 when the vocabulary cannot tell."""
    if len(vocabulary) != 1 or _has_filters(query):
        return 0
    return max(vocabulary[0].prefix_most, vocabulary[0].near_most)


def _has_part_starting(word: str, prefix: str) -> bool:
    """Whether ``word`` is hyphenated letters ("low-latency") with a part starting like
    ``prefix``. PostgreSQL's parser indexes such a word's parts as words of their own, so a
    name with it has a word starting like ``prefix`` and is in the prefix tier: as a typo
    word it would only make the fuzzy branches read the prefix tier's documents again, to
    drop them (~0.6 ms per branch for "latency" / "low-latency" in a 100,000-PoC tenant).
    Other shapes ("x-1", "a/b") are not split into parts that way: kept."""
    return bool(_HYPHENATED.fullmatch(word)) and any(
        part.startswith(prefix) for part in word.split("-")
    )


def _text_estimate(query: SearchQuery, text_docs: list[int], counts: asyncpg.Record) -> float:
    """How many documents have every query word in their name or description and pass the
    filters, estimated from the tenant's counts (``counts``: the first row of
    ``search.vocabulary``) as if the words and filters were independent; 0 when the counts
    cannot tell (an owner or year filter, several tags ANDed). An estimate, not a bound:
    it only decides how the facets are read (see BROAD_ESTIMATE)."""
    total = int(counts["total"])
    if not total or query.owner is not None or query.year is not None or len(query.tags_all) > 1:
        return 0.0
    fractions = [docs / total for docs in text_docs]
    for values, docs in (
        (query.languages, counts["languages"]),
        (query.tags_all, counts["tags_all_docs"]),
        (query.tags_any, counts["tags_any_docs"]),
    ):
        if values:  # one document may count for several values: at most all of them
            fractions.append(min(int(docs), total) / total)
    if query.status is not None:
        fractions.append(int(counts["status_docs"]) / total)
    estimate = float(total)
    for fraction in fractions:
        estimate *= fraction
    return estimate


def _has_filters(query: SearchQuery) -> bool:
    return bool(query.languages or query.tags_all or query.tags_any) or any(
        v is not None for v in (query.owner, query.status, query.year)
    )


def _filter_pair(query: SearchQuery) -> tuple[str, str, list[str]] | None:
    """For a query without words whose filters are one OR group of languages or tags, or
    two single values ANDed: the ``search.facets`` rows (filter, kind, values) whose
    largest count is a lower bound of its matches (exact for two values); None for any
    other query."""
    if terms(query.q) or any(v is not None for v in (query.owner, query.status, query.year)):
        return None
    if not all((*query.languages, *query.tags_all, *query.tags_any)):
        return None
    groups: list[tuple[str, list[str]]] = []
    if query.languages:
        groups.append(("l", list(query.languages)))
    groups += [("t", [tag]) for tag in query.tags_all]
    if query.tags_any:
        groups.append(("t", list(query.tags_any)))
    if len(groups) == 1:
        return ("", groups[0][0], groups[0][1])
    if len(groups) == 2 and all(len(values) == 1 for _, values in groups):
        (first_kind, first), (kind, values) = groups
        return (f"{first_kind}.{first[0]}", kind, values)
    return None


def _top(counter: Counter[str]) -> list[FacetCount]:
    """The FACET_SIZE most frequent values, ties by value."""
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:FACET_SIZE]
    return [FacetCount(v, n) for v, n in ranked]


def _typed_unused(body: str, args: list[Any]) -> str:
    """The CTE ``unused as (select $n::type, ...)`` for the arguments ``body`` does not use
    (plain filters replaced by keyed conditions): an unused CTE still gives them a type (an
    untyped parameter is an error). Empty when every argument is used."""
    used = {int(n) for n in re.findall(r"\$(\d+)", body)}
    unused = [f"${n}::{_sql_type(args[n - 1])}" for n in range(1, len(args) + 1) if n not in used]
    return f"unused as (select {', '.join(unused)})" if unused else ""


def _sql_type(value: Any) -> str:
    """The SQL type of a bind argument left unused by a statement (so it still has one)."""
    if isinstance(value, list):
        return "text[]"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, uuid.UUID):
        return "uuid"
    return "text"


Counted = tuple[Iterable[str], Iterable[str], str | None]
"""What the tenant's counts hold of a live document: its languages, tags and status."""


def _facet_keys(doc: Counted | None) -> set[tuple[str, str, str]]:
    """The ``search.facets`` rows (filter, kind, value) a document counts in (None: not a
    live document): each language and tag under every filter it has, and its status under
    no filter (migration 0018)."""
    if doc is None:
        return set()
    languages, tags, status = doc
    langs, tagset = {v for v in languages if v}, {v for v in tags if v}
    filters = ["", *(f"l.{v}" for v in langs), *(f"t.{v}" for v in tagset)]
    values = [*(("l", v) for v in langs), *(("t", v) for v in tagset)]
    return {(f, k, v) for f in filters for k, v in values} | {("", "s", status or "")}


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
    """The default SearchIndex. Answers are cached per process under the tenant's version
    (``cache_size`` answers, 0 for none; see :mod:`pocdojo.storage.search_cache`)."""

    def __init__(self, db: Database, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._db = db
        self._cache: ResultCache[SearchResult | list[Suggestion]] = ResultCache(cache_size)

    # -- writes -------------------------------------------------------------------------

    async def upsert(self, tenant_id: TenantId, doc: SearchDoc) -> bool:
        async with self._db.connection() as conn, conn.transaction():
            return await self._upsert(conn, tenant_id, doc)

    @staticmethod
    async def _lock_tenants(conn: asyncpg.Connection, tenants: list[uuid.UUID]) -> None:
        """Writers of one tenant's projection take turns (document rows and term counts are
        locked in different orders by single upserts and by reindexing); sorted, so that
        multi-tenant writers cannot deadlock each other. Each then bumps the tenant's
        version in its transaction: cached answers of the tenant are stale once it commits
        (a write that turns out to change nothing only costs their cache entries)."""
        ordered = sorted(set(tenants))
        for tenant in ordered:
            await conn.execute(
                "select pg_advisory_xact_lock(hashtextextended($1::text, 7))", str(tenant)
            )
        await conn.execute(
            """insert into search.tenant_versions (tenant_id, version)
               select t, 1 from unnest($1::uuid[]) t
               on conflict (tenant_id)
               do update set version = search.tenant_versions.version + 1""",
            ordered,
        )

    async def _upsert(self, conn: asyncpg.Connection, tenant_id: TenantId, doc: SearchDoc) -> bool:
        await self._lock_tenants(conn, [tenant_id])
        old = await conn.fetchrow(
            f"select version, deleted, {_COUNTED_COLUMNS} "
            "from search.pocs where tenant_id = $1 and id = $2 for update",
            tenant_id,
            doc.id,
        )
        if old is not None and old["version"] >= doc.version:
            return False  # a replay or an out-of-order older event
        new = await conn.fetchrow(
            f"""insert into search.pocs as p (tenant_id, id, version, deleted, name, name_norm,
                   description, tsv, name_tsv, languages, tags, owner_id, status, built_on,
                   year, created_at, updated_at, indexed_at)
               values ($1, $2, $3, false, $4, $5, $6,
                   setweight(to_tsvector('simple', $5), 'A')
                   || setweight(to_tsvector('simple', $7), 'D'),
                   to_tsvector('simple', $5),
                   $8, $9, $10, $11, $12, $13, $14, $15, now())
               {_ON_CONFLICT_REPLACE}
               returning tsvector_to_array(name_tsv) as words,
                   tsvector_to_array(tsv) as text_words""",
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
        assert new is not None  # the insert returns its row (an update makes one too)
        before = old if old is not None and not old["deleted"] else None
        await self._count_doc(
            conn,
            tenant_id,
            before,
            (doc.languages, doc.tags, doc.status),
            new["words"],
            new["text_words"],
        )
        return True

    async def delete(self, tenant_id: TenantId, poc_id: uuid.UUID, version: int) -> bool:
        async with self._db.connection() as conn, conn.transaction():
            await self._lock_tenants(conn, [tenant_id])
            old = await conn.fetchrow(
                f"select version, deleted, {_COUNTED_COLUMNS} "
                "from search.pocs where tenant_id = $1 and id = $2 for update",
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
                await self._count_doc(conn, tenant_id, old, None, [], [])
            return True

    @staticmethod
    async def _count_doc(
        conn: asyncpg.Connection,
        tenant_id: TenantId,
        old: asyncpg.Record | None,
        new: Counted | None,
        words: list[str],
        text_words: list[str],
    ) -> None:
        """Keep the tenant's counts in step with one document: ``old`` (its row before, with
        `_COUNTED_COLUMNS`; None if it was not live) becomes ``new`` (None: not live any
        more) with these name and text words."""
        before: Counted | None = (
            None if old is None else (old["languages"], old["tags"], old["status"])
        )
        await PostgresSearch._count_terms(conn, tenant_id, before=before, after=new)
        await PostgresSearch._count_words(
            conn, tenant_id, before=old["words"] if old else [], after=words
        )
        await PostgresSearch._count_words(
            conn,
            tenant_id,
            before=old["text_words"] if old else [],
            after=text_words,
            table="text_words",
        )

    @staticmethod
    async def _count_terms(
        conn: asyncpg.Connection,
        tenant_id: TenantId,
        *,
        before: Counted | None,
        after: Counted | None,
    ) -> None:
        old_doc: Counted = before or ([], [], None)
        new_doc: Counted = after or ([], [], None)
        for kind, old, new in (
            ("language", old_doc[0], new_doc[0]),
            ("tag", old_doc[1], new_doc[1]),
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
        await PostgresSearch._count_facets(conn, tenant_id, before=before, after=after)

    @staticmethod
    async def _count_facets(
        conn: asyncpg.Connection,
        tenant_id: TenantId,
        *,
        before: Counted | None,
        after: Counted | None,
    ) -> None:
        """Keep ``search.facets`` in step: +1 for the (filter, kind, value) rows the document
        now counts in, -1 for those it no longer does (rows are sorted, so concurrent
        writers of the tenant, serialized anyway by the tenant lock, take them in order)."""
        old, new = _facet_keys(before), _facet_keys(after)
        added, removed = sorted(new - old), sorted(old - new)
        if added:
            await conn.execute(
                """insert into search.facets (tenant_id, filter, kind, value, docs)
                   select $1, f, k, v, 1 from unnest($2::text[], $3::text[], $4::text[]) x(f, k, v)
                   on conflict (tenant_id, filter, kind, value)
                   do update set docs = search.facets.docs + 1""",
                tenant_id,
                *(list(column) for column in zip(*added, strict=True)),
            )
        if removed:
            await conn.execute(
                """update search.facets s set docs = greatest(s.docs - 1, 0)
                   from unnest($2::text[], $3::text[], $4::text[]) x(f, k, v)
                   where s.tenant_id = $1 and s.filter = x.f and s.kind = x.k and s.value = x.v""",
                tenant_id,
                *(list(column) for column in zip(*removed, strict=True)),
            )

    @staticmethod
    async def _count_words(
        conn: asyncpg.Connection,
        tenant_id: TenantId,
        *,
        before: list[str],
        after: list[str],
        table: Literal["name_words", "text_words"] = "name_words",
    ) -> None:
        """Keep the tenant's name vocabulary (``search.name_words``) or the document counts
        of its name and description words (``search.text_words``) in step with a
        document's words."""
        added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
        if added:
            await conn.execute(
                f"""insert into search.{table} as w (tenant_id, word, docs)
                   select $1, x, 1 from unnest($2::text[]) x
                   on conflict (tenant_id, word)
                   do update set docs = w.docs + 1""",
                tenant_id,
                added,
            )
        if removed:
            await conn.execute(
                f"update search.{table} set docs = greatest(docs - 1, 0) "
                "where tenant_id = $1 and word = any($2::text[])",
                tenant_id,
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
        """Recount the typeahead terms, the facet and status counts, the name vocabulary and
        the text words' counts of these tenants from their documents."""
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
        await conn.execute(
            "delete from search.facets where tenant_id = any($1::uuid[])",
            tenants,
            timeout=BULK_TIMEOUT_S,
        )
        await conn.execute(
            """insert into search.facets (tenant_id, filter, kind, value, docs)
               select p.tenant_id, f.filter, v.kind, v.value, count(*)
               from search.pocs p
               cross join lateral (
                   select '' as filter
                   union all select distinct 'l.' || x from unnest(p.languages) x where x <> ''
                   union all select distinct 't.' || x from unnest(p.tags) x where x <> '') f
               cross join lateral (
                   select distinct 'l' as kind, x as value from unnest(p.languages) x
                   where x <> ''
                   union all
                   select distinct 't', x from unnest(p.tags) x where x <> '') v
               where p.tenant_id = any($1::uuid[]) and not p.deleted
               group by 1, 2, 3, 4
               union all
               select tenant_id, '', 's', coalesce(status, ''), count(*) from search.pocs
               where tenant_id = any($1::uuid[]) and not deleted
               group by tenant_id, coalesce(status, '')""",
            tenants,
            timeout=BULK_TIMEOUT_S,
        )
        for table, column in (("name_words", "name_tsv"), ("text_words", "tsv")):
            await conn.execute(
                f"delete from search.{table} where tenant_id = any($1::uuid[])",
                tenants,
                timeout=BULK_TIMEOUT_S,
            )
            await conn.execute(
                f"""insert into search.{table} (tenant_id, word, docs)
                   select tenant_id, w, count(*)
                   from search.pocs, unnest(tsvector_to_array({column})) w
                   where tenant_id = any($1::uuid[]) and not deleted group by tenant_id, w""",
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

    async def _version(self, tenant_id: TenantId) -> int:
        """The tenant's projection version (0 before its first write)."""
        rows = await self._fetch(
            "select version from search.tenant_versions where tenant_id = $1", [tenant_id]
        )
        return int(rows[0]["version"]) if rows else 0

    async def search(self, tenant_id: TenantId, query: SearchQuery) -> SearchResult:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValidationFailed([FieldError("query.limit", f"from 1 to {MAX_LIMIT}")])
        if not self._cache.enabled:
            return await self._search(tenant_id, query)
        # The version first: the answer below reads data at least as new (read committed).
        key = ("search", tenant_id, await self._version(tenant_id), query)
        cached = self._cache.get(key)
        if isinstance(cached, SearchResult):
            return cached
        result = await self._search(tenant_id, query)
        self._cache.put(key, result)
        return result

    async def _search(self, tenant_id: TenantId, query: SearchQuery) -> SearchResult:
        words = terms(query.q)
        if query.q.strip() and not words:
            return SearchResult([], [], [], None)  # only punctuation: nothing can match
        sql = _Sql(tenant_id)
        self._filters(sql, query)
        vocabulary, newest, estimate = (
            await self._vocabulary(tenant_id, words, query) if words else ([], None, 0.0)
        )
        tiers = self._tiers(sql, words, vocabulary)
        sort = query.sort if words or query.sort != "relevance" else "newest"
        after = decode_cursor(query.cursor) if query.cursor else None
        if after is not None and after[:1] != [sort]:
            raise ValidationFailed([FieldError("query.cursor", "cursor of another sort order")])
        matching = _Sql.copy(sql)
        if words:
            # Exact names are word-prefix matches too (an exact tier implies a prefix tier).
            # Relevance branches leave this OR out: each has its own tier's condition, and
            # the redundant OR made the planner scan every index for every branch.
            matching.where.append("(" + " or ".join(c for t, c in tiers if t != _TIER_EXACT) + ")")
        # Two filter values ANDed and no words: their exact count (search.facets) decides
        # how the newest-first page and the facets read the matches.
        pair = _filter_pair(query) if not words and _facet_filter(query) is None else None
        matches = 0
        if pair is not None and pair[0] and sort == "newest":
            matches, newest = await self._filter_span(tenant_id, pair)
        facets: asyncio.Future[tuple[list[FacetCount], list[FacetCount], bool]] | None = None
        if after is None:  # facets come with the first page; later pages only page hits
            facets = asyncio.ensure_future(
                self._facets(sql, tiers, query, words, vocabulary, matches, estimate)
            )
        keyed_filter = _filter_tsquery(_tenant_key(tenant_id), query)
        try:
            if sort == "relevance":
                rows = await self._relevance_page(
                    sql,
                    tiers,
                    after,
                    query.limit + 1,
                    self._keyed_tiers(tenant_id, query, words, vocabulary),
                    newest,
                )
            elif matches and keyed_filter is not None and matches < BROAD_DOCS:
                # Newest first through the tenant-keyed index, by month windows when the
                # matches are many (see _relevance_page): the plain statement read them
                # from the (tenant_id, tags) index, every tenant's, or walked the recency
                # index past 100 rows per match.
                resume = None if after is None else [after[0], 0, *after[1:]]
                rows = await self._relevance_page(
                    sql,
                    [(0, "true")],
                    resume,
                    query.limit + 1,
                    {0: (keyed_filter, matches > KEYED_PAGE_MAX)},
                    newest,
                )
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

    async def _filter_span(
        self, tenant_id: TenantId, pair: tuple[str, str, list[str]]
    ) -> tuple[int, int | None]:
        """The tenant's count of the documents with this pair of filter values (see
        :func:`_filter_pair`) and the month of its newest document (None without any)."""
        rows = await self._fetch(
            """select
                   (select coalesce(max(docs), 0) from search.facets
                    where tenant_id = $1 and filter = $2 and kind = $3
                      and value = any($4::text[])) as docs,
                   (select p.created_at from search.pocs p
                    where p.tenant_id = $1 and not p.deleted
                    order by p.created_at desc, p.id desc limit 1) as newest""",
            [tenant_id, *pair],
        )
        newest = rows[0]["newest"]
        return int(rows[0]["docs"]), (_month(newest) if newest is not None else None)

    async def _vocabulary(
        self, tenant_id: TenantId, words: list[str], query: SearchQuery
    ) -> tuple[list[_Word], int | None, float]:
        """What the tenant's name vocabulary says about each query word (a few index
        lookups in ``search.name_words`` by ``search.vocabulary``, migrations 0016-0018,
        never a scan of the documents); the month (lexeme number) of the tenant's newest
        document, where the windows of keyed relevance branches start: None without
        documents, or when the tenant's counts (``search.facets``) bound the matches by
        WINDOWED_TENANT_MIN (a small tenant, a rare language or tag); and an estimate of the
        free-text matches (see :func:`_text_estimate`)."""
        rows = await self._fetch(
            # Migrations 0016, 0017: planned once per connection, typos through
            # name_words_trgm (search.near_words).
            "select * from search.vocabulary($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                tenant_id,
                words,
                _LAST_CHAR,
                NEAR_WORDS,
                _WORDS_COUNTED,
                list(query.languages),
                list(query.tags_all),
                list(query.tags_any),
                query.status,
            ],
        )
        newest = rows[0]["newest"] if rows else None
        estimate = 0.0
        if rows:
            estimate = _text_estimate(query, [int(r["text_docs"]) for r in rows], rows[0])
            # Upper bounds of the matches: the tenant's (document, language) pairs, and the
            # documents of the filters' languages and tags.
            first = rows[0]
            bounds = [first["pairs"]]
            for column, values in (
                ("languages", query.languages),
                ("tags_all_docs", query.tags_all),
                ("tags_any_docs", query.tags_any),
            ):
                if values:
                    bounds.append(first[column])
            if min(bounds) <= WINDOWED_TENANT_MIN:
                newest = None  # few matches at most: no windows
        return (
            [
                _Word(
                    exact=r["exact"],
                    prefix=r["prefix_docs"] > 0,
                    near=tuple(n for n in r["near"] if not _has_part_starting(n, word)),
                    prefix_docs=int(r["prefix_docs"]),
                    near_docs=int(r["near_docs"]),
                    prefix_most=int(r["prefix_most"]),
                    prefix_words=tuple(r["prefix_words"])
                    if len(r["prefix_words"]) < _WORDS_COUNTED
                    else (),
                    near_most=int(r["near_most"]),
                )
                for word, r in zip(words, rows, strict=True)
            ],
            (_month(newest) if newest is not None else None),
            estimate,
        )

    @staticmethod
    def _tiers(sql: _Sql, words: list[str], vocabulary: list[_Word]) -> list[tuple[int, str]]:
        """(tier, condition) from the best match kind to the weakest, leaving out the name
        tiers that the vocabulary says cannot match; a row belongs to the first tier whose
        condition it meets."""
        if not words:
            return []
        tiers: list[tuple[int, str]] = []
        # An exact name has each query word as a word (so it is a prefix match too).
        if all(v.exact for v in vocabulary):
            tiers.append((_TIER_EXACT, f"name_norm = {sql.arg(' '.join(words))}"))
        for tier, tsquery in _tsqueries(words, vocabulary).items():
            # name_tsv holds only name words: the GIN answer is exact, no heap recheck.
            column = "tsv" if tier == _TIER_TEXT else "name_tsv"
            tiers.append((tier, f"{column} @@ {sql.arg(tsquery)}::tsquery"))
        return tiers

    @staticmethod
    def _tier_expression(tiers: list[tuple[int, str]]) -> str:
        if not tiers:
            return "0"
        cases = " ".join(f"when {condition} then {tier}" for tier, condition in tiers)
        return f"case {cases} else 0 end"

    @staticmethod
    def _keyed_tiers(
        tenant_id: TenantId, query: SearchQuery, words: list[str], vocabulary: list[_Word]
    ) -> dict[int, tuple[str, bool]]:
        """Tier -> (tsquery over ``search.tenant_keys``, windowed) for the word tiers the
        relevance page reads from the tenant-keyed index: every tier when the query has
        filters that can all be keyed (its words AND the filters), otherwise the name tiers
        that do not match so many documents that the recency index finds a page at once
        (BROAD_DOCS). A tier the vocabulary bounds by KEYED_PAGE_MAX documents (a tier needs
        every word: its bound is the smallest of its words') is read in one scan; the others
        newest months first (``windowed``, see MONTH_WINDOWS)."""
        if not words:
            return {}
        key = _tenant_key(tenant_id)
        keyed_filter = _filter_tsquery(key, query)
        tiers = _tsqueries(words, vocabulary, key)
        bounds = {
            _TIER_PREFIX: min(v.prefix_docs for v in vocabulary),
            _TIER_FUZZY: vocabulary[0].near_docs
            if len(words) == 1
            else min(v.prefix_docs + v.near_docs for v in vocabulary),
        }
        if keyed_filter is not None:
            return {
                tier: (
                    f"({tsquery}) & ({keyed_filter})",
                    bounds.get(tier, KEYED_PAGE_MAX + 1) > KEYED_PAGE_MAX,
                )
                for tier, tsquery in tiers.items()
            }
        least = {
            _TIER_PREFIX: max(v.prefix_most for v in vocabulary) if len(words) == 1 else 0,
            _TIER_FUZZY: max(v.near_most for v in vocabulary) if len(words) == 1 else 0,
        }
        return {
            tier: (tsquery, bounds[tier] > KEYED_PAGE_MAX)
            for tier, tsquery in tiers.items()
            if tier in bounds and least[tier] < BROAD_DOCS
        }

    async def _relevance_page(
        self,
        sql: _Sql,
        tiers: list[tuple[int, str]],
        after: list[Any] | None,
        wanted: int,
        keyed: dict[int, tuple[str, bool]] | None = None,
        newest: int | None = None,
    ) -> list[asyncpg.Record]:
        """One statement: a LIMITed, newest-first branch per tier, in tier order. The outer
        LIMIT stops the Append once it has enough rows, so later tiers are not even read, and
        a broad match walks the recency index and stops early.

        With ``keyed`` (tier -> (tsquery over ``search.tenant_keys``, windowed), see
        :meth:`_keyed_tiers`),
        those tiers are driven by the tenant-keyed index instead: it hands over exactly the
        matching rows. Words with filters match few documents, and the plain statement read
        them from the (tenant_id, tsv) index and tested the filters on the heap: 3,000 rows
        read for 186 matches of a description word with a language and a status (13 ms).
        A windowed keyed tier is one branch per month window from the ``newest`` month (or
        the cursor's) back (see :func:`_windows`): the LIMIT stops after the windows that
        hold enough rows."""
        start_tier, after_key = _TIER_EXACT + 1, None
        if after is not None:
            try:
                start_tier = int(after[1])
                after_key = (dt.datetime.fromisoformat(after[2]), uuid.UUID(after[3]))
            except (IndexError, ValueError, TypeError) as exc:
                raise ValidationFailed([FieldError("query.cursor", "invalid cursor")]) from exc
        local = _Sql.copy(sql)
        limit = local.arg(wanted)
        key = _tenant_key(local.args[0])
        branches: list[str] = []
        for position, (tier, condition) in enumerate(tiers):
            if tier > start_tier:
                continue
            resume = tier == start_tier and after_key is not None
            # The keyed query holds the filters: the plain twins are left out (see _facets
            # for the tenant test as a plain filter).
            keyed_where = ["(tenant_id = $1) is true", "not deleted"]
            drivers: list[list[str]]
            if keyed and tier in keyed:
                tsquery, windowed = keyed[tier]
                where = keyed_where
                anchor = newest
                if anchor is not None and after_key is not None and resume:
                    anchor = min(anchor, _month(after_key[0]))
                windows = _windows(anchor) if windowed and anchor is not None else None
                if windows:
                    drivers = []
                    for window in windows:
                        if window.outside is None:
                            months = " | ".join(_lexeme(f"{key}c.{m}") for m in window.months)
                            windowed_query = f"({tsquery}) & ({months})"
                            drivers.append([f"{_DOC_KEYS} @@ {local.arg(windowed_query)}::tsquery"])
                        else:
                            start, end = window.outside
                            drivers.append(
                                [
                                    f"{_DOC_KEYS} @@ {local.arg(tsquery)}::tsquery",
                                    f"(created_at < {local.arg(start)}"
                                    f" or created_at >= {local.arg(end)})",
                                ]
                            )
                else:
                    drivers = [[f"{_DOC_KEYS} @@ {local.arg(tsquery)}::tsquery"]]
            else:
                where, drivers = list(local.where), [[condition]]
            for driver in drivers:
                clauses = [*where, *driver, *(f"not ({c})" for _, c in tiers[:position])]
                if resume and after_key is not None:
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
        body = " union all ".join(branches)
        typed = _typed_unused(body, local.args)
        rows = await self._fetch(
            f"{'with ' + typed if typed else ''} select * from ({body}) page limit {limit}",
            local.args,
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
        self,
        sql: _Sql,
        tiers: list[tuple[int, str]],
        query: SearchQuery,
        words: list[str],
        vocabulary: list[_Word],
        matches: int = 0,
        estimate: float = 0.0,
    ) -> tuple[list[FacetCount], list[FacetCount], bool]:
        """Top languages and tags of the matches (``matches``: a lower bound of their
        number when the caller knows one; ``estimate``: the free-text matches estimated
        from the tenant's counts).

        Without words and with no filter or a single language or tag: exact, from the
        tenant's counts (``search.facets``). Otherwise exact up to FACET_CAP matching
        documents; beyond that (third value False) counted over FACET_CAP of them, taken
        from the best tiers first, or over FACET_SAMPLE of them when the tenant's counts
        prove beforehand that there are more than FACET_CAP (a name word's vocabulary, or
        the count of two filter values): the exact count could not be had anyway, and
        reading FACET_CAP + 1 rows was most of a cold request; likewise when the estimate
        of the free-text matches is above BROAD_ESTIMATE. Facets are exact whenever the
        statement read every match (no more than it was allowed to).

        The tiers are disjoint branches of one Append, each LIMITed, and the outer LIMIT
        stops it: a broad query reads FACET_CAP + 1 rows of its best tiers and never runs
        the weaker ones. Each branch is one tsquery over the tenant-keyed index
        (``search.tenant_keys``, migrations 0013, 0015): the tier's words AND every filter, so the
        index hands over only matching rows. The tenant test is then a plain filter (``is
        true`` keeps it out of the index conditions: ANDing a bitmap of the tenant's
        100,000 rows cost more than the whole keyed scan); the plain filter conditions are
        left out, their keyed twins select the same rows of this tenant, and the planner
        would otherwise read them from the (tenant_id, ...) GIN indexes: every tenant's
        matches."""
        local = _Sql.copy(sql)
        tenant = local.args[0]
        group = _facet_filter(query)
        if group is not None:
            return await self._counted_facets(tenant, group)
        least = (
            matches
            or _least_matches(query, vocabulary)
            or await self._filter_matches(tenant, query)
        )
        cap = FACET_SAMPLE if least > FACET_CAP or estimate > BROAD_ESTIMATE else FACET_CAP
        key = _tenant_key(tenant)
        keyed_filter = _filter_tsquery(key, query)
        keyed = _tsqueries(words, vocabulary, key) if words else {}
        guarded = ["(tenant_id = $1) is true", "not deleted"]
        if keyed_filter is None:
            guarded += local.where[2:]  # plain filters, when they cannot be keyed
        branches = []
        for position, (tier, condition) in enumerate(tiers or [(0, "true")]):
            parts = [q for q in (keyed.get(tier), keyed_filter) if q is not None]
            if tier == _TIER_EXACT or not parts:
                # An exact name (the (tenant_id, name_norm) btree finds it), or nothing
                # that can be keyed: the plain conditions.
                where, driver = list(local.where), [condition]
            else:
                tsquery = " & ".join(f"({q})" for q in parts)
                where = guarded
                driver = [f"{_DOC_KEYS} @@ {local.arg(tsquery)}::tsquery"]
                if tier not in keyed:
                    driver.append(condition)
            clauses = [*where, *driver, *(f"not ({c})" for _, c in tiers[:position])]
            branches.append(
                f"""(select languages, tags from search.pocs
                     where {" and ".join(clauses)} limit {cap + 1})"""
            )
        typed = _typed_unused(" ".join(branches), local.args)
        rows = await self._fetch(
            f"""with {typed + "," if typed else ""} m as materialized (
                    select * from ({" union all ".join(branches)}) u limit {cap + 1})
                select 'n' as kind, null as v, count(*) as n from m
                union all
                select 'l', v, count(*) from (
                    select unnest(s.languages) as v from (select * from m limit {cap}) s) l
                group by v
                union all
                select 't', v, count(*) from (
                    select unnest(s.tags) as v from (select * from m limit {cap}) s) t
                group by v""",
            local.args,
        )
        counts: dict[str, Counter[str]] = {"l": Counter(), "t": Counter()}
        matched = 0
        for row in rows:
            if row["kind"] == "n":
                matched = row["n"]
            else:
                counts[row["kind"]][row["v"]] = row["n"]
        return _top(counts["l"]), _top(counts["t"]), matched <= cap

    async def _filter_matches(self, tenant_id: TenantId, query: SearchQuery) -> int:
        """A lower bound of the documents matching a query without words from the tenant's
        counts (``search.facets``), 0 when they cannot tell: the documents with one of
        several languages or tags (the largest of their counts), or with two given values
        (the count of one value among the documents with the other, exact)."""
        pair = _filter_pair(query)
        if pair is None:
            return 0
        rows = await self._fetch(
            """select coalesce(max(docs), 0) as docs from search.facets
               where tenant_id = $1 and filter = $2 and kind = $3 and value = any($4::text[])""",
            [tenant_id, *pair],
        )
        return int(rows[0]["docs"]) if rows else 0

    async def _counted_facets(
        self, tenant_id: TenantId, group: str
    ) -> tuple[list[FacetCount], list[FacetCount], bool]:
        """Exact facets from the tenant's counts (see :func:`_facet_filter`)."""
        rows = await self._fetch(
            """select kind, value, docs from search.facets
               where tenant_id = $1 and filter = $2 and kind in ('l', 't') and docs > 0""",
            [tenant_id, group],
        )
        counts: dict[str, Counter[str]] = {"l": Counter(), "t": Counter()}
        for row in rows:
            counts[row["kind"]][row["value"]] = row["docs"]
        return _top(counts["l"]), _top(counts["t"]), True

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
        if not self._cache.enabled:
            return await self._suggest(tenant_id, words, limit)
        key = ("suggest", tenant_id, await self._version(tenant_id), tuple(words), limit)
        cached = self._cache.get(key)
        if isinstance(cached, list):
            return list(cached)
        found = await self._suggest(tenant_id, words, limit)
        self._cache.put(key, list(found))
        return found

    async def _suggest(self, tenant_id: TenantId, words: list[str], limit: int) -> list[Suggestion]:
        # Words are [a-z0-9]+ only, so neither pattern can carry LIKE or tsquery syntax.
        # Names starting like it first, in byte order (``~<~``): the order of the
        # text_pattern_ops index that finds the prefix, so the scan stops after ``limit``
        # names (the default collation's order walked the tenant's names from "a" up to the
        # prefix: 22,000 rows for "con"). Then names with a word starting like it, from the
        # tenant-keyed index (see _facets), only when the first branch found too few: the
        # outer LIMIT stops the Append (a broad prefix such as "wit" has 25,000 documents in
        # the 100,000-PoC tenant, and the keyed branch built their whole bitmap every time).
        name_like, term_like = " ".join(words) + "%", "-".join(words) + "%"
        key = _tenant_key(tenant_id) + "n."
        tsq = " & ".join(f"{_lexeme(key + w)}:*" for w in words)
        rows = await self._fetch(
            f"""(select 'tag' as kind, value, null::uuid as id from search.terms
                where tenant_id = $1 and kind = 'tag' and docs > 0 and value like $4
                order by docs desc, value limit $3)
               union all
               (select 'language', value, null from search.terms
                where tenant_id = $1 and kind = 'language' and docs > 0 and value like $4
                order by docs desc, value limit $3)
               union all
               (select * from (
                   (select 'name', name, id from search.pocs
                    where tenant_id = $1 and not deleted and name_norm like $5
                    order by name_norm using ~<~ limit $3)
                   union all
                   (select 'name', name, id from search.pocs
                    where (tenant_id = $1) is true and not deleted
                      and {_DOC_KEYS} @@ $2::tsquery and name_norm not like $5
                    limit $3)) names
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

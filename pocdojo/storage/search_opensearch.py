"""OpenSearchSearch: the SearchIndex over OpenSearch 2.x (opensearch-py's async client).

Layout: one shared index behind an alias (``pocdojo-pocs`` -> ``pocdojo-pocs-v1``), 3 primary
shards and 1 replica by default. Every document carries ``tenant_id`` and is routed by it
(``routing=str(tenant_id)``), so one tenant's documents live on one shard and its searches
touch one shard. A large tenant can be given its own index or alias (``dedicated_tenants``);
its requests go there instead, still routed and still tenant-filtered.

Tenancy: OpenSearch has no row-level security, so the adapter enforces it. Every query that
selects documents (search, suggest, delete by query) is built by ``_tenant_query``: a
``bool`` whose ``filter`` holds ``{"term": {"tenant_id": ...}}`` and whose ``must_not``
excludes tombstones. ``_search`` and ``_delete_where`` are the only methods that send such
requests and they build the query themselves; callers can only add clauses to it. Document
ids are ``<tenant_id>:<poc_id>``, so even a forged PoC id cannot address another tenant's
document. User text is only ever a value of ``match``/``term``/``prefix`` queries (never
``query_string``), so Lucene or SQL syntax in it is plain text.

Versioning: writes use OpenSearch external versioning with the PoC's version; a 409 means
the index already has this PoC at the same or a newer version, and the write is a no-op.
``delete`` indexes a tombstone (``deleted: true``) with the deletion's version instead of
removing the document, so a late, older upsert cannot bring the PoC back.

Reindexing:

* One tenant, in place: ``replace_tenant`` bulk-indexes the tenant's documents (external
  versions: nothing newer is overwritten) and then deletes by query the tenant's live
  documents that are not in the new set. Readers see the old documents until they are
  replaced one by one; there is no moment without an index. A PoC created between the
  caller's snapshot and the delete is removed too: replay the outbox from the snapshot
  afterwards (replays are idempotent thanks to the versions).
* Everything (a mapping change, a new analyzer): ``reindex_all`` creates a new concrete
  index (``pocdojo-pocs-v2``), bulk-loads every shared tenant's documents into it, refreshes
  it and calls ``swap_alias``, which moves the alias in one atomic ``_aliases`` request.
  Writes made during the load went to the old index: replay the outbox from the snapshot
  after the swap, then delete the previous indices that ``reindex_all`` reports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Self

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import (
    ConflictError,
    NotFoundError,
    RequestError,
    TransportError,
)
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.helpers import BulkIndexError

from pocdojo.domain.text import fold, terms
from pocdojo.errors import FieldError, Unavailable, ValidationFailed
from pocdojo.storage.search import (
    FACET_SIZE,
    MAX_LIMIT,
    FacetCount,
    SearchDoc,
    SearchHit,
    SearchQuery,
    SearchResult,
    Sort,
    Suggestion,
    SuggestionKind,
    decode_cursor,
    encode_cursor,
)
from pocdojo.types import TenantId

Json = dict[str, Any]
Refresh = Literal[False, True, "wait_for"]

DEFAULT_ALIAS: Final = "pocdojo-pocs"
SUGGEST_MAX_LIMIT: Final = 50
"""Suggest returns nothing for a larger ``limit``, like the Postgres backend."""

_BULK_CHUNK = 500
_DELETE_CHUNK = 10_000
_SCAN_PAGE = 5_000
# OpenSearch's default index.max_terms_count: a `terms` query cannot list more ids.
_MAX_TERMS = 65_536
# Longer queries only cost more fuzzy expansions; nobody types 200 characters in a search box.
_MAX_QUERY_CHARS = 200
# Relevance tiers, the same numbers as the Postgres backend: a hit scores its best tier.
_TIER_EXACT, _TIER_PREFIX, _TIER_FUZZY, _TIER_TEXT = 4.0, 3.0, 2.0, 1.0
_HIT_FIELDS = ("id", "name", "languages", "tags", "owner_id", "status", "built_on")
_OUTAGE_STATUSES = frozenset({429, 502, 503, 504})

_SORTS: Final[dict[Sort, list[Json]]] = {
    "relevance": [
        {"_score": {"order": "desc"}},
        {"created_at": {"order": "desc"}},
        {"id": {"order": "desc"}},
    ],
    "newest": [{"created_at": {"order": "desc"}}, {"id": {"order": "desc"}}],
    "name": [{"name.exact": {"order": "asc"}}, {"id": {"order": "asc"}}],
}
# The JSON types of each sort key, to refuse a forged cursor before OpenSearch does (400).
_CURSOR_TYPES: Final[dict[Sort, tuple[tuple[type, ...], ...]]] = {
    "relevance": ((int, float), (int,), (str,)),
    "newest": ((int,), (str,)),
    "name": ((str,), (str,)),
}


def index_definition(*, shards: int = 3, replicas: int = 1) -> Json:
    """Settings and mappings of a PoC search index (the template and every concrete index).

    ``name`` is folded (lowercase, accents removed) and split on anything that is not a
    letter or digit, as ``pocdojo.domain.text.terms`` splits queries; ``name.prefix`` holds
    edge n-grams of each word for search-as-you-type, ``name.exact`` the whole folded name
    for exact matches and sorting.
    """
    return {
        "settings": {
            "index": {"number_of_shards": shards, "number_of_replicas": replicas},
            "analysis": {
                "tokenizer": {
                    "pocdojo_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{M}\\p{N}]+"}
                },
                "filter": {
                    "pocdojo_edge": {
                        "type": "edge_ngram",
                        "min_gram": 1,
                        "max_gram": 20,
                        "preserve_original": True,
                    }
                },
                "analyzer": {
                    "pocdojo_folding": {
                        "type": "custom",
                        "tokenizer": "pocdojo_words",
                        "filter": ["lowercase", "asciifolding"],
                    },
                    "pocdojo_prefix": {
                        "type": "custom",
                        "tokenizer": "pocdojo_words",
                        "filter": ["lowercase", "asciifolding", "pocdojo_edge"],
                    },
                },
                "normalizer": {
                    "pocdojo_folding": {"type": "custom", "filter": ["lowercase", "asciifolding"]}
                },
            },
        },
        "mappings": {
            "dynamic": "strict",
            # A write or get without routing fails instead of landing on a random shard.
            "_routing": {"required": True},
            "properties": {
                "tenant_id": {"type": "keyword"},
                "id": {"type": "keyword"},
                "version": {"type": "long"},
                "deleted": {"type": "boolean"},
                "name": {
                    "type": "text",
                    "analyzer": "pocdojo_folding",
                    "fields": {
                        "prefix": {
                            "type": "text",
                            "analyzer": "pocdojo_prefix",
                            "search_analyzer": "pocdojo_folding",
                        },
                        "exact": {"type": "keyword", "normalizer": "pocdojo_folding"},
                    },
                },
                "description": {"type": "text", "analyzer": "pocdojo_folding"},
                "languages": {"type": "keyword"},
                "tags": {"type": "keyword"},
                "owner_id": {"type": "keyword"},
                "status": {"type": "keyword"},
                "built_on": {"type": "date"},
                "year": {"type": "integer"},
                "created_at": {"type": "date"},
                "updated_at": {"type": "date"},
            },
        },
    }


@dataclass(frozen=True, slots=True)
class _Clauses:
    """What a caller may add to the tenant query; the tenant part is not theirs to give."""

    filters: Sequence[Json] = ()
    must: Sequence[Json] = ()
    should: Sequence[Json] = ()
    must_not: Sequence[Json] = ()


def _tenant_query(tenant_id: TenantId, clauses: _Clauses) -> Json:
    """The one place a document-selecting query is built: the tenant filter and the
    tombstone exclusion are always there, whatever the caller adds."""
    bool_query: Json = {
        "filter": [{"term": {"tenant_id": str(tenant_id)}}, *clauses.filters],
        "must_not": [{"term": {"deleted": True}}, *clauses.must_not],
    }
    if clauses.must:
        bool_query["must"] = list(clauses.must)
    if clauses.should:
        bool_query["should"] = list(clauses.should)
        bool_query["minimum_should_match"] = 0
    return {"bool": bool_query}


@dataclass(frozen=True, slots=True)
class RebuildResult:
    indexed: int
    """Documents written to the new index."""
    previous_indices: list[str] = field(default_factory=list)
    """Indices the alias pointed to before; delete them once the new one is verified."""


class OpenSearchSearch:
    """The SearchIndex over OpenSearch; see the module docstring for layout and tenancy.

    ``refresh`` is passed to every write (``True`` or ``"wait_for"`` make writes visible
    to the next search, which tests want; production keeps ``False`` and lets the 1 s
    refresh interval do it).
    """

    def __init__(
        self,
        client: AsyncOpenSearch,
        *,
        alias: str = DEFAULT_ALIAS,
        dedicated_tenants: Mapping[TenantId, str] | None = None,
        shards: int = 3,
        replicas: int = 1,
        refresh: Refresh = False,
        bulk_timeout_s: float = 60.0,
    ) -> None:
        # opensearch-py's methods are generated and typed Any; keep the client as Any.
        self._client: Any = client
        self._alias = alias
        self._dedicated: dict[TenantId, str] = dict(dedicated_tenants or {})
        self._shards = shards
        self._replicas = replicas
        self._refresh: Refresh = refresh
        self._bulk_timeout_s = bulk_timeout_s

    @property
    def alias(self) -> str:
        """The alias shared tenants are read from and written to."""
        return self._alias

    @property
    def template_name(self) -> str:
        """The index template applied to ``<alias>-v*`` indices."""
        return f"{self._alias}-template"

    @property
    def first_index(self) -> str:
        """The concrete index ``ensure_setup`` creates behind the alias."""
        return f"{self._alias}-v1"

    @property
    def client(self) -> Any:
        """The underlying ``AsyncOpenSearch`` client (administration and tests)."""
        return self._client

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def ensure_setup(self) -> None:
        """Create what is missing, leave what exists: the index template for
        ``<alias>-v*``, the first index ``<alias>-v1`` with the alias on it, and every
        dedicated tenant index. Safe to run concurrently and on every start."""
        definition = index_definition(shards=self._shards, replicas=self._replicas)
        await self._client.indices.put_index_template(
            name=self.template_name,
            body={
                "index_patterns": [f"{self._alias}-v*"],
                "priority": 100,
                "template": definition,
            },
        )
        if not await self._client.indices.exists_alias(name=self._alias):
            await self._create_index(self.first_index, aliases={self._alias: {}})
            # The index may have existed without the alias (an interrupted swap).
            if not await self._client.indices.exists_alias(name=self._alias):
                await self._client.indices.put_alias(index=self.first_index, name=self._alias)
        for name in sorted(set(self._dedicated.values())):
            if not await self._client.indices.exists(index=name):
                await self._create_index(name)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.close()

    # -- writes -------------------------------------------------------------------------

    async def upsert(self, tenant_id: TenantId, doc: SearchDoc) -> bool:
        """Index ``doc`` unless the index holds this PoC at the same or a newer version
        (a tombstone included); True if it was written."""
        return await self._index_one(tenant_id, doc.id, doc.version, _source(tenant_id, doc))

    async def delete(self, tenant_id: TenantId, poc_id: uuid.UUID, version: int) -> bool:
        """Replace the PoC by a tombstone at ``version`` (also when it was never indexed),
        so no upsert of that version or older can revive it; False if the index already
        holds the same or a newer version."""
        tombstone = {
            "tenant_id": str(tenant_id),
            "id": str(poc_id),
            "version": version,
            "deleted": True,
        }
        return await self._index_one(tenant_id, poc_id, version, tombstone)

    async def replace_tenant(self, tenant_id: TenantId, docs: list[SearchDoc]) -> int:
        """Make the tenant's live documents exactly ``docs`` without taking the index
        away from readers; returns ``len(docs)``.

        Documents already present at the same or a newer version are kept as they are.
        Tombstones of documents not in ``docs`` stay, so their versions are remembered.
        """
        index = self._index_for(tenant_id)
        await self._bulk_index(
            index, ((tenant_id, d) for d in docs), require_alias=index == self._alias
        )
        keep = sorted({str(d.id) for d in docs})
        if len(keep) <= _MAX_TERMS:
            must_not = [{"terms": {"id": keep}}] if keep else []
            await self._delete_where(tenant_id, _Clauses(must_not=must_not))
        else:
            kept = set(keep)
            stale = [poc_id async for poc_id in self._live_ids(tenant_id) if poc_id not in kept]
            for start in range(0, len(stale), _DELETE_CHUNK):
                chunk = stale[start : start + _DELETE_CHUNK]
                await self._delete_where(tenant_id, _Clauses(filters=[{"terms": {"id": chunk}}]))
        return len(docs)

    async def reindex_all(
        self, new_index: str, docs_by_tenant: Mapping[TenantId, Sequence[SearchDoc]]
    ) -> RebuildResult:
        """Full rebuild: create ``new_index`` (it must not exist), load every tenant's
        documents into it, refresh it, then point the alias at it atomically.

        Tenants in ``dedicated_tenants`` are skipped: their own index is rebuilt with
        ``replace_tenant``. The previous indices are reported, not deleted.
        """
        await self._create_index(new_index, exist_ok=False)
        items = [
            (tenant_id, doc)
            for tenant_id, docs in docs_by_tenant.items()
            if tenant_id not in self._dedicated
            for doc in docs
        ]
        await self._bulk_index(new_index, items, require_alias=False)
        await self._client.indices.refresh(index=new_index)
        previous = await self.swap_alias(new_index)
        return RebuildResult(indexed=len(items), previous_indices=previous)

    async def swap_alias(self, new_index: str) -> list[str]:
        """Point the alias at ``new_index`` alone, in one atomic ``_aliases`` request
        (readers see either the old or the new index, never none); returns the indices
        it pointed to before. If the alias moved meanwhile the request fails as a whole."""
        try:
            current = sorted(await self._client.indices.get_alias(name=self._alias))
        except NotFoundError:
            current = []
        previous = [name for name in current if name != new_index]
        actions: list[Json] = [
            *({"remove": {"index": name, "alias": self._alias}} for name in previous),
            {"add": {"index": new_index, "alias": self._alias}},
        ]
        await self._client.indices.update_aliases(body={"actions": actions})
        return previous

    # -- reads --------------------------------------------------------------------------

    async def search(self, tenant_id: TenantId, query: SearchQuery) -> SearchResult:
        """One page of the tenant's PoCs matching ``query``, with language and tag facets
        counted over everything that matches, and a cursor to the next page (or None).

        Raises ValidationFailed for a limit outside 1..MAX_LIMIT or an invalid cursor.
        """
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValidationFailed([FieldError("query.limit", f"from 1 to {MAX_LIMIT}")])
        text = query.q[:_MAX_QUERY_CHARS]
        words = terms(text)
        if text.strip() and not words:
            return SearchResult([], [], [], None)  # only punctuation: nothing can match
        after = _search_after(query.cursor, query.sort) if query.cursor else None
        body: Json = {
            "size": query.limit + 1,
            "sort": _SORTS[query.sort],
            "_source": list(_HIT_FIELDS),
            "track_total_hits": False,
            "aggs": {
                "languages": _terms_agg("languages", FACET_SIZE),
                "tags": _terms_agg("tags", FACET_SIZE),
            },
        }
        if words:
            body["track_scores"] = True
            body["highlight"] = _highlight(words)
        if after is not None:
            body["search_after"] = after
        clauses = _Clauses(filters=_filters(query), must=[_relevance(words, text)] if words else [])
        response = await self._search(tenant_id, clauses, **body)
        raw_hits: list[Json] = response["hits"]["hits"]
        hits = [_hit(raw) for raw in raw_hits[: query.limit]]
        next_cursor = None
        if len(raw_hits) > query.limit:
            next_cursor = encode_cursor([query.sort, *raw_hits[query.limit - 1]["sort"]])
        aggs: Json = response.get("aggregations", {})
        return SearchResult(hits, _facets(aggs, "languages"), _facets(aggs, "tags"), next_cursor)

    async def suggest(self, tenant_id: TenantId, prefix: str, limit: int = 10) -> list[Suggestion]:
        """Typeahead: up to ``limit`` PoC names whose words start like ``prefix``'s
        words, and tags and languages starting with it; [] for a prefix without letters
        or digits or a limit outside 1..SUGGEST_MAX_LIMIT."""
        words = terms(prefix[:_MAX_QUERY_CHARS])
        if not words or not 1 <= limit <= SUGGEST_MAX_LIMIT:
            return []
        text = " ".join(words)
        include = _regex_literal("-".join(words)) + ".*"
        name_match = {"match": {"name.prefix": {"query": text, "operator": "and"}}}
        # The main query matches all the tenant's live documents, so the term aggregations
        # see them all; the post filter keeps only matching names as hits, and names that
        # start with the whole prefix score above names with a later matching word.
        clauses = _Clauses(
            should=[
                _constant(2.0, {"prefix": {"name.exact": {"value": text}}}),
                _constant(1.0, name_match),
            ]
        )
        response = await self._search(
            tenant_id,
            clauses,
            size=limit,
            _source=["id", "name"],
            track_total_hits=False,
            sort=_SORTS["relevance"],
            post_filter=name_match,
            aggs={
                "tags": _terms_agg("tags", limit, include),
                "languages": _terms_agg("languages", limit, include),
            },
        )
        names = [
            Suggestion("name", raw["_source"]["name"], uuid.UUID(raw["_source"]["id"]))
            for raw in response["hits"]["hits"]
        ]
        aggs: Json = response.get("aggregations", {})
        counted: list[tuple[SuggestionKind, FacetCount]] = [
            *(("tag", f) for f in _facets(aggs, "tags")),
            *(("language", f) for f in _facets(aggs, "languages")),
        ]
        counted.sort(key=lambda kind_facet: (-kind_facet[1].count, kind_facet[1].value))
        others = [Suggestion(kind, f.value) for kind, f in counted]
        # As the Postgres backend: a few tags and languages first (short, exact
        # vocabulary), then names, then the remaining terms.
        mixed = others[: limit // 2] + names + others[limit // 2 :]
        return mixed[:limit]

    # -- the only requests that select documents ----------------------------------------

    async def _search(self, tenant_id: TenantId, clauses: _Clauses, **body: Any) -> Json:
        if "query" in body:
            raise TypeError("the query is built from the tenant; pass clauses instead")
        request = {"query": _tenant_query(tenant_id, clauses), **body}
        with _outage_as_unavailable():
            response: Json = await self._client.search(
                index=self._index_for(tenant_id), routing=str(tenant_id), body=request
            )
        return response

    async def _delete_where(self, tenant_id: TenantId, clauses: _Clauses) -> None:
        params: Json = {}
        if self._refresh:
            params["refresh"] = True  # delete by query knows no "wait_for"
        with _outage_as_unavailable():
            await self._client.delete_by_query(
                index=self._index_for(tenant_id),
                routing=str(tenant_id),
                body={"query": _tenant_query(tenant_id, clauses)},
                conflicts="proceed",  # a document changed meanwhile was written after us
                request_timeout=self._bulk_timeout_s,
                **params,
            )

    async def _live_ids(self, tenant_id: TenantId) -> AsyncIterator[str]:
        after: list[Any] | None = None
        while True:
            page: Json = {"size": _SCAN_PAGE, "sort": [{"id": {"order": "asc"}}], "_source": ["id"]}
            if after is not None:
                page["search_after"] = after
            hits: list[Json] = (await self._search(tenant_id, _Clauses(), **page))["hits"]["hits"]
            for raw in hits:
                yield str(raw["_source"]["id"])
            if len(hits) < _SCAN_PAGE:
                return
            after = hits[-1]["sort"]

    # -- writing helpers ----------------------------------------------------------------

    async def _index_one(
        self, tenant_id: TenantId, poc_id: uuid.UUID, version: int, body: Json
    ) -> bool:
        index = self._index_for(tenant_id)
        params: Json = {}
        if self._refresh:
            params["refresh"] = self._refresh
        if index == self._alias:
            # Never let a missing alias auto-create an index with guessed mappings.
            params["require_alias"] = True
        try:
            with _outage_as_unavailable():
                await self._client.index(
                    index=index,
                    id=_doc_id(tenant_id, poc_id),
                    body=body,
                    routing=str(tenant_id),
                    version=version,
                    version_type="external",
                    **params,
                )
        except ConflictError:
            return False  # the same or a newer version is already there
        return True

    async def _bulk_index(
        self,
        index: str,
        items: Iterable[tuple[TenantId, SearchDoc]],
        *,
        require_alias: bool,
    ) -> None:
        params: Json = {"request_timeout": self._bulk_timeout_s}
        if self._refresh:
            params["refresh"] = self._refresh
        if require_alias:
            params["require_alias"] = True
        for chunk in _chunks(items, _BULK_CHUNK):
            lines: list[Json] = []
            for tenant_id, doc in chunk:
                action = {
                    "_index": index,
                    "_id": _doc_id(tenant_id, doc.id),
                    "routing": str(tenant_id),
                    "version": doc.version,
                    "version_type": "external",
                }
                lines += [{"index": action}, _source(tenant_id, doc)]
            with _outage_as_unavailable():
                response: Json = await self._client.bulk(body=lines, **params)
            if response.get("errors"):
                _raise_bulk_errors(response)

    async def _create_index(
        self, name: str, *, aliases: Json | None = None, exist_ok: bool = True
    ) -> None:
        body = index_definition(shards=self._shards, replicas=self._replicas)
        if aliases:
            body["aliases"] = aliases
        try:
            await self._client.indices.create(index=name, body=body, request_timeout=30)
        except RequestError as exc:
            if not (exist_ok and exc.error == "resource_already_exists_exception"):
                raise

    def _index_for(self, tenant_id: TenantId) -> str:
        return self._dedicated.get(tenant_id, self._alias)


def open_opensearch(
    url: str,
    *,
    verify_certs: bool = True,
    timeout_s: float = 2.0,
    max_retries: int = 2,
    alias: str = DEFAULT_ALIAS,
    dedicated_tenants: Mapping[TenantId, str] | None = None,
    shards: int = 3,
    replicas: int = 1,
    refresh: Refresh = False,
) -> OpenSearchSearch:
    """An OpenSearchSearch over a new async client for ``url``
    (``https://user:password@host:9200``; credentials in the URL become basic auth).

    Certificates are verified unless told otherwise; a request that takes longer than
    ``timeout_s`` is retried (up to ``max_retries`` times, on another node when there is
    one). Writes are idempotent by version, so retrying them is safe.
    """
    client = AsyncOpenSearch(
        hosts=[url],
        verify_certs=verify_certs,
        timeout=timeout_s,
        max_retries=max_retries,
        retry_on_timeout=True,
    )
    return OpenSearchSearch(
        client,
        alias=alias,
        dedicated_tenants=dedicated_tenants,
        shards=shards,
        replicas=replicas,
        refresh=refresh,
    )


# -- pure helpers ---------------------------------------------------------------------


def _doc_id(tenant_id: TenantId, poc_id: uuid.UUID) -> str:
    return f"{tenant_id}:{poc_id}"


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _source(tenant_id: TenantId, doc: SearchDoc) -> Json:
    return {
        "tenant_id": str(tenant_id),
        "id": str(doc.id),
        "version": doc.version,
        "deleted": False,
        "name": doc.name,
        "description": doc.description,
        "languages": list(doc.languages),
        "tags": list(doc.tags),
        "owner_id": str(doc.owner_id),
        "status": doc.status,
        "built_on": doc.built_on.isoformat(),
        "year": doc.built_on.year,
        "created_at": _timestamp(doc.created_at),
        "updated_at": _timestamp(doc.updated_at),
    }


def _filters(query: SearchQuery) -> list[Json]:
    filters: list[Json] = []
    if query.languages:
        filters.append({"terms": {"languages": list(query.languages)}})  # any
    filters += [{"term": {"tags": tag}} for tag in query.tags_all]  # each one: all
    if query.tags_any:
        filters.append({"terms": {"tags": list(query.tags_any)}})  # any
    if query.owner is not None:
        filters.append({"term": {"owner_id": str(query.owner)}})
    if query.status is not None:
        filters.append({"term": {"status": query.status}})
    if query.year is not None:
        filters.append({"term": {"year": query.year}})
    return filters


def _constant(score: float, query: Json) -> Json:
    return {"constant_score": {"filter": query, "boost": score}}


def _relevance(words: list[str], text: str) -> Json:
    """A hit scores the best tier it reaches, whatever the field lengths, so equal tiers
    tie and the sort falls back to recency."""
    terms_text = " ".join(words)
    exact = " ".join(fold(text).split())
    return {
        "dis_max": {
            "tie_breaker": 0.0,
            "queries": [
                _constant(_TIER_EXACT, {"term": {"name.exact": {"value": exact}}}),
                _constant(
                    _TIER_PREFIX,
                    {"match": {"name.prefix": {"query": terms_text, "operator": "and"}}},
                ),
                _constant(
                    _TIER_FUZZY,
                    {
                        "match": {
                            "name": {"query": terms_text, "operator": "and", "fuzziness": "AUTO"}
                        }
                    },
                ),
                _constant(
                    _TIER_TEXT,
                    {"match": {"description": {"query": terms_text, "operator": "and"}}},
                ),
            ],
        }
    }


def _highlight(words: list[str]) -> Json:
    # Per-field highlight queries: the scoring query wraps its clauses in constant_score,
    # and the prefix field marks whole words (edge n-grams keep the word's offsets).
    terms_text = " ".join(words)
    return {
        "pre_tags": ["<mark>"],
        "post_tags": ["</mark>"],
        "fields": {
            "name.prefix": {
                "number_of_fragments": 0,
                "highlight_query": {"match": {"name.prefix": {"query": terms_text}}},
            },
            "name": {
                "number_of_fragments": 0,
                "highlight_query": {"match": {"name": {"query": terms_text, "fuzziness": "AUTO"}}},
            },
            "description": {
                "fragment_size": 160,
                "number_of_fragments": 1,
                "highlight_query": {"match": {"description": {"query": terms_text}}},
            },
        },
    }


def _terms_agg(field_name: str, size: int, include: str | None = None) -> Json:
    terms_agg: Json = {
        "field": field_name,
        "size": size,
        "order": [{"_count": "desc"}, {"_key": "asc"}],
    }
    if include is not None:
        terms_agg["include"] = include
    return {"terms": terms_agg}


def _regex_literal(text: str) -> str:
    """``text`` as a Lucene regular expression matching itself: a backslash makes any
    character literal, so everything but ASCII letters and digits is escaped."""
    return "".join(c if c.isascii() and c.isalnum() else "\\" + c for c in text)


def _search_after(cursor: str, sort: Sort) -> list[Any]:
    values = decode_cursor(cursor)
    kinds = _CURSOR_TYPES[sort]
    if (
        len(values) != len(kinds) + 1
        or values[0] != sort
        or not all(
            isinstance(v, k) and not isinstance(v, bool)
            for v, k in zip(values[1:], kinds, strict=True)
        )
    ):
        raise ValidationFailed([FieldError("query.cursor", "invalid cursor")])
    return values[1:]


def _hit(raw: Json) -> SearchHit:
    source: Json = raw["_source"]
    found: Json = raw.get("highlight") or {}
    highlights: dict[str, str] = {}
    if name := found.get("name.prefix") or found.get("name"):
        highlights["name"] = name[0]
    if description := found.get("description"):
        highlights["description"] = description[0]
    return SearchHit(
        id=uuid.UUID(source["id"]),
        name=source["name"],
        languages=tuple(source.get("languages") or ()),
        tags=tuple(source.get("tags") or ()),
        owner_id=uuid.UUID(source["owner_id"]),
        status=source["status"],
        built_on=dt.date.fromisoformat(source["built_on"]),
        score=float(raw.get("_score") or 0.0),
        highlights=highlights,
    )


def _facets(aggs: Json, name: str) -> list[FacetCount]:
    buckets: list[Json] = aggs.get(name, {}).get("buckets", [])
    return [FacetCount(str(b["key"]), int(b["doc_count"])) for b in buckets]


def _chunks(
    items: Iterable[tuple[TenantId, SearchDoc]], size: int
) -> Iterator[list[tuple[TenantId, SearchDoc]]]:
    chunk: list[tuple[TenantId, SearchDoc]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _raise_bulk_errors(response: Json) -> None:
    failed: list[Json] = []
    for item in response.get("items", []):
        result: Json = next(iter(item.values()))
        status = int(result.get("status", 500))
        if status >= 300 and status != 409:  # 409: the same or a newer version is there
            failed.append(result)
    if any(int(r.get("status", 500)) in _OUTAGE_STATUSES for r in failed):
        raise Unavailable("the search index is overloaded")
    if failed:
        raise BulkIndexError(f"{len(failed)} document(s) failed to index", failed)


@contextlib.contextmanager
def _outage_as_unavailable() -> Iterator[None]:
    try:
        yield
    except TransportConnectionError as exc:
        raise Unavailable("the search index cannot be reached") from exc
    except TransportError as exc:
        if exc.status_code in _OUTAGE_STATUSES:
            raise Unavailable("the search index is unavailable") from exc
        raise

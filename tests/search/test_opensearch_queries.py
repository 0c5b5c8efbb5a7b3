"""The requests OpenSearchSearch sends, checked without a cluster: a fake client records
every call, and the tests assert on the bodies (tenant filter, routing, versions, query
shape) and on how responses become results."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opensearchpy.exceptions import ConflictError, ConnectionTimeout, RequestError, TransportError
from opensearchpy.helpers import BulkIndexError

import pocdojo.storage.search_opensearch as search_opensearch
from pocdojo.domain.text import fold, terms
from pocdojo.errors import Unavailable, ValidationFailed
from pocdojo.storage.search import (
    MAX_LIMIT,
    SearchDoc,
    SearchIndex,
    SearchQuery,
    decode_cursor,
    encode_cursor,
)
from pocdojo.storage.search_opensearch import OpenSearchSearch, open_opensearch
from pocdojo.types import TenantId
from tests.search.opensearch_backend import SKIP_REASON, make_opensearch_backend

Json = dict[str, Any]
NASTY = ["' OR 1=1 --", "*:*", "\\", "%_", "'; drop table search.pocs; --", "a:*", "!(", '"']
FORBIDDEN_QUERIES = {
    "query_string",
    "simple_query_string",
    "wildcard",
    "regexp",
    "script",
    "script_score",
    "function_score",
    "match_all",
}


# -- a recording fake client ------------------------------------------------------------


class FakeIndices:
    def __init__(self, client: FakeClient) -> None:
        self._client = client
        self.alias_exists = False
        self.existing: set[str] = set()
        self.aliased: list[str] = ["pocdojo-pocs-v1"]

    async def put_index_template(self, **kwargs: Any) -> Json:
        self._client.record("indices.put_index_template", kwargs)
        return {"acknowledged": True}

    async def exists_alias(self, **kwargs: Any) -> bool:
        self._client.record("indices.exists_alias", kwargs)
        return self.alias_exists

    async def exists(self, **kwargs: Any) -> bool:
        self._client.record("indices.exists", kwargs)
        return kwargs["index"] in self.existing

    async def create(self, **kwargs: Any) -> Json:
        self._client.record("indices.create", kwargs)
        if kwargs["index"] in self.existing:
            raise RequestError(400, "resource_already_exists_exception", {})
        if "aliases" in kwargs.get("body", {}):
            self.alias_exists = True
        return {"acknowledged": True}

    async def put_alias(self, **kwargs: Any) -> Json:
        self._client.record("indices.put_alias", kwargs)
        self.alias_exists = True
        return {"acknowledged": True}

    async def get_alias(self, **kwargs: Any) -> Json:
        self._client.record("indices.get_alias", kwargs)
        return {name: {"aliases": {kwargs["name"]: {}}} for name in self.aliased}

    async def update_aliases(self, **kwargs: Any) -> Json:
        self._client.record("indices.update_aliases", kwargs)
        return {"acknowledged": True}

    async def refresh(self, **kwargs: Any) -> Json:
        self._client.record("indices.refresh", kwargs)
        return {}


class FakeClient:
    """Records ``(method, kwargs)``; answers searches from a queue, conflicts on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Json]] = []
        self.indices = FakeIndices(self)
        self.search_responses: list[Json] = []
        self.conflicting_ids: set[str] = set()
        self.bulk_statuses: dict[str, int] = {}
        self.fail_with: Exception | None = None
        self.closed = False

    def record(self, method: str, kwargs: Json) -> None:
        self.calls.append((method, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    def of(self, method: str) -> list[Json]:
        return [kwargs for name, kwargs in self.calls if name == method]

    async def index(self, **kwargs: Any) -> Json:
        self.record("index", kwargs)
        if kwargs["id"] in self.conflicting_ids:
            raise ConflictError(409, "version_conflict_engine_exception", {})
        return {"result": "created"}

    async def search(self, **kwargs: Any) -> Json:
        self.record("search", kwargs)
        if self.search_responses:
            return self.search_responses.pop(0)
        return {"hits": {"hits": []}, "aggregations": {}}

    async def bulk(self, **kwargs: Any) -> Json:
        self.record("bulk", kwargs)
        actions = kwargs["body"][::2]
        items = []
        for line in actions:
            op, meta = next(iter(line.items()))
            items.append(
                {op: {"_id": meta["_id"], "status": self.bulk_statuses.get(meta["_id"], 201)}}
            )
        return {
            "errors": any(next(iter(i.values()))["status"] >= 300 for i in items),
            "items": items,
        }

    async def delete_by_query(self, **kwargs: Any) -> Json:
        self.record("delete_by_query", kwargs)
        return {"deleted": 0}

    async def close(self) -> None:
        self.closed = True


def backend(client: FakeClient, **options: Any) -> OpenSearchSearch:
    return OpenSearchSearch(cast(Any, client), **options)


def tenant() -> TenantId:
    return TenantId(uuid.uuid4())


def doc(name: str = "Fraud scoring", **fields: Any) -> SearchDoc:
    values: Json = {
        "id": uuid.uuid4(),
        "version": 3,
        "name": name,
        "description": "Kafka demo",
        "languages": ("python", "go"),
        "tags": ("kafka",),
        "owner_id": uuid.UUID(int=7),
        "status": "active",
        "built_on": dt.date(2025, 4, 2),
        "created_at": dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
        "updated_at": dt.datetime(2026, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    }
    values.update(fields)
    return SearchDoc(**values)


def raw_hit(name: str, sort: list[Any], **extra: Any) -> Json:
    return {
        "_id": "x",
        "_score": extra.pop("score", None),
        "_source": {
            "id": str(extra.pop("id", uuid.uuid4())),
            "name": name,
            "languages": ["python"],
            "tags": ["kafka"],
            "owner_id": str(uuid.UUID(int=7)),
            "status": "active",
            "built_on": "2025-04-02",
        },
        "sort": sort,
        **extra,
    }


def field_of(query: Json) -> str:
    """The field of a one-field leaf query such as ``{"match": {"name": {...}}}``."""
    [clause] = query.values()
    [field] = clause
    return str(field)


def assert_tenant_scoped(query: Json, tenant_id: TenantId) -> None:
    bool_query = query["bool"]
    assert bool_query["filter"][0] == {"term": {"tenant_id": str(tenant_id)}}
    assert {"term": {"deleted": True}} in bool_query["must_not"]


def leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), key
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, (*path, i))
    else:
        yield path, node


def value_slot(path: tuple[Any, ...]) -> bool:
    """Where user text may appear: the value of a match, term or prefix query."""
    return (len(path) >= 3 and path[-3] == "match" and path[-1] == "query") or (
        len(path) >= 3 and path[-3] in {"term", "prefix"} and path[-1] == "value"
    )


# -- writes -----------------------------------------------------------------------------


async def test_upsert_is_routed_external_versioned_and_keyed_by_tenant() -> None:
    client, t, d = FakeClient(), tenant(), doc()
    assert await backend(client).upsert(t, d)
    [call] = client.of("index")
    assert call["index"] == "pocdojo-pocs"
    assert call["id"] == f"{t}:{d.id}"
    assert call["routing"] == str(t)
    assert (call["version"], call["version_type"]) == (3, "external")
    assert call["require_alias"] is True
    assert "refresh" not in call
    assert call["body"] == {
        "tenant_id": str(t),
        "id": str(d.id),
        "version": 3,
        "deleted": False,
        "name": "Fraud scoring",
        "description": "Kafka demo",
        "languages": ["python", "go"],
        "tags": ["kafka"],
        "owner_id": str(uuid.UUID(int=7)),
        "status": "active",
        "built_on": "2025-04-02",
        "year": 2025,
        "created_at": "2026-01-02T03:04:05.123456Z",
        "updated_at": "2026-01-02T22:00:00.000000Z",
    }


async def test_a_version_conflict_means_not_applied() -> None:
    client, t, d = FakeClient(), tenant(), doc()
    client.conflicting_ids.add(f"{t}:{d.id}")
    assert not await backend(client).upsert(t, d)
    assert not await backend(client).delete(t, d.id, 2)


async def test_delete_writes_a_versioned_tombstone() -> None:
    client, t, poc_id = FakeClient(), tenant(), uuid.uuid4()
    assert await backend(client, refresh="wait_for").delete(t, poc_id, 9)
    [call] = client.of("index")
    assert call["body"] == {"tenant_id": str(t), "id": str(poc_id), "version": 9, "deleted": True}
    assert (call["version"], call["version_type"]) == (9, "external")
    assert call["routing"] == str(t)
    assert call["refresh"] == "wait_for"


async def test_replace_tenant_bulk_indexes_then_deletes_the_rest_of_that_tenant() -> None:
    client, t = FakeClient(), tenant()
    docs = [doc("kept"), doc("fresh", version=1)]
    client.bulk_statuses[f"{t}:{docs[0].id}"] = 409  # already there at this version: fine
    assert await backend(client, refresh=True).replace_tenant(t, docs) == 2

    [bulk] = client.of("bulk")
    actions, sources = bulk["body"][::2], bulk["body"][1::2]
    assert [a["index"]["_id"] for a in actions] == [f"{t}:{d.id}" for d in docs]
    for action, d in zip(actions, docs, strict=True):
        assert action["index"]["routing"] == str(t)
        assert action["index"]["_index"] == "pocdojo-pocs"
        assert (action["index"]["version"], action["index"]["version_type"]) == (
            d.version,
            "external",
        )
    assert all(s["tenant_id"] == str(t) for s in sources)
    assert bulk["require_alias"] is True

    [deletion] = client.of("delete_by_query")
    assert deletion["routing"] == str(t)
    assert deletion["conflicts"] == "proceed"
    assert deletion["refresh"] is True
    query = deletion["body"]["query"]
    assert_tenant_scoped(query, t)
    assert {"terms": {"id": sorted(str(d.id) for d in docs)}} in query["bool"]["must_not"]


async def test_replace_tenant_with_no_documents_empties_only_that_tenant() -> None:
    client, t = FakeClient(), tenant()
    assert await backend(client).replace_tenant(t, []) == 0
    assert client.of("bulk") == []
    [deletion] = client.of("delete_by_query")
    assert_tenant_scoped(deletion["body"]["query"], t)
    assert deletion["body"]["query"]["bool"]["must_not"] == [{"term": {"deleted": True}}]


async def test_replace_tenant_past_the_terms_limit_deletes_what_a_scan_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(search_opensearch, "_MAX_TERMS", 1)
    monkeypatch.setattr(search_opensearch, "_SCAN_PAGE", 2)
    client, t = FakeClient(), tenant()
    kept = [doc("a"), doc("b")]
    stale_ids = [str(uuid.uuid4()) for _ in range(2)]
    listed = [str(kept[0].id), stale_ids[0], str(kept[1].id), stale_ids[1]]
    client.search_responses = [
        {"hits": {"hits": [{"_source": {"id": i}, "sort": [i]} for i in listed[:2]]}},
        {"hits": {"hits": [{"_source": {"id": i}, "sort": [i]} for i in listed[2:]]}},
        {"hits": {"hits": []}},
    ]
    assert await backend(client).replace_tenant(t, kept) == 2
    searches = client.of("search")
    assert len(searches) == 3
    for s in searches:
        assert s["routing"] == str(t)
        assert_tenant_scoped(s["body"]["query"], t)
    assert searches[1]["body"]["search_after"] == [listed[1]]
    [deletion] = client.of("delete_by_query")
    assert_tenant_scoped(deletion["body"]["query"], t)
    assert {"terms": {"id": stale_ids}} in deletion["body"]["query"]["bool"]["filter"]


async def test_bulk_failures_other_than_conflicts_raise() -> None:
    client, t, d = FakeClient(), tenant(), doc()
    client.bulk_statuses[f"{t}:{d.id}"] = 400
    with pytest.raises(BulkIndexError):
        await backend(client).replace_tenant(t, [d])
    client.bulk_statuses[f"{t}:{d.id}"] = 429
    with pytest.raises(Unavailable):
        await backend(client).replace_tenant(t, [d])


# -- search -----------------------------------------------------------------------------


async def test_search_body_for_a_text_query() -> None:
    client, t = FakeClient(), tenant()
    await backend(client).search(t, SearchQuery(q="Fraud  Scoríng", limit=5))
    [call] = client.of("search")
    assert (call["index"], call["routing"]) == ("pocdojo-pocs", str(t))
    body = call["body"]
    assert_tenant_scoped(body["query"], t)
    assert body["size"] == 6  # one more than the page tells whether there is a next one
    assert body["sort"] == [
        {"_score": {"order": "desc"}},
        {"created_at": {"order": "desc"}},
        {"id": {"order": "desc"}},
    ]
    [relevance] = body["query"]["bool"]["must"]
    tiers = {
        field_of(q["constant_score"]["filter"]): (
            q["constant_score"]["boost"],
            q["constant_score"]["filter"],
        )
        for q in relevance["dis_max"]["queries"]
    }
    assert tiers["name.exact"] == (4.0, {"term": {"name.exact": {"value": "fraud scoring"}}})
    assert tiers["name.prefix"] == (
        3.0,
        {"match": {"name.prefix": {"query": "fraud scoring", "operator": "and"}}},
    )
    assert tiers["name"] == (
        2.0,
        {"match": {"name": {"query": "fraud scoring", "operator": "and", "fuzziness": "AUTO"}}},
    )
    assert tiers["description"] == (
        1.0,
        {"match": {"description": {"query": "fraud scoring", "operator": "and"}}},
    )
    assert body["highlight"]["pre_tags"] == ["<mark>"]
    assert body["highlight"]["post_tags"] == ["</mark>"]
    assert set(body["highlight"]["fields"]) == {"name", "name.prefix", "description"}
    assert body["aggs"] == {
        "languages": {
            "terms": {
                "field": "languages",
                "size": 20,
                "order": [{"_count": "desc"}, {"_key": "asc"}],
            }
        },
        "tags": {
            "terms": {"field": "tags", "size": 20, "order": [{"_count": "desc"}, {"_key": "asc"}]}
        },
    }


async def test_filters_map_to_terms_for_any_and_one_term_each_for_all() -> None:
    client, t, owner = FakeClient(), tenant(), uuid.uuid4()
    query = SearchQuery(
        languages=("go", "rust"),
        tags_all=("kafka", "ml"),
        tags_any=("edge", "iot"),
        owner=owner,
        status="draft",
        year=2024,
    )
    await backend(client).search(t, query)
    bool_query = client.of("search")[0]["body"]["query"]["bool"]
    assert bool_query["filter"] == [
        {"term": {"tenant_id": str(t)}},
        {"terms": {"languages": ["go", "rust"]}},
        {"term": {"tags": "kafka"}},
        {"term": {"tags": "ml"}},
        {"terms": {"tags": ["edge", "iot"]}},
        {"term": {"owner_id": str(owner)}},
        {"term": {"status": "draft"}},
        {"term": {"year": 2024}},
    ]
    assert "must" not in bool_query  # no text: filters only, newest first
    assert "highlight" not in client.of("search")[0]["body"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("newest", [{"created_at": {"order": "desc"}}, {"id": {"order": "desc"}}]),
        ("name", [{"name.exact": {"order": "asc"}}, {"id": {"order": "asc"}}]),
    ],
)
async def test_sorts(sort: str, expected: list[Json]) -> None:
    client = FakeClient()
    await backend(client).search(tenant(), SearchQuery(q="kafka", sort=sort))  # type: ignore[arg-type]
    body = client.of("search")[0]["body"]
    assert body["sort"] == expected
    assert body["track_scores"] is True


@settings(max_examples=80, deadline=None)
@given(
    q=st.one_of(st.sampled_from(NASTY), st.text(max_size=40)),
    sort=st.sampled_from(["relevance", "newest", "name"]),
    tags=st.lists(st.sampled_from(["kafka", "%", "*", "a:b"]), max_size=2),
)
async def test_user_text_is_only_ever_a_query_value(q: str, sort: str, tags: list[str]) -> None:
    client, t = FakeClient(), tenant()
    search = backend(client)
    await search.search(t, SearchQuery(q=q, sort=sort, tags_all=tuple(tags)))  # type: ignore[arg-type]
    await search.suggest(t, q)
    words = terms(q)
    user_texts = {q, " ".join(words), " ".join(fold(q).split())} - {""}
    # The keys every request has whatever the text (q="highlight" is not the key
    # "highlight"): a user text as a key is only a leak where a neutral query has none.
    neutral = FakeClient()
    neutral_query = SearchQuery(q="neutral", sort=sort, tags_all=tuple(tags))  # type: ignore[arg-type]
    await backend(neutral).search(t, neutral_query)
    await backend(neutral).suggest(t, "neutral")
    fixed_keys = {
        path
        for call in neutral.of("search")
        for path, value in leaves(call["body"])
        if path and path[-1] == value
    }
    for call in client.of("search"):
        assert call["routing"] == str(t)
        assert call["index"] == "pocdojo-pocs"
        body = call["body"]
        assert_tenant_scoped(body["query"], t)
        for path, value in leaves(body):
            assert value not in FORBIDDEN_QUERIES, path
            if isinstance(value, str) and value in user_texts and path not in fixed_keys:
                assert value_slot(path), (path, value)
    if q.strip() and not words:
        assert client.calls == []  # nothing searchable: no request, no results


async def test_sql_and_lucene_look_alikes_are_match_and_term_values() -> None:
    client, t = FakeClient(), tenant()
    await backend(client).search(t, SearchQuery(q="' OR 1=1 --"))
    queries = client.of("search")[0]["body"]["query"]["bool"]["must"][0]["dis_max"]["queries"]
    filters = [q["constant_score"]["filter"] for q in queries]
    assert {"term": {"name.exact": {"value": "' or 1=1 --"}}} in filters
    assert filters[1]["match"]["name.prefix"]["query"] == "or 1 1"
    for raw in ("*:*", "\\", "%_"):
        result = await backend(client).search(t, SearchQuery(q=raw))
        assert result.hits == []
    assert len(client.of("search")) == 1


async def test_hits_highlights_facets_and_cursor_round_trip() -> None:
    client, t = FakeClient(), tenant()
    first_id = uuid.uuid4()
    client.search_responses = [
        {
            "hits": {
                "hits": [
                    raw_hit(
                        "Integração Pix",
                        [3.0, 1767225600000, str(first_id)],
                        id=first_id,
                        score=3.0,
                        highlight={
                            "name": ["Integração <mark>Pix</mark>"],
                            "name.prefix": ["<mark>Integração</mark> <mark>Pix</mark>"],
                            "description": ["about <mark>pix</mark>"],
                        },
                    ),
                    raw_hit("Pix two", [3.0, 1767225500000, "b"], score=3.0),
                    raw_hit("Pix three", [2.0, 1767225400000, "c"], score=2.0),
                ]
            },
            "aggregations": {
                "languages": {"buckets": [{"key": "python", "doc_count": 3}]},
                "tags": {
                    "buckets": [{"key": "kafka", "doc_count": 2}, {"key": "ml", "doc_count": 1}]
                },
            },
        }
    ]
    search = backend(client)
    result = await search.search(t, SearchQuery(q="pix integ", limit=2))
    assert [h.name for h in result.hits] == ["Integração Pix", "Pix two"]
    first = result.hits[0]
    assert (first.id, first.score, first.built_on) == (first_id, 3.0, dt.date(2025, 4, 2))
    assert first.highlights == {
        "name": "<mark>Integração</mark> <mark>Pix</mark>",
        "description": "about <mark>pix</mark>",
    }
    assert [(f.value, f.count) for f in result.languages] == [("python", 3)]
    assert [(f.value, f.count) for f in result.tags] == [("kafka", 2), ("ml", 1)]
    assert result.next_cursor is not None
    assert decode_cursor(result.next_cursor) == ["relevance", 3.0, 1767225500000, "b"]

    await search.search(t, SearchQuery(q="pix integ", limit=2, cursor=result.next_cursor))
    second = client.of("search")[1]["body"]
    assert second["search_after"] == [3.0, 1767225500000, "b"]
    assert_tenant_scoped(second["query"], t)


async def test_the_last_page_has_no_cursor() -> None:
    client = FakeClient()
    client.search_responses = [{"hits": {"hits": [raw_hit("a", [1, "x"])]}}]
    result = await backend(client).search(tenant(), SearchQuery(sort="newest", limit=1))
    assert result.next_cursor is None
    assert result.hits[0].score == 0.0  # no text, no score


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 json!",
        encode_cursor(["newest", 1767225500000, "b"]),  # another sort's cursor
        encode_cursor(["relevance", 3.0, "yesterday", "b"]),
        encode_cursor(["relevance", 3.0, 1767225500000, {"script": "x"}]),
        encode_cursor(["relevance", True, 1767225500000, "b"]),
        encode_cursor(["relevance", 3.0]),
    ],
)
async def test_invalid_cursors_are_refused_before_any_request(cursor: str) -> None:
    client = FakeClient()
    with pytest.raises(ValidationFailed):
        await backend(client).search(tenant(), SearchQuery(q="kafka", cursor=cursor))
    assert client.calls == []


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
async def test_limit_outside_range_is_refused(limit: int) -> None:
    with pytest.raises(ValidationFailed):
        await backend(FakeClient()).search(tenant(), SearchQuery(limit=limit))


async def test_a_dedicated_tenant_is_served_from_its_own_index() -> None:
    client, big, small = FakeClient(), tenant(), tenant()
    search = backend(client, dedicated_tenants={big: "pocdojo-big-tenant"})
    d = doc()
    await search.upsert(big, d)
    await search.delete(big, d.id, 4)
    await search.search(big, SearchQuery(q="kafka"))
    await search.suggest(big, "kaf")
    await search.replace_tenant(big, [d])
    await search.search(small, SearchQuery())
    calls = {(name, kwargs.get("index", "")) for name, kwargs in client.calls if name != "bulk"}
    assert calls == {
        ("index", "pocdojo-big-tenant"),
        ("search", "pocdojo-big-tenant"),
        ("delete_by_query", "pocdojo-big-tenant"),
        ("search", "pocdojo-pocs"),
    }
    assert all("require_alias" not in c for c in client.of("index"))
    assert client.of("bulk")[0]["body"][0]["index"]["_index"] == "pocdojo-big-tenant"
    for name, kwargs in client.calls:
        if name in {"search", "delete_by_query"}:
            expected = big if kwargs["index"] == "pocdojo-big-tenant" else small
            assert kwargs["routing"] == str(expected)
            assert_tenant_scoped(kwargs["body"]["query"], expected)


async def test_outages_become_unavailable() -> None:
    client = FakeClient()
    client.fail_with = ConnectionTimeout("TIMEOUT", "timed out", Exception("slow"))
    with pytest.raises(Unavailable):
        await backend(client).search(tenant(), SearchQuery())
    client.fail_with = TransportError(503, "unavailable", {})
    with pytest.raises(Unavailable):
        await backend(client).upsert(tenant(), doc())
    client.fail_with = RequestError(400, "parsing_exception", {})
    with pytest.raises(RequestError):
        await backend(client).search(tenant(), SearchQuery())


# -- suggest ----------------------------------------------------------------------------


async def test_suggest_body_and_mix() -> None:
    client, t = FakeClient(), tenant()
    name_id = uuid.uuid4()
    client.search_responses = [
        {
            "hits": {"hits": [{"_source": {"id": str(name_id), "name": "Kafka streams"}}]},
            "aggregations": {
                "tags": {
                    "buckets": [
                        {"key": "kafka", "doc_count": 5},
                        {"key": "kafka-ui", "doc_count": 1},
                    ]
                },
                "languages": {"buckets": [{"key": "kotlin", "doc_count": 2}]},
            },
        }
    ]
    suggestions = await backend(client).suggest(t, "  Ka ", limit=4)
    assert [(s.kind, s.value, s.id) for s in suggestions] == [
        ("tag", "kafka", None),
        ("language", "kotlin", None),
        ("name", "Kafka streams", name_id),
        ("tag", "kafka-ui", None),
    ]
    [call] = client.of("search")
    assert call["routing"] == str(t)
    body = call["body"]
    assert_tenant_scoped(body["query"], t)
    assert "must" not in body["query"]["bool"]  # the aggregations see all the tenant's terms
    assert body["post_filter"] == {"match": {"name.prefix": {"query": "ka", "operator": "and"}}}
    assert body["size"] == 4
    assert body["aggs"]["tags"]["terms"]["include"] == "ka.*"
    assert body["aggs"]["languages"]["terms"]["include"] == "ka.*"


async def test_suggest_escapes_the_prefix_in_the_include_pattern() -> None:
    client = FakeClient()
    await backend(client).suggest(tenant(), "machine lé")
    include = client.of("search")[0]["body"]["aggs"]["tags"]["terms"]["include"]
    assert include == "machine\\-le.*"


@pytest.mark.parametrize(("prefix", "limit"), [("", 10), ("   ", 10), ("*:*", 10), ("ka", 0)])
async def test_suggest_without_letters_or_room_asks_nothing(prefix: str, limit: int) -> None:
    client = FakeClient()
    assert await backend(client).suggest(tenant(), prefix, limit=limit) == []
    assert client.calls == []


# -- setup and rebuilds -----------------------------------------------------------------


async def test_ensure_setup_creates_template_index_and_alias() -> None:
    client = FakeClient()
    big = tenant()
    await backend(client, dedicated_tenants={big: "pocdojo-big"}).ensure_setup()
    [template] = client.of("indices.put_index_template")
    assert template["name"] == "pocdojo-pocs-template"
    assert template["body"]["index_patterns"] == ["pocdojo-pocs-v*"]
    definition = template["body"]["template"]
    assert definition["settings"]["index"] == {"number_of_shards": 3, "number_of_replicas": 1}
    mappings = definition["mappings"]
    assert mappings["_routing"] == {"required": True}
    props = mappings["properties"]
    for name, kind in {
        "tenant_id": "keyword",
        "id": "keyword",
        "version": "long",
        "deleted": "boolean",
        "languages": "keyword",
        "tags": "keyword",
        "owner_id": "keyword",
        "status": "keyword",
        "built_on": "date",
        "year": "integer",
        "created_at": "date",
        "updated_at": "date",
    }.items():
        assert props[name]["type"] == kind, name
    assert props["name"]["analyzer"] == "pocdojo_folding"
    assert props["name"]["fields"]["prefix"]["analyzer"] == "pocdojo_prefix"
    assert props["name"]["fields"]["prefix"]["search_analyzer"] == "pocdojo_folding"
    assert props["name"]["fields"]["exact"] == {"type": "keyword", "normalizer": "pocdojo_folding"}
    analysis = definition["settings"]["analysis"]
    assert analysis["analyzer"]["pocdojo_folding"]["filter"] == ["lowercase", "asciifolding"]
    assert analysis["filter"]["pocdojo_edge"]["min_gram"] == 1
    assert analysis["filter"]["pocdojo_edge"]["max_gram"] == 20

    created = client.of("indices.create")
    assert [c["index"] for c in created] == ["pocdojo-pocs-v1", "pocdojo-big"]
    assert created[0]["body"]["aliases"] == {"pocdojo-pocs": {}}
    assert "aliases" not in created[1]["body"]
    assert client.of("indices.put_alias") == []


async def test_ensure_setup_is_idempotent() -> None:
    client = FakeClient()
    client.indices.alias_exists = True
    await backend(client).ensure_setup()
    assert client.of("indices.create") == []
    # An index left without its alias gets the alias back.
    client = FakeClient()
    client.indices.existing.add("pocdojo-pocs-v1")
    await backend(client).ensure_setup()
    assert client.of("indices.put_alias") == [{"index": "pocdojo-pocs-v1", "name": "pocdojo-pocs"}]


async def test_swap_alias_is_one_atomic_request() -> None:
    client = FakeClient()
    client.indices.aliased = ["pocdojo-pocs-v1"]
    assert await backend(client).swap_alias("pocdojo-pocs-v2") == ["pocdojo-pocs-v1"]
    [update] = client.of("indices.update_aliases")
    assert update["body"] == {
        "actions": [
            {"remove": {"index": "pocdojo-pocs-v1", "alias": "pocdojo-pocs"}},
            {"add": {"index": "pocdojo-pocs-v2", "alias": "pocdojo-pocs"}},
        ]
    }


async def test_reindex_all_loads_a_new_index_then_swaps() -> None:
    client = FakeClient()
    a, b, big = tenant(), tenant(), tenant()
    search = backend(client, dedicated_tenants={big: "pocdojo-big"})
    result = await search.reindex_all(
        "pocdojo-pocs-v2", {a: [doc("a1"), doc("a2")], b: [doc("b1")], big: [doc("x")]}
    )
    assert result.indexed == 3
    assert result.previous_indices == ["pocdojo-pocs-v1"]
    assert [name for name, _ in client.calls] == [
        "indices.create",
        "bulk",
        "indices.refresh",
        "indices.get_alias",
        "indices.update_aliases",
    ]
    [bulk] = client.of("bulk")
    actions = [line["index"] for line in bulk["body"][::2]]
    assert {x["_index"] for x in actions} == {"pocdojo-pocs-v2"}
    assert [x["routing"] for x in actions] == [str(a), str(a), str(b)]
    assert "require_alias" not in bulk


async def test_reindex_all_refuses_an_existing_index() -> None:
    client = FakeClient()
    client.indices.existing.add("pocdojo-pocs-v2")
    with pytest.raises(RequestError):
        await backend(client).reindex_all("pocdojo-pocs-v2", {})


# -- wiring -----------------------------------------------------------------------------


def test_it_is_a_search_index() -> None:
    index: SearchIndex = backend(FakeClient())
    assert isinstance(index, OpenSearchSearch)


async def test_open_opensearch_verifies_certificates_and_retries_timeouts() -> None:
    search = open_opensearch("https://user:secret@search.example:9200", alias="x")
    try:
        transport = search.client.transport
        assert transport.kwargs["verify_certs"] is True
        assert transport.kwargs["timeout"] == 2.0
        assert transport.retry_on_timeout is True
        assert transport.max_retries >= 1
        assert transport.hosts[0]["http_auth"] == "user:secret"
        assert search.alias == "x"
    finally:
        await search.aclose()


async def test_aclose_closes_the_client() -> None:
    client = FakeClient()
    async with backend(client):
        pass
    assert client.closed


async def test_contract_backend_skips_without_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POCDOJO_TEST_OPENSEARCH_URL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="POCDOJO_TEST_OPENSEARCH_URL"):
        await make_opensearch_backend()
    assert "no OpenSearch cluster on this machine" in SKIP_REASON

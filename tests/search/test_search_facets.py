"""Facet counts stay exact while documents change: the counts of every query equal the
languages and tags of its matches, counted by hand, after creates, updates, deletions and
a reindex (the Postgres backend reads some of them from per-tenant counts kept by the
writers, others from the matched rows: both must agree with the documents)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import Counter
from typing import Any

from pocdojo.domain.seed_corpus import generate_pocs
from pocdojo.domain.text import terms
from pocdojo.storage.search import FACET_SIZE, SearchDoc, SearchIndex, SearchQuery
from pocdojo.types import TenantId
from tests.search.conftest import doc

OWNERS = (uuid.UUID(int=11), uuid.UUID(int=12))


def expected(matches: list[SearchDoc]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    def top(counter: Counter[str]) -> list[tuple[str, int]]:
        return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:FACET_SIZE]

    return (
        top(Counter(v for d in matches for v in set(d.languages))),
        top(Counter(v for d in matches for v in set(d.tags))),
    )


def matches_filters(d: SearchDoc, query: SearchQuery) -> bool:
    return (
        (not query.languages or bool(set(query.languages) & set(d.languages)))
        and set(query.tags_all) <= set(d.tags)
        and (not query.tags_any or bool(set(query.tags_any) & set(d.tags)))
        and (query.owner is None or d.owner_id == query.owner)
        and (query.status is None or d.status == query.status)
        and (query.year is None or d.built_on.year == query.year)
    )


async def all_hit_ids(index: SearchIndex, tenant: TenantId, query: SearchQuery) -> set[uuid.UUID]:
    ids: set[uuid.UUID] = set()
    cursor = None
    while True:
        page = await index.search(
            tenant,
            SearchQuery(**{**_fields(query), "cursor": cursor, "limit": 100}),
        )
        ids |= {h.id for h in page.hits}
        cursor = page.next_cursor
        if cursor is None:
            return ids


def _fields(query: SearchQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in SearchQuery.__dataclass_fields__}


async def check(index: SearchIndex, tenant: TenantId, live: dict[uuid.UUID, SearchDoc]) -> None:
    docs = list(live.values())
    some = docs[0]
    name_word = next(w for d in docs for w in terms(d.name) if len(w) >= 5)
    queries = [
        SearchQuery(),
        SearchQuery(languages=(some.languages[0],)),
        SearchQuery(languages=("python", "go")),
        SearchQuery(tags_all=(some.tags[0],)) if some.tags else SearchQuery(tags_all=("ml",)),
        SearchQuery(tags_any=("kafka",)),
        SearchQuery(tags_all=("kafka", "ml")),
        SearchQuery(status="active"),
        SearchQuery(owner=OWNERS[0], languages=(some.languages[0],)),
        SearchQuery(year=some.built_on.year),
        SearchQuery(q=name_word),
        SearchQuery(q=name_word[:3]),
        SearchQuery(q=name_word, languages=(some.languages[0],), status=some.status),
        SearchQuery(q=name_word[:3], tags_any=("kafka", "ml"), year=some.built_on.year),
        SearchQuery(q="the", owner=OWNERS[1], tags_all=("kafka",)),
    ]
    for query in queries:
        result = await index.search(tenant, query)
        if query.q:
            ids = await all_hit_ids(index, tenant, query)
            matched = [live[i] for i in ids]
            # Words with filters (the keyed statements) = the words alone, filtered here.
            unfiltered = await all_hit_ids(index, tenant, SearchQuery(q=query.q))
            assert ids == {i for i in unfiltered if matches_filters(live[i], query)}, query
        else:
            matched = [d for d in docs if matches_filters(d, query)]
        languages, tags = expected(matched)
        assert result.facets_exact, query
        assert [(f.value, f.count) for f in result.languages] == languages, query
        assert [(f.value, f.count) for f in result.tags] == tags, query


async def test_facets_stay_exact_through_updates_deletions_and_reindex(
    index: SearchIndex, tenant_id: TenantId
) -> None:
    rng = random.Random(5)
    live: dict[uuid.UUID, SearchDoc] = {}
    for p in generate_pocs(120, seed=11):
        d = doc(
            p.name,
            description=p.description,
            languages=p.languages,
            tags=p.tags,
            status=p.status,
            owner_id=rng.choice(OWNERS),
            built_on=dt.date(rng.choice((2024, 2025, 2026)), 3, 1),
        )
        await index.upsert(tenant_id, d)
        live[d.id] = d
    # A noisy neighbour with the same values must not count.
    for p in generate_pocs(30, seed=12):
        await index.upsert(TenantId(uuid.uuid4()), doc(p.name, languages=p.languages, tags=p.tags))
    await check(index, tenant_id, live)

    donors = list(generate_pocs(30, seed=13))
    for i, target in enumerate(rng.sample(sorted(live), 30)):
        old, new = live[target], donors[i]
        changed = doc(
            old.name if i % 2 else new.name,
            id=old.id,
            version=old.version + 1,
            description=old.description,
            languages=new.languages,
            tags=new.tags[: i % 4],
            status=old.status,
            owner_id=old.owner_id,
            built_on=old.built_on,
        )
        assert await index.upsert(tenant_id, changed)
        live[target] = changed
    for target in rng.sample(sorted(live), 15):
        assert await index.delete(tenant_id, target, live[target].version + 1)
        del live[target]
    await check(index, tenant_id, live)

    kept = list(live.values())[:80]
    assert await index.replace_tenant(tenant_id, kept) == len(kept)
    await check(index, tenant_id, {d.id: d for d in kept})

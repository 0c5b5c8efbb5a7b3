"""The answer cache of PostgresSearch: repeated reads are served from it, and a write by
any process (the indexer is another one) makes the next read fresh."""

from __future__ import annotations

import uuid

import pytest

from pocdojo.storage.db import Database
from pocdojo.storage.search import SearchQuery
from pocdojo.storage.search_cache import ResultCache
from pocdojo.storage.search_postgres import PostgresSearch
from pocdojo.types import TenantId
from tests.search.conftest import doc


def test_lru_keeps_the_most_recently_used() -> None:
    cache: ResultCache[str] = ResultCache(2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # "b" is now the least recently used
    cache.put("c", "3")
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == ("1", "3", 2)
    assert (cache.hits, cache.misses) == (3, 1)


def test_size_zero_keeps_nothing() -> None:
    cache: ResultCache[str] = ResultCache(0)
    cache.put("a", "1")
    assert not cache.enabled
    assert cache.get("a") is None
    with pytest.raises(ValueError, match="size"):
        ResultCache(-1)


async def test_writes_by_another_process_invalidate(search_db: Database) -> None:
    tenant, other = TenantId(uuid.uuid4()), TenantId(uuid.uuid4())
    reader = PostgresSearch(search_db)  # the search service
    writer = PostgresSearch(search_db, cache_size=0)  # the indexer, elsewhere
    first = doc("Kafka streams", tags=("kafka",))
    await writer.upsert(tenant, first)

    query = SearchQuery(q="kafka")
    assert [h.name for h in (await reader.search(tenant, query)).hits] == ["Kafka streams"]
    again = await reader.search(tenant, query)
    assert [h.name for h in again.hits] == ["Kafka streams"]
    assert reader._cache.hits == 1  # the second read came from the cache
    assert {s.value for s in await reader.suggest(tenant, "kaf")} >= {"kafka", "Kafka streams"}

    # Another tenant's write leaves this tenant's answers cached.
    await writer.upsert(other, doc("Kafka elsewhere"))
    await reader.search(tenant, query)
    assert reader._cache.hits == 2

    await writer.upsert(tenant, doc("Kafka connect", tags=("kafka", "connect")))
    fresh = await reader.search(tenant, query)
    assert sorted(h.name for h in fresh.hits) == ["Kafka connect", "Kafka streams"]
    assert {(f.value, f.count) for f in fresh.tags} == {("kafka", 2), ("connect", 1)}
    assert "Kafka connect" in {s.value for s in await reader.suggest(tenant, "kaf")}

    await writer.delete(tenant, first.id, 2)
    assert [h.name for h in (await reader.search(tenant, query)).hits] == ["Kafka connect"]
    await writer.replace_tenant(tenant, [doc("Pulsar")])
    assert (await reader.search(tenant, query)).hits == []
    assert await reader.suggest(tenant, "kaf") == []

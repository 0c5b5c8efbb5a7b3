"""Relevance pages read keyed tiers newest months first (migration 0013): the windows cover
every document exactly once, and the pages of documents spread over years (and one created
after the newest month) come in relevance order, complete, without duplicates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid

import pytest

from pocdojo.storage import search_postgres
from pocdojo.storage.db import Database
from pocdojo.storage.search import SearchDoc, SearchIndex, SearchQuery, encode_cursor
from pocdojo.storage.search_postgres import PostgresSearch, _month, _month_start, _windows
from pocdojo.types import TenantId
from tests.search.conftest import doc

START = dt.datetime(2023, 11, 20, 12, tzinfo=dt.UTC)


def test_month_numbers_match_the_index_formula() -> None:
    # year * 12 + month - 1 of the UTC time, as search.dated_doc_keys computes it
    moment = dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert _month(moment) == 2025 * 12 + 11  # 2025-12-31 22:30 UTC
    assert _month_start(_month(moment)) == dt.datetime(2025, 12, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("newest", [2026 * 12, 2026 * 12 + 5, 2027 * 12 + 11])
def test_windows_cover_every_month_once(newest: int) -> None:
    windows = _windows(newest)
    assert windows is not None
    *by_month, rest = windows
    assert rest.outside is not None
    assert not rest.months
    start, end = rest.outside
    for month in range(newest - 60, newest + 60):
        moment = _month_start(month) + dt.timedelta(days=3)
        inside = [w for w in by_month if month in w.months]
        outside = moment < start or moment >= end
        assert len(inside) + outside == 1, month
    # newest first
    firsts = [max(w.months) for w in by_month]
    assert firsts == sorted(firsts, reverse=True)
    assert newest in by_month[0].months


def test_no_windows_where_a_month_would_leave_the_calendar() -> None:
    assert _windows(1 * 12 + 2) is None  # a cursor of March, year 1
    assert _windows(1 * 12 + 5) is not None  # June: the windows start in January
    assert _windows(9999 * 12 + 11) is None
    assert _windows(2026 * 12) is not None


async def test_cursors_of_any_date_page_without_error(
    search_db: Database, tenant_id: TenantId, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_postgres, "WINDOWED_TENANT_MIN", 0)
    index = PostgresSearch(search_db, cache_size=0)
    await load(index, tenant_id)
    for year in (1, 9999):
        cursor = encode_cursor(
            [
                "relevance",
                1,
                dt.datetime(year, 3, 1, tzinfo=dt.UTC).isoformat(),
                str(uuid.UUID(int=0)),
            ]
        )
        page = await index.search(
            tenant_id,
            SearchQuery(q="kafka", languages=("python",), status="active", cursor=cursor),
        )
        # text-tier matches older than the cursor: none before year 1, all before 9999
        assert (page.hits == []) == (year == 1)


def expected_tier(d: SearchDoc) -> int:
    name = d.name.lower()
    if name == "kafka":
        return 4
    if any(w.startswith("kafka") for w in name.split()):
        return 3
    return 1


async def all_pages(index: SearchIndex, tenant: TenantId, query: SearchQuery) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await index.search(tenant, dataclasses.replace(query, cursor=cursor))
        ids += [h.id for h in page.hits]
        cursor = page.next_cursor
        if cursor is None:
            return ids


async def load(index: SearchIndex, tenant: TenantId) -> list[SearchDoc]:
    rng = random.Random(3)
    docs: list[SearchDoc] = []
    # 3 years of documents, some months empty, several per month in others
    for i in range(90):
        created = START + dt.timedelta(days=rng.randrange(0, 3 * 365), seconds=i)
        kind = i % 3
        name = ("Kafka", f"Kafka streams {i}", f"Billing {i}")[kind]
        docs.append(
            doc(
                name,
                description="events through kafka" if kind == 2 else "queues",
                languages=("python",) if i % 4 else ("go",),
                status="active" if i % 5 else "draft",
                created_at=created,
            )
        )
    # one created after all the others (the newest month), one long before
    docs.append(doc("Kafka late", created_at=START + dt.timedelta(days=3 * 365 + 40)))
    docs.append(doc("Kafka early", created_at=START - dt.timedelta(days=4 * 365)))
    for d in docs:
        await index.upsert(tenant, d)
    return docs


def ranked(docs: list[SearchDoc], query: SearchQuery) -> list[uuid.UUID]:
    def matches(d: SearchDoc) -> bool:
        words = d.name.lower().split()
        named = any(w.startswith(query.q) for w in words)
        described = query.q in d.description.split()
        return (
            (named or described)
            and (not query.languages or bool(set(query.languages) & set(d.languages)))
            and (query.status is None or d.status == query.status)
        )

    found = [d for d in docs if matches(d)]
    found.sort(key=lambda d: (expected_tier(d), d.created_at, d.id), reverse=True)
    return [d.id for d in found]


@pytest.mark.parametrize("limit", [1, 4, 25])
async def test_pages_of_words_with_filters_span_the_windows(
    index: SearchIndex, tenant_id: TenantId, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # windows even for a tenant this small (Postgres backend)
    monkeypatch.setattr(search_postgres, "WINDOWED_TENANT_MIN", 0)
    docs = await load(index, tenant_id)
    query = SearchQuery(q="kafka", languages=("python",), status="active", limit=limit)
    assert await all_pages(index, tenant_id, query) == ranked(docs, query)


async def test_broad_name_tiers_read_by_windows(
    search_db: Database, tenant_id: TenantId, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Name tiers the vocabulary cannot bound go through the windows too (forced here: a
    test tenant is too small for the real bounds)."""
    monkeypatch.setattr(search_postgres, "KEYED_PAGE_MAX", 0)
    monkeypatch.setattr(search_postgres, "WINDOWED_TENANT_MIN", 0)
    index = PostgresSearch(search_db, cache_size=0)
    docs = await load(index, tenant_id)
    for limit in (3, 20):
        query = SearchQuery(q="kafka", limit=limit)
        assert await all_pages(index, tenant_id, query) == ranked(docs, query)


@pytest.mark.parametrize("keyed_page_max", [0, 500])
async def test_newest_pages_of_two_filter_values_span_the_windows(
    search_db: Database,
    tenant_id: TenantId,
    monkeypatch: pytest.MonkeyPatch,
    keyed_page_max: int,
) -> None:
    """Two filter values ANDed, no words: newest first through the keyed index, in one
    scan or by month windows (forced with KEYED_PAGE_MAX 0)."""
    monkeypatch.setattr(search_postgres, "KEYED_PAGE_MAX", keyed_page_max)
    index = PostgresSearch(search_db, cache_size=0)
    rng = random.Random(8)
    docs = []
    for i in range(70):
        created = START + dt.timedelta(days=rng.randrange(0, 3 * 365), seconds=i)
        tags = [t for t, p in (("kafka", 0.6), ("ml", 0.5), ("edge", 0.3)) if rng.random() < p]
        docs.append(doc(f"Doc {i}", tags=tuple(tags), created_at=created))
    for d in docs:
        await index.upsert(tenant_id, d)
    wanted = sorted(
        (d for d in docs if {"kafka", "ml"} <= set(d.tags)),
        key=lambda d: (d.created_at, d.id),
        reverse=True,
    )
    for query in (
        SearchQuery(tags_all=("kafka", "ml"), limit=4),
        SearchQuery(tags_all=("ml",), languages=("python",), limit=4),
    ):
        ids = await all_pages(index, tenant_id, query)
        expected = (
            [d.id for d in wanted]
            if query.tags_all == ("kafka", "ml")
            else [
                d.id
                for d in sorted(docs, key=lambda d: (d.created_at, d.id), reverse=True)
                if "ml" in d.tags
            ]
        )
        assert ids == expected, query

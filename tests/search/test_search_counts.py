"""The Postgres backend's per-tenant counts of text words and statuses (migration 0018), and
what they decide: whether a free-text search's facets are counted over a sample.

The counts are kept by every writer (upsert, delete, bulk load, reindex); a count out of
step would not change a search's hits, only how its facets are read, so they are checked
against the documents directly here."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import Counter

from pocdojo.domain.seed_corpus import generate_pocs
from pocdojo.storage.db import Database
from pocdojo.storage.search import SearchDoc, SearchQuery
from pocdojo.storage.search_postgres import (
    BROAD_ESTIMATE,
    FACET_SAMPLE,
    PostgresSearch,
    _has_part_starting,
)
from pocdojo.types import TenantId
from tests.search.conftest import doc


async def stored_counts(
    db: Database, tenant: TenantId
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(text words, statuses) as the tenant's counts hold them (zero rows left out), and
    the text words recounted from its live documents."""
    async with db.connection() as conn:
        words = await conn.fetch(
            "select word, docs from search.text_words where tenant_id = $1 and docs > 0", tenant
        )
        statuses = await conn.fetch(
            """select value, docs from search.facets
               where tenant_id = $1 and filter = '' and kind = 's' and docs > 0""",
            tenant,
        )
        recounted = await conn.fetch(
            """select w, count(*) as docs from search.pocs, unnest(tsvector_to_array(tsv)) w
               where tenant_id = $1 and not deleted group by w""",
            tenant,
        )
    return (
        {r["word"]: r["docs"] for r in words},
        {r["value"]: r["docs"] for r in statuses},
        {r["w"]: r["docs"] for r in recounted},
    )


async def assert_counts_match(
    db: Database, tenant: TenantId, live: dict[uuid.UUID, SearchDoc]
) -> None:
    words, statuses, recounted = await stored_counts(db, tenant)
    assert words == recounted
    assert statuses == Counter(d.status for d in live.values())
    assert "latency" in words or not any("latency" in d.description for d in live.values())


async def test_text_word_and_status_counts_follow_every_writer(
    search_db: Database, tenant_id: TenantId
) -> None:
    index = PostgresSearch(search_db, cache_size=0)
    rng = random.Random(3)
    live: dict[uuid.UUID, SearchDoc] = {}
    for p in generate_pocs(60, seed=21):
        d = doc(p.name, description=p.description, languages=p.languages, status=p.status)
        await index.upsert(tenant_id, d)
        live[d.id] = d
    await index.upsert(TenantId(uuid.uuid4()), doc("Neighbour latency probe", status="draft"))
    await assert_counts_match(search_db, tenant_id, live)

    # Updates (new description, status), deletions, a replayed old version.
    donors = list(generate_pocs(20, seed=22))
    for i, target in enumerate(rng.sample(sorted(live), 20)):
        old = live[target]
        changed = doc(
            donors[i].name,
            id=old.id,
            version=old.version + 1,
            description=donors[i].description + " latency",
            status=("draft", "active", "archived")[i % 3],
        )
        assert await index.upsert(tenant_id, changed)
        live[target] = changed
    some = next(iter(live.values()))
    assert not await index.upsert(tenant_id, doc("stale", id=some.id, version=some.version))
    for target in rng.sample(sorted(live), 10):
        assert await index.delete(tenant_id, target, live[target].version + 1)
        del live[target]
    await assert_counts_match(search_db, tenant_id, live)

    # A bulk load over existing documents, then a reindex that drops some.
    bulk = [
        doc(p.name, description=p.description, status=p.status) for p in generate_pocs(30, seed=23)
    ]
    await index.bulk_load((tenant_id, d) for d in bulk)
    live.update({d.id: d for d in bulk})
    await assert_counts_match(search_db, tenant_id, live)
    kept = list(live.values())[::2]
    await index.replace_tenant(tenant_id, kept)
    await assert_counts_match(search_db, tenant_id, {d.id: d for d in kept})


async def test_facets_of_a_broad_free_text_search_are_counted_over_a_sample(
    search_db: Database, tenant_id: TenantId
) -> None:
    """6,000 documents, half of them active; "okapi" in 3,200 of them, only 200 of which are
    active. The counts estimate both "okapi" searches below at 3,200 x 1/2 = 1,600 matches
    (word and status taken as independent): their facets are read from a sample. The draft
    one (3,000 matches) could not be exact anyway; the active one (200) is, since the sample
    held every match."""
    index = PostgresSearch(search_db, cache_size=0)
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    docs = []
    for i in range(6_000):
        words = ["okapi"] if i < 200 or i >= 3_000 else ["zebra"]
        if 3_000 <= i < 3_300:
            words.append("gnu")
        docs.append(
            doc(
                f"Doc {i}",
                description=" ".join([*words, "herd"]),
                languages=("python",) if i % 3 else ("go",),
                status="active" if i < 3_000 else "draft",
                created_at=created + dt.timedelta(minutes=i),
            )
        )
    await index.bulk_load((tenant_id, d) for d in docs)
    assert 3_200 / 2 > BROAD_ESTIMATE > 300 / 2

    draft = await index.search(tenant_id, SearchQuery(q="okapi", status="draft"))
    assert not draft.facets_exact
    assert sum(f.count for f in draft.languages) == FACET_SAMPLE  # counted over the sample

    active = await index.search(tenant_id, SearchQuery(q="okapi", status="active"))
    assert active.facets_exact
    assert [(f.value, f.count) for f in active.languages] == [("python", 133), ("go", 67)]

    # Estimated at 300 / 2 = 150: up to FACET_CAP + 1 rows are read, and all 300 counted.
    gnu = await index.search(tenant_id, SearchQuery(q="gnu", status="draft"))
    assert gnu.facets_exact
    assert [(f.value, f.count) for f in gnu.languages] == [("python", 200), ("go", 100)]


def test_hyphenated_words_are_subsumed_by_their_parts_prefixes() -> None:
    assert _has_part_starting("low-latency", "latency")
    assert _has_part_starting("low-latency", "lat")
    assert _has_part_starting("ci-cd-pipeline", "pipe")
    assert not _has_part_starting("low-latency", "latnecy")
    assert not _has_part_starting("latnecy", "lat")  # a typo word: kept
    assert not _has_part_starting("x-1", "x")  # not split into letter parts: kept
    assert not _has_part_starting("web/low-latency", "latency")


async def test_hyphenated_names_are_prefix_matches_not_typos(
    search_db: Database, tenant_id: TenantId
) -> None:
    index = PostgresSearch(search_db, cache_size=0)
    plain, hyphenated, typo = (
        doc("Latency budget"),
        doc("Low-latency cache"),
        doc("Latensy probe"),
    )
    for d in (plain, hyphenated, typo):
        await index.upsert(tenant_id, d)
    result = await index.search(tenant_id, SearchQuery(q="latency"))
    ids = [h.id for h in result.hits]
    assert sorted(ids[:2]) == sorted([plain.id, hyphenated.id])  # prefix tier, newest first
    assert ids[2:] == [typo.id]  # the typo tier
    assert result.facets_exact
    assert result.languages[0].count == 3
    # Its typo words: "low-latency" is not one (its documents are prefix matches already).
    vocabulary, _, _ = await index._vocabulary(tenant_id, ["latency"], SearchQuery(q="latency"))
    assert vocabulary[0].near == ("latensy",)

"""The same cases against every SearchIndex backend."""

from __future__ import annotations

import uuid
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocdojo.domain.seed_corpus import generate_pocs
from pocdojo.storage.search import SearchIndex, SearchQuery
from pocdojo.types import TenantId
from tests.search.conftest import doc


async def names(index: SearchIndex, tenant: TenantId, **query: object) -> list[str]:
    result = await index.search(tenant, SearchQuery(**query))  # type: ignore[arg-type]
    return [hit.name for hit in result.hits]


async def test_relevance_order(index: SearchIndex, tenant_id: TenantId) -> None:
    for d in (
        doc("Risk engine", description="Fraud scoring for card payments"),
        doc("Fraud scoring with Kafka"),
        doc("Fraud scorring engine"),
        doc("Fraud scoring"),
        doc("Fraud scoring on the edge"),
        doc("Unrelated thing"),
    ):
        await index.upsert(tenant_id, d)
    assert await names(index, tenant_id, q="fraud scoring") == [
        "Fraud scoring",  # exact
        "Fraud scoring on the edge",  # prefix, newer
        "Fraud scoring with Kafka",  # prefix, older
        "Fraud scorring engine",  # fuzzy
        "Risk engine",  # description
    ]


async def test_typos_prefixes_word_order_and_accents(
    index: SearchIndex, tenant_id: TenantId
) -> None:
    for d in (doc("React"), doc("Integração de pagamentos Pix"), doc("Kotlin multiplatform")):
        await index.upsert(tenant_id, d)
    assert await names(index, tenant_id, q="reactt") == ["React"]
    assert await names(index, tenant_id, q="integ") == ["Integração de pagamentos Pix"]
    assert await names(index, tenant_id, q="pix integ") == ["Integração de pagamentos Pix"]
    assert await names(index, tenant_id, q="integracao") == ["Integração de pagamentos Pix"]
    assert await names(index, tenant_id, q="INTEGRAÇÃO PAGAMENTOS") == [
        "Integração de pagamentos Pix"
    ]
    assert await names(index, tenant_id, q="multiplatfrom") == ["Kotlin multiplatform"]
    result = await index.search(tenant_id, SearchQuery(q="pix"))
    assert result.hits[0].highlights["name"] == "Integração de pagamentos <mark>Pix</mark>"


async def test_filters(index: SearchIndex, tenant_id: TenantId) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    for d in (
        doc("a", languages=("python",), tags=("kafka", "ml"), owner_id=alice),
        doc("b", languages=("go",), tags=("kafka",), owner_id=bob, status="draft"),
        doc("c", languages=("rust", "go"), tags=("ml",), owner_id=alice),
        doc(
            "d",
            languages=("java",),
            tags=(),
            owner_id=bob,
            built_on=__import__("datetime").date(2024, 5, 1),
        ),
    ):
        await index.upsert(tenant_id, d)

    async def found(**query: object) -> set[str]:
        return set(await names(index, tenant_id, **query))

    assert await found(languages=("go",)) == {"b", "c"}
    assert await found(languages=("go", "python")) == {"a", "b", "c"}  # OR
    assert await found(tags_all=("kafka", "ml")) == {"a"}  # AND
    assert await found(tags_any=("kafka", "ml")) == {"a", "b", "c"}  # OR
    assert await found(owner=alice) == {"a", "c"}
    assert await found(status="draft") == {"b"}
    assert await found(year=2024) == {"d"}
    assert await found(year=2026, languages=("go",), tags_all=("ml",)) == {"c"}


async def test_facets_are_exact_on_seeded_data(index: SearchIndex, tenant_id: TenantId) -> None:
    seeded = list(generate_pocs(150, seed=7))
    for p in seeded:
        await index.upsert(
            tenant_id, doc(p.name, languages=p.languages, tags=p.tags, status=p.status)
        )
    result = await index.search(tenant_id, SearchQuery(languages=("python",), limit=5))
    matching = [p for p in seeded if "python" in p.languages]
    expected_languages = Counter(lang for p in matching for lang in p.languages)
    expected_tags = Counter(tag for p in matching for tag in p.tags)
    assert {f.value: f.count for f in result.languages} == dict(
        sorted(expected_languages.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    )
    top_tags = sorted(expected_tags.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert [(f.value, f.count) for f in result.tags] == top_tags


async def test_cursor_pagination_is_stable_under_concurrent_inserts(
    index: SearchIndex, tenant_id: TenantId
) -> None:
    for i in range(25):
        await index.upsert(tenant_id, doc(f"kafka demo {i}"))
    for sort, q in (("newest", ""), ("relevance", "kafka"), ("name", "kafka")):
        seen: list[str] = []
        cursor = None
        page_no = 0
        while True:
            result = await index.search(
                tenant_id,
                SearchQuery(q=q, sort=sort, cursor=cursor, limit=4),  # type: ignore[arg-type]
            )
            seen += [h.name for h in result.hits if h.name.startswith("kafka demo ")]
            # Someone keeps creating matching PoCs while we page.
            await index.upsert(tenant_id, doc(f"kafka later {sort} {page_no}"))
            page_no += 1
            cursor = result.next_cursor
            if cursor is None:
                break
        originals = [n for n in seen if not n.startswith("kafka later")]
        assert len(originals) == len(set(originals)) == 25, (sort, originals)


async def test_suggest(index: SearchIndex, tenant_id: TenantId) -> None:
    await index.upsert(tenant_id, doc("Kafka streams fraud", tags=("kafka", "fraud")))
    await index.upsert(tenant_id, doc("Python notebooks", languages=("python",), tags=("ml",)))
    suggestions = await index.suggest(tenant_id, "kaf")
    assert ("tag", "kafka") in {(s.kind, s.value) for s in suggestions}
    assert ("name", "Kafka streams fraud") in {(s.kind, s.value) for s in suggestions}
    assert ("language", "python") in {
        (s.kind, s.value) for s in await index.suggest(tenant_id, "pyth")
    }
    assert await index.suggest(tenant_id, "   ") == []
    assert len(await index.suggest(tenant_id, "k", limit=1)) <= 1


async def test_versions_make_indexing_idempotent(index: SearchIndex, tenant_id: TenantId) -> None:
    first = doc("Old name", version=1)
    newer = doc("New name", id=first.id, version=2)
    assert await index.upsert(tenant_id, newer)
    assert not await index.upsert(tenant_id, first)  # late, older event
    assert not await index.upsert(tenant_id, newer)  # replay
    assert await names(index, tenant_id) == ["New name"]
    assert await index.delete(tenant_id, first.id, 3)
    assert not await index.upsert(tenant_id, newer)  # cannot revive a deleted PoC
    assert await names(index, tenant_id) == []
    assert (await index.suggest(tenant_id, "new")) == []


async def test_replace_tenant(index: SearchIndex, tenant_id: TenantId) -> None:
    stale, kept = doc("stale"), doc("kept", tags=("x",))
    await index.upsert(tenant_id, stale)
    await index.upsert(tenant_id, kept)
    assert await index.replace_tenant(tenant_id, [kept, doc("fresh", tags=("y",))]) == 2
    assert set(await names(index, tenant_id)) == {"kept", "fresh"}
    tags = {s.value for s in await index.suggest(tenant_id, "x")} | {
        s.value for s in await index.suggest(tenant_id, "y")
    }
    assert {"x", "y"} <= tags


NASTY = ["' OR 1=1 --", "*:*", "\\", "%_", "'; drop table search.pocs; --", "a:*", "!(", "&|", '"']


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    q=st.one_of(st.sampled_from(NASTY), st.text(max_size=30)),
    tag=st.sampled_from(["", "kafka", "secret", "%"]),
    sort=st.sampled_from(["relevance", "newest", "name"]),
)
async def test_queries_never_cross_tenants(index: SearchIndex, q: str, tag: str, sort: str) -> None:
    tenant_a, tenant_b = TenantId(uuid.uuid4()), TenantId(uuid.uuid4())
    a_doc = doc("kafka secret of A", tags=("kafka", "secret"))
    b_doc = doc("kafka secret of B", tags=("kafka", "secret"))
    await index.upsert(tenant_a, a_doc)
    await index.upsert(tenant_b, b_doc)
    query = SearchQuery(q=q, tags_all=(tag,) if tag else (), sort=sort)  # type: ignore[arg-type]
    result = await index.search(tenant_a, query)
    assert {h.id for h in result.hits} <= {a_doc.id}
    assert all(f.count <= 1 for f in result.tags)
    for s in await index.suggest(tenant_a, q):
        assert s.id in (None, a_doc.id)


async def test_facets_are_exact_over_every_tier(index: SearchIndex, tenant_id: TenantId) -> None:
    for d in (
        doc("Kubernetes", languages=("python",), tags=("k8s",)),
        doc("Kubernetes operator", languages=("go",), tags=("k8s", "ops")),
        doc("Kubernets dashboard", languages=("rust",)),
        doc("Other", description="kubernetes at scale", languages=("java",), tags=("ops",)),
        doc("Unrelated", languages=("c",), tags=("k8s",)),
    ):
        await index.upsert(tenant_id, d)
    result = await index.search(tenant_id, SearchQuery(q="kubernetes"))
    assert [h.name for h in result.hits] == [
        "Kubernetes",  # exact
        "Kubernetes operator",  # prefix
        "Kubernets dashboard",  # fuzzy
        "Other",  # description
    ]
    assert result.facets_exact
    assert {(f.value, f.count) for f in result.languages} == {
        ("python", 1),
        ("go", 1),
        ("rust", 1),
        ("java", 1),
    }
    assert {(f.value, f.count) for f in result.tags} == {("k8s", 2), ("ops", 2)}


async def test_typos_follow_renames_and_deletions(index: SearchIndex, tenant_id: TenantId) -> None:
    first = doc("Kubernetes operator", version=1)
    await index.upsert(tenant_id, first)
    assert await names(index, tenant_id, q="kubernetse") == ["Kubernetes operator"]
    await index.upsert(tenant_id, doc("Terraform modules", id=first.id, version=2))
    assert await names(index, tenant_id, q="kubernetse") == []
    assert await names(index, tenant_id, q="terrafrom") == ["Terraform modules"]
    assert await index.delete(tenant_id, first.id, 3)
    assert await names(index, tenant_id, q="terrafrom") == []
    await index.replace_tenant(tenant_id, [doc("Observability stack")])
    assert await names(index, tenant_id, q="observabilty") == ["Observability stack"]


async def test_a_name_with_both_a_prefix_and_a_typo_word_counts_once(
    index: SearchIndex, tenant_id: TenantId
) -> None:
    """One query word: a name starting like it and also holding a word resembling it is a
    prefix match (the better tier), listed and counted once."""
    for d in (
        doc("Kubernets and Kubernetes", languages=("go",)),
        doc("Kubernets dashboard", languages=("rust",)),
        doc("Kubernetes", languages=("python",)),
    ):
        await index.upsert(tenant_id, d)
    for query in (SearchQuery(q="kubernetes"), SearchQuery(q="kubernetes", sort="newest")):
        result = await index.search(tenant_id, query)
        assert sorted(h.name for h in result.hits) == [
            "Kubernetes",
            "Kubernets and Kubernetes",
            "Kubernets dashboard",
        ]
        assert result.facets_exact
        assert {(f.value, f.count) for f in result.languages} == {
            ("go", 1),
            ("rust", 1),
            ("python", 1),
        }
    result = await index.search(tenant_id, SearchQuery(q="kubernetes"))
    assert [h.name for h in result.hits][1:] == ["Kubernets and Kubernetes", "Kubernets dashboard"]

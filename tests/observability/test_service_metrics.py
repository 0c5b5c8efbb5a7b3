"""/metrics after activity: search latency by kind, database pool usage, request metrics."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TenantFixture


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(found: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in found if n == name and labels.items() <= lab.items())


async def test_metrics_after_search_and_writes(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    before = samples((await client.get("/metrics")).text)
    for name in ("Metered search", "Metered suggest"):
        created = await client.post(
            "/v1/pocs", json={"name": name, "languages": ["rust"]}, headers=tenant.member.headers
        )
        assert created.status_code == 201
    for _ in range(3):
        found = await client.get(
            "/v1/search", params={"q": "metered"}, headers=tenant.member.headers
        )
        assert found.status_code == 200
    suggested = await client.get(
        "/v1/search/suggest", params={"q": "met"}, headers=tenant.member.headers
    )
    assert suggested.status_code == 200
    after = samples((await client.get("/metrics")).text)

    count = "pocdojo_search_query_duration_seconds_count"
    total = "pocdojo_search_query_duration_seconds_sum"
    searches = value(after, count, kind="search", backend="postgres") - value(
        before, count, kind="search", backend="postgres"
    )
    assert searches == 3
    assert value(after, count, kind="suggest") - value(before, count, kind="suggest") == 1
    spent = value(after, total, kind="search") - value(before, total, kind="search")
    assert 0 < spent < 30  # seconds, for three queries

    # Pool gauges of this process: in use never above the configured maximum.
    maximum = value(after, "pocdojo_db_pool_max_connections")
    in_use = value(after, "pocdojo_db_pool_connections", state="in_use")
    idle = value(after, "pocdojo_db_pool_connections", state="idle")
    assert maximum >= 10
    assert 0 <= in_use <= maximum
    assert idle >= 1  # the connections the requests above used went back to the pool

    created_count = value(
        after, "pocdojo_http_requests_total", route="/v1/pocs", method="POST", status="201"
    ) - value(before, "pocdojo_http_requests_total", route="/v1/pocs", method="POST", status="201")
    assert created_count == 2

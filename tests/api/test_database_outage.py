"""With Postgres stopped the API answers 503 + Retry-After, and recovers without a restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import TenantFixture


def _cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, "-m", "fast"]
        if action == "stop"
        else ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


pytestmark = pytest.mark.skipif(
    shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").exists(),
    reason="needs a local Debian PostgreSQL cluster that the tests may stop and start",
)


async def test_503_while_postgres_is_down_then_recovers(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    created = await client.post(
        "/v1/pocs", json={"name": "before", "languages": ["go"]}, headers=tenant.member.headers
    )
    assert created.status_code == 201
    _cluster("stop")
    try:
        for method, url, body in (
            ("GET", "/v1/pocs", None),
            ("GET", f"/v1/pocs/{created.json()['id']}", None),
            ("POST", "/v1/pocs", {"name": "during", "languages": ["go"]}),
        ):
            response = await client.request(method, url, json=body, headers=tenant.member.headers)
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) > 0
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unavailable")
    finally:
        _cluster("start")
    recovered = None
    for _ in range(40):
        recovered = await client.get("/v1/pocs", headers=tenant.member.headers)
        if recovered.status_code == 200:
            break
        assert recovered.status_code == 503  # never a 500 while it comes back
        await asyncio.sleep(0.5)
    assert recovered is not None
    assert recovered.status_code == 200
    assert created.json()["id"] in {p["id"] for p in recovered.json()["items"]}
    assert (await client.get("/readyz")).status_code == 200

"""The dev issuer over real HTTP: discovery, JWKS, password grant; and JWKS caching."""

from __future__ import annotations

import uuid

import httpx
import pytest

from pocdojo import admin
from pocdojo.api.identity import make_dev_issuer
from pocdojo.auth.dev_issuer import DevIssuerDisabled
from pocdojo.auth.jwks import HttpJwks
from pocdojo.settings import Settings
from pocdojo.storage.db import Database
from pocdojo.types import Role
from tests.conftest import PASSWORD, TenantFixture


async def test_discovery_and_jwks(client: httpx.AsyncClient, settings: Settings) -> None:
    discovery = (await client.get("/auth/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == settings.oidc_issuer
    assert discovery["jwks_uri"] == f"{settings.oidc_issuer}/jwks.json"
    jwks = (await client.get("/auth/jwks.json")).json()
    [key] = jwks["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert "d" not in key  # never the private part


async def test_password_grant_gives_a_working_token(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": tenant.member.email, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()["access_token"]
    listed = await client.get("/v1/pocs", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "username": "MEMBER", "password": "wrong"}, "invalid_grant"),
        ({"grant_type": "password", "username": "nobody@x.test", "password": "x"}, "invalid_grant"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "MEMBER"}, "invalid_request"),
    ],
)
async def test_bad_token_requests(
    client: httpx.AsyncClient, tenant: TenantFixture, form: dict[str, str], error: str
) -> None:
    form = {k: (tenant.member.email if v == "MEMBER" else v) for k, v in form.items()}
    response = await client.post("/auth/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_user_in_two_tenants_must_choose(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
    owner_db: Database,
) -> None:
    await admin.add_user(
        owner_db,
        other_tenant.id,
        email=tenant.member.email,
        display_name="m",
        role=Role.MEMBER,
        password=None,
    )
    form = {"grant_type": "password", "username": tenant.member.email, "password": PASSWORD}
    ambiguous = await client.post("/auth/token", data=form)
    assert ambiguous.status_code == 400
    chosen = await client.post("/auth/token", data={**form, "tenant": other_tenant.slug})
    assert chosen.status_code == 200
    assert chosen.json()["tenant"] == other_tenant.slug


def test_dev_issuer_refuses_production(settings: Settings) -> None:
    with pytest.raises(DevIssuerDisabled):
        make_dev_issuer(settings.model_copy(update={"env": "production"}))


async def test_jwks_is_cached_and_refreshed_on_unknown_kid(server: str, settings: Settings) -> None:
    keys = HttpJwks(settings.oidc_issuer, min_refresh_interval_s=0.0)
    kid = make_dev_issuer(settings).kid
    assert await keys.get_key(kid) is not None
    assert await keys.get_key(kid) is not None
    assert keys.fetch_count == 1  # cached
    assert await keys.get_key(f"unknown-{uuid.uuid4()}") is None
    assert keys.fetch_count == 2  # an unknown kid triggers one refresh
    throttled = HttpJwks(settings.oidc_issuer, min_refresh_interval_s=60.0)
    await throttled.get_key(kid)
    for _ in range(5):
        await throttled.get_key(f"random-{uuid.uuid4()}")
    assert throttled.fetch_count == 1  # unknown kids cannot flood the issuer

"""Forged and broken tokens: every one is a 401, never a 500 and never a success."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pocdojo.auth.dev_issuer import DevIssuer
from pocdojo.settings import Settings
from tests.conftest import TenantFixture


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(settings: Settings, tenant: TenantFixture, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.oidc_issuer,
        "aud": settings.oidc_audience,
        "sub": str(tenant.admin.user_id),
        "custom:tenant_id": str(tenant.id),
        "cognito:groups": ["admin"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(issuer: DevIssuer, claims: dict[str, Any], **header: Any) -> str:
    return jwt.encode(claims, issuer._key, algorithm="RS256", headers={"kid": issuer.kid, **header})


def _forgeries(settings: Settings, issuer: DevIssuer, tenant: TenantFixture) -> dict[str, str]:
    good = _claims(settings, tenant)
    public_pem = issuer._key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header_none = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": issuer.kid}).encode())
    payload = _b64(json.dumps(good).encode())
    hs256_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode())
    import hashlib
    import hmac

    hs256_sig = _b64(
        hmac.new(public_pem, f"{hs256_header}.{payload}".encode(), hashlib.sha256).digest()
    )
    valid = _sign(issuer, good)
    head, body, sig = valid.split(".")
    tampered_body = _b64(json.dumps({**good, "custom:tenant_id": str(uuid.uuid4())}).encode())
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_ec = ec.generate_private_key(ec.SECP256R1())
    return {
        "alg none": f"{header_none}.{payload}.",
        "HS256 signed with the public key": f"{hs256_header}.{payload}.{hs256_sig}",
        "expired": _sign(
            issuer,
            _claims(
                settings,
                tenant,
                exp=int(time.time()) - 3600,
                iat=int(time.time()) - 7200,
                nbf=int(time.time()) - 7200,
            ),
        ),
        "not yet valid": _sign(issuer, _claims(settings, tenant, nbf=int(time.time()) + 3600)),
        "wrong issuer": _sign(issuer, _claims(settings, tenant, iss="https://evil.example/auth")),
        "wrong audience": _sign(issuer, _claims(settings, tenant, aud="someone-else")),
        "unknown kid": jwt.encode(
            good, other_rsa, algorithm="RS256", headers={"kid": "rotated-away"}
        ),
        "right kid, other key": jwt.encode(
            good, other_rsa, algorithm="RS256", headers={"kid": issuer.kid}
        ),
        "ES256 with the RSA kid": jwt.encode(
            good, other_ec, algorithm="ES256", headers={"kid": issuer.kid}
        ),
        "missing tenant claim": _sign(
            issuer, _claims(settings, tenant, **{"custom:tenant_id": None})
        ),
        "tenant claim not a uuid": _sign(
            issuer, _claims(settings, tenant, **{"custom:tenant_id": "acme"})
        ),
        "missing exp": _sign(issuer, _claims(settings, tenant, exp=None)),
        "tampered payload": f"{head}.{tampered_body}.{sig}",
        "truncated signature": f"{head}.{body}.{sig[:-8]}",
        "garbage": "not.a.jwt",
        "two segments": "abc.def",
    }


CASES = [
    "alg none",
    "HS256 signed with the public key",
    "expired",
    "not yet valid",
    "wrong issuer",
    "wrong audience",
    "unknown kid",
    "right kid, other key",
    "ES256 with the RSA kid",
    "missing tenant claim",
    "tenant claim not a uuid",
    "missing exp",
    "tampered payload",
    "truncated signature",
    "garbage",
    "two segments",
]


@pytest.mark.parametrize("case", CASES)
async def test_forged_token_is_401(
    case: str,
    client: httpx.AsyncClient,
    settings: Settings,
    issuer: DevIssuer,
    tenant: TenantFixture,
) -> None:
    token = _forgeries(settings, issuer, tenant)[case]
    response = await client.get("/v1/pocs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_genuine_token_works(
    client: httpx.AsyncClient, settings: Settings, issuer: DevIssuer, tenant: TenantFixture
) -> None:
    token = _sign(issuer, _claims(settings, tenant))
    response = await client.get("/v1/pocs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


async def test_small_leeway_accepts_clock_skew(
    client: httpx.AsyncClient, settings: Settings, issuer: DevIssuer, tenant: TenantFixture
) -> None:
    skewed = _sign(issuer, _claims(settings, tenant, nbf=int(time.time()) + 10))
    response = await client.get("/v1/pocs", headers={"Authorization": f"Bearer {skewed}"})
    assert response.status_code == 200

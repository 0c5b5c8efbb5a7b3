"""What a request handler needs, opened once per process in the app's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.requests import Request

from pocdojo.auth.jwks import HttpJwks, KeySource
from pocdojo.auth.tokens import ClaimMapping, TokenVerifier
from pocdojo.errors import Unauthorized
from pocdojo.observability.context import bind_principal
from pocdojo.settings import Settings
from pocdojo.storage.blobs import FileBlobStore, S3BlobStore, open_blob_store
from pocdojo.storage.db import Database
from pocdojo.types import Principal


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    blobs: FileBlobStore | S3BlobStore
    verifier: TokenVerifier


def claim_mapping(settings: Settings) -> ClaimMapping:
    return ClaimMapping(
        user_id=settings.claim_user_id,
        tenant_id=settings.claim_tenant_id,
        roles=settings.claim_roles,
        email=settings.claim_email,
    )


def make_verifier(settings: Settings, keys: KeySource | None = None) -> TokenVerifier:
    return TokenVerifier(
        keys
        or HttpJwks(
            settings.oidc_issuer,
            jwks_url=settings.oidc_jwks_url,
            cache_s=settings.oidc_jwks_cache_s,
        ),
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        claims=claim_mapping(settings),
        leeway_s=settings.oidc_leeway_s,
    )


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    db = Database(
        settings.database_url,
        max_size=settings.db_pool_max,
        command_timeout=settings.db_command_timeout_s,
    )
    redis = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0
    )
    blobs = open_blob_store(
        settings.blob_url,
        signing_key=settings.blob_signing_key,
        public_base_url=settings.public_base_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
    )
    async with db:
        try:
            yield Services(settings, db, redis, blobs, make_verifier(settings))
        finally:
            await redis.aclose()


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def authenticate(request: Request) -> Principal:
    """The caller, from a verified bearer token; the tenant never comes from the request."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send a bearer token: Authorization: Bearer <token>")
    verifier: TokenVerifier = request.app.state.verifier
    principal = await verifier.verify(token.strip())
    request.state.principal = principal
    bind_principal(principal)  # ids on the request's log lines and span
    return principal

"""The built-in dev OIDC issuer: discovery, JWKS and a password-grant token endpoint.

Served under ``/auth``. It refuses to start when ``POCDOJO_ENV=production``: there,
Amazon Cognito is the issuer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pocdojo.api.asgi import AbsolutePaths
from pocdojo.api.context import claim_mapping
from pocdojo.api.metrics import MetricsMiddleware
from pocdojo.api.problems import EXCEPTION_HANDLERS, problem
from pocdojo.auth.dev_issuer import DevIssuer, load_or_create_key
from pocdojo.auth.passwords import hash_password, verify_password
from pocdojo.observability.middleware import ObservabilityMiddleware
from pocdojo.settings import Settings, get_settings
from pocdojo.storage.db import Database
from pocdojo.storage.tenants import login_candidates


def make_dev_issuer(settings: Settings) -> DevIssuer:
    return DevIssuer(
        load_or_create_key(Path(settings.dev_issuer_key_path)),
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        claims=claim_mapping(settings),
        ttl_s=settings.dev_token_ttl_s,
        production=settings.is_production or not settings.dev_issuer_enabled,
    )


log = logging.getLogger("pocdojo.identity")


@functools.cache
def _dummy_hash() -> str:
    # Compared against when the email is unknown, so both paths cost one argon2 verify.
    return hash_password("not-a-real-password")


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _grant_error(error: str, description: str, status: int = 400) -> Response:
    # RFC 6749 error codes inside an RFC 9457 problem document.
    return problem(
        status,
        "Token request refused",
        description,
        type_slug="oauth-" + error,
        error=error,
        error_description=description,
    )


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:16_384].decode("utf-8", "replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: v[0] for k, v in parse_qs(body).items()}


async def discovery(request: Request) -> Response:
    return _json(request.app.state.issuer.discovery())


async def jwks(request: Request) -> Response:
    response = _json(request.app.state.issuer.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


async def token(request: Request) -> Response:
    form = await _form(request)
    if form.get("grant_type") != "password":
        return _grant_error("unsupported_grant_type", "only grant_type=password is supported")
    email, password = form.get("username", "").strip(), form.get("password", "")
    if not email or not password:
        return _grant_error("invalid_request", "username and password are required")
    db: Database = request.app.state.db
    async with db.global_tx() as conn:
        candidates = await login_candidates(conn, email)
    stored = candidates[0].password_hash if candidates else _dummy_hash()
    valid = await asyncio.to_thread(verify_password, stored, password)
    if not candidates or not valid:
        log.info("login refused: wrong email or password")  # never the email or password
        return _grant_error("invalid_grant", "wrong email or password")
    wanted = form.get("tenant")
    if wanted:
        candidates = [c for c in candidates if c.tenant_slug == wanted]
    if len(candidates) != 1:
        slugs = sorted({c.tenant_slug for c in candidates})
        return _grant_error(
            "invalid_request",
            "choose a tenant with tenant=<slug>: " + ", ".join(slugs)
            if slugs
            else "not a member of that tenant",
        )
    chosen = candidates[0]
    log.info("token issued to user %s of tenant %s", chosen.user_id, chosen.tenant_id)
    issued = request.app.state.issuer.issue(
        user_id=chosen.user_id,
        tenant_id=chosen.tenant_id,
        roles=[chosen.role],
        email=email,
    )
    return _json(
        {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "tenant": chosen.tenant_slug,
        }
    )


def create_identity_app(settings: Settings | None = None) -> Starlette:
    """The dev issuer as an ASGI app, serving ``/auth/...``."""
    settings = settings or get_settings()
    issuer = make_dev_issuer(settings)  # raises in production, before anything listens

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Database(settings.database_url, max_size=4) as db:
            app.state.db = db
            app.state.issuer = issuer
            yield

    return Starlette(
        routes=[
            Route("/auth/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route("/auth/jwks.json", jwks, methods=["GET"]),
            Route("/auth/token", token, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(AbsolutePaths),
            Middleware(ObservabilityMiddleware, service="identity"),
            Middleware(MetricsMiddleware, service="identity"),
        ],
    )

"""Where signing keys come from: an issuer's JWKS over HTTPS (cached) or a fixed set."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import httpx
import jwt
from opentelemetry.trace import SpanKind

from pocdojo.errors import Unavailable
from pocdojo.observability.tracing import current_traceparent, tracer


async def _inject_traceparent(request: httpx.Request) -> None:
    """httpx request hook: the W3C ``traceparent`` of the current span on every request, so
    the issuer's own traces (if it keeps any) join the request that needed its keys."""
    traceparent = current_traceparent()
    if traceparent:
        request.headers["traceparent"] = traceparent


class KeySource(Protocol):
    async def get_key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this ``kid``, or None when the issuer does not know it."""
        ...


def parse_jwks(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys", []):
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue  # a key type we do not accept (e.g. an HMAC "oct" key) is ignored
    return keys


class StaticKeys:
    """A fixed key set (tests of pure logic, or a pinned production key)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._keys = parse_jwks(document)

    async def get_key(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)


class HttpJwks:
    """An issuer's JWKS, fetched lazily, cached, and refreshed when a ``kid`` is unknown.

    Refreshes for unknown keys are rate-limited so that tokens with random ``kid`` values
    cannot turn into a flood of requests to the issuer.
    """

    def __init__(
        self,
        issuer: str,
        *,
        jwks_url: str | None = None,
        cache_s: float = 600.0,
        min_refresh_interval_s: float = 10.0,
        timeout_s: float = 3.0,
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._jwks_url = jwks_url
        self._cache_s = cache_s
        self._min_refresh_interval_s = min_refresh_interval_s
        self._timeout_s = timeout_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get_key(self, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self._cache_s
        unknown = kid not in self._keys
        if stale or (unknown and now - self._fetched_at > self._min_refresh_interval_s):
            await self._refresh(force=stale)
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            # Another request may have refreshed while this one waited for the lock.
            if not force and time.monotonic() - self._fetched_at <= self._min_refresh_interval_s:
                return
            try:
                with tracer().start_as_current_span("jwks fetch", kind=SpanKind.CLIENT):
                    async with httpx.AsyncClient(
                        timeout=self._timeout_s,
                        event_hooks={"request": [_inject_traceparent]},
                    ) as client:
                        url = self._jwks_url or await self._discover(client)
                        response = await client.get(url)
                        response.raise_for_status()
                        document = response.json()
            except (httpx.HTTPError, ValueError, TypeError, KeyError) as exc:
                if not self._keys:
                    raise Unavailable("the identity provider's keys cannot be fetched") from exc
                return  # keep serving with the keys we have
            self._keys = parse_jwks(document)
            self._fetched_at = time.monotonic()
            self.fetch_count += 1

    async def _discover(self, client: httpx.AsyncClient) -> str:
        response = await client.get(f"{self._issuer}/.well-known/openid-configuration")
        response.raise_for_status()
        url = response.json()["jwks_uri"]
        if not isinstance(url, str):
            raise TypeError("discovery document without jwks_uri")
        self._jwks_url = url
        return url

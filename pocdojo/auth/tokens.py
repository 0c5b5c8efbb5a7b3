"""Bearer token verification: OIDC JWTs, RS256/ES256 only, mapped to a Principal."""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from pocdojo.auth.jwks import KeySource
from pocdojo.errors import Unauthorized
from pocdojo.types import Principal, Role, TenantId, UserId

ALLOWED_ALGORITHMS = ("RS256", "ES256")
_KEY_TYPE_FOR_ALG = {"RS256": "RSA", "ES256": "EC"}
# Tokens verified recently, kept by their exact text (see TokenVerifier.verify).
VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    kid: str
    key: jwt.PyJWK  # the key object that verified the signature
    valid_from: float  # seconds since the epoch, leeway applied
    valid_until: float


def _seconds(claims: dict[str, Any], name: str, default: float) -> float:
    """A time claim as PyJWT reads it (``int(value)``), or ``default``."""
    try:
        return float(int(claims[name]))
    except (KeyError, ValueError, TypeError, OverflowError):
        return default


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    """Which claims carry the user, tenant, roles and email (Cognito names by default)."""

    user_id: str = "sub"
    tenant_id: str = "custom:tenant_id"
    roles: str = "cognito:groups"
    email: str = "email"


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience, expiry and not-before."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        claims: ClaimMapping | None = None,
        leeway_s: int = 30,
        cache_size: int = VERIFIED_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._claims = claims or ClaimMapping()
        self._leeway_s = leeway_s
        self._cache_size = cache_size
        self._clock = clock
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """The token's principal, or Unauthorized.

        A client sends the same token with every request until it expires. A token that
        verified is remembered by its exact text (signature included: another text is another
        entry) with its key and validity window, and is accepted again without decoding or
        checking the signature (an RSA verification and three base64/JSON decodings, ~8 % of
        a search request's Python time) while the window is open and the key set still holds
        that very key: an expired token, or one whose key was rotated out or refreshed, goes
        through the whole verification again. Tokens that fail are not remembered."""
        known = self._verified.get(token)
        if known is not None:
            now = self._clock()
            if (
                known.valid_from <= now < known.valid_until
                and await self._keys.get_key(known.kid) is known.key
            ):
                self._verified.move_to_end(token)
                return known.principal
            self._verified.pop(token, None)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise Unauthorized("token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("token without key id")
        key = await self._keys.get_key(kid)
        if key is None:
            raise Unauthorized("token signed by an unknown key")
        # The key's own type decides the algorithm: an RSA key never verifies ES256 or HMAC.
        if _KEY_TYPE_FOR_ALG[alg] != key.key_type:
            raise Unauthorized("token algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "iss", "aud", self._claims.user_id]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        principal = self._principal(claims)
        if self._cache_size > 0:
            # What PyJWT checked: exp > now - leeway; nbf and iat <= now + leeway.
            starts = max(_seconds(claims, "nbf", -math.inf), _seconds(claims, "iat", -math.inf))
            self._verified[token] = _Verified(
                principal,
                kid,
                key,
                starts - self._leeway_s,
                _seconds(claims, "exp", -math.inf) + self._leeway_s,
            )
            if len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return principal

    def _principal(self, claims: dict[str, Any]) -> Principal:
        try:
            user_id = UserId(uuid.UUID(str(claims[self._claims.user_id])))
            tenant_id = TenantId(uuid.UUID(str(claims[self._claims.tenant_id])))
        except (KeyError, ValueError) as exc:
            raise Unauthorized("token without a valid user or tenant claim") from exc
        raw_roles = claims.get(self._claims.roles, [])
        if isinstance(raw_roles, str):
            raw_roles = raw_roles.replace(",", " ").split()
        roles = {Role(r) for r in raw_roles if r in Role.__members__.values()} or {Role.MEMBER}
        email = claims.get(self._claims.email)
        return Principal(
            user_id=user_id,
            tenant_id=tenant_id,
            roles=frozenset(roles),
            email=email if isinstance(email, str) else None,
        )

"""Bearer token verification: OIDC JWTs, RS256/ES256 only, mapped to a Principal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from pocdojo.auth.jwks import KeySource
from pocdojo.errors import Unauthorized
from pocdojo.types import Principal, Role, TenantId, UserId

ALLOWED_ALGORITHMS = ("RS256", "ES256")
_KEY_TYPE_FOR_ALG = {"RS256": "RSA", "ES256": "EC"}


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
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._claims = claims or ClaimMapping()
        self._leeway_s = leeway_s

    async def verify(self, token: str) -> Principal:
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
        return self._principal(claims)

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

"""A local OIDC issuer for development and tests; it refuses to run in production."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pocdojo.auth.tokens import ClaimMapping
from pocdojo.types import Role, TenantId, UserId


class DevIssuerDisabled(RuntimeError):
    """Raised when something tries to use the dev issuer in production."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """The issuer's RSA key, created once (mode 0600) so every replica signs alike."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.replace(tmp, path)  # atomic: concurrent starters agree on one key
    return load_or_create_key(path)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


class DevIssuer:
    """Signs RS256 access tokens with the claim names the verifier expects."""

    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        *,
        issuer: str,
        audience: str,
        claims: ClaimMapping | None = None,
        ttl_s: int = 3600,
        production: bool = False,
    ) -> None:
        if production:
            raise DevIssuerDisabled("the dev issuer refuses to start when POCDOJO_ENV=production")
        self._key = key
        self.issuer = issuer.rstrip("/")
        self._audience = audience
        self._claims = claims or ClaimMapping()
        self._ttl_s = ttl_s
        numbers = key.public_key().public_numbers()
        self._jwk: dict[str, str] = {
            "kty": "RSA",
            "e": _b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "n": _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        }
        # RFC 7638 thumbprint as the key id: stable across restarts and replicas.
        canonical = json.dumps(self._jwk, separators=(",", ":"), sort_keys=True).encode()
        self.kid = _b64(hashlib.sha256(canonical).digest())

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks.json",
            "token_endpoint": f"{self.issuer}/token",
            "grant_types_supported": ["password"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    def issue(
        self,
        *,
        user_id: UserId,
        tenant_id: TenantId,
        roles: list[Role],
        email: str | None = None,
        ttl_s: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> IssuedToken:
        now = int(time.time())
        ttl = ttl_s if ttl_s is not None else self._ttl_s
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self._audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
            "token_use": "access",
            self._claims.user_id: str(user_id),
            self._claims.tenant_id: str(tenant_id),
            self._claims.roles: [str(role) for role in roles],
        }
        if email:
            claims[self._claims.email] = email
        claims.update(extra or {})
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})
        return IssuedToken(access_token=token, expires_in=ttl)

"""TokenVerifier remembers tokens that verified, and never longer than they are valid."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pocdojo.auth.tokens import TokenVerifier
from pocdojo.errors import Unauthorized

ISSUER = "https://issuer.test"
AUDIENCE = "pocdojo"


class Keys:
    """A key set that can rotate, counting lookups."""

    def __init__(self, private: rsa.RSAPrivateKey, kid: str) -> None:
        self.lookups = 0
        self._keys: dict[str, jwt.PyJWK] = {}
        self.publish(private, kid)

    def publish(self, private: rsa.RSAPrivateKey, kid: str) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
        self._keys = {kid: jwt.PyJWK({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})}

    async def get_key(self, kid: str) -> jwt.PyJWK | None:
        self.lookups += 1
        return self._keys.get(kid)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(private: rsa.RSAPrivateKey, kid: str, tenant: uuid.UUID, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "custom:tenant_id": str(tenant),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(body, private, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token PyJWT decodes (a verification that did not come from the cache)."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


async def test_a_token_verifies_once_then_comes_from_the_cache(decodes: list[str]) -> None:
    private = _key()
    keys = Keys(private, "k1")
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    token_a = _token(private, "k1", tenant_a)
    token_b = _token(private, "k1", tenant_b)
    first = await verifier.verify(token_a)
    assert [await verifier.verify(token_a) for _ in range(3)] == [first] * 3
    assert decodes == [token_a]
    # another token is another entry: each keeps its own tenant
    assert (await verifier.verify(token_b)).tenant_id == tenant_b
    assert (await verifier.verify(token_a)).tenant_id == tenant_a
    assert decodes == [token_a, token_b]


async def test_a_cached_token_is_refused_once_it_expires(decodes: list[str]) -> None:
    private = _key()
    now = [time.time()]
    verifier = TokenVerifier(
        Keys(private, "k1"), issuer=ISSUER, audience=AUDIENCE, leeway_s=0, clock=lambda: now[0]
    )
    exp = int(time.time()) + 2
    token = _token(private, "k1", uuid.uuid4(), exp=exp)
    await verifier.verify(token)
    now[0] = exp - 0.5
    await verifier.verify(token)
    assert len(decodes) == 1
    # past exp by the verifier's clock: verified again, and PyJWT (the real clock) has the
    # last word once the token has really expired
    now[0] = exp
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.verify(token)
    assert len(decodes) == 2
    with pytest.raises(Unauthorized):  # and it stays refused
        await verifier.verify(token)


async def test_a_cached_token_is_refused_once_its_key_is_rotated_out(decodes: list[str]) -> None:
    old, new = _key(), _key()
    keys = Keys(old, "k1")
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
    token = _token(old, "k1", uuid.uuid4())
    await verifier.verify(token)
    await verifier.verify(token)
    assert len(decodes) == 1
    keys.publish(new, "k2")
    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier.verify(token)
    # the same kid with another key (a refreshed key set) is not the key that verified it
    keys.publish(new, "k1")
    with pytest.raises(Unauthorized, match="invalid token"):
        await verifier.verify(token)


async def test_tokens_that_fail_are_not_remembered(decodes: list[str]) -> None:
    private = _key()
    verifier = TokenVerifier(Keys(private, "k1"), issuer=ISSUER, audience=AUDIENCE)
    wrong_audience = _token(private, "k1", uuid.uuid4(), aud="someone-else")
    not_yet = _token(private, "k1", uuid.uuid4(), nbf=int(time.time()) + 3600)
    for token in (wrong_audience, not_yet, wrong_audience, not_yet):
        with pytest.raises(Unauthorized):
            await verifier.verify(token)
    assert decodes == [wrong_audience, not_yet, wrong_audience, not_yet]


async def test_the_cache_is_bounded(decodes: list[str]) -> None:
    private = _key()
    verifier = TokenVerifier(Keys(private, "k1"), issuer=ISSUER, audience=AUDIENCE, cache_size=2)
    a, b, c = (_token(private, "k1", uuid.uuid4()) for _ in range(3))
    for token in (a, b, a, c):  # c evicts b, the least recently used
        await verifier.verify(token)
    assert decodes == [a, b, c]
    await verifier.verify(a)
    await verifier.verify(b)
    assert decodes == [a, b, c, b]


async def test_a_size_of_zero_turns_the_cache_off(decodes: list[str]) -> None:
    private = _key()
    verifier = TokenVerifier(Keys(private, "k1"), issuer=ISSUER, audience=AUDIENCE, cache_size=0)
    token = _token(private, "k1", uuid.uuid4())
    await verifier.verify(token)
    await verifier.verify(token)
    assert decodes == [token, token]

"""Idempotency keys for creates: a retried request gets the first answer back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from pocdojo.errors import Conflict
from pocdojo.types import TenantId, UserId


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]


def request_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def claim_key(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    user_id: UserId,
    key: str,
    fingerprint: str,
) -> StoredResponse | None:
    """Claim ``key`` inside the caller's transaction; the stored answer if already used.

    A concurrent request with the same key waits on the unique index until the first one
    commits, then reads its answer: two creates never both happen.
    """
    claimed = await conn.fetchval(
        """insert into idempotency_keys (tenant_id, user_id, key, request_hash)
           values ($1, $2, $3, $4) on conflict do nothing returning true""",
        tenant_id,
        user_id,
        key,
        fingerprint,
    )
    if claimed:
        return None
    row = await conn.fetchrow(
        """select request_hash, status_code, response from idempotency_keys
           where tenant_id = $1 and user_id = $2 and key = $3""",
        tenant_id,
        user_id,
        key,
    )
    if row is None or row["status_code"] is None:
        raise Conflict("a request with this Idempotency-Key is still in progress")
    if row["request_hash"] != fingerprint:
        raise Conflict("this Idempotency-Key was already used with a different request body")
    return StoredResponse(row["status_code"], json.loads(row["response"]))


async def store_response(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    user_id: UserId,
    key: str,
    response: StoredResponse,
) -> None:
    await conn.execute(
        """update idempotency_keys set status_code = $4, response = $5::jsonb
           where tenant_id = $1 and user_id = $2 and key = $3""",
        tenant_id,
        user_id,
        key,
        response.status_code,
        json.dumps(response.body),
    )

"""PoC media rows: uploads announced, then confirmed once the blob exists."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from pocdojo.errors import NotFound
from pocdojo.storage.blobs import BlobKey
from pocdojo.types import TenantId, UserId


@dataclass(frozen=True, slots=True)
class Media:
    id: uuid.UUID
    poc_id: uuid.UUID
    key: BlobKey
    filename: str
    content_type: str
    size_bytes: int
    status: str


def _media(row: asyncpg.Record) -> Media:
    return Media(
        row["id"],
        row["poc_id"],
        BlobKey(row["blob_key"]),
        row["filename"],
        row["content_type"],
        row["size_bytes"],
        row["status"],
    )


async def insert_media(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    poc_id: uuid.UUID,
    *,
    filename: str,
    content_type: str,
    size_bytes: int,
    created_by: UserId,
) -> Media:
    media_id = uuid.uuid4()
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    key = BlobKey.for_tenant(tenant_id, "pocs", str(poc_id), "media", f"{media_id}.{extension}")
    row = await conn.fetchrow(
        """insert into poc_media (id, tenant_id, poc_id, blob_key, filename, content_type,
                                  size_bytes, created_by)
           values ($1, $2, $3, $4, $5, $6, $7, $8) returning *""",
        media_id,
        tenant_id,
        poc_id,
        key.value,
        filename,
        content_type,
        size_bytes,
        created_by,
    )
    if row is None:
        raise RuntimeError("insert returned no row")
    return _media(row)


async def list_media(conn: asyncpg.Connection, poc_id: uuid.UUID) -> list[Media]:
    rows = await conn.fetch(
        "select * from poc_media where poc_id = $1 order by created_at, id", poc_id
    )
    return [_media(r) for r in rows]


async def get_media(conn: asyncpg.Connection, poc_id: uuid.UUID, media_id: uuid.UUID) -> Media:
    row = await conn.fetchrow(
        "select * from poc_media where poc_id = $1 and id = $2", poc_id, media_id
    )
    if row is None:
        raise NotFound("no such media")
    return _media(row)


async def mark_ready(conn: asyncpg.Connection, media_id: uuid.UUID, size_bytes: int) -> None:
    await conn.execute(
        "update poc_media set status = 'ready', size_bytes = $2 where id = $1",
        media_id,
        size_bytes,
    )

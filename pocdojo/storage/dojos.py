"""Dojo rows, the durable update log, snapshots and chat (tenant transactions only)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from pocdojo.errors import NotFound
from pocdojo.storage.pagination import Cursor
from pocdojo.types import TenantId, UserId


@dataclass(frozen=True, slots=True)
class Dojo:
    id: uuid.UUID
    tenant_id: uuid.UUID
    title: str
    language: str
    poc_id: uuid.UUID | None
    kata: str
    host_id: uuid.UUID
    status: str
    created_at: dt.datetime
    ended_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "title": self.title,
            "language": self.language,
            "poc_id": str(self.poc_id) if self.poc_id else None,
            "kata": self.kata,
            "host": str(self.host_id),
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


@dataclass(frozen=True, slots=True)
class ChatMessage:
    id: int
    author_id: uuid.UUID
    body: str
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "author": str(self.author_id),
            "body": self.body,
            "created_at": self.created_at.isoformat(),
        }


_COLUMNS = "id, tenant_id, title, language, poc_id, kata, host_id, status, created_at, ended_at"


def _dojo(row: asyncpg.Record) -> Dojo:
    return Dojo(*(row[c.strip()] for c in _COLUMNS.split(",")))


async def insert_dojo(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    host_id: UserId,
    *,
    title: str,
    language: str,
    poc_id: uuid.UUID | None,
    kata: str,
) -> Dojo:
    row = await conn.fetchrow(
        f"""insert into dojos (tenant_id, host_id, title, language, poc_id, kata)
            values ($1, $2, $3, $4, $5, $6) returning {_COLUMNS}""",
        tenant_id,
        host_id,
        title,
        language,
        poc_id,
        kata,
    )
    if row is None:
        raise RuntimeError("insert returned no row")
    return _dojo(row)


async def get_dojo(conn: asyncpg.Connection, dojo_id: uuid.UUID) -> Dojo:
    row = await conn.fetchrow(f"select {_COLUMNS} from dojos where id = $1", dojo_id)
    if row is None:
        raise NotFound("no such dojo")
    return _dojo(row)


async def list_dojos(
    conn: asyncpg.Connection, status: str | None, cursor: Cursor | None, limit: int
) -> tuple[list[Dojo], Cursor | None]:
    rows = await conn.fetch(
        f"""select {_COLUMNS} from dojos
            where ($1::text is null or status = $1)
              and ($2::timestamptz is null or (created_at, id) < ($2, $3::uuid))
            order by created_at desc, id desc limit $4""",
        status,
        cursor.created_at if cursor else None,
        cursor.id if cursor else None,
        limit + 1,
    )
    items = [_dojo(r) for r in rows[:limit]]
    more = len(rows) > limit and items
    return items, Cursor(items[-1].created_at, items[-1].id) if more else None


async def end_dojo(conn: asyncpg.Connection, dojo_id: uuid.UUID) -> Dojo:
    row = await conn.fetchrow(
        f"""update dojos set status = 'ended', ended_at = coalesce(ended_at, now())
            where id = $1 returning {_COLUMNS}""",
        dojo_id,
    )
    if row is None:
        raise NotFound("no such dojo")
    return _dojo(row)


async def append_updates(
    conn: asyncpg.Connection, tenant_id: TenantId, dojo_id: uuid.UUID, payloads: list[bytes]
) -> int:
    """Append a batch (one group commit); the highest sequence number written."""
    seq: int = await conn.fetchval(
        """with written as (
               insert into dojo_updates (tenant_id, dojo_id, payload)
               select $1, $2, p from unnest($3::bytea[]) with ordinality as u(p, n) order by n
               returning seq)
           select max(seq) from written""",
        tenant_id,
        dojo_id,
        payloads,
    )
    return seq


async def append_updates_all(
    conn: asyncpg.Connection,
    batches: list[tuple[TenantId, uuid.UUID, list[bytes]]],
) -> dict[uuid.UUID, int]:
    """Append the batches of several tenants' dojos in one statement (``dojo_append_updates``,
    migration 0019: each tenant's rows under its own row-level security setting, all of them
    or none), outside any transaction of the caller's; the highest sequence number written
    per dojo."""
    tenants = [tenant for tenant, _, payloads in batches for _ in payloads]
    dojo_ids = [dojo_id for _, dojo_id, payloads in batches for _ in payloads]
    payloads = [p for _, _, ps in batches for p in ps]
    rows = await conn.fetch(
        "select written_dojo, last_seq from dojo_append_updates($1, $2, $3)",
        tenants,
        dojo_ids,
        payloads,
    )
    return {row["written_dojo"]: row["last_seq"] for row in rows}


async def updates_since(
    conn: asyncpg.Connection, dojo_id: uuid.UUID, after_seq: int, until: dt.datetime | None = None
) -> list[asyncpg.Record]:
    """``(seq, payload, created_at)`` after ``after_seq`` (and up to ``until``), in order."""
    return list(
        await conn.fetch(
            """select seq, payload, created_at from dojo_updates
               where dojo_id = $1 and seq > $2 and ($3::timestamptz is null or created_at <= $3)
               order by seq""",
            dojo_id,
            after_seq,
            until,
        )
    )


async def latest_snapshot(
    conn: asyncpg.Connection, dojo_id: uuid.UUID, before: dt.datetime | None = None
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """select upto_seq, blob_key, created_at from dojo_snapshots
           where dojo_id = $1 and ($2::timestamptz is null or created_at <= $2)
           order by upto_seq desc limit 1""",
        dojo_id,
        before,
    )
    return row


async def record_snapshot(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    dojo_id: uuid.UUID,
    upto_seq: int,
    blob_key: str,
    size_bytes: int,
) -> None:
    await conn.execute(
        """insert into dojo_snapshots (tenant_id, dojo_id, upto_seq, blob_key, size_bytes)
           values ($1, $2, $3, $4, $5) on conflict do nothing""",
        tenant_id,
        dojo_id,
        upto_seq,
        blob_key,
        size_bytes,
    )


async def add_chat(
    conn: asyncpg.Connection, tenant_id: TenantId, dojo_id: uuid.UUID, author: UserId, body: str
) -> ChatMessage:
    row = await conn.fetchrow(
        """insert into dojo_chat (tenant_id, dojo_id, author_id, body) values ($1, $2, $3, $4)
           returning id, author_id, body, created_at""",
        tenant_id,
        dojo_id,
        author,
        body,
    )
    if row is None:
        raise RuntimeError("insert returned no row")
    return ChatMessage(row["id"], row["author_id"], row["body"], row["created_at"])


async def list_chat(
    conn: asyncpg.Connection, dojo_id: uuid.UUID, before_id: int | None, limit: int
) -> tuple[list[ChatMessage], int | None]:
    """Newest first; the cursor is the id to continue before."""
    rows = await conn.fetch(
        """select id, author_id, body, created_at from dojo_chat
           where dojo_id = $1 and ($2::bigint is null or id < $2)
           order by id desc limit $3""",
        dojo_id,
        before_id,
        limit + 1,
    )
    items = [ChatMessage(r["id"], r["author_id"], r["body"], r["created_at"]) for r in rows[:limit]]
    return items, (items[-1].id if len(rows) > limit and items else None)

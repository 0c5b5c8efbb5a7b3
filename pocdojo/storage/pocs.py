"""PoC rows: every function takes a connection from ``Database.tenant_tx``."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from pocdojo.domain.pocs import Poc, PocCreate, PocFilter
from pocdojo.errors import NotFound, PreconditionFailed
from pocdojo.storage.pagination import Cursor
from pocdojo.types import PocStatus, TenantId, UserId

_COLUMNS = (
    "id, tenant_id, owner_id, name, description, languages, tags, repo_url, demo_url, "
    "status, built_on, version, created_at, updated_at"
)
_UPDATABLE = frozenset(
    {
        "name",
        "description",
        "languages",
        "tags",
        "repo_url",
        "demo_url",
        "status",
        "built_on",
    }
)


def row_to_poc(row: asyncpg.Record) -> Poc:
    return Poc(
        id=row["id"],
        tenant_id=row["tenant_id"],
        owner_id=row["owner_id"],
        name=row["name"],
        description=row["description"],
        languages=list(row["languages"]),
        tags=list(row["tags"]),
        repo_url=row["repo_url"],
        demo_url=row["demo_url"],
        status=PocStatus(row["status"]),
        built_on=row["built_on"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def insert_poc(
    conn: asyncpg.Connection, tenant_id: TenantId, owner_id: UserId, data: PocCreate
) -> Poc:
    row = await conn.fetchrow(
        f"""insert into pocs (tenant_id, owner_id, name, description, languages, tags,
                              repo_url, demo_url, status, built_on)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10, current_date))
            returning {_COLUMNS}""",
        tenant_id,
        owner_id,
        data.name,
        data.description,
        data.languages,
        data.tags,
        data.repo_url,
        data.demo_url,
        str(data.status),
        data.built_on,
    )
    if row is None:
        raise RuntimeError("insert returned no row")
    return row_to_poc(row)


async def get_poc(conn: asyncpg.Connection, poc_id: uuid.UUID, *, for_update: bool = False) -> Poc:
    lock = " for update" if for_update else ""
    row = await conn.fetchrow(f"select {_COLUMNS} from pocs where id = $1{lock}", poc_id)
    if row is None:
        raise NotFound("no such PoC")
    return row_to_poc(row)


async def list_pocs(
    conn: asyncpg.Connection, filters: PocFilter, cursor: Cursor | None, limit: int
) -> tuple[list[Poc], Cursor | None]:
    clauses: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if filters.owner is not None:
        clauses.append(f"owner_id = {arg(filters.owner)}")
    if filters.status is not None:
        clauses.append(f"status = {arg(str(filters.status))}")
    if filters.languages:
        clauses.append(f"languages && {arg(list(filters.languages))}::text[]")
    if filters.tags:
        clauses.append(f"tags @> {arg(list(filters.tags))}::text[]")
    if cursor is not None:
        clauses.append(f"(created_at, id) < ({arg(cursor.created_at)}, {arg(cursor.id)})")
    where = f"where {' and '.join(clauses)}" if clauses else ""
    rows = await conn.fetch(
        f"select {_COLUMNS} from pocs {where} order by created_at desc, id desc "
        f"limit {arg(limit + 1)}",
        *args,
    )
    items = [row_to_poc(r) for r in rows[:limit]]
    next_cursor = (
        Cursor(items[-1].created_at, items[-1].id) if len(rows) > limit and items else None
    )
    return items, next_cursor


async def update_poc(
    conn: asyncpg.Connection,
    poc_id: uuid.UUID,
    expected_version: int,
    changes: dict[str, Any],
) -> Poc:
    """Apply ``changes`` if the row is still at ``expected_version`` (optimistic locking)."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = [f"{column} = ${i}" for i, column in enumerate(changes, start=3)]
    assignments += ["version = version + 1", "updated_at = now()"]
    values = [str(v) if isinstance(v, PocStatus) else v for v in changes.values()]
    row = await conn.fetchrow(
        f"update pocs set {', '.join(assignments)} where id = $1 and version = $2 "
        f"returning {_COLUMNS}",
        poc_id,
        expected_version,
        *values,
    )
    if row is None:
        await get_poc(conn, poc_id)  # NotFound if it is gone (or another tenant's)
        raise PreconditionFailed("the PoC changed since you read it; fetch it again")
    return row_to_poc(row)


async def delete_poc(conn: asyncpg.Connection, poc_id: uuid.UUID) -> None:
    deleted = await conn.fetchval("delete from pocs where id = $1 returning id", poc_id)
    if deleted is None:
        raise NotFound("no such PoC")

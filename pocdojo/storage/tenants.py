"""Tenants, users and memberships."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from pocdojo.errors import Conflict, NotFound
from pocdojo.types import Role, TenantId, UserId


@dataclass(frozen=True, slots=True)
class Tenant:
    id: TenantId
    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Member:
    user_id: UserId
    email: str
    display_name: str
    role: Role

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "email": self.email,
            "display_name": self.display_name,
            "role": str(self.role),
        }


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    """One membership of a user, as the login lookup returns it."""

    user_id: UserId
    password_hash: str | None
    display_name: str
    tenant_id: TenantId
    tenant_slug: str
    role: Role


def _member(row: asyncpg.Record) -> Member:
    return Member(row["user_id"], row["email"], row["display_name"], Role(row["role"]))


async def insert_tenant(
    conn: asyncpg.Connection, tenant_id: TenantId, slug: str, name: str
) -> Tenant:
    """Create the tenant the transaction is scoped to (RLS checks ``id`` = current tenant)."""
    try:
        await conn.execute(
            "insert into tenants (id, slug, name) values ($1, $2, $3)",
            tenant_id,
            slug,
            name,
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"tenant {slug!r} already exists") from exc
    return Tenant(tenant_id, slug, name)


async def current_tenant(conn: asyncpg.Connection) -> Tenant:
    row = await conn.fetchrow("select id, slug, name from tenants")
    if row is None:
        raise NotFound("no such tenant")
    return Tenant(row["id"], row["slug"], row["name"])


async def ensure_user(
    conn: asyncpg.Connection,
    email: str,
    display_name: str,
    password_hash: str | None = None,
) -> UserId:
    """The user with this email, created if new. An existing user's profile is kept."""
    user_id = await conn.fetchval(
        """insert into users (email, display_name, password_hash) values ($1, $2, $3)
           on conflict (email) do nothing returning id""",
        email,
        display_name,
        password_hash,
    )
    if user_id is None:
        user_id = await conn.fetchval("select id from users where email = $1", email)
    return UserId(user_id)


async def add_member(
    conn: asyncpg.Connection, tenant_id: TenantId, user_id: UserId, role: Role
) -> Member:
    try:
        await conn.execute(
            "insert into memberships (tenant_id, user_id, role) values ($1, $2, $3)",
            tenant_id,
            user_id,
            str(role),
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("this user is already a member of the tenant") from exc
    return await get_member(conn, user_id)


async def get_member(conn: asyncpg.Connection, user_id: uuid.UUID) -> Member:
    row = await conn.fetchrow(
        """select m.user_id, u.email, u.display_name, m.role
           from memberships m join users u on u.id = m.user_id where m.user_id = $1""",
        user_id,
    )
    if row is None:
        raise NotFound("no such member")
    return _member(row)


async def list_members(
    conn: asyncpg.Connection, after_email: str | None, limit: int
) -> tuple[list[Member], str | None]:
    rows = await conn.fetch(
        """select m.user_id, u.email::text as email, u.display_name, m.role
           from memberships m join users u on u.id = m.user_id
           where $1::text is null or u.email::text > $1
           order by u.email::text limit $2""",
        after_email,
        limit + 1,
    )
    members = [_member(r) for r in rows[:limit]]
    return members, (members[-1].email if len(rows) > limit else None)


async def set_member_role(conn: asyncpg.Connection, user_id: uuid.UUID, role: Role) -> Member:
    updated = await conn.fetchval(
        "update memberships set role = $2, updated_at = now() where user_id = $1 returning 1",
        user_id,
        str(role),
    )
    if updated is None:
        raise NotFound("no such member")
    return await get_member(conn, user_id)


async def login_candidates(conn: asyncpg.Connection, email: str) -> list[LoginCandidate]:
    """Every membership of ``email``: the one cross-tenant read, via ``auth_lookup``."""
    rows = await conn.fetch("select * from auth_lookup($1)", email)
    return [
        LoginCandidate(
            UserId(r["user_id"]),
            r["password_hash"],
            r["display_name"],
            TenantId(r["tenant_id"]),
            r["tenant_slug"],
            Role(r["role"]),
        )
        for r in rows
    ]

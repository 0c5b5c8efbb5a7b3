"""Operator actions behind the CLI: tenants, users, demo data, dev tokens.

They connect as the owner role, which FORCE row-level security still binds: tenant rows
are written through ``Database.tenant_tx`` like everywhere else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pocdojo.auth.passwords import hash_password
from pocdojo.domain.seed_corpus import generate_pocs
from pocdojo.errors import Conflict, NotFound
from pocdojo.storage import pocs, tenants
from pocdojo.storage.db import Database
from pocdojo.storage.outbox import record_event
from pocdojo.types import Role, TenantId, UserId

DEMO_NAMESPACE = uuid.UUID("5b0c1f0e-6a1d-4c55-9a51-0d0f2a7c9e11")
DEMO_PASSWORD = "dojo-demo-2026"
DEMO_TENANTS = {"acme": "Acme Corporation", "globex": "Globex Brasil Ltda."}
DEMO_USERS = (
    ("alice@acme.test", "Alice Andrade", "acme", Role.ADMIN),
    ("bob@acme.test", "Bob Barros", "acme", Role.MEMBER),
    ("carol@globex.test", "Carol Conceição", "globex", Role.ADMIN),
)
DEMO_POCS_PER_TENANT = 300


def demo_tenant_id(slug: str) -> TenantId:
    return TenantId(uuid.uuid5(DEMO_NAMESPACE, f"tenant:{slug}"))


async def create_tenant(
    db: Database, slug: str, name: str, tenant_id: TenantId | None = None
) -> TenantId:
    tenant_id = tenant_id or TenantId(uuid.uuid4())
    async with db.tenant_tx(tenant_id) as conn:
        await tenants.insert_tenant(conn, tenant_id, slug, name)
    return tenant_id


async def tenant_by_slug(db: Database, slug: str) -> TenantId | None:
    async with db.global_tx() as conn:
        found = await conn.fetchval("select auth_tenant_by_slug($1)", slug)
    return TenantId(found) if found else None


async def add_user(
    db: Database,
    tenant_id: TenantId,
    *,
    email: str,
    display_name: str,
    role: Role,
    password: str | None,
) -> UserId:
    """Create (or update) a user and make them a member of ``tenant_id`` with ``role``."""
    password_hash = hash_password(password) if password else None
    async with db.tenant_tx(tenant_id) as conn:
        user_id = await tenants.ensure_user(conn, email.lower(), display_name, password_hash)
        if password_hash:
            await conn.execute(
                "update users set password_hash = $2 where id = $1", user_id, password_hash
            )
        try:
            async with conn.transaction():  # a savepoint: a conflict must not end the tx
                await tenants.add_member(conn, tenant_id, user_id, role)
        except Conflict:
            await tenants.set_member_role(conn, user_id, role)
    return user_id


@dataclass(frozen=True, slots=True)
class LoginIdentity:
    user_id: UserId
    tenant_id: TenantId
    tenant_slug: str
    role: Role


async def identity_for(db: Database, email: str, tenant_slug: str | None = None) -> LoginIdentity:
    """The membership a dev token is issued for (the only one, or the named tenant's)."""
    async with db.global_tx() as conn:
        candidates = await tenants.login_candidates(conn, email)
    if tenant_slug:
        candidates = [c for c in candidates if c.tenant_slug == tenant_slug]
    if not candidates:
        raise NotFound(
            f"{email} is not a member of any tenant" + (f" {tenant_slug}" if tenant_slug else "")
        )
    if len(candidates) > 1:
        slugs = ", ".join(c.tenant_slug for c in candidates)
        raise Conflict(f"{email} belongs to several tenants ({slugs}): pass --tenant")
    c = candidates[0]
    return LoginIdentity(c.user_id, c.tenant_id, c.tenant_slug, c.role)


@dataclass(frozen=True, slots=True)
class SeedReport:
    tenants: int
    users: int
    pocs_inserted: int


async def seed_demo(db: Database, pocs_per_tenant: int = DEMO_POCS_PER_TENANT) -> SeedReport:
    """Tenants acme and globex, three users, a few hundred PoCs each; safe to run twice."""
    for slug, name in DEMO_TENANTS.items():
        if await tenant_by_slug(db, slug) is None:
            await create_tenant(db, slug, name, demo_tenant_id(slug))
    owners: dict[str, list[UserId]] = {slug: [] for slug in DEMO_TENANTS}
    for email, display_name, slug, role in DEMO_USERS:
        owners[slug].append(
            await add_user(
                db,
                demo_tenant_id(slug),
                email=email,
                display_name=display_name,
                role=role,
                password=DEMO_PASSWORD,
            )
        )
    inserted = 0
    for index, slug in enumerate(DEMO_TENANTS):
        inserted += await seed_pocs(db, demo_tenant_id(slug), owners[slug], pocs_per_tenant, index)
    return SeedReport(len(DEMO_TENANTS), len(DEMO_USERS), inserted)


async def seed_pocs(
    db: Database, tenant_id: TenantId, owners: list[UserId], count: int, seed: int
) -> int:
    """Insert ``count`` generated PoCs with derived ids (re-running inserts nothing)."""
    inserted = 0
    async with db.tenant_tx(tenant_id) as conn:
        for i, poc in enumerate(generate_pocs(count, seed=seed)):
            poc_id = uuid.uuid5(DEMO_NAMESPACE, f"poc:{tenant_id}:{seed}:{i}")
            created = await conn.fetchval(
                """insert into pocs (id, tenant_id, owner_id, name, description, languages,
                                     tags, repo_url, status, built_on)
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   on conflict (id) do nothing returning id""",
                poc_id,
                tenant_id,
                owners[i % len(owners)],
                poc.name,
                poc.description,
                list(poc.languages),
                list(poc.tags),
                poc.repo_url,
                poc.status,
                poc.built_on,
            )
            if created is None:
                continue
            inserted += 1
            row = await pocs.get_poc(conn, poc_id)
            await record_event(
                conn,
                tenant_id,
                topic="pocs",
                event_type="poc.created",
                aggregate_id=poc_id,
                payload=row.to_json(),
            )
    return inserted

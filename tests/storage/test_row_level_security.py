"""Defence in depth: the database itself refuses cross-tenant reads and writes."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from pocdojo.settings import Settings
from tests.conftest import TenantFixture

TENANT_TABLES = {"tenants", "memberships", "pocs", "poc_media", "outbox", "idempotency_keys"}


async def _make_poc(client: httpx.AsyncClient, tenant: TenantFixture) -> str:
    response = await client.post(
        "/v1/pocs", json={"name": "secret", "languages": ["go"]}, headers=tenant.member.headers
    )
    assert response.status_code == 201
    poc_id: str = response.json()["id"]
    return poc_id


async def test_app_role_with_wrong_tenant_sees_no_row(
    client: httpx.AsyncClient,
    settings: Settings,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
) -> None:
    poc_id = uuid.UUID(await _make_poc(client, tenant))
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("select current_user") == "pocdojo_app"
        async with conn.transaction():
            await conn.execute("select set_config('app.tenant_id', $1, true)", str(other_tenant.id))
            assert await conn.fetchval("select count(*) from pocs where id = $1", poc_id) == 0
            assert (
                await conn.fetchval("select count(*) from pocs where tenant_id = $1", tenant.id)
                == 0
            )
            assert (
                await conn.fetchval("select count(*) from outbox where tenant_id = $1", tenant.id)
                == 0
            )
            assert (
                await conn.fetchval(
                    "select count(*) from memberships where tenant_id = $1", tenant.id
                )
                == 0
            )
            assert await conn.fetchval("select count(*) from tenants where id = $1", tenant.id) == 0
            updated = await conn.execute("update pocs set name = 'pwned' where id = $1", poc_id)
            assert updated == "UPDATE 0"
            deleted = await conn.execute("delete from pocs where id = $1", poc_id)
            assert deleted == "DELETE 0"
        # With no tenant at all: nothing either.
        assert await conn.fetchval("select count(*) from pocs") == 0
        # Writing a row for another tenant is refused by the policy's WITH CHECK.
        async with conn.transaction():
            await conn.execute("select set_config('app.tenant_id', $1, true)", str(other_tenant.id))
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "insert into pocs (tenant_id, owner_id, name, languages) "
                    "values ($1, $2, 'x', '{go}')",
                    tenant.id,
                    tenant.member.user_id,
                )
        # The owner's own tenant still sees it: the policy is not simply "deny all".
        async with conn.transaction():
            await conn.execute("select set_config('app.tenant_id', $1, true)", str(tenant.id))
            assert await conn.fetchval("select name from pocs where id = $1", poc_id) == "secret"
        # SET LOCAL ended with the transaction: the pooled session carries no tenant.
        assert await conn.fetchval("select count(*) from pocs where id = $1", poc_id) == 0
    finally:
        await conn.close()


async def test_roles_and_policies_are_as_designed(settings: Settings, migrated: None) -> None:
    conn = await asyncpg.connect(settings.owner_database_url)
    try:
        app = await conn.fetchrow(
            "select rolsuper, rolbypassrls from pg_roles where rolname = 'pocdojo_app'"
        )
        assert app is not None
        assert not app["rolsuper"]
        assert not app["rolbypassrls"]
        owners = await conn.fetch(
            "select distinct tableowner from pg_tables where schemaname = 'public'"
        )
        assert {r["tableowner"] for r in owners} == {"pocdojo_owner"}
        tables = await conn.fetch(
            """select c.relname, c.relrowsecurity, c.relforcerowsecurity
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = 'public' and c.relkind = 'r'
                 and exists (select 1 from pg_attribute a where a.attrelid = c.oid
                             and a.attname = 'tenant_id' and not a.attisdropped)"""
        )
        with_tenant = {r["relname"] for r in tables}
        assert with_tenant >= TENANT_TABLES - {"tenants"}
        for row in tables:
            assert row["relrowsecurity"], row["relname"]
            assert row["relforcerowsecurity"], row["relname"]
        tenants_rls = await conn.fetchrow(
            "select relrowsecurity, relforcerowsecurity from pg_class where relname = 'tenants'"
        )
        assert tenants_rls is not None
        assert tenants_rls["relrowsecurity"]
        assert tenants_rls["relforcerowsecurity"]
    finally:
        await conn.close()


async def test_app_role_cannot_read_password_hashes(settings: Settings, migrated: None) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("select password_hash from users limit 1")
    finally:
        await conn.close()

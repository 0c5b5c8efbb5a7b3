"""The update log's group commit (``dojo_append_updates``, migration 0019): one statement
appends several tenants' dojo batches, each tenant's rows under its own row-level security
setting, all of them or none."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from pocdojo.errors import Unavailable
from pocdojo.gateway.host import append_isolating
from pocdojo.settings import Settings
from pocdojo.storage import dojos
from pocdojo.storage.db import Database
from pocdojo.types import TenantId
from tests.conftest import TenantFixture


@pytest_asyncio.fixture(loop_scope="session")
async def app_db(settings: Settings, migrated: None) -> AsyncIterator[Database]:
    async with Database(settings.database_url, max_size=2) as db:
        yield db


async def new_dojo(db: Database, tenant: TenantFixture) -> uuid.UUID:
    async with db.tenant_tx(tenant.id) as conn:
        dojo = await dojos.insert_dojo(
            conn,
            tenant.id,
            tenant.admin.user_id,
            title="log",
            language="python",
            poc_id=None,
            kata="",
        )
    return dojo.id


async def logged(db: Database, tenant: TenantId, dojo_id: uuid.UUID) -> list[bytes]:
    async with db.tenant_tx(tenant) as conn:
        return [r["payload"] for r in await dojos.updates_since(conn, dojo_id, 0)]


async def test_one_statement_logs_several_tenants_dojos_in_order(
    app_db: Database, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    a1, a2, b1 = (
        await new_dojo(app_db, tenant),
        await new_dojo(app_db, tenant),
        await new_dojo(app_db, other_tenant),
    )
    batches = [
        (other_tenant.id, b1, [b"b1-1", b"b1-2"]),
        (tenant.id, a1, [b"a1-1", b"a1-2", b"a1-3"]),
        (tenant.id, a2, [b"a2-1"]),
    ]
    async with app_db.connection() as conn:
        written = await dojos.append_updates_all(conn, batches)
        # The tenant setting ended with the statement: nothing carries to the connection.
        assert not await conn.fetchval("select current_setting('app.tenant_id', true)")
        # ... and without a tenant, row-level security shows no row.
        assert await conn.fetchval("select count(*) from dojo_updates") == 0

    assert set(written) == {a1, a2, b1}
    for tenant_id, dojo_id, payloads in batches:
        assert await logged(app_db, tenant_id, dojo_id) == payloads  # in order
        async with app_db.tenant_tx(tenant_id) as conn:
            assert written[dojo_id] == await conn.fetchval(
                "select max(seq) from dojo_updates where dojo_id = $1", dojo_id
            )
    # Each row is its own tenant's: the other tenant sees none of it.
    assert await logged(app_db, other_tenant.id, a1) == []
    assert await logged(app_db, tenant.id, b1) == []


async def test_a_failing_batch_logs_nothing_of_the_others(
    app_db: Database, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    a1, b1 = await new_dojo(app_db, tenant), await new_dojo(app_db, other_tenant)
    batches = [
        (tenant.id, a1, [b"kept?"]),
        (other_tenant.id, b1, [b"kept?"]),
        (other_tenant.id, uuid.uuid4(), [b"no such dojo"]),  # a foreign key violation
    ]
    async with app_db.connection() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await dojos.append_updates_all(conn, batches)
    assert await logged(app_db, tenant.id, a1) == []
    assert await logged(app_db, other_tenant.id, b1) == []


async def test_a_refused_batch_does_not_hold_back_the_other_dojos(
    app_db: Database, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    """A dojo deleted while its session lived (its batch breaks the foreign key): the group
    commit stores every other dojo's batch, and reports why that one was not stored."""
    a1, gone, b1 = (
        await new_dojo(app_db, tenant),
        await new_dojo(app_db, tenant),
        await new_dojo(app_db, other_tenant),
    )
    async with app_db.tenant_tx(tenant.id) as conn:
        await conn.execute("delete from dojos where id = $1", gone)
    outcomes = await append_isolating(
        app_db,
        [
            (tenant.id, a1, [b"a1"]),
            (tenant.id, gone, [b"lost dojo"]),
            (other_tenant.id, b1, [b"b1"]),
        ],
    )
    assert isinstance(outcomes[gone], asyncpg.ForeignKeyViolationError)
    assert isinstance(outcomes[a1], int)
    assert isinstance(outcomes[b1], int)
    assert await logged(app_db, tenant.id, a1) == [b"a1"]
    assert await logged(app_db, other_tenant.id, b1) == [b"b1"]


async def test_an_unreachable_database_fails_every_batch(tenant: TenantFixture) -> None:
    dojo_id = uuid.uuid4()
    async with Database("postgresql://nobody@127.0.0.1:1/none", max_size=1) as down:
        outcomes = await append_isolating(down, [(tenant.id, dojo_id, [b"x"])])
    assert isinstance(outcomes[dojo_id], Unavailable)

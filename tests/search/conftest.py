"""Search backends for the contract tests: Postgres always, OpenSearch when configured."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from pocdojo.settings import Settings
from pocdojo.storage.db import Database
from pocdojo.storage.search import SearchDoc, SearchIndex
from pocdojo.storage.search_postgres import PostgresSearch, open_search_database
from tests.conftest import TEST_DB

_clock = itertools.count()
BASE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def doc(name: str, **fields: Any) -> SearchDoc:
    """A document; each call is one second newer than the previous one."""
    created = fields.pop("created_at", BASE_TIME + dt.timedelta(seconds=next(_clock)))
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "version": 1,
        "name": name,
        "description": "",
        "languages": ("python",),
        "tags": (),
        "owner_id": uuid.UUID(int=1),
        "status": "active",
        "built_on": dt.date(2026, 3, 1),
        "created_at": created,
        "updated_at": created,
    }
    values.update(fields)
    return SearchDoc(**values)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def search_db(settings: Settings, migrated: None) -> AsyncIterator[Database]:
    url = settings.search_database_url.rsplit("/", 1)[0] + f"/{TEST_DB}"
    async with open_search_database(url, max_size=8) as db:
        yield db


@pytest_asyncio.fixture(loop_scope="session", params=["postgres", "opensearch"])
async def index(request: pytest.FixtureRequest, search_db: Database) -> AsyncIterator[SearchIndex]:
    if request.param == "postgres":
        yield PostgresSearch(search_db)
        return
    from tests.search.opensearch_backend import make_opensearch_backend

    backend, cleanup = await make_opensearch_backend()
    try:
        yield backend
    finally:
        await cleanup()


@pytest.fixture
def tenant_id() -> Any:
    return uuid.uuid4()

"""The search service under one plain uvicorn worker, for ``make bench-search``.

    BENCH_SEARCH_SIDE=project .venv/bin/python -m uvicorn --factory \
        loadtests.search_service:create --host 127.0.0.1 --port 8310 --no-access-log

``BENCH_SEARCH_SIDE=project`` (default): the production apps as ``create_local_app`` mounts
them: poc-api at ``/`` (the write-to-searchable probe posts PoCs there), the dev issuer
at ``/auth`` (JWKS) and search-api at ``/v1/search`` with its default backend
(``PostgresSearch`` on ``POCDOJO_SEARCH_DATABASE_URL``).

``BENCH_SEARCH_SIDE=baseline``: the dev issuer and the same search-api app, with
``NaiveSearch`` (``loadtests.naive_search``) injected through ``open_index``.

``BENCH_SEARCH_CACHE=0`` (project side): ``PostgresSearch`` without its answer cache, so
every request runs its statements (the cost of a cache miss; the bench repeats its queries,
which the cache would otherwise answer after the first round).

Settings come from ``POCDOJO_*`` as usual; ``loadtests.bench_search`` points them at the
``pocdojo_bench`` database.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from loadtests.naive_search import open_naive_index
from pocdojo.api.asgi import prefix_dispatcher
from pocdojo.api.identity import create_identity_app
from pocdojo.api.poc_app import create_poc_app
from pocdojo.api.search_app import create_search_app
from pocdojo.runtime import quiet_gc
from pocdojo.settings import Settings, get_settings
from pocdojo.storage.search_postgres import PostgresSearch, open_search_database

SIDE_ENV = "BENCH_SEARCH_SIDE"
CACHE_ENV = "BENCH_SEARCH_CACHE"


@contextlib.asynccontextmanager
async def open_uncached_index(settings: Settings) -> AsyncIterator[object]:
    """The default backend, as ``open_search_index`` opens it, with its cache off."""
    async with open_search_database(
        settings.search_database_url, max_size=settings.db_pool_max
    ) as db:
        yield PostgresSearch(db, cache_size=0)


def create() -> Starlette:
    quiet_gc()  # as the search-api replica does (pocdojo.api.serve_app), for both sides
    settings = get_settings()
    side = os.environ.get(SIDE_ENV, "project")
    if side == "project":
        return prefix_dispatcher(
            {
                "/": create_poc_app(settings),
                "/auth": create_identity_app(settings),
                "/v1/search": (
                    create_search_app(settings, open_index=open_uncached_index)
                    if os.environ.get(CACHE_ENV, "1") == "0"
                    else create_search_app(settings)
                ),
            }
        )
    if side == "baseline":
        return prefix_dispatcher(
            {
                "/auth": create_identity_app(settings),
                "/v1/search": create_search_app(settings, open_index=open_naive_index),
            }
        )
    raise RuntimeError(f"{SIDE_ENV} must be 'project' or 'baseline', not {side!r}")

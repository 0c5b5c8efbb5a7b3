"""The search service (search-api) as a Starlette app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from pocdojo.api import search
from pocdojo.api.asgi import AbsolutePaths
from pocdojo.api.context import make_verifier
from pocdojo.api.metrics import MetricsMiddleware
from pocdojo.api.problems import EXCEPTION_HANDLERS
from pocdojo.observability.middleware import ObservabilityMiddleware
from pocdojo.settings import Settings, get_settings
from pocdojo.storage.search_postgres import PostgresSearch, open_search_database


@contextlib.asynccontextmanager
async def open_search_index(settings: Settings) -> AsyncIterator[object]:
    """The configured backend (``POCDOJO_SEARCH_BACKEND``), open for the app's lifetime."""
    if settings.search_backend == "opensearch":
        from pocdojo.storage.search_opensearch import open_opensearch

        if not settings.opensearch_url:
            raise RuntimeError("POCDOJO_OPENSEARCH_URL is required with the opensearch backend")
        backend = open_opensearch(settings.opensearch_url)
        await backend.ensure_setup()
        try:
            yield backend
        finally:
            await backend.aclose()
        return
    async with open_search_database(
        settings.search_database_url, max_size=settings.db_pool_max
    ) as db:
        yield PostgresSearch(db)


IndexOpener = Callable[[Settings], AbstractAsyncContextManager[object]]


def create_search_app(
    settings: Settings | None = None, *, open_index: IndexOpener = open_search_index
) -> Starlette:
    """search-api. ``open_index`` chooses the backend (benchmarks inject their baseline)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_index(settings) as index:
            app.state.search_index = index
            app.state.verifier = make_verifier(settings)
            yield

    return Starlette(
        routes=search.spec.routes(),
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(AbsolutePaths),
            Middleware(ObservabilityMiddleware, service="search-api"),
            Middleware(MetricsMiddleware, service="search-api"),
        ],
    )

"""The video service (video-api) as a Starlette app: video jobs and their runner."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from pocdojo.api import videos
from pocdojo.api.asgi import AbsolutePaths
from pocdojo.api.context import open_services
from pocdojo.api.metrics import MetricsMiddleware
from pocdojo.api.problems import EXCEPTION_HANDLERS
from pocdojo.observability.middleware import ObservabilityMiddleware
from pocdojo.settings import Settings, get_settings
from pocdojo.video.runner import VideoRunner


def create_video_app(settings: Settings | None = None) -> Starlette:
    """video-api; with ``video_runner_enabled`` its replicas also run the render jobs."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services, contextlib.AsyncExitStack() as stack:
            app.state.services = services
            app.state.verifier = services.verifier
            app.state.runner = None
            if settings.video_runner_enabled:
                app.state.runner = await stack.enter_async_context(
                    VideoRunner(services.db, services.blobs, settings)
                )
            yield

    return Starlette(
        routes=videos.spec.routes(),
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(AbsolutePaths),
            Middleware(ObservabilityMiddleware, service="video-api"),
            Middleware(MetricsMiddleware, service="video-api"),
        ],
    )

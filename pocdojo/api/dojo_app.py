"""The dojo service (dojo-api) as a Starlette app: the REST side of dojos."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute

from pocdojo.api import dojos, gateway, voice
from pocdojo.api.asgi import AbsolutePaths
from pocdojo.api.context import open_services
from pocdojo.api.metrics import MetricsMiddleware
from pocdojo.api.problems import EXCEPTION_HANDLERS
from pocdojo.gateway.hub import DojoHub
from pocdojo.observability.middleware import ObservabilityMiddleware
from pocdojo.settings import Settings, get_settings


def create_dojo_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            app.state.verifier = services.verifier
            try:
                yield
            finally:
                # Sessions this process hosts (sockets that came through these routes):
                # stored and their leases released now, not when the leases expire.
                hub: DojoHub | None = getattr(app.state, "dojo_hub", None)
                if hub is not None and hub.host is not None:
                    await hub.host.close()
                internal = getattr(app.state, "dojo_internal_listener", None)
                if internal is not None:
                    internal.close()
                    await internal.wait_closed()

    return Starlette(
        routes=[
            *dojos.spec.routes(),
            *voice.spec.routes(),
            WebSocketRoute("/v1/dojos/{id}/sync", gateway.sync_socket),
            # y-websocket puts the room in the path: ws://HOST/v1/dojos/{id}/sync works as is.
            WebSocketRoute("/v1/dojos/{id}/events", gateway.events_socket),
        ],
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(AbsolutePaths),
            Middleware(ObservabilityMiddleware, service="dojo-api"),
            Middleware(MetricsMiddleware, service="dojo-api"),
        ],
    )

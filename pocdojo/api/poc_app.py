"""The PoC registry service (poc-api) as a Starlette app, and the local all-in-one app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pocdojo.api import openapi
from pocdojo.api.asgi import AbsolutePaths, prefix_dispatcher
from pocdojo.api.context import open_services
from pocdojo.api.dojo_app import create_dojo_app
from pocdojo.api.identity import create_identity_app
from pocdojo.api.metrics import MetricsMiddleware
from pocdojo.api.params import json_response
from pocdojo.api.problems import EXCEPTION_HANDLERS
from pocdojo.api.reports_app import create_reports_app
from pocdojo.api.search_app import create_search_app
from pocdojo.api.video_app import create_video_app
from pocdojo.observability.middleware import ObservabilityMiddleware
from pocdojo.settings import Settings, get_settings


async def openapi_json(request: Request) -> Response:
    return json_response(openapi.document())


def create_poc_app(settings: Settings | None = None) -> Starlette:
    """poc-api: PoCs, media, tenant members, health, metrics and the OpenAPI document."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # On app.state, not lifespan state: Ray Serve runs the lifespan but does not pass
        # its state into request scopes.
        async with open_services(settings) as services:
            app.state.services = services
            app.state.verifier = services.verifier
            yield

    routes = [route for spec in openapi.poc_api_specs() for route in spec.routes()]
    routes.append(Route("/v1/openapi.json", openapi_json, methods=["GET"]))
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(AbsolutePaths),
            Middleware(ObservabilityMiddleware, service="poc-api"),
            Middleware(MetricsMiddleware, service="poc-api"),
        ],
    )


def create_local_app(settings: Settings | None = None) -> Starlette:
    """Every service in one ASGI app for plain uvicorn (tests, benchmark baseline),
    dispatched by the same route prefixes as the Serve config."""
    settings = settings or get_settings()
    return prefix_dispatcher(
        {
            "/": create_poc_app(settings),
            "/auth": create_identity_app(settings),
            "/v1/search": create_search_app(settings),
            "/v1/dojos": create_dojo_app(settings),
            "/v1/reports": create_reports_app(settings),
            "/v1/videos": create_video_app(settings),
        }
    )

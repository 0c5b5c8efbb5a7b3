"""ASGI glue so each service sees the same paths under Ray Serve and under plain uvicorn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send


class AbsolutePaths:
    """Route on the full request path.

    Ray Serve mounts an application at its ``route_prefix`` by setting ``root_path``;
    Starlette would then route ``/v1/search`` as an empty path. Our routes are absolute
    (they are also the OpenAPI paths), so the prefix is only Serve's routing concern.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and scope.get("root_path"):
            scope = {**scope, "root_path": ""}
        await self.app(scope, receive, send)


def prefix_dispatcher(apps: dict[str, Starlette]) -> Starlette:
    """Every service in one ASGI app, dispatched by longest path prefix as Serve does."""
    ordered = sorted(apps.items(), key=lambda kv: len(kv[0]), reverse=True)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        for prefix, app in ordered:
            if prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                await app(scope, receive, send)
                return

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for _prefix, service in ordered:
                await stack.enter_async_context(service.router.lifespan_context(service))
            yield

    outer = Starlette(lifespan=lifespan)
    outer.router.routes = []
    outer.router.default = dispatch
    return outer

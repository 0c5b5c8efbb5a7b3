"""The gateway's own websocket listener: a `websockets` server for ``/v1/dojos/{id}/sync``
and ``/v1/dojos/{id}/events`` (plus ``GET /healthz``), run by each DojoGateway replica.

Sockets land here directly instead of crossing Ray Serve's HTTP proxy (which relays every
frame between two processes and applies its request timeout to websockets too); measured
in `make bench-dojo`. Replicas on one node share the port (SO_REUSEPORT); behind a load
balancer, the ingress routes the two websocket paths here and everything else to Serve.
No permessage-deflate: Yjs updates are small and binary, compression would only cost CPU.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from pocdojo.api.context import Services, open_services
from pocdojo.engine.limits import Limits
from pocdojo.gateway.flows import Refused, admit, run_events, run_sync, token_and_subprotocol
from pocdojo.gateway.hub import DojoHub
from pocdojo.observability.process import observe_process
from pocdojo.settings import Settings

log = logging.getLogger("pocdojo.gateway")
ROUTE = re.compile(r"^/v1/dojos/(?P<id>[^/]+)/(?P<kind>sync|events)$")
FRAME_SLACK = 16 * 1024  # the engine closes oversized messages itself, with its reason


class WebsocketsSocket:
    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection

    async def send_bytes(self, data: bytes) -> None:
        await self.connection.send(data)

    async def send_text(self, data: str) -> None:
        await self.connection.send(data)

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)

    async def receive(self) -> bytes | str | None:
        try:
            return await self.connection.recv()
        except ConnectionClosed:
            return None


def _route(connection: ServerConnection) -> tuple[str, str, str | None]:
    request = connection.request
    assert request is not None
    url = urlsplit(request.path)
    found = ROUTE.match(url.path)
    assert found is not None  # process_request refused anything else
    token = parse_qs(url.query).get("token", [None])[0]
    return found["id"], found["kind"], token


def _process_request(connection: ServerConnection, request: Request) -> Response | None:
    path = urlsplit(request.path).path
    if path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    if ROUTE.match(path) is None:
        return connection.respond(HTTPStatus.NOT_FOUND, "no such websocket\n")
    return None


def _select_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    _, chosen = token_and_subprotocol(None, ",".join(subprotocols))
    return Subprotocol(chosen) if chosen else None


class Gateway:
    """The listener and what it shares: services (database, Redis, token verifier) and the
    process's `DojoHub`."""

    def __init__(self, services: Services) -> None:
        from pocdojo.actors.dojo_session import get_or_create

        settings = services.settings

        def actor_for(tenant_id: str, dojo_id: str) -> Any:
            return get_or_create(settings, uuid.UUID(tenant_id), uuid.UUID(dojo_id))

        self.services = services
        self.hub = DojoHub(actor_for)

    async def handle(self, connection: ServerConnection) -> None:
        dojo_id, kind, token = _route(connection)
        if token is None:
            headers: Headers = connection.request.headers if connection.request else Headers()
            token, _ = token_and_subprotocol(None, headers.get("Sec-WebSocket-Protocol", ""))
        socket = WebsocketsSocket(connection)
        try:
            principal, dojo = await admit(self.services, token, dojo_id)
        except Refused as refused:
            await socket.close(refused.code, refused.reason)
            return
        try:
            if kind == "sync":
                await run_sync(self.hub, self.services, socket, principal, dojo)
            else:
                await run_events(self.services, socket, principal, dojo)
        except ConnectionClosed:
            pass


async def run_gateway(
    settings: Settings, stop: asyncio.Event, *, started: asyncio.Event | None = None
) -> None:
    """Serve dojo websockets on ``dojo_gateway_host:dojo_gateway_port`` until ``stop``."""
    observe_process("dojo-gateway")
    async with open_services(settings) as services:
        gateway = Gateway(services)
        async with serve(
            gateway.handle,
            settings.dojo_gateway_host,
            settings.dojo_gateway_port,
            reuse_port=True,
            compression=None,
            max_size=Limits().max_message_bytes + FRAME_SLACK,
            process_request=_process_request,
            select_subprotocol=_select_subprotocol,
            ping_interval=20,
            ping_timeout=20,
        ):
            log.info(
                "dojo gateway listening on %s:%d",
                settings.dojo_gateway_host,
                settings.dojo_gateway_port,
            )
            if started is not None:
                started.set()
            await stop.wait()

"""Dojo websockets as Starlette routes (``/v1/dojos/{id}/sync`` and ``/events``), for the
path through Ray Serve's HTTP proxy and for the all-in-one local app.

The production path is the gateway's own listener (`pocdojo.gateway.server`, measured
faster: `make bench-dojo`); both run the same flows (`pocdojo.gateway.flows`) over the same
per-process `DojoHub`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pocdojo.api.context import Services
from pocdojo.gateway.flows import (
    Refused,
    admit,
    events_channel,
    publish_event,
    run_events,
    run_sync,
    token_and_subprotocol,
)
from pocdojo.gateway.hub import DojoHub
from pocdojo.gateway.server import Gateway, start_internal_listener

__all__ = ["events_channel", "events_socket", "publish_event", "sync_socket"]


class StarletteSocket:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def send_text(self, data: str) -> None:
        await self.ws.send_text(data)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            await self.ws.close(code, reason)

    async def receive(self) -> bytes | str | None:
        try:
            frame = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if frame["type"] == "websocket.disconnect":
            return None
        data: bytes | str | None = frame.get("bytes")
        if data is None:
            data = frame.get("text")
        return data if data is not None else b""


async def hub_of(ws: WebSocket, services: Services) -> DojoHub:
    """The process's hub, made on first use (one per app, shared by its sockets). Hosting
    sessions, the process also opens the internal listener other gateways pipe to."""
    hub: DojoHub | None = getattr(ws.app.state, "dojo_hub", None)
    if hub is None:
        async with _hub_lock:
            hub = getattr(ws.app.state, "dojo_hub", None)
            if hub is None:
                gateway = Gateway(services)
                ws.app.state.dojo_internal_listener = await start_internal_listener(gateway)
                hub = ws.app.state.dojo_hub = gateway.hub
    return hub


_hub_lock = asyncio.Lock()


async def _accept(ws: WebSocket) -> tuple[Services, StarletteSocket, Any] | None:
    services: Services = ws.app.state.services
    token, subprotocol = token_and_subprotocol(
        ws.query_params.get("token"), ws.headers.get("sec-websocket-protocol", "")
    )
    await ws.accept(subprotocol=subprotocol)
    socket = StarletteSocket(ws)
    try:
        admitted = await admit(services, token, ws.path_params["id"].split("/")[0])
    except Refused as refused:
        await socket.close(refused.code, refused.reason)
        return None
    return services, socket, admitted


async def sync_socket(ws: WebSocket) -> None:
    accepted = await _accept(ws)
    if accepted is not None:
        services, socket, (principal, dojo) = accepted
        token, _ = token_and_subprotocol(
            ws.query_params.get("token"), ws.headers.get("sec-websocket-protocol", "")
        )
        hub = await hub_of(ws, services)
        await run_sync(hub, services, socket, principal, dojo, token=token)


async def events_socket(ws: WebSocket) -> None:
    accepted = await _accept(ws)
    if accepted is not None:
        services, socket, (principal, dojo) = accepted
        await run_events(services, socket, principal, dojo)

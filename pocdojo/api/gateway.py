"""Dojo websockets as Starlette routes (``/v1/dojos/{id}/sync`` and ``/events``), for the
path through Ray Serve's HTTP proxy and for the all-in-one local app.

The production path is the gateway's own listener (`pocdojo.gateway.server`, measured
faster: `make bench-dojo`); both run the same flows (`pocdojo.gateway.flows`) over the same
per-process `DojoHub`.
"""

from __future__ import annotations

import uuid
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


def hub_of(ws: WebSocket, services: Services) -> DojoHub:
    """The process's hub, made on first use (one per app, shared by its sockets)."""
    hub: DojoHub | None = getattr(ws.app.state, "dojo_hub", None)
    if hub is None:
        from pocdojo.actors.dojo_session import get_or_create

        def actor_for(tenant_id: str, dojo_id: str) -> Any:
            return get_or_create(services.settings, uuid.UUID(tenant_id), uuid.UUID(dojo_id))

        hub = DojoHub(actor_for)
        ws.app.state.dojo_hub = hub
    return hub


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
        await run_sync(hub_of(ws, services), services, socket, principal, dojo)


async def events_socket(ws: WebSocket) -> None:
    accepted = await _accept(ws)
    if accepted is not None:
        services, socket, (principal, dojo) = accepted
        await run_events(services, socket, principal, dojo)

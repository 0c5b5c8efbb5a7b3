"""dojo gateway: websockets <-> DojoSession actors (``/sync``) and dojo events (``/events``).

``/v1/dojos/{id}/sync`` speaks exactly the Yjs websocket protocol, so a stock y-websocket
``WebsocketProvider`` at ``ws://HOST/v1/dojos`` with room ``{id}/sync`` works. The gateway
authenticates, checks the dojo is the caller's tenant's, then only moves bytes: inbound
messages go to the actor, which answers the sender and queues broadcasts per connection;
a writer task long-polls that queue. ``/events`` is JSON: participant joined/left, chat,
dojo ended, fanned out through Redis pub/sub (``t:<tenant>:dojo:<id>:events``) so every
gateway replica sees every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any, cast

import redis.asyncio as aioredis
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pocdojo.api.context import Services
from pocdojo.errors import DomainError, NotFound
from pocdojo.storage import dojos
from pocdojo.types import Principal

log = logging.getLogger("pocdojo.gateway")
POLICY_VIOLATION, UNSUPPORTED_DATA, TRY_AGAIN_LATER, SERVICE_RESTART = 1008, 1003, 1013, 1012
JOIN_ATTEMPTS, JOIN_RETRY_S = 20, 0.5


def events_channel(tenant_id: uuid.UUID, dojo_id: uuid.UUID) -> str:
    return f"t:{tenant_id}:dojo:{dojo_id}:events"


async def publish_event(
    redis: aioredis.Redis, tenant_id: uuid.UUID, dojo_id: uuid.UUID, event: dict[str, Any]
) -> None:
    """Best effort: the event is already persisted where it matters (chat, dojo rows)."""
    with contextlib.suppress(aioredis.RedisError, OSError):
        await redis.publish(events_channel(tenant_id, dojo_id), json.dumps(event))


def _token(ws: WebSocket) -> tuple[str | None, str | None]:
    """The bearer token (``token`` query or a ``Sec-WebSocket-Protocol`` entry) and the
    subprotocol to accept (one the client offered)."""
    offered = [
        p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()
    ]
    from_protocol = next((p for p in offered if p.count(".") == 2), None)
    others = [p for p in offered if p != from_protocol]
    subprotocol = others[0] if others else from_protocol
    return ws.query_params.get("token") or from_protocol, subprotocol


async def _admit(ws: WebSocket) -> tuple[Principal, dojos.Dojo] | None:
    """Accept the socket, then authenticate and authorise; close with 1008 (before any
    document byte) when the token or the dojo is not right."""
    services: Services = ws.app.state.services
    token, subprotocol = _token(ws)
    await ws.accept(subprotocol=subprotocol)
    try:
        if not token:
            raise DomainError("a token is required")
        principal = await services.verifier.verify(token)
        dojo_id = uuid.UUID(ws.path_params["id"].split("/")[0])
        async with services.db.tenant_tx(principal.tenant_id) as conn:
            dojo = await dojos.get_dojo(conn, dojo_id)
    except (DomainError, ValueError) as exc:
        reason = "no such dojo" if isinstance(exc, (NotFound, ValueError)) else "unauthorized"
        await ws.close(POLICY_VIOLATION, reason)
        return None
    return principal, dojo


async def sync_socket(ws: WebSocket) -> None:
    from pocdojo.actors.dojo_session import get_or_create

    admitted = await _admit(ws)
    if admitted is None:
        return
    principal, dojo = admitted
    services: Services = ws.app.state.services
    conn_id = uuid.uuid4().hex
    actor: Any = None
    initial: list[bytes] | None = None
    # A session actor that was just killed restarts within seconds: wait for it rather
    # than bouncing every reconnecting client.
    for attempt in range(JOIN_ATTEMPTS):
        try:
            actor = get_or_create(services.settings, principal.tenant_id, dojo.id)
            initial = await actor.join.remote(
                conn_id, str(principal.user_id), dojo.status == "live"
            )
            break
        except Exception as exc:
            log.info("dojo %s: session not ready (attempt %d): %s", dojo.id, attempt + 1, exc)
            await asyncio.sleep(JOIN_RETRY_S)
    if initial is None:
        await ws.close(TRY_AGAIN_LATER, "session unavailable, retry")
        return
    # From here on the actor knows this connection: every exit path must tell it we left,
    # or its queue grows forever and the session never goes idle.
    writer: asyncio.Task[None] | None = None
    try:
        for message in initial:
            await ws.send_bytes(message)
        await _participation(services, principal, dojo.id, joined=True)
        await publish_event(
            services.redis,
            principal.tenant_id,
            dojo.id,
            {"type": "participant.joined", "user_id": str(principal.user_id)},
        )
        writer = asyncio.create_task(_pump_outbox(ws, actor, conn_id))
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            data = frame.get("bytes")
            if data is None:
                await ws.close(UNSUPPORTED_DATA, "the Yjs protocol is binary")
                break
            replies, close = await actor.receive.remote(conn_id, data)
            for reply in replies:
                await ws.send_bytes(reply)
            if close is not None:
                await ws.close(close.code, close.reason)
                break
    except WebSocketDisconnect:
        pass
    except Exception as exc:  # the actor died or restarts: the client reconnects and resyncs
        log.info("dojo %s: connection %s ends: %s", dojo.id, conn_id, exc)
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.close(SERVICE_RESTART, "session restarting, reconnect")
    finally:
        if writer is not None:
            writer.cancel()
        # Submitted before any await, so it goes out even if this task is being cancelled.
        leaving = actor.leave.remote(conn_id)
        with contextlib.suppress(BaseException):
            await leaving
        await _participation(services, principal, dojo.id, joined=False)
        await publish_event(
            services.redis,
            principal.tenant_id,
            dojo.id,
            {"type": "participant.left", "user_id": str(principal.user_id)},
        )


async def _pump_outbox(ws: WebSocket, actor: Any, conn_id: str) -> None:
    try:
        while True:
            messages = await actor.outbox.remote(conn_id, 20.0)
            if messages is None:  # the actor restarted and forgot us
                await ws.close(SERVICE_RESTART, "session restarted, reconnect")
                return
            for message in messages:
                await ws.send_bytes(message)
    except asyncio.CancelledError:
        raise
    except Exception:
        with contextlib.suppress(Exception):
            await ws.close(SERVICE_RESTART, "session restarting, reconnect")


async def _participation(
    services: Services, principal: Principal, dojo_id: uuid.UUID, *, joined: bool
) -> None:
    with contextlib.suppress(DomainError):
        async with services.db.tenant_tx(principal.tenant_id) as conn:
            if joined:
                await conn.execute(
                    "insert into dojo_participation (tenant_id, dojo_id, user_id) "
                    "values ($1, $2, $3)",
                    principal.tenant_id,
                    dojo_id,
                    principal.user_id,
                )
            else:
                await conn.execute(
                    """update dojo_participation set left_at = now()
                       where dojo_id = $1 and user_id = $2 and left_at is null
                         and joined_at = (select max(joined_at) from dojo_participation
                                          where dojo_id = $1 and user_id = $2)""",
                    dojo_id,
                    principal.user_id,
                )


async def events_socket(ws: WebSocket) -> None:
    admitted = await _admit(ws)
    if admitted is None:
        return
    principal, dojo = admitted
    services: Services = ws.app.state.services
    pubsub = services.redis.pubsub()
    await pubsub.subscribe(events_channel(principal.tenant_id, dojo.id))
    await ws.send_json({"type": "hello", "dojo": dojo.to_json()})

    async def forward() -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                data = message["data"]
                await ws.send_text(data.decode() if isinstance(data, bytes) else data)

    forwarder = asyncio.create_task(forward())
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break  # the channel is server to client; anything the client sends is ignored
    finally:
        forwarder.cancel()
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe()
            await cast(Any, pubsub).aclose()

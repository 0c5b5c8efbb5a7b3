"""What a dojo websocket does, whatever server holds it (the gateway's own `websockets`
listener or a Starlette route behind Ray Serve's proxy): admit, then ``/sync`` or
``/events``.

Admission happens before any document byte: a missing or bad token, another tenant's dojo
or an unknown one closes with 1008. ``/sync`` then only moves bytes between the socket and
the dojo's `DojoLink`; ``/events`` forwards the dojo's Redis pub/sub channel
(``t:<tenant>:dojo:<id>:events``), so every gateway replica sees every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import quote

import redis.asyncio as aioredis
from opentelemetry.trace import SpanKind
from websockets.exceptions import WebSocketException

from pocdojo.api.context import Services
from pocdojo.errors import DomainError, NotFound
from pocdojo.gateway.hub import DojoHub, DojoLink, LinkBroken, Outgoing
from pocdojo.metrics import DOJO_ACTOR_RESTARTS, DOJO_CLIENTS_CONNECTED
from pocdojo.observability import tracing
from pocdojo.storage import dojos
from pocdojo.types import Principal

if TYPE_CHECKING:
    from pocdojo.gateway.host import SessionHost

log = logging.getLogger("pocdojo.gateway")
POLICY_VIOLATION, UNSUPPORTED_DATA, TRY_AGAIN_LATER, SERVICE_RESTART = 1008, 1003, 1013, 1012
CLEANUP_WAIT_S = 10.0  # how long a closed socket's task waits for its leave to be recorded
_CLEANUPS: set[asyncio.Future[None]] = set()


class Socket(Protocol):
    """The few things a flow needs from an accepted websocket."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def receive(self) -> bytes | str | None:
        """The next message; None once the peer is gone."""
        ...


Listen = Callable[[Callable[[bytes | str], bool]], Awaitable[None]]
"""What a socket may offer besides `Socket.receive`: hand each message to a callback as it
is parsed (the gateway's own listener), until the peer is gone or the callback returns
False."""


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def events_channel(tenant_id: uuid.UUID, dojo_id: uuid.UUID) -> str:
    return f"t:{tenant_id}:dojo:{dojo_id}:events"


async def publish_event(
    redis: aioredis.Redis, tenant_id: uuid.UUID, dojo_id: uuid.UUID, event: dict[str, Any]
) -> None:
    """Best effort: the event is already persisted where it matters (chat, dojo rows)."""
    with contextlib.suppress(aioredis.RedisError, OSError):
        await redis.publish(events_channel(tenant_id, dojo_id), json.dumps(event))


def token_and_subprotocol(
    query_token: str | None, offered_header: str
) -> tuple[str | None, str | None]:
    """The bearer token (``token`` query or a ``Sec-WebSocket-Protocol`` entry shaped like
    a JWT) and the subprotocol to accept (one the client offered)."""
    offered = [p.strip() for p in offered_header.split(",") if p.strip()]
    from_protocol = next((p for p in offered if p.count(".") == 2), None)
    others = [p for p in offered if p != from_protocol]
    subprotocol = others[0] if others else from_protocol
    return query_token or from_protocol, subprotocol


async def admit(
    services: Services, token: str | None, raw_dojo_id: str
) -> tuple[Principal, dojos.Dojo]:
    """Who is calling and the dojo they may open; `Refused` (1008) otherwise."""
    try:
        if not token:
            raise DomainError("a token is required")
        principal = await services.verifier.verify(token)
        dojo_id = uuid.UUID(raw_dojo_id)
        async with services.db.tenant_tx(principal.tenant_id) as conn:
            dojo = await dojos.get_dojo(conn, dojo_id)
    except (DomainError, ValueError) as exc:
        reason = "no such dojo" if isinstance(exc, (NotFound, ValueError)) else "unauthorized"
        raise Refused(POLICY_VIOLATION, reason) from None
    return principal, dojo


async def _joined(services: Services, principal: Principal, dojo: dojos.Dojo) -> datetime | None:
    """Record and announce a join; the participation row's key (its ``joined_at``), None if
    it could not be recorded."""
    started: datetime | None = None
    with contextlib.suppress(DomainError):
        async with services.db.tenant_tx(principal.tenant_id) as conn:
            started = await conn.fetchval(
                "insert into dojo_participation (tenant_id, dojo_id, user_id) "
                "values ($1, $2, $3) returning joined_at",
                principal.tenant_id,
                dojo.id,
                principal.user_id,
            )
    await _announce(services, principal, dojo, "participant.joined")
    return started


async def _left(
    services: Services, principal: Principal, dojo: dojos.Dojo, joined_at: datetime | None
) -> None:
    """Record and announce the leave of the join that returned ``joined_at``: each
    connection closes its own row, so a user with two tabs open closes the right one
    whichever leaves first."""
    if joined_at is not None:
        with contextlib.suppress(DomainError):
            async with services.db.tenant_tx(principal.tenant_id) as conn:
                await conn.execute(
                    """update dojo_participation set left_at = now()
                       where dojo_id = $1 and user_id = $2 and joined_at = $3
                         and left_at is null""",
                    dojo.id,
                    principal.user_id,
                    joined_at,
                )
    await _announce(services, principal, dojo, "participant.left")


async def _announce(services: Services, principal: Principal, dojo: dojos.Dojo, kind: str) -> None:
    await publish_event(
        services.redis,
        principal.tenant_id,
        dojo.id,
        {"type": kind, "user_id": str(principal.user_id)},
    )


async def run_sync(
    hub: DojoHub,
    services: Services,
    socket: Socket,
    principal: Principal,
    dojo: dojos.Dojo,
    *,
    token: str | None = None,
    internal: bool = False,
) -> None:
    """The Yjs protocol between ``socket`` and the dojo's session, until either side ends.

    With sessions hosted by gateways, a socket for a dojo another process owns is piped to
    that owner (``token`` goes along: the owner admits it again); ``internal`` sockets are
    such pipes, and are never piped on (the dojo moved: the client reconnects)."""
    # One span per connection; the actor's join runs under it (traceparent in the call).
    with tracing.tracer().start_as_current_span(
        "dojo sync connection",
        kind=SpanKind.SERVER,
        attributes={"pocdojo.dojo_id": str(dojo.id), "pocdojo.tenant_id": str(dojo.tenant_id)},
    ):
        if hub.host is not None and not await _hosted_here(hub.host, socket, dojo, token, internal):
            return
        DOJO_CLIENTS_CONNECTED.labels("sync").inc()
        try:
            await _run_sync(hub, services, socket, principal, dojo)
        finally:
            DOJO_CLIENTS_CONNECTED.labels("sync").dec()


async def _hosted_here(
    host: SessionHost, socket: Socket, dojo: dojos.Dojo, token: str | None, internal: bool
) -> bool:
    """True if this process owns the dojo (claimed now if nobody did); otherwise the socket
    was served by piping it to the owner, or closed, and False."""
    tenant_id, dojo_id = str(dojo.tenant_id), str(dojo.id)
    for _ in range(2):
        owner = await host.owner(tenant_id, dojo_id)
        if owner is None:
            return True
        if internal or token is None:
            await socket.close(SERVICE_RESTART, "dojo moved to another gateway, reconnect")
            return False
        if await pipe(socket, f"{owner}/v1/dojos/{dojo_id}/sync", token):
            return False
        log.warning("dojo %s: owner %s unreachable, taking the dojo over", dojo_id, owner)
        await host.evict_owner(tenant_id, dojo_id, owner)
        DOJO_ACTOR_RESTARTS.inc()  # the session is rebuilt here from snapshot + log
    await socket.close(TRY_AGAIN_LATER, "session unavailable, retry")
    return False


async def pipe(socket: Socket, url: str, token: str) -> bool:
    """Relay frames between ``socket`` and the websocket at ``url`` until either side
    closes (the other is closed with the same code and reason). False if ``url`` could
    not be reached (nothing was sent or received)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    try:
        upstream = await connect(
            f"{url}?token={quote(token)}",
            compression=None,
            max_size=None,
            open_timeout=3,
            ping_interval=None,
        )
    except (OSError, TimeoutError, WebSocketException) as exc:
        log.info("pipe to %s failed: %s", url, exc)
        return False

    async def down() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                if isinstance(message, bytes):
                    await socket.send_bytes(message)
                else:
                    await socket.send_text(message)

    async def up() -> None:
        while (data := await socket.receive()) is not None:
            await upstream.send(data)

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        code = upstream.close_code
        if code is not None:  # the owner ended it: the same close to the client
            reason = upstream.close_reason or ""
            if code in (1005, 1006, 1015):  # not sendable: the owner went away
                code, reason = SERVICE_RESTART, "gateway lost the session, reconnect"
            with contextlib.suppress(Exception):
                await socket.close(code, reason)
        with contextlib.suppress(Exception):
            await upstream.close()
    return True


async def _run_sync(
    hub: DojoHub, services: Services, socket: Socket, principal: Principal, dojo: dojos.Dojo
) -> None:
    conn_id = uuid.uuid4().hex
    me = asyncio.current_task()
    out = Outgoing(
        socket.send_bytes,
        socket.close,
        on_broken=me.cancel if me else None,
        send_now=getattr(socket, "send_now", None),
        write_frame=socket.frame_writer() if hasattr(socket, "frame_writer") else None,
    )
    # The join is announced before the joiner gets its sync, so that nothing the joiner does
    # (an edit, a chat sent over HTTP) can reach `/events` ahead of it; from here on every
    # exit path announces the leave (and, once joined, tells the session we left, or it
    # never goes idle).
    link: DojoLink | None = None
    joined_at: datetime | None = None
    try:
        joined_at = await _joined(services, principal, dojo)
        with tracing.tracer().start_as_current_span("dojo join"):
            link = await hub.join(
                str(principal.tenant_id),
                str(dojo.id),
                conn_id,
                str(principal.user_id),
                dojo.status == "live",
                out,
            )
        if link is None:
            await socket.close(TRY_AGAIN_LATER, "session unavailable, retry")
            return
        await _serve(link, socket, conn_id, out)
    finally:
        if link is not None:
            # Detached before any await: this task may be cancelled (a proxied socket
            # cut). Each wait below is bounded: a session or store that does not answer
            # must not keep a dead socket's task alive.
            leaving = link.detach(conn_id)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(leaving, CLEANUP_WAIT_S)
        left = asyncio.ensure_future(_left(services, principal, dojo, joined_at))
        _CLEANUPS.add(left)  # the loop holds tasks weakly; this one may outlive the socket's
        left.add_done_callback(_CLEANUPS.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(left), CLEANUP_WAIT_S)


async def _serve(link: DojoLink, socket: Socket, conn_id: str, out: Outgoing) -> None:
    """Hand the client's messages to the session until the socket or the link ends."""

    def take(data: bytes | str) -> bool:
        """One message from the client; False once the socket is being closed."""
        if isinstance(data, str):
            out.close(UNSUPPORTED_DATA, "the Yjs protocol is binary")
            return False
        link.submit(conn_id, data)
        return not out.closed

    listen: Listen | None = getattr(socket, "listen", None)
    try:
        if listen is not None:
            await listen(take)
        else:
            while not out.closed and (data := await socket.receive()) is not None:
                if not take(data):
                    break
    except LinkBroken:
        out.close(SERVICE_RESTART, "session restarting, reconnect")
    except asyncio.CancelledError:
        if not out.broken:
            raise  # cancelled from outside; the caller's cleanup still runs


async def run_events(
    services: Services, socket: Socket, principal: Principal, dojo: dojos.Dojo
) -> None:
    """Forward the dojo's events (JSON) until the client goes away."""
    DOJO_CLIENTS_CONNECTED.labels("events").inc()
    try:
        await _run_events(services, socket, principal, dojo)
    finally:
        DOJO_CLIENTS_CONNECTED.labels("events").dec()


async def _run_events(
    services: Services, socket: Socket, principal: Principal, dojo: dojos.Dojo
) -> None:
    pubsub = services.redis.pubsub()
    await pubsub.subscribe(events_channel(principal.tenant_id, dojo.id))
    await socket.send_text(json.dumps({"type": "hello", "dojo": dojo.to_json()}))

    async def forward() -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                data = message["data"]
                await socket.send_text(data.decode() if isinstance(data, bytes) else data)

    forwarder = asyncio.create_task(forward())
    try:
        while await socket.receive() is not None:
            pass  # the channel is server to client; anything the client sends is ignored
    finally:
        forwarder.cancel()
        with contextlib.suppress(BaseException):
            await forwarder
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe()
            await cast(Any, pubsub).aclose()

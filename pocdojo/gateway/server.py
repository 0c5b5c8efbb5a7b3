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
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from pocdojo.api.context import Services, open_services
from pocdojo.engine.limits import Limits
from pocdojo.gateway.connection import WRITE_NOW_BUFFER, PushConnection, WriteFrame, server_frame
from pocdojo.gateway.flows import Refused, admit, run_events, run_sync, token_and_subprotocol
from pocdojo.gateway.host import SessionHost
from pocdojo.gateway.hub import DojoHub
from pocdojo.observability.loop import watch_loop_lag
from pocdojo.observability.process import observe_process
from pocdojo.runtime import quiet_gc
from pocdojo.settings import Settings

log = logging.getLogger("pocdojo.gateway")
ROUTE = re.compile(r"^/v1/dojos/(?P<id>[^/]+)/(?P<kind>sync|events)$")
FRAME_SLACK = 16 * 1024  # the engine closes oversized messages itself, with its reason


class WebsocketsSocket:
    def __init__(self, connection: PushConnection) -> None:
        self.connection = connection

    async def send_bytes(self, data: bytes) -> None:
        await self.connection.send(data)

    def send_now(self, data: bytes) -> bool:
        """Write one binary message without awaiting, unless the socket's buffer is already
        above `WRITE_NOW_BUFFER` (False: queue it and let the writer wait for the drain).

        What `websockets.broadcast` does for one connection, with the frame built once per
        message: a fan-out writes the same bytes to every peer, and a server's frames are
        unmasked (no extension is negotiated: compression is off), so they are identical.
        A connection that is not open writes nothing (its reader is about to end). The frame
        goes out once the read being handled is done (outside a read, at the end of the event
        loop's turn), with the others this socket gets meanwhile (`PushConnection.write_soon`)."""
        connection = self.connection
        protocol = connection.protocol
        if not protocol.extensions:
            return connection.write_frame(server_frame(data), gather=True)
        if connection.transport.get_write_buffer_size() > WRITE_NOW_BUFFER:
            return False
        if protocol.state is State.OPEN and connection.send_in_progress is None:
            broadcast((connection,), data, raise_exceptions=True)  # websockets frames it
        return True

    def frame_writer(self) -> WriteFrame | None:
        """`PushConnection.write_frame` when the socket's frames are plain (no extension
        negotiated), for fan-outs that frame a message once for every peer."""
        connection = self.connection
        return None if connection.protocol.extensions else connection.write_frame

    async def send_text(self, data: str) -> None:
        await self.connection.send(data)

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)

    async def receive(self) -> bytes | str | None:
        return await self.connection.next_message()

    async def listen(self, on_message: Callable[[bytes | str], bool]) -> None:
        """Hand each message to ``on_message`` as soon as it is parsed (no task switch per
        message), until the peer is gone or ``on_message`` returns False; an exception it
        raises ends the listening and is raised here."""
        connection = self.connection
        stopped: asyncio.Future[None] = connection.loop.create_future()

        def deliver(message: bytes | str) -> None:
            if stopped.done():
                return
            try:
                more = on_message(message)
            except Exception as exc:
                stopped.set_exception(exc)
                return
            if not more:
                stopped.set_result(None)

        connection.consume(deliver)
        try:
            await asyncio.wait(
                [stopped, connection.connection_lost_waiter], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connection.consume(None)
        if stopped.done():
            stopped.result()


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


def make_hub(services: Services) -> DojoHub:
    """The process's hub: over sessions it hosts itself (``dojo_session_host =
    "gateway"``) or over one Ray actor per dojo (``"actor"``)."""
    settings = services.settings
    if settings.dojo_session_host == "gateway":
        host = SessionHost(settings, services.db, services.blobs, services.redis)
        return DojoHub(host.session, host)

    from pocdojo.actors.dojo_session import get_or_create

    def actor_for(tenant_id: str, dojo_id: str) -> Any:
        return get_or_create(settings, uuid.UUID(tenant_id), uuid.UUID(dojo_id))

    return DojoHub(actor_for)


class Gateway:
    """The listener and what it shares: services (database, Redis, token verifier) and the
    process's `DojoHub`."""

    def __init__(self, services: Services, hub: DojoHub | None = None) -> None:
        self.services = services
        self.hub = hub or make_hub(services)

    async def handle_internal(self, connection: ServerConnection) -> None:
        """A socket another gateway process piped here because this one owns the dojo."""
        await self.handle(connection, internal=True)

    async def handle(self, connection: ServerConnection, *, internal: bool = False) -> None:
        assert isinstance(connection, PushConnection)  # see _listener
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
                await run_sync(
                    self.hub, self.services, socket, principal, dojo, token=token, internal=internal
                )
            else:
                await run_events(self.services, socket, principal, dojo)
        except ConnectionClosed:
            pass


def _listener(handler: Any, host: str, port: int, *, reuse_port: bool) -> Any:
    return serve(
        handler,
        host,
        port,
        reuse_port=reuse_port,
        compression=None,
        create_connection=PushConnection,
        max_size=Limits().max_message_bytes + FRAME_SLACK,
        process_request=_process_request,
        select_subprotocol=_select_subprotocol,
        ping_interval=20,
        ping_timeout=20,
    )


async def start_internal_listener(gateway: Gateway) -> Server | None:
    """The listener other processes pipe sockets to (the dojos this one owns), on an
    ephemeral port of ``dojo_gateway_internal_host``; None when sessions are actors."""
    host = gateway.hub.host
    if host is None:
        return None
    address = gateway.services.settings.dojo_gateway_internal_host
    server: Server = await _listener(gateway.handle_internal, address, 0, reuse_port=False)
    port = next(iter(server.sockets)).getsockname()[1]
    host.address = f"ws://{address}:{port}"
    return server


async def run_gateway(
    settings: Settings,
    stop: asyncio.Event,
    *,
    started: asyncio.Event | None = None,
    expose: Callable[[Gateway], object] | None = None,
    own_process: bool = False,
) -> None:
    """Serve dojo websockets on ``dojo_gateway_host:dojo_gateway_port`` until ``stop``.
    ``own_process``: the process is the gateway's alone (a Serve replica, the standalone
    server), so its garbage collector may be tuned for it (`quiet_gc`)."""
    observe_process("dojo-gateway")
    async with open_services(settings) as services:
        gateway = Gateway(services)
        if expose is not None:  # tests reach the hosted sessions through it
            expose(gateway)
        internal = await start_internal_listener(gateway)
        lag = asyncio.get_running_loop().create_task(watch_loop_lag("dojo-gateway"))
        try:
            async with _listener(
                gateway.handle,
                settings.dojo_gateway_host,
                settings.dojo_gateway_port,
                reuse_port=True,
            ):
                log.info(
                    "dojo gateway listening on %s:%d (sessions: %s)",
                    settings.dojo_gateway_host,
                    settings.dojo_gateway_port,
                    settings.dojo_session_host,
                )
                if started is not None:
                    started.set()
                if own_process:
                    quiet_gc()
                await stop.wait()
        finally:
            lag.cancel()
            if gateway.hub.host is not None:
                await gateway.hub.host.close()
            if internal is not None:
                internal.close()
                await internal.wait_closed()


def main() -> None:
    """``python -m pocdojo.gateway.server``: one gateway process outside Serve (settings from
    the environment), until SIGTERM or SIGINT."""
    import signal

    from pocdojo.observability.logs import configure_logging
    from pocdojo.settings import get_settings

    configure_logging("dojo-gateway")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_gateway(get_settings(), stop, own_process=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()

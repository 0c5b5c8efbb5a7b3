"""A gateway process's pipes to dojo session actors: one `DojoLink` per live dojo it holds
sockets for, shared by all of that dojo's connections here.

Per link, one task sends the connections' incoming messages to the actor in batches (what
arrived while the previous call was in flight goes in the next one; order per connection
is kept) and one task long-polls the actor for broadcasts and fans each out to every local
connection but its sender. So an edit costs one ``receive`` and one ``poll`` per gateway,
not one call per peer. Each connection has an `Outgoing` queue drained by its own writer,
so a slow socket never holds up the others; one that falls too far behind is closed (its
client reconnects and resyncs).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pocdojo.engine.outcome import Close
from pocdojo.gateway.connection import WriteFrame, server_frame
from pocdojo.gateway.host import LocalSession
from pocdojo.observability.tracing import current_traceparent

if TYPE_CHECKING:
    from pocdojo.gateway.host import SessionHost

log = logging.getLogger("pocdojo.gateway")

SERVICE_RESTART, TRY_AGAIN_LATER = 1012, 1013
POLL_WAIT_S = 20.0
MAX_QUEUED_MESSAGES = 20_000
JOIN_ATTEMPTS, JOIN_RETRY_S = 40, 0.25
# A join waits for the session to load (snapshot + log); past this, try again. A join that
# times out but lands later leaves a connection whose link never polls: the actor forgets
# it after its gateway TTL.
JOIN_CALL_TIMEOUT_S = 10.0

Send = Callable[[bytes], Awaitable[None]]
SendNow = Callable[[bytes], bool]  # wrote it at once (True) or the caller must queue it
CloseSocket = Callable[[int, str], Awaitable[None]]
ActorFactory = Callable[[], Any]


class Outgoing:
    """What one socket still has to send, in order. Held until `start` so the initial sync
    goes out before anything broadcast meanwhile.

    With ``send_now`` (a socket that can write a frame without awaiting: the gateway's own
    listener), a message is handed to the socket as it is put when nothing is queued before
    it and the socket's buffer has room (it goes out with the socket's other frames of the
    read being handled): no task switch per frame and peer, the fan-out's main cost.
    Otherwise it is queued for the writer task, which waits for the socket to drain.
    With ``write_frame`` too (its frames are plain), a fan-out that framed a message once
    hands the frame over as is (`put_framed`)."""

    def __init__(
        self,
        send: Send,
        close: CloseSocket,
        on_broken: Callable[[], object] | None = None,
        send_now: SendNow | None = None,
        write_frame: WriteFrame | None = None,
    ) -> None:
        self._send = send
        self._send_now = send_now
        self._write_frame = write_frame
        self._direct: WriteFrame | None = None  # write_frame once started, until closed
        self._close = close
        self._on_broken = on_broken
        self._queue: deque[bytes | Close] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.broken = False

    def start(self, first: list[bytes]) -> None:
        self._queue.extendleft(reversed(first))
        self._task = asyncio.get_running_loop().create_task(self._write())
        self._wake.set()
        if not self.closed:
            self._direct = self._write_frame

    def put_framed(self, message: bytes, frame: bytes) -> None:
        """`put` for a fan-out that framed ``message`` once for all its peers
        (`server_frame`): the frame is written as is when nothing waits before it."""
        direct = self._direct
        if direct is not None and not self._queue:
            try:
                if direct(frame):
                    return
            except Exception as exc:
                self._broke(exc)
                return
        self.put(message)

    def put(self, message: bytes) -> None:
        if self.closed:
            return
        if self._send_now is not None and self._task is not None and not self._queue:
            try:
                if self._send_now(message):
                    return
            except Exception as exc:
                self._broke(exc)
                return
        if len(self._queue) >= MAX_QUEUED_MESSAGES:
            self.close(TRY_AGAIN_LATER, "too far behind, reconnect")
            return
        self._queue.append(message)
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        """Close after what is already queued (a reply before its close goes out)."""
        if not self.closed:
            self.closed = True
            self._direct = None
            self._queue.append(Close(code, reason))
            self._wake.set()

    async def _write(self) -> None:
        queue = self._queue
        send_now = self._send_now
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    item = queue.popleft()
                    if isinstance(item, Close):
                        await self._close(item.code, item.reason)
                        return
                    if send_now is None or not send_now(item):
                        await self._send(item)
        except Exception as exc:
            self._broke(exc)

    def _broke(self, exc: Exception) -> None:
        # The socket is gone. Its reader may never hear of it (a proxy that drops the
        # connection without a disconnect): tell its owner, who ends the connection.
        log.debug("writer stopped: %s", exc)
        self.broken = self.closed = True
        self._direct = None
        if self._on_broken is not None:
            self._on_broken()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


class LinkBroken(Exception):
    """The link's actor restarted or died; the connection should be closed with 1012."""


class DojoLink:
    """This gateway's pipe to one dojo's session actor."""

    def __init__(self, hub: DojoHub, key: tuple[str, str], actor: Any, link_id: str) -> None:
        self.hub = hub
        self.key = key
        self.actor = actor
        self.link_id = link_id
        self.connections: dict[str, Outgoing] = {}
        self.broken = False
        self._inbound: list[tuple[str, bytes]] = []
        self._inbound_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self, conn_id: str, user_id: str, can_write: bool, out: Outgoing) -> bool:
        """Register ``out`` with the actor and send it the initial sync. False if the actor
        is stopping (idle) and the caller should retry with a fresh link."""
        self.connections[conn_id] = out  # before the call: broadcasts may overtake its reply
        try:
            initial = await self._join_session(conn_id, user_id, can_write)
        except BaseException:
            self.connections.pop(conn_id, None)
            raise
        if initial is None:
            self.connections.pop(conn_id, None)
            return False
        out.start(initial)
        self._joined()
        return True

    async def _join_session(self, conn_id: str, user_id: str, can_write: bool) -> Any:
        call = self.actor.join.remote(
            self.link_id, conn_id, user_id, can_write, traceparent=current_traceparent()
        )
        return await asyncio.wait_for(call, JOIN_CALL_TIMEOUT_S)

    def _joined(self) -> None:
        """After a connection joined: start the link's two tasks (once)."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            # A fresh context: the link outlives the connection whose join started it, and
            # must not log or trace as part of that connection's trace.
            self._tasks = [
                loop.create_task(self._send_loop(), context=contextvars.Context()),
                loop.create_task(self._poll_loop(), context=contextvars.Context()),
            ]

    def submit(self, conn_id: str, data: bytes) -> None:
        if self.broken:
            raise LinkBroken()
        self._inbound.append((conn_id, data))
        self._inbound_ready.set()

    def detach(self, conn_id: str) -> Awaitable[None]:
        """Forget ``conn_id`` here and tell the actor, synchronously: a socket task being
        cancelled (Serve cuts proxied websockets) must not leave a ghost connection behind.
        The writer finishes a queued close on its own; otherwise it is stopped. Returns the
        actor's answer to await (optional)."""
        out = self.connections.pop(conn_id, None)
        if out is not None and not out.closed:
            out.cancel()
        leaving: Awaitable[None] = self.actor.leave.remote(self.link_id, conn_id)
        if not self.connections:
            self.hub._forget(self)
            asyncio.get_running_loop().create_task(self._stop_tasks())
        return leaving

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(BaseException):
                    await task

    def _deliver_results(self, results: list[tuple[str, list[bytes], Close | None]]) -> None:
        """The session's replies to senders, and the closes it asked for."""
        for conn_id, replies, close in results:
            out = self.connections.get(conn_id)
            if out is None:
                continue
            for reply in replies:
                out.put(reply)
            if close is not None:
                out.close(close.code, close.reason)

    def _break(self, why: str) -> None:
        if self.broken:
            return
        self.broken = True
        self.hub._forget(self)
        log.info("dojo link %s broken: %s", self.key, why)
        for out in self.connections.values():
            out.close(SERVICE_RESTART, "session restarting, reconnect")

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._inbound_ready.wait()
                self._inbound_ready.clear()
                batch, self._inbound = self._inbound, []
                if not batch:
                    continue
                self._deliver_results(await self.actor.receive.remote(self.link_id, batch))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._break(f"receive failed: {exc!r}")

    async def _poll_loop(self) -> None:
        try:
            while True:
                items = await self.actor.poll.remote(self.link_id, POLL_WAIT_S)
                if items is None:
                    if self.connections:
                        self._break("the session no longer knows this gateway")
                    return
                connections = self.connections
                for sender, message in items:
                    for conn_id, out in connections.items():
                        if conn_id != sender:
                            out.put(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._break(f"poll failed: {exc!r}")


class LocalLink(DojoLink):
    """A link to a session this process hosts: messages are handled as they are read and
    broadcasts fanned out as they happen, by plain calls (no batching task, no poll)."""

    def __init__(self, hub: DojoHub, key: tuple[str, str], local: LocalSession, link_id: str):
        super().__init__(hub, key, local, link_id)
        self.session = local.session

    async def _join_session(self, conn_id: str, user_id: str, can_write: bool) -> Any:
        return await self.session.join(
            self.link_id, conn_id, user_id, can_write, traceparent=current_traceparent()
        )

    def _joined(self) -> None:
        self.session.attach(self.link_id, self._deliver)

    def _deliver(self, item: tuple[str | None, bytes] | None) -> None:
        if item is None:
            if self.connections:
                self._break("the session stopped")
            return
        sender, message = item
        frame = server_frame(message)
        for conn_id, out in self.connections.items():
            if conn_id != sender:
                out.put_framed(message, frame)

    def submit(self, conn_id: str, data: bytes) -> None:
        if self.broken:
            raise LinkBroken()
        self._deliver_results(self.session.receive_now(self.link_id, [(conn_id, data)]))

    def detach(self, conn_id: str) -> Awaitable[None]:
        out = self.connections.pop(conn_id, None)
        if out is not None and not out.closed:
            out.cancel()
        self.session.leave_now(self.link_id, conn_id)
        if not self.connections:
            self.hub._forget(self)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class DojoHub:
    """All of one gateway process's links, by (tenant, dojo)."""

    def __init__(
        self, actor_for: Callable[[str, str], Any], host: SessionHost | None = None
    ) -> None:
        self._actor_for = actor_for
        self.host = host  # sessions hosted here (dojo_session_host = "gateway"), else None
        self._links: dict[tuple[str, str], DojoLink] = {}
        self._process = uuid.uuid4().hex[:12]
        self._seq = itertools.count(1)

    def _forget(self, link: DojoLink) -> None:
        if self._links.get(link.key) is link:
            del self._links[link.key]

    def links(self) -> int:
        return len(self._links)

    async def join(
        self,
        tenant_id: str,
        dojo_id: str,
        conn_id: str,
        user_id: str,
        can_write: bool,
        out: Outgoing,
    ) -> DojoLink | None:
        """The link ``out`` is now part of, or None if the session stayed unavailable (a
        killed actor restarts within seconds: wait for it rather than bounce the client)."""
        key = (tenant_id, dojo_id)
        for attempt in range(JOIN_ATTEMPTS):
            link = self._links.get(key)
            if link is None or link.broken:
                actor = self._actor_for(tenant_id, dojo_id)
                kind = LocalLink if isinstance(actor, LocalSession) else DojoLink
                link = kind(self, key, actor, self._next_id())
                self._links[key] = link
            try:
                if await link.join(conn_id, user_id, can_write, out):
                    return link
            except Exception as exc:
                log.info("dojo %s: session not ready (attempt %d): %s", dojo_id, attempt + 1, exc)
            if not link.connections:
                self._forget(link)
            await asyncio.sleep(JOIN_RETRY_S)
        return None

    def _next_id(self) -> str:
        # One id per link, not per process: a link being torn down must never receive the
        # broadcasts meant for its successor.
        return f"{self._process}:{next(self._seq)}"

"""`PushConnection`: a `websockets` server connection that hands each complete message to
a consumer as soon as it is parsed, in the transport's ``data_received`` callback.

`websockets` queues every message in an assembler and wakes the task awaiting ``recv()``:
a future, a task switch and several generator steps per message, ~18 us of the ~30 us of
CPU a one-frame read costs the gateway (measured with uvloop on this machine; the read
itself, epoll and ``recv``, is the other ~12 us). A Yjs edit is one small binary frame, so
that was a tenth of the gateway's CPU per edit.

Here, a read that holds nothing but whole, masked, unfragmented binary frames of up to
64 KiB (what every Yjs client sends while typing) is cut into messages directly, while
`websockets` stays in charge of everything else: the handshake, control frames (ping,
pong, close), text, fragmented and larger messages, and every protocol error. A read is
taken on the fast path only when `websockets`' parser is known to stand between two frames
(`FrameBoundary` follows the client's byte stream from the end of its HTTP request), so
both parsers always see a stream cut at frame boundaries and messages keep their order.

Messages wait in a small backlog until a consumer is set (`consume`) or ``next_message``
takes them; reading pauses while the backlog is long.

Writes the other way can be gathered (`write_soon`): the frames a socket is given while one
read is handled go out in one ``write`` once that read is done (frames given outside a read,
by a task or a timer, at the end of the event loop's turn). A fan-out writes every edit to
each peer, one system call each (and a wake-up of the peer's process); when a read holds a
burst of edits (the client or the machine paused, then everything at once), each peer gets
them in one call. Nothing waits for other reads: gathering a whole turn's writes held the
first read's deliveries until every read of the turn was handled. Anything `websockets`
writes itself (pings, pongs, closes, ``send``) flushes the gathered frames first, so the
stream keeps its order.

A fan-out frames each message once (`server_frame`) and hands the frame to every peer's
`write_frame`, which writes it at once when nothing is gathered for that socket and the
read being handled holds a single message (steady typing: every read is one edit), so the
first peers get an edit before the last are served, with no gathering work per peer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.speedups import apply_mask

Message = bytes | str
Consumer = Callable[[Message], None]
WriteFrame = Callable[[bytes], bool]  # see `PushConnection.write_frame`

BINARY_FIN = 0x82  # FIN, no RSV bits, opcode 2
MASKED = 0x80
FAST_MAX_PAYLOAD = 0xFFFF  # 7- and 16-bit lengths
BACKLOG_HIGH, BACKLOG_LOW = 64, 16
END_OF_REQUEST = b"\r\n\r\n"
WRITE_NOW_BUFFER = 64 * 1024  # bytes a socket may hold unsent before writes wait for it

log = logging.getLogger("pocdojo.gateway")


class _Writes:
    """One event loop's connections with gathered frames. They are flushed when the read
    that caused them has been handled (`hold` ... `release`), or, for frames written
    outside a read (a task, a timer), by one callback at the end of the loop's turn."""

    __slots__ = ("_loop", "_pending", "_scheduled", "held")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[PushConnection] = []
        self.held = 0  # reads being handled that gather their writes
        self._scheduled = False

    def add(self, connection: PushConnection) -> None:
        self._pending.append(connection)
        if not self.held and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn_ended)

    def hold(self) -> None:
        self.held += 1

    def release(self) -> None:
        self.held -= 1
        if not self.held:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for connection in pending:
            try:
                connection.flush_gathered()
            except Exception as exc:  # one broken socket; the others still get theirs
                log.debug("gathered write failed: %r", exc)

    def _turn_ended(self) -> None:
        self._scheduled = False
        self.flush()


_loop_writes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writes] = (
    weakref.WeakKeyDictionary()
)


def _writes(loop: asyncio.AbstractEventLoop) -> _Writes:
    found = _loop_writes.get(loop)
    if found is None:
        found = _loop_writes[loop] = _Writes(loop)
    return found


@functools.lru_cache(maxsize=1)
def server_frame(data: bytes) -> bytes:
    """The wire form of a binary message from the server (final, unmasked, no extension);
    a fan-out asks for the same message once per peer in a row, so remembering the last one
    frames it once for all of them."""
    size = len(data)
    if size < 126:
        return bytes((0x82, size)) + data
    if size < 65536:
        return bytes((0x82, 126)) + size.to_bytes(2, "big") + data
    return Frame(Opcode.BINARY, data).serialize(mask=False)


def whole_binary_frames(data: bytes, max_size: int | None) -> list[bytes] | None:
    """The unmasked payloads of ``data`` if it is nothing but complete, masked, final binary
    frames (no RSV bit) of at most ``max_size`` and 64 KiB each; None otherwise."""
    payloads: list[bytes] = []
    end = len(data)
    i = 0
    while i < end:
        if end - i < 2 or data[i] != BINARY_FIN or not data[i + 1] & MASKED:
            return None
        header = _header(data, i)
        if header is None:
            return None
        start, length = header
        if length > FAST_MAX_PAYLOAD or start + length > end:
            return None
        if max_size is not None and length > max_size:
            return None  # websockets closes it with 1009
        payloads.append(apply_mask(data[start : start + length], data[start - 4 : start]))
        i = start + length
    return payloads


class FrameBoundary:
    """Follows a client's frames through its byte stream, lengths only: whether everything
    seen so far is whole frames (nothing of a frame still to come)."""

    __slots__ = ("_head", "_rest")

    def __init__(self) -> None:
        self._head = b""  # the start of a frame whose header is not complete yet
        self._rest = 0  # bytes of the current frame still to come

    def feed(self, data: bytes) -> bool:
        """Account for ``data``; True if it ended on a frame boundary."""
        if self._rest:
            if self._rest >= len(data):
                self._rest -= len(data)
                return self._rest == 0
            data = data[self._rest :]
            self._rest = 0
        if self._head:
            data = self._head + data
            self._head = b""
        end = len(data)
        i = 0
        while i < end:
            size = _frame_size(data, i)
            if size is None:
                self._head = data[i:]
                return False
            if i + size > end:
                self._rest = i + size - end
                return False
            i += size
        return True


def _frame_size(data: bytes, i: int) -> int | None:
    """The whole length of the frame starting at ``data[i]``, or None if its header is not
    all there yet."""
    header = _header(data, i)
    return None if header is None else header[0] + header[1] - i


def _header(data: bytes, i: int) -> tuple[int, int] | None:
    """Where the payload of the frame starting at ``data[i]`` starts (after the mask key,
    if any) and its length; None if the header is not all there yet."""
    end = len(data)
    if end - i < 2:
        return None
    second = data[i + 1]
    length = second & 0x7F
    start = i + 2
    if length >= 126:
        size = 2 if length == 126 else 8
        if end - start < size:
            return None
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    if second & MASKED:
        if end - start < 4:
            return None
        start += 4
    return start, length


class PushConnection(ServerConnection):
    """A server connection whose messages go to a consumer (`consume`) or a small backlog
    (`next_message`), never to `websockets`' ``recv()``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._consumer: Consumer | None = None
        self._backlog: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._parts: list[bytes] | None = None  # a fragmented message being assembled
        self._text = False
        self._request_tail = b""  # the last bytes before the end of the request is seen
        self._boundary: FrameBoundary | None = None  # from the end of the HTTP request
        self._between_frames = False
        self._gathered: list[bytes] = []  # frames `write_soon` holds (see _Writes)
        self._writes = _writes(self.loop)
        self.gathered_size = 0
        self.fast_messages = 0  # taken on the fast path (tests, diagnostics)
        self.frames_written = 0  # frames through `write_soon` (tests, diagnostics)
        self.writes = 0  # ... and the writes that carried them

    # -- consumers -----------------------------------------------------------------------

    def consume(self, consumer: Consumer | None) -> None:
        """Hand every message to ``consumer`` from now on, the backlog first, as each is
        parsed; None: keep them in the backlog again."""
        self._consumer = consumer
        while consumer is not None and self._backlog and self._consumer is consumer:
            consumer(self._backlog.popleft())
        self._maybe_resume()

    async def next_message(self) -> Message | None:
        """The next message (when no consumer is set); None once the connection is closed
        and nothing is left."""
        while not self._backlog:
            if self.protocol.state is State.CLOSED:  # also once the connection is lost
                return None
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._backlog.popleft()
        self._maybe_resume()
        return message

    def _deliver(self, message: Message) -> None:
        consumer = self._consumer
        if consumer is not None and not self._backlog:
            consumer(message)
            return
        self._backlog.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if len(self._backlog) > BACKLOG_HIGH and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def _maybe_resume(self) -> None:
        if self._paused and len(self._backlog) <= BACKLOG_LOW:
            self._paused = False
            self.transport.resume_reading()

    # -- gathered writes -----------------------------------------------------------------

    def write_soon(self, frame: bytes) -> None:
        """Write ``frame`` (whole wire bytes) once the read being handled is done (outside a
        read: at the end of this turn of the event loop), in one write with the other frames
        gathered for this socket meanwhile."""
        if not self._gathered:
            self._writes.add(self)
        self._gathered.append(frame)
        self.gathered_size += len(frame)
        self.frames_written += 1

    def write_frame(self, frame: bytes, *, gather: bool = False) -> bool:
        """Write ``frame`` (a whole server frame, `server_frame`; the caller knows no
        extension was negotiated) now, or after the frames already gathered for this socket
        when there are some, the read being handled gathers its writes, or ``gather`` (then
        with the socket's other frames of this read or turn, `write_soon`). False if the
        socket already holds more than `WRITE_NOW_BUFFER` unsent: the caller queues the
        message and waits for the drain. A connection that is not open takes it and writes
        nothing (its reader is about to end)."""
        transport = self.transport
        if transport.get_write_buffer_size() + self.gathered_size > WRITE_NOW_BUFFER:
            return False
        if self.protocol.state is not State.OPEN or self.send_in_progress is not None:
            return True
        if gather or self._gathered or self._writes.held:
            self.write_soon(frame)
            return True
        self.frames_written += 1
        self.writes += 1
        transport.write(frame)
        return True

    def flush_gathered(self) -> None:
        """Write what `write_soon` gathered, now (nothing once the transport is closing)."""
        gathered = self._gathered
        if not gathered:
            return
        self._gathered = []
        self.gathered_size = 0
        if self.transport.is_closing():
            return
        self.writes += 1
        self.transport.write(gathered[0] if len(gathered) == 1 else b"".join(gathered))

    def send_data(self) -> None:
        self.flush_gathered()  # before pings, pongs, closes and sends: the stream's order
        super().send_data()

    # -- parsing -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        if self._between_frames and protocol.state is State.OPEN and protocol.current_size is None:
            payloads = whole_binary_frames(data, protocol.max_message_size)
            if payloads is not None:
                self.fast_messages += len(payloads)
                if len(payloads) == 1:  # one edit: its fan-out writes each frame at once
                    self._deliver(payloads[0])
                    return
                self._gathering(payloads, None)
                return
        self._gathering(None, data)

    def _gathering(self, payloads: list[bytes] | None, data: bytes | None) -> None:
        """Handle a read of several messages (``payloads``) or one for `websockets` to parse
        (``data``); what it makes the session write goes out when it is handled."""
        writes = self._writes
        writes.hold()
        try:
            if payloads is not None:
                for payload in payloads:
                    self._deliver(payload)
                return
            assert data is not None
            self._follow(data)
            super().data_received(data)
        finally:
            writes.release()

    def _follow(self, data: bytes) -> None:
        """Keep `_between_frames` true to the stream ``data`` continues."""
        if self._boundary is not None:
            self._between_frames = self._boundary.feed(data)
            return
        seen = self._request_tail + data
        end = seen.find(END_OF_REQUEST)
        if end < 0:
            self._request_tail = seen[-(len(END_OF_REQUEST) - 1) :]
            return
        self._request_tail = b""
        self._boundary = FrameBoundary()
        self._between_frames = self._boundary.feed(seen[end + len(END_OF_REQUEST) :])

    def process_event(self, event: Any) -> None:
        if self.request is None or not isinstance(event, Frame):
            super().process_event(event)
            return
        opcode = event.opcode
        if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
            if event.fin:
                self._deliver_parts(opcode is Opcode.TEXT, [bytes(event.data)])
            else:
                self._parts, self._text = [bytes(event.data)], opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            if self._parts is not None:  # websockets refuses a stray continuation itself
                self._parts.append(bytes(event.data))
                if event.fin:
                    parts, self._parts = self._parts, None
                    self._deliver_parts(self._text, parts)
        else:
            super().process_event(event)  # ping, pong, close

    def _deliver_parts(self, text: bool, parts: list[bytes]) -> None:
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if not text:
            self._deliver(data)
            return
        try:
            message = data.decode()
        except UnicodeDecodeError as exc:  # what websockets' recv() does with bad UTF-8
            self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            self.send_data()
            return
        self._deliver(message)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

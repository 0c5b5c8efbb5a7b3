"""The gateway listener's `PushConnection`: messages cut from reads of whole binary frames
(the fast path) or parsed by `websockets`, always complete and in order, whatever the way
the client's bytes are split into reads."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import serve
from websockets.frames import Frame, Opcode

from pocdojo.gateway.connection import FrameBoundary, PushConnection, whole_binary_frames

MAX_SIZE = 200_000


def _frame(opcode: Opcode, data: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=mask)


def _cuts(rng: random.Random, data: bytes, pieces: int) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(data)), min(pieces, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


frames = st.lists(
    st.tuples(
        st.sampled_from([Opcode.BINARY, Opcode.TEXT, Opcode.CONT, Opcode.PING]),
        st.one_of(st.integers(0, 140), st.integers(60_000, 70_000)),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(frames=frames, seed=st.integers(0, 2**32 - 1))
def test_frame_boundary_knows_where_frames_end(
    frames: list[tuple[Opcode, int, bool, bool]], seed: int
) -> None:
    rng = random.Random(seed)
    stream, ends = b"", {0}
    for opcode, size, fin, mask in frames:
        if opcode is Opcode.PING:  # a control frame: final, at most 125 bytes
            size, fin = min(size, 125), True
        stream += _frame(opcode, bytes(size), fin=fin, mask=mask)
        ends.add(len(stream))
    boundary, seen = FrameBoundary(), 0
    for chunk in _cuts(rng, stream, rng.randint(1, 12)):
        seen += len(chunk)
        assert boundary.feed(chunk) == (seen in ends)


def test_whole_binary_frames_takes_only_whole_masked_final_binary_frames() -> None:
    a, b = os.urandom(10), os.urandom(300)  # a 7-bit and a 16-bit length
    both = _frame(Opcode.BINARY, a) + _frame(Opcode.BINARY, b)
    assert whole_binary_frames(both, MAX_SIZE) == [a, b]
    assert whole_binary_frames(_frame(Opcode.BINARY, b""), MAX_SIZE) == [b""]
    assert whole_binary_frames(both[:-1], MAX_SIZE) is None  # the last one is cut
    assert whole_binary_frames(both + both[:3], MAX_SIZE) is None
    assert whole_binary_frames(_frame(Opcode.BINARY, b, mask=False), MAX_SIZE) is None
    assert whole_binary_frames(_frame(Opcode.BINARY, a, fin=False), MAX_SIZE) is None
    assert whole_binary_frames(_frame(Opcode.TEXT, a), MAX_SIZE) is None
    assert whole_binary_frames(_frame(Opcode.PING, a), MAX_SIZE) is None
    assert whole_binary_frames(_frame(Opcode.BINARY, bytes(70_000)), MAX_SIZE) is None  # 64-bit
    assert whole_binary_frames(_frame(Opcode.BINARY, b), 299) is None  # websockets says 1009


class _RawClient:
    """A websocket client made of a plain socket, writing exactly the bytes it is given."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    async def open(self) -> bytes:
        """Send the request, return the response head."""
        await asyncio.to_thread(self.sock.sendall, self.request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += await asyncio.to_thread(self.sock.recv, 4096)
        return head

    async def send(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            await asyncio.to_thread(self.sock.sendall, chunk)
            await asyncio.sleep(0.001)  # let each chunk arrive as a read of its own

    async def receive(self, size: int) -> bytes:
        """At least ``size`` bytes from the server."""
        data = b""
        while len(data) < size:
            data += await asyncio.to_thread(self.sock.recv, 4096)
        return data

    async def read_close(self) -> bytes:
        data = b""
        while chunk := await asyncio.to_thread(self.sock.recv, 4096):
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


async def _until(found: list[Any]) -> None:
    """Wait (up to 2 s) until the server side recorded something in ``found``."""
    for _ in range(200):
        if found:
            return
        await asyncio.sleep(0.01)


async def _echo(
    on_message: Any, reads: list[bytes], expected: bytes
) -> tuple[bytes, tuple[int, int]]:
    """A server handing each message to ``on_message(connection, message)``, a raw client
    sending ``reads`` (one read each): the bytes it received (``len(expected)``) and the
    server's (frames written, writes) once the client is gone."""
    after: list[tuple[int, int]] = []

    async def handler(connection: Any) -> None:
        connection.consume(lambda message: on_message(connection, message))
        await connection.wait_closed()
        after.append((connection.frames_written, connection.writes))

    async with await _server(handler) as server:
        client = _RawClient(next(iter(server.sockets)).getsockname()[1])
        await client.open()
        await client.send(reads)
        received = await client.receive(len(expected))
        client.close()
        await _until(after)
    return received, after[0]


async def _server(handler: Any) -> Any:
    return await serve(handler, "127.0.0.1", 0, create_connection=PushConnection, max_size=MAX_SIZE)


def _scenario(rng: random.Random) -> tuple[list[bytes], list[bytes | str]]:
    """A client's frames (typing, a fragmented message, text, pings) and the messages
    they make."""
    frames, messages = [], []
    for _ in range(rng.randint(5, 40)):
        kind = rng.random()
        if kind < 0.7:
            data = os.urandom(rng.choice([rng.randint(0, 60), rng.randint(126, 3000)]))
            frames.append(_frame(Opcode.BINARY, data))
            messages.append(data)
        elif kind < 0.8:
            parts = [os.urandom(rng.randint(0, 200)) for _ in range(rng.randint(2, 4))]
            frames.append(_frame(Opcode.BINARY, parts[0], fin=False))
            for i, part in enumerate(parts[1:], start=2):
                frames.append(_frame(Opcode.CONT, part, fin=i == len(parts)))
            messages.append(b"".join(parts))
        elif kind < 0.9:
            text = "é" * rng.randint(0, 20)
            frames.append(_frame(Opcode.TEXT, text.encode()))
            messages.append(text)
        else:
            frames.append(_frame(Opcode.PING, os.urandom(4)))
    return frames, messages


@pytest.mark.parametrize("how", ["listen", "next_message"])
async def test_messages_arrive_whole_and_in_order_however_reads_are_cut(how: str) -> None:
    received: dict[int, list[bytes | str]] = {}
    fast = 0

    async def handler(connection: Any) -> None:
        nonlocal fast
        got = received.setdefault(int(connection.request.path.split("=")[1]), [])
        if how == "listen":
            connection.consume(got.append)
            await connection.wait_closed()
        else:
            while (message := await connection.next_message()) is not None:
                got.append(message)
        fast += connection.fast_messages

    expected: dict[int, list[bytes | str]] = {}
    async with await _server(handler) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        for seed in range(12):
            rng = random.Random(seed)
            frames, expected[seed] = _scenario(rng)
            client = _RawClient(port)
            client.request = client.request.replace(b"GET /x", f"GET /x?s={seed}".encode())
            assert (await client.open()).startswith(b"HTTP/1.1 101")
            if seed % 2:  # whole frames per read, one to three (what Yjs clients do)
                chunks, i = [], 0
                while i < len(frames):
                    step = rng.randint(1, 3)
                    chunks.append(b"".join(frames[i : i + step]))
                    i += step
            else:  # cut anywhere
                stream = b"".join(frames)
                chunks = _cuts(rng, stream, rng.randint(1, min(len(stream) // 8, 60)))
            await client.send(chunks)
            await client.send([_frame(Opcode.CLOSE, (1000).to_bytes(2, "big"))])
            await client.read_close()
            client.close()
        for _ in range(200):
            if len(received) == len(expected) and all(received[s] == expected[s] for s in expected):
                break
            await asyncio.sleep(0.01)
    assert received == expected
    assert fast > 0  # whole reads of typing frames took the fast path


async def test_frames_sent_with_the_request_are_not_lost() -> None:
    """A client that does not wait for the 101 (against RFC 6455, but possible): its
    frames in the request's packet go through websockets, in order."""
    got: list[bytes | str] = []
    done = asyncio.Event()

    async def handler(connection: Any) -> None:
        connection.consume(got.append)
        await connection.wait_closed()
        done.set()

    async with await _server(handler) as server:
        client = _RawClient(next(iter(server.sockets)).getsockname()[1])
        first, second = os.urandom(5), os.urandom(7)
        framed = _frame(Opcode.BINARY, second)
        client.request += _frame(Opcode.BINARY, first) + framed[:3]
        await client.open()
        await client.send([framed[3:], _frame(Opcode.BINARY, b"3")])
        await client.send([_frame(Opcode.CLOSE, (1000).to_bytes(2, "big"))])
        await client.read_close()
        client.close()
        await asyncio.wait_for(done.wait(), 5)
    assert got == [first, second, b"3"]


async def test_bad_utf8_text_closes_1007_and_protocol_errors_still_close() -> None:
    closes: list[int | None] = []

    async def handler(connection: Any) -> None:
        while await connection.next_message() is not None:
            pass
        sent = connection.protocol.close_sent
        closes.append(sent.code if sent is not None else None)

    async with await _server(handler) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        for bad in (
            _frame(Opcode.TEXT, b"\xff\xfe"),  # not UTF-8
            _frame(Opcode.BINARY, b"abc", mask=False),  # clients must mask
            _frame(Opcode.CONT, b"abc"),  # a continuation of nothing
            _frame(Opcode.BINARY, bytes(MAX_SIZE + 1)),  # too big
        ):
            client = _RawClient(port)
            await client.open()
            await client.send([_frame(Opcode.BINARY, b"ok"), bad])
            await client.read_close()
            client.close()
        for _ in range(200):
            if len(closes) == 4:
                break
            await asyncio.sleep(0.01)
    assert closes == [1007, 1002, 1002, 1009]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 300, 65_535, 65_536, 70_000])
def test_the_fan_outs_frames_are_what_websockets_would_write(size: int) -> None:
    from pocdojo.gateway.connection import server_frame as _frame

    data = os.urandom(size)
    _frame.cache_clear()
    assert _frame(data) == Frame(Opcode.BINARY, data).serialize(mask=False)


async def test_a_real_clients_binary_messages_take_the_fast_path() -> None:
    """What a `websockets` client sends while typing (one masked binary frame per message,
    as y-websocket's `ws` does) is cut by the fast path, not parsed by websockets."""
    from websockets.asyncio.client import connect

    sent = [os.urandom(n) for n in (1, 30, 125, 126, 4000)] * 20
    got: list[bytes | str] = []
    fast: list[int] = []

    async def handler(connection: Any) -> None:
        connection.consume(got.append)
        await connection.wait_closed()
        fast.append(connection.fast_messages)

    async with await _server(handler) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/x", compression=None) as client:
            for message in sent:
                await client.send(message)
                await asyncio.sleep(0)
            for _ in range(200):  # all in before the close frame, which websockets parses
                if len(got) == len(sent):
                    break
                await asyncio.sleep(0.01)
        await _until(fast)
    assert got == sent
    assert fast == [len(sent)]


async def test_frames_written_in_one_turn_go_out_in_one_write_and_in_order() -> None:
    """`write_soon` gathers a turn's frames into one write; whatever websockets writes
    itself (a ``send``, the close frame) goes after the frames gathered before it."""
    from websockets.asyncio.client import connect

    from pocdojo.gateway.connection import server_frame as _frame

    counts: list[tuple[int, int]] = []

    async def handler(connection: Any) -> None:
        for i in range(3):
            connection.write_soon(_frame(bytes([i])))
        await connection.send(b"sent")  # flushes the three first
        connection.write_soon(_frame(b"\x03"))
        connection.write_soon(_frame(b"\x04"))
        await asyncio.sleep(0)  # the turn ends: one write for both
        counts.append((connection.frames_written, connection.writes))
        connection.write_soon(_frame(b"\x05"))
        await connection.close(1000, "bye")  # after \x05

    got: list[bytes | str] = []
    async with await _server(handler) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/x", compression=None) as client:
            async for message in client:
                got.append(message)
            assert (client.close_code, client.close_reason) == (1000, "bye")
    assert got == [b"\x00", b"\x01", b"\x02", b"sent", b"\x03", b"\x04", b"\x05"]
    assert counts == [(5, 2)]


async def test_frames_gathered_for_a_closed_transport_are_dropped() -> None:
    """A socket that is gone by the end of the turn writes nothing (no error)."""
    from websockets.asyncio.client import connect

    from pocdojo.gateway.connection import server_frame as _frame

    done: list[int] = []

    async def handler(connection: Any) -> None:
        await connection.wait_closed()
        connection.write_soon(_frame(b"late"))
        await asyncio.sleep(0)
        done.append(connection.writes)

    async with await _server(handler) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/x", compression=None):
            pass
        await _until(done)
    assert done == [0]


async def test_what_a_read_makes_the_server_write_goes_out_when_the_read_is_handled() -> None:
    """Frames written while a read is handled (a fan-out of the messages it held) go out in
    one write as soon as that read is done: no end-of-turn callback is involved."""
    from pocdojo.gateway.connection import server_frame

    during: list[tuple[int, bool]] = []

    def echo_twice(connection: Any, message: bytes | str) -> None:
        assert isinstance(message, bytes)
        connection.write_soon(server_frame(message))
        connection.write_soon(server_frame(message.upper()))
        during.append((connection.writes, connection._writes._scheduled))

    # Two messages in one read: four frames, one write.
    expected = b"".join(
        Frame(Opcode.BINARY, data).serialize(mask=False) for data in (b"ab", b"AB", b"cd", b"CD")
    )
    received, after = await _echo(
        echo_twice, [_frame(Opcode.BINARY, b"ab") + _frame(Opcode.BINARY, b"cd")], expected
    )
    assert received == expected
    assert during == [(0, False), (0, False)]  # held while the read is handled
    assert after == (4, 1)


async def test_one_failing_flush_does_not_strand_the_other_sockets() -> None:
    """Pure logic of `_Writes`: a socket whose write raises is skipped, the others of the
    same read still get theirs, and the next read's writes are flushed again."""
    from pocdojo.gateway.connection import _Writes

    class Socket:
        def __init__(self, fail: bool) -> None:
            self.fail, self.flushes = fail, 0

        def flush_gathered(self) -> None:
            self.flushes += 1
            if self.fail:
                raise RuntimeError("socket gone")

    writes = _Writes(asyncio.get_running_loop())
    broken, healthy = Socket(fail=True), Socket(fail=False)
    for _ in range(2):
        writes.hold()
        writes.add(broken)  # type: ignore[arg-type]
        writes.add(healthy)  # type: ignore[arg-type]
        writes.release()
    assert (broken.flushes, healthy.flushes) == (2, 2)


async def test_a_one_message_reads_fan_out_writes_each_frame_at_once() -> None:
    """`write_frame` during a read that holds one message writes at once (steady typing: no
    gathering work per peer); during a read of several messages, or after frames already
    gathered for the socket, it joins them (one write, in order)."""
    from pocdojo.gateway.connection import server_frame

    during: list[int] = []

    def echo(connection: Any, message: bytes | str) -> None:
        assert isinstance(message, bytes)
        if message == b"late":  # a frame gathered for the turn first: the next ones join it
            connection.write_soon(server_frame(b"first"))
            assert connection.write_frame(server_frame(b"second"))
        assert connection.write_frame(server_frame(message))
        assert connection.write_frame(server_frame(message.upper()))
        during.append(connection.writes)

    words = b"ab AB cd CD ef EF first second late LATE".split()
    expected = b"".join(Frame(Opcode.BINARY, w).serialize(mask=False) for w in words)
    reads = [
        _frame(Opcode.BINARY, b"ab"),  # one message: two writes
        _frame(Opcode.BINARY, b"cd") + _frame(Opcode.BINARY, b"ef"),
        _frame(Opcode.BINARY, b"late"),
    ]
    received, after = await _echo(echo, reads, expected)
    assert received == expected
    # ab: written as they came (writes 1, 2); cd, ef: held until their read was done (one
    # write); late: the four frames follow "first", gathered, and go out at the turn's end
    assert during == [2, 2, 2, 3]
    assert after == (10, 4)


async def test_a_fan_out_to_a_socket_that_does_not_read_queues_and_keeps_the_order() -> None:
    """`Outgoing.put_framed` writes frames as is until the socket holds `WRITE_NOW_BUFFER`
    unsent; the rest waits in the queue for the drain, and nothing is lost or reordered."""
    from pocdojo.gateway.connection import server_frame
    from pocdojo.gateway.hub import Outgoing
    from pocdojo.gateway.server import WebsocketsSocket

    messages = [bytes([i % 256]) * 50_000 for i in range(400)]  # 20 MB: more than buffers hold
    queued: list[int] = []

    async def handler(connection: Any) -> None:
        socket_ = WebsocketsSocket(connection)
        out = Outgoing(
            socket_.send_bytes,
            socket_.close,
            send_now=socket_.send_now,
            write_frame=socket_.frame_writer(),
        )
        out.start([])
        for i, message in enumerate(messages):
            out.put_framed(message, server_frame(message))
            queued.append(len(out._queue))
            if i % 20 == 19:  # the socket drains a little, the queue may not be empty yet
                await asyncio.sleep(0.002)
        out.close(1000, "done")
        await connection.wait_closed()

    closing = Frame(Opcode.CLOSE, (1000).to_bytes(2, "big") + b"done").serialize(mask=False)

    def read_slowly(sock: socket.socket) -> bytes:
        chunks: list[bytes] = []
        while (chunk := sock.recv(1 << 16)) and not (b"".join(chunks[-1:]) + chunk).endswith(
            closing
        ):
            chunks.append(chunk)
            time.sleep(0.0005)
        return b"".join([*chunks, chunk])

    async with await _server(handler) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = _RawClient(port)
        head = await client.open()
        stream = head.partition(b"\r\n\r\n")[2]
        stream += await asyncio.to_thread(read_slowly, client.sock)
        client.close()
    frames, i = [], 0
    while i < len(stream):
        opcode, size, start = stream[i] & 0x0F, stream[i + 1] & 0x7F, i + 2
        if size >= 126:
            width = 2 if size == 126 else 8
            size, start = int.from_bytes(stream[start : start + width], "big"), start + width
        if opcode != Opcode.PING:  # websockets' keepalive may come in between
            frames.append((opcode, stream[start : start + size]))
        i = start + size
    assert frames == [(Opcode.BINARY, m) for m in messages] + [(Opcode.CLOSE, closing[2:])]
    assert max(queued) > 0  # some waited for the drain

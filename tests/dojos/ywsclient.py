"""A y-websocket client over a real websocket: a pycrdt document and the Yjs protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets
from pycrdt import Doc, Map, Text, TransactionEvent

from pocdojo.engine.awareness import AwarenessEntry, decode_awareness, encode_awareness_update
from pocdojo.engine.protocol import (
    AwarenessUpdate,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    encode,
)

REMOTE = "remote"


class YClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.doc: Doc[Any] = Doc()
        self.files: Map[Any] = self.doc.get("files", type=Map)
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self.doc.observe(self._on_transaction)
        self.ws: Any = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.received_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.synced = asyncio.Event()
        self.awareness: dict[int, dict[str, Any] | None] = {}
        self._awareness_clock = 0
        self.seen_names: set[str] = set()

    def _on_transaction(self, event: TransactionEvent) -> None:
        if event.transaction.origin() != hash(REMOTE):  # type: ignore[attr-defined]
            self._outgoing.put_nowait(encode(SyncUpdate(event.update)))

    async def connect(self) -> YClient:
        """Connect and sync; like y-websocket, reconnect when the server closes early
        (1012/1013 while a session restarts)."""
        for _ in range(10):
            try:
                return await self._connect_once()
            except (TimeoutError, websockets.ConnectionClosed, OSError):
                if self.close_code not in (None, 1011, 1012, 1013):
                    raise
                await asyncio.sleep(0.5)
        return await self._connect_once()

    async def _connect_once(self) -> YClient:
        self.synced.clear()
        self.close_code = None
        self.ws = await websockets.connect(self.url, max_size=None)
        await self.ws.send(encode(SyncStep1(self.doc.get_state())))
        self._tasks = [
            asyncio.create_task(self._reader()),
            asyncio.create_task(self._writer()),
        ]
        # The server sends the whole document right after joining: wait for it, unless the
        # server closed first.
        synced = asyncio.ensure_future(self.synced.wait())
        done, _ = await asyncio.wait(
            {synced, self._tasks[0]}, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        if synced not in done:
            synced.cancel()
            for task in self._tasks:
                task.cancel()
            raise TimeoutError(f"not synced (close code {self.close_code})")
        return self

    async def _reader(self) -> None:
        try:
            async for data in self.ws:
                self.received_bytes += len(data)
                message = decode(data)
                if isinstance(message, AwarenessUpdate):
                    for entry, state in decode_awareness(message.payload):
                        self.awareness[entry.client_id] = state
                        user = (state or {}).get("user")
                        if isinstance(user, dict) and "name" in user:
                            self.seen_names.add(str(user["name"]))
                    continue
                if isinstance(message, SyncStep1):
                    await self.ws.send(encode(SyncStep2(self.doc.get_update(message.state_vector))))
                elif isinstance(message, (SyncStep2, SyncUpdate)):
                    with self.doc.transaction(origin=REMOTE):
                        self.doc.apply_update(message.update)
                    if isinstance(message, SyncStep2):
                        self.synced.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason

    async def _writer(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await self.ws.send(await self._outgoing.get())

    async def set_awareness(self, state: dict[str, Any]) -> None:
        """Announce our presence (cursor, name) as y-protocols awareness."""
        self._awareness_clock += 1
        entry = AwarenessEntry(self.doc.client_id, self._awareness_clock, json.dumps(state))
        await self.ws.send(encode(AwarenessUpdate(encode_awareness_update([entry]))))

    def awareness_names(self) -> list[str]:
        return [
            s["user"]["name"]
            for s in self.awareness.values()
            if s and isinstance(s.get("user"), dict)
        ]

    async def send_raw(self, data: bytes) -> None:
        await self.ws.send(data)

    def edit(self, path: str, index: int, text: str) -> None:
        with self.doc.transaction():
            if path not in self.files:
                self.files[path] = Text()
            body: Text = self.files[path]
            body.insert(min(index, len(body)), text)

    def read(self) -> dict[str, str]:
        return {path: str(body) for path, body in self.files.items()}

    async def closed(self) -> int | None:
        await asyncio.wait_for(self._tasks[0], 10)
        return self.close_code

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.ws is not None:
            await self.ws.close()

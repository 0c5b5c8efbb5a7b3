"""Simulated y-websocket clients around a `DojoSession` (not a test module).

Each `SimClient` is a pycrdt document that talks the y-websocket client protocol through
two queues; a `Room` carries bytes between clients and the session the way a gateway and
actor would, so tests can deliver messages in any order they like.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Map, Text, TransactionEvent, merge_updates

from pocdojo.engine.awareness import AwarenessEntry, decode_awareness, encode_awareness_update
from pocdojo.engine.outcome import Close
from pocdojo.engine.protocol import (
    AwarenessUpdate,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    encode,
)
from pocdojo.engine.session import DojoSession

REMOTE = "remote"


class SimClient:
    """A y-websocket client: a pycrdt Doc whose local edits go out as sync Updates."""

    def __init__(self, conn_id: str, *, can_write: bool = True, client_id: int | None = None):
        self.conn_id = conn_id
        self.can_write = can_write
        self.doc: Doc[Any] = Doc(client_id=client_id)
        self.root: Map[Any] = self.doc.get("files", type=Map)
        self.inbox: list[bytes] = []
        self.outbox: list[bytes] = []
        self.awareness: dict[int, str] = {}
        self.awareness_clock = 0
        self.doc.observe(self._on_transaction)

    def _on_transaction(self, event: TransactionEvent) -> None:
        if event.transaction.origin() != hash(REMOTE):  # type: ignore[attr-defined]
            self.outbox.append(encode(SyncUpdate(event.update)))

    # what y-websocket's provider sends when the socket opens
    def hello(self) -> None:
        self.outbox.append(encode(SyncStep1(self.doc.get_state())))

    def handle(self, data: bytes) -> None:
        message = decode(data)
        if isinstance(message, SyncStep1):
            self.outbox.append(encode(SyncStep2(self.doc.get_update(message.state_vector))))
        elif isinstance(message, SyncStep2 | SyncUpdate):
            with self.doc.transaction(origin=REMOTE):
                self.doc.apply_update(message.update)
        elif isinstance(message, AwarenessUpdate):
            for entry, state in decode_awareness(message.payload):
                if state is None:
                    self.awareness.pop(entry.client_id, None)
                else:
                    self.awareness[entry.client_id] = entry.state_json

    def set_presence(self, state_json: str) -> None:
        self.awareness_clock += 1
        entry = AwarenessEntry(self.doc.client_id, self.awareness_clock, state_json)
        self.outbox.append(encode(AwarenessUpdate(encode_awareness_update([entry]))))

    def files(self) -> dict[str, str]:
        with self.doc.transaction():
            return {k: str(v) for k, v in self.root.items() if isinstance(v, Text)}

    def text(self, path: str) -> Text:
        value = self.root[path]
        assert isinstance(value, Text)
        return value


@dataclass
class Room:
    """A session and its clients, with the host's side of the bargain: route outcomes."""

    session: DojoSession
    clients: dict[str, SimClient] = field(default_factory=dict)
    stored: list[bytes] = field(default_factory=list)
    closed: dict[str, Close] = field(default_factory=dict)
    now: float = 0.0

    def join(self, client: SimClient) -> SimClient:
        self.clients[client.conn_id] = client
        client.inbox.extend(
            self.session.connect(client.conn_id, can_write=client.can_write, now=self.now)
        )
        client.hello()
        return client

    def leave(self, conn_id: str) -> None:
        self.clients.pop(conn_id)
        for other in self.clients.values():
            other.inbox.extend(self.session.disconnect(conn_id))

    def to_server(self, client: SimClient, index: int = 0) -> None:
        data = client.outbox.pop(index)
        if client.conn_id in self.closed:
            return
        outcome = self.session.receive(client.conn_id, data, now=self.now)
        if outcome.close is not None:
            assert outcome.replies == outcome.broadcast == outcome.stored == []
            self.closed[client.conn_id] = outcome.close
            return
        client.inbox.extend(outcome.replies)
        self.stored.extend(outcome.stored)
        for other in self.clients.values():
            if other is not client:
                other.inbox.extend(outcome.broadcast)

    def to_client(self, client: SimClient, index: int = 0) -> None:
        client.handle(client.inbox.pop(index))

    def step(self, rng: random.Random) -> bool:
        """Deliver the oldest message of a queue chosen by ``rng``; False if all are empty.

        Each direction of each connection keeps its order, as a websocket does; the
        interleaving across connections and directions is random.
        """
        busy = [
            (client, outgoing)
            for client in self.clients.values()
            for outgoing, queue in ((True, client.outbox), (False, client.inbox))
            if queue
        ]
        if not busy:
            return False
        client, outgoing = rng.choice(busy)
        if outgoing:
            self.to_server(client)
        else:
            self.to_client(client)
        return True

    def pump(self, rng: random.Random | None = None) -> None:
        """Deliver everything until no queue has anything left."""
        rng = rng or random.Random(0)
        while self.step(rng):
            pass

    def restart(self, log: list[bytes]) -> None:
        """The session crashes and comes back from ``log``; messages in flight are lost and
        every client reconnects, as y-websocket's provider does."""
        self.session = DojoSession(self.session.dojo_id, initial_update=merge_updates(*log))
        self.stored = []
        self.closed = {}
        for client in self.clients.values():
            client.inbox.clear()
            client.outbox.clear()
            client.inbox.extend(
                self.session.connect(client.conn_id, can_write=client.can_write, now=self.now)
            )
            client.hello()

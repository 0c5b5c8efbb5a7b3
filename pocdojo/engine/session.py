"""`DojoSession`: one live dojo's document, connections, awareness and limits.

Synchronous and deterministic given the ``now`` the host passes in: the host (a Ray actor)
feeds it each connection's messages, in the order they arrived on that connection, and
carries out the `Outcome`: replies to the sender, broadcast to the others, stored updates
appended to the durable log, or closing the sender.

Every update is applied in a pycrdt transaction whose origin is an `Origin`; an observer on
the document collects the update each transaction actually made (what Yjs emits as the
document's ``update`` event) and the origin's policy decides whether it is stored and
broadcast. That effective update, not the bytes the client sent, is what gets stored and
broadcast: the two are the same for an ordinary edit, but the effective one leaves out what
the document already had.

An update is applied whole or not at all. If pycrdt fails half-way (it can raise, or panic,
after changing the document) or leaves part of the update waiting for updates the document
lacks (pycrdt 0.14 loses content when several wait at once, and a waiting deletion would
later be broadcast as part of the wrong client's update), the session rolls back to its
last checkpoint plus the updates since, and in the second case answers with its SyncStep1
so the client resyncs: its SyncStep2 carries everything, in one gap-free update.

The document-size limit is checked cheaply and verified only near the limit: the encoded
size is measured exactly at checkpoints (encoding the whole document, about 2-3 ms per MB)
and bounded in between by ``measured + GROWTH * bytes applied since``; an update is accepted
at once while that bound stays under the limit. Otherwise the session measures again, and if
the document is still too close it applies the update to a scratch copy and measures that.
Checkpoints also happen on their own after as many update bytes as the document holds, so
they cost O(1) amortised per byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pycrdt import Doc, Map, Subscription, Text, TransactionEvent, get_update

from pocdojo.engine.awareness import (
    AwarenessRegistry,
    TooManyAwarenessClients,
    decode_awareness,
    encode_awareness_update,
)
from pocdojo.engine.document import files_map, new_doc, read_files
from pocdojo.engine.limits import Limits, TokenBucket
from pocdojo.engine.origin import BY_HASH, Origin
from pocdojo.engine.outcome import MAX_CLOSE_REASON_BYTES, Close, CloseCode, Outcome
from pocdojo.engine.protocol import (
    AwarenessUpdate,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    encode,
    encode_awareness,
    encode_sync_update,
)
from pocdojo.engine.updates import (
    EMPTY_UPDATE,
    covers,
    deletions_only,
    read_state_vector,
    write_state_vector,
)

GROWTH: Final = 16
"""Upper bound on how many bytes the encoded document grows per byte of update applied.

Measured worst case is about 8 (one update deleting every other character of a long text
from a client with a 53-bit id: each deleted range costs ~4 update bytes and splits an item
in two); 16 leaves a margin.
"""
SLACK: Final = 1024
CHECKPOINT_MIN_BYTES: Final = 64 * 1024
MAX_RESYNCS: Final = 8
"""How many times one connection may send updates with missing dependencies."""

READ_ONLY: Final = "read-only connection cannot edit"
TOO_BIG: Final = "message too big"
RATE_LIMITED: Final = "rate limit exceeded"
DOCUMENT_FULL: Final = "document size limit reached"
UNDECODABLE: Final = "update cannot be decoded"
UNAPPLICABLE: Final = "update cannot be applied"
BAD_STATE_VECTOR: Final = "invalid state vector"
TOO_MANY_CLIENTS: Final = "too many awareness clients"
OUT_OF_ORDER: Final = "too many out-of-order updates"
SESSION_CLOSED: Final = "session stopped, reconnect"


class InvalidUpdate(ValueError):
    """An update from the log or from a peer replica that pycrdt cannot apply."""


class MissingDependencies(InvalidUpdate):
    """A peer update that builds on updates this replica has not seen (nothing applied)."""


class _Gap(Exception):
    pass


class _Rejected(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(slots=True)
class _Connection:
    can_write: bool
    bucket: TokenBucket
    sent: dict[int, int]  # the state vector of the document sent at connect
    closed: Close | None = None
    resyncing: bool = False
    resyncs: int = 0


def _collector(events: list[tuple[int | None, bytes]]) -> Callable[[TransactionEvent], None]:
    """The document observer: appends each transaction's (origin hash, update) to
    ``events``. It holds the list, not the session, so that a session dropped without
    `DojoSession.close` leaks only its document, not its connections and awareness too."""

    def on_transaction(event: TransactionEvent) -> None:
        # pycrdt's stub omits TransactionEvent.transaction; its origin() is the origin's hash.
        origin_hash: int | None = event.transaction.origin()  # type: ignore[attr-defined]
        events.append((origin_hash, event.update))

    return on_transaction


def _pycrdt_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is pycrdt refusing input: an exception, or a Rust panic surfacing as
    pyo3's ``PanicException``, which derives from BaseException."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _is_decode_error(exc: BaseException) -> bool:
    return isinstance(exc, ValueError) and str(exc).startswith("Cannot decode update")


def _clip(reason: str) -> str:
    return reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


class DojoSession:
    """One live dojo: its pycrdt document (root map ``files``: path -> Text), its
    connections with their rights and rate buckets, and their awareness states."""

    def __init__(
        self, dojo_id: str, limits: Limits = Limits(), *, initial_update: bytes | None = None
    ) -> None:
        """Start a session, replaying ``initial_update`` (the persisted snapshot and log
        merged) with origin REPLAY. Raises `InvalidUpdate` if it cannot be applied."""
        self.dojo_id = dojo_id
        self.limits = limits
        self._connections: dict[str, _Connection] = {}
        self._awareness = AwarenessRegistry(limits.max_awareness_clients)
        self._events: list[tuple[int | None, bytes]] = []
        self._closed: Close | None = None
        self._subscription: Subscription | None = None
        self._doc, self._files = self._observe(new_doc())
        self._base = self._doc.get_update()
        self._base_bytes = len(self._base)
        self._since: list[bytes] = []
        self._since_bytes = 0
        if initial_update is not None:
            try:
                self._apply(initial_update, Origin.REPLAY)
            except _Rejected as exc:
                self.close()
                raise InvalidUpdate(exc.reason) from None
            self._checkpoint()

    def close(self) -> None:
        """The session is over: release its document (reading it, `files` and
        `state_update`, still works). Every connection, and any that connects later, is
        answered with 1012. pycrdt keeps a document's observers on the Rust side, out of
        the collector's sight, and its observer wrapper holds the document: a document still
        observed is never freed, so a host that drops sessions without closing them keeps
        every dojo it ever held. Idempotent."""
        if self._closed is not None:
            return
        self._closed = Close(CloseCode.SERVICE_RESTART, SESSION_CLOSED)
        if self._subscription is not None:
            self._doc.unobserve(self._subscription)
            self._subscription = None
        for conn in self._connections.values():
            if conn.closed is None:
                conn.closed = self._closed

    # -- connections ------------------------------------------------------------------

    def connect(self, conn_id: str, *, can_write: bool, now: float) -> list[bytes]:
        """Register a connection; return the messages to send it, in order, before anything
        else: the session's SyncStep1, the whole document as a SyncStep2 and, if anyone is
        present, their awareness states.

        Sending the document at once (y-websocket's server waits for the client's
        SyncStep1) means every update broadcast later finds its dependencies already on the
        client: pycrdt/yrs clients lose content when updates arrive before what they build
        on. The answer to the client's own SyncStep1 then leaves out what was sent here.
        Raises ValueError if ``conn_id`` is already connected.
        """
        if conn_id in self._connections:
            raise ValueError(f"connection {conn_id!r} is already connected")
        limits = self.limits
        state = self._doc.get_state()
        self._connections[conn_id] = _Connection(
            can_write,
            TokenBucket(limits.updates_per_second, limits.update_burst, now),
            read_state_vector(state),
            closed=self._closed,
        )
        messages = [encode(SyncStep1(state)), encode(SyncStep2(self._doc.get_update()))]
        present = self._awareness.entries()
        if present:
            messages.append(encode_awareness(encode_awareness_update(present)))
        return messages

    def disconnect(self, conn_id: str) -> list[bytes]:
        """Forget a connection (call it whenever a socket is gone, also after a `Close`);
        return the awareness removals to broadcast to the remaining connections."""
        self._connections.pop(conn_id, None)
        removed = self._awareness.remove_owner(conn_id)
        if not removed:
            return []
        return [encode_awareness(encode_awareness_update(removed))]

    def connections(self) -> list[str]:
        """The ids of the connected connections, in connection order."""
        return list(self._connections)

    # -- messages ---------------------------------------------------------------------

    def receive(self, conn_id: str, data: bytes, *, now: float) -> Outcome:
        """Handle one message from ``conn_id`` received at monotonic time ``now``. Messages of
        one connection must be handled in the order they arrived.

        Raises KeyError for a connection that is not connected. Once a connection has been
        told to close, every further message from it gets the same `Close` again.
        """
        conn = self._connections[conn_id]
        if conn.closed is not None:
            return Outcome(close=conn.closed)
        if len(data) > self.limits.max_message_bytes:
            return self._close(conn, CloseCode.MESSAGE_TOO_BIG, TOO_BIG)
        if not conn.bucket.take(now):
            return self._close(conn, CloseCode.POLICY_VIOLATION, RATE_LIMITED)
        try:
            message = decode(data)
        except ProtocolError as exc:
            return self._close(conn, CloseCode.PROTOCOL_ERROR, f"malformed message: {exc.reason}")
        if isinstance(message, SyncUpdate):
            return self._client_update(conn, message.update, answer=False)
        if isinstance(message, SyncStep2):
            return self._client_update(conn, message.update, answer=True)
        if isinstance(message, AwarenessUpdate):
            return self._awareness_update(conn_id, conn, message.payload)
        if isinstance(message, SyncStep1):
            return self._sync_step1(conn, message.state_vector)
        if isinstance(message, QueryAwareness):
            present = self._awareness.entries()
            if not present:
                return Outcome()
            return Outcome(replies=[encode_awareness(encode_awareness_update(present))])
        return Outcome()  # AuthMessage only ever travels from server to client

    def _close(self, conn: _Connection, code: CloseCode, reason: str) -> Outcome:
        conn.closed = Close(int(code), _clip(reason))
        return Outcome(close=conn.closed)

    def _sync_step1(self, conn: _Connection, state_vector: bytes) -> Outcome:
        try:
            known = read_state_vector(state_vector)
        except ProtocolError:
            return self._close(conn, CloseCode.PROTOCOL_ERROR, BAD_STATE_VECTOR)
        for client, clock in conn.sent.items():
            if known.get(client, 0) < clock:
                known[client] = clock
        update = self._doc.get_update(write_state_vector(known))
        return Outcome(replies=[encode(SyncStep2(update))])

    def _client_update(self, conn: _Connection, update: bytes, *, answer: bool) -> Outcome:
        if conn.resyncing:
            # Asked to resync after an update with missing dependencies: everything the
            # client sent before its next SyncStep2 is also in that SyncStep2.
            if not answer:
                return Outcome()
            conn.resyncing = False
        if update == EMPTY_UPDATE:  # what a client with nothing new answers a SyncStep1 with
            return Outcome()
        try:
            if not conn.can_write:
                # A read-only client still answers the server's SyncStep1 with its whole
                # delete set; only an update that would change something is an edit.
                if self._changes_nothing(update):
                    return Outcome()
                return self._close(conn, CloseCode.POLICY_VIOLATION, READ_ONLY)
            if not self._fits(update):
                return self._close(conn, CloseCode.POLICY_VIOLATION, DOCUMENT_FULL)
            effects = self._apply(update, Origin.CLIENT)
        except _Rejected as exc:
            return self._close(conn, exc.code, exc.reason)
        except _Gap:
            conn.resyncs += 1
            if conn.resyncs > MAX_RESYNCS:
                return self._close(conn, CloseCode.POLICY_VIOLATION, OUT_OF_ORDER)
            conn.resyncing = True
            return Outcome(replies=[encode(SyncStep1(self._doc.get_state()))])
        stored = [u for origin, u in effects if origin.stored]
        broadcast = [encode_sync_update(u) for origin, u in effects if origin.broadcast]
        return Outcome(broadcast=broadcast, stored=stored)

    def _awareness_update(self, conn_id: str, conn: _Connection, payload: bytes) -> Outcome:
        try:
            # a client speaks for itself; y-websocket's server relays several at once
            entries = decode_awareness(payload, max_entries=4 * self.limits.max_awareness_clients)
            changed = self._awareness.apply(conn_id, entries)
        except ProtocolError as exc:
            return self._close(conn, CloseCode.PROTOCOL_ERROR, f"malformed awareness: {exc.reason}")
        except TooManyAwarenessClients:
            return self._close(conn, CloseCode.POLICY_VIOLATION, TOO_MANY_CLIENTS)
        if not changed:
            return Outcome()
        return Outcome(broadcast=[encode_awareness(encode_awareness_update(changed))])

    # -- peers, starter files, reading ------------------------------------------------

    def apply_peer_update(self, update: bytes) -> list[bytes]:
        """Apply an update forwarded by another replica of this dojo (origin PEER); return
        the messages to broadcast to every local connection. Stores nothing.

        Peers must forward updates in the order they applied them. Raises `InvalidUpdate`
        if it cannot be applied, `MissingDependencies` if it builds on updates this replica
        lacks (the host then resyncs the replicas); either way the document is unchanged.
        """
        try:
            effects = self._apply(update, Origin.PEER)
        except _Rejected as exc:
            raise InvalidUpdate(exc.reason) from None
        except _Gap:
            raise MissingDependencies("update builds on updates not seen here") from None
        return [encode_sync_update(u) for origin, u in effects if origin.broadcast]

    def set_starter_files(self, files: dict[str, str]) -> bytes:
        """Create (or replace) these files in one transaction; return the update to store.

        Meant for a new dojo before anyone connects: connected clients only see it if the
        host also broadcasts ``encode(SyncUpdate(update))`` to them.
        """
        self._events.clear()
        with self._doc.transaction(origin=Origin.SERVER):
            for path, content in files.items():
                self._files[path] = Text(content)
        effects = self._take_effects()
        return effects[0][1] if effects else EMPTY_UPDATE

    def files(self) -> dict[str, str]:
        """Every file of the document: path -> content."""
        return read_files(self._doc)

    def state_update(self) -> bytes:
        """The whole document as one update (for snapshots)."""
        self._checkpoint()
        return self._base

    def document_bytes(self) -> int:
        """The exact size of the encoded document (`state_update`), in bytes."""
        if self._since:
            self._checkpoint()
        return self._base_bytes

    def awareness_states(self) -> dict[int, dict[str, Any]]:
        """The awareness state of every present client, by client id."""
        return self._awareness.states()

    # -- the document -------------------------------------------------------------------

    def _observe(self, doc: Doc[Any]) -> tuple[Doc[Any], Map[Any]]:
        """Make ``doc`` the observed document: the one observed before, if any, is released
        (see `close`: an observed document is never freed). Returns it and its files map."""
        if self._subscription is not None:
            self._doc.unobserve(self._subscription)
        self._subscription = doc.observe(_collector(self._events))
        return doc, files_map(doc)

    def _take_effects(self) -> list[tuple[Origin, bytes]]:
        effects = [
            (Origin.SERVER if h is None else BY_HASH.get(h, Origin.SERVER), u)
            for h, u in self._events
            if u != EMPTY_UPDATE
        ]
        self._events.clear()
        for _, update in effects:
            self._since.append(update)
            self._since_bytes += len(update)
        if self._since_bytes > max(self._base_bytes, CHECKPOINT_MIN_BYTES):
            self._checkpoint()
        return effects

    def _apply(self, update: bytes, origin: Origin) -> list[tuple[Origin, bytes]]:
        """Apply ``update`` tagged ``origin``; return the (origin, update) it took effect as.

        Raises `_Rejected` if pycrdt refuses it and `_Gap` if part of it waits for updates the
        document lacks; either way the document is then as it was before.
        """
        self._events.clear()
        try:
            with self._doc.transaction(origin=origin):
                self._doc.apply_update(update)
        except BaseException as exc:
            if not _pycrdt_failed(exc):
                raise
            # Decoding happens before anything is integrated; any other failure (pycrdt
            # raises RuntimeError or panics on some forged updates) may have committed
            # part of the update, so roll back to the last checkpoint plus what followed.
            if not self._events and _is_decode_error(exc):
                raise _Rejected(CloseCode.UNSUPPORTED_DATA, UNDECODABLE) from None
            self._rebuild()
            raise _Rejected(CloseCode.UNSUPPORTED_DATA, UNAPPLICABLE) from None
        if (
            origin is not Origin.REPLAY
            and not self._took_whole(update)
            and self._left_pending(update)
        ):
            # pycrdt 0.14 (yrs 0.28) loses content when several updates wait for missing
            # ones at once, so nothing is ever left waiting: roll back, let the sender resync.
            self._rebuild()
            raise _Gap
        return self._take_effects()

    def _took_whole(self, update: bytes) -> bool:
        """Whether the transaction that just applied ``update`` took effect as exactly
        ``update``: then all of it integrated and nothing waits (what is left pending is not
        part of the transaction's update). An ordinary edit passes this byte comparison (Yjs
        and yrs encode one client's structs and deletions alike), which spares it the state
        vector and the diff of `_left_pending`; anything else is checked by that."""
        events = self._events
        return len(events) == 1 and events[0][1] == update

    def _left_pending(self, update: bytes) -> bool:
        """Whether some of ``update``, just applied, waits for updates the document lacks:
        structs that did not integrate, or deletions of items it does not have yet.

        Whatever the document integrated is below its state vector, so diffing the update
        against it leaves structs only if some did not integrate. (pycrdt's
        ``get_state(update)`` cannot tell: it omits clients whose structs start after 0.)
        Waiting deletions matter too: they would take effect in some later client's
        transaction and be broadcast to everyone but that client.
        """
        state = self._doc.get_state()
        deletions = deletions_only(get_update(update, state))
        if deletions is None:
            return True
        if not deletions:
            return False
        have = read_state_vector(state)
        return any(ranges[-1][1] > have.get(client, 0) for client, ranges in deletions.items())

    def _rebuild(self) -> None:
        doc = new_doc()
        with doc.transaction(origin=Origin.REPLAY):
            doc.apply_update(self._base)
            for update in self._since:
                doc.apply_update(update)
        self._doc, self._files = self._observe(doc)
        self._events.clear()
        self._checkpoint()

    def _checkpoint(self) -> None:
        if self._since:
            self._base = self._doc.get_update()
            self._base_bytes = len(self._base)
            self._since.clear()
            self._since_bytes = 0

    def _fits(self, update: bytes) -> bool:
        """Whether the document stays within ``max_document_bytes`` once ``update`` applies."""
        limit = self.limits.max_document_bytes
        if self._base_bytes + GROWTH * (self._since_bytes + len(update)) + SLACK <= limit:
            return True
        self._checkpoint()
        if self._base_bytes + GROWTH * len(update) + SLACK <= limit:
            return True
        scratch = new_doc()
        try:
            scratch.apply_update(self._base)
            scratch.apply_update(update)
        except BaseException as exc:
            if not _pycrdt_failed(exc):
                raise
            raise _Rejected(CloseCode.UNSUPPORTED_DATA, UNAPPLICABLE) from None
        return len(scratch.get_update()) <= limit

    def _changes_nothing(self, update: bytes) -> bool:
        """Whether applying ``update`` would leave the document as it is."""
        try:
            missing = get_update(update, self._doc.get_state())
            deletions = deletions_only(missing)
            if deletions is None:
                return False
            if not deletions:
                return True
            known = deletions_only(self._doc.get_update(self._doc.get_state()))
        except ProtocolError:
            raise _Rejected(CloseCode.UNSUPPORTED_DATA, UNDECODABLE) from None
        except BaseException as exc:
            if not _pycrdt_failed(exc):
                raise
            raise _Rejected(CloseCode.UNSUPPORTED_DATA, UNDECODABLE) from None
        return known is not None and covers(known, deletions)

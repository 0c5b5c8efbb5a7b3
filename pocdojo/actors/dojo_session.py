"""DojoSession actor: hosts one live dojo's engine session; thin shell around the engine.

One actor per live dojo, named ``dojo:<tenant>:<dojo>``, created on first join and gone
after the last participant left ``idle_s`` ago (its state persisted first). Gateways talk
to it per gateway process, not per connection, so an edit costs about two actor calls
however many peers see it:

- ``join`` / ``leave`` register a connection of gateway ``g``;
- ``receive(g, batch)`` handles the messages a gateway collected from its connections (in
  arrival order per connection) and returns replies and closes for their senders;
- ``poll(g)`` long-polls everything to broadcast to ``g``'s connections, each message
  tagged with the connection it came from (the gateway skips that one). A gateway that
  stops polling for ``gateway_ttl_s`` is presumed dead and its connections are dropped.

So a dojo's participants can sit on different gateway replicas.

Durability: accepted updates are appended to the Postgres log by a group-commit flusher
(<= ``flush_interval_s`` of batching); a failing store keeps them in memory and retries;
the log is compacted into a snapshot in the blob store by size and time. A restarted actor
re-runs ``__init__`` and rebuilds from snapshot + log; clients resync with sync step 1/2, so
whatever the log missed comes back from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from opentelemetry.trace import SpanKind

from pocdojo.engine.limits import Limits
from pocdojo.engine.outcome import Close
from pocdojo.engine.session import DojoSession
from pocdojo.metrics import (
    DOJO_ACTOR_RESTARTS,
    DOJO_UPDATE_LOG_BACKLOG,
    DOJO_UPDATE_LOG_FLUSH_DURATION,
    DOJO_UPDATE_LOG_OLDEST_UNFLUSHED_AGE,
    DOJO_UPDATES,
    DOJOS_LIVE,
)
from pocdojo.observability.process import observe_process
from pocdojo.observability.tracing import span_from
from pocdojo.settings import Settings
from pocdojo.storage import dojos
from pocdojo.storage.blobs import BlobKey, FileBlobStore, S3BlobStore, open_blob_store
from pocdojo.storage.db import Database
from pocdojo.types import TenantId

log = logging.getLogger("pocdojo.dojo")
NAMESPACE = "pocdojo"
SERVICE_RESTART = 1012
MAX_POLL_MESSAGES = 4096
RESTARTED = Close(SERVICE_RESTART, "session restarted, reconnect")

Broadcast = tuple[str | None, bytes]
"""A message for a gateway's connections and the connection it came from (not sent back)."""
Result = tuple[str, list[bytes], Close | None]
"""Replies to one sending connection and, if it must go, how to close it."""


def actor_name(tenant_id: uuid.UUID, dojo_id: uuid.UUID) -> str:
    return f"dojo:{tenant_id}:{dojo_id}"


@dataclass(slots=True)
class _Gateway:
    """One gateway process's connections to this dojo and what waits for them."""

    connections: dict[str, str] = field(default_factory=dict)  # conn_id -> user_id
    queue: list[Broadcast] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    last_poll: float = field(default_factory=time.monotonic)
    # In-process gateways (hosted sessions) take broadcasts as they happen, no polling;
    # ``None`` tells them the session is gone.
    sink: Callable[[Broadcast | None], None] | None = None

    def put(self, item: Broadcast) -> None:
        if self.sink is not None:
            self.sink(item)
            return
        self.queue.append(item)
        self.ready.set()


class DojoSessionActor:
    """Plain class; ``DojoSessionRemote`` below is its Ray actor form."""

    def __init__(
        self,
        settings_json: str,
        tenant_id: str,
        dojo_id: str,
        *,
        flush_interval_s: float = 0.05,
        snapshot_every_bytes: int = 1_000_000,
        snapshot_every_s: float = 300.0,
        idle_s: float | None = None,
        gateway_ttl_s: float = 60.0,
        db: Database | None = None,
        blobs: FileBlobStore | S3BlobStore | None = None,
        on_stopped: Callable[[], object] | None = None,
    ) -> None:
        self._settings = Settings.model_validate_json(settings_json)
        self._tenant = TenantId(uuid.UUID(tenant_id))
        self._dojo = uuid.UUID(dojo_id)
        self._flush_interval_s = flush_interval_s
        self._snapshot_every_bytes = snapshot_every_bytes
        self._snapshot_every_s = snapshot_every_s
        self._idle_s = self._settings.dojo_idle_s if idle_s is None else idle_s
        self._gateway_ttl_s = gateway_ttl_s
        self._gateways: dict[str, _Gateway] = {}
        self._pending: list[bytes] = []
        self._unsnapshotted_bytes = 0
        self._last_seq = 0
        self._last_snapshot = time.monotonic()
        self._empty_since: float | None = time.monotonic()
        self._closing = False
        self._session: DojoSession | None = None
        self._ready = asyncio.Event()
        # Hosted by a gateway process (``on_stopped`` given), the session shares that
        # process's pool and blob store; as its own Ray actor it opens small ones.
        self._own_db = db is None
        self._db = db or Database(self._settings.database_url, max_size=2)
        self._blobs = blobs or open_blob_store(
            self._settings.blob_url,
            signing_key=self._settings.blob_signing_key,
            public_base_url=self._settings.public_base_url,
            s3_endpoint_url=self._settings.s3_endpoint_url,
            s3_region=self._settings.s3_region,
        )
        self._on_stopped = on_stopped
        # Hosted, the host group-commits every session's updates in one transaction
        # (`take_batch` / `batch_done`); this loop only keeps house, once a second.
        self._hosted = on_stopped is not None
        self._flushing = False
        self._applied = 0
        self._tasks = [asyncio.get_running_loop().create_task(self._start())]
        self.flush_failures = 0
        self._pending_since: float | None = None
        if on_stopped is None:
            observe_process("dojo-session")
            if _was_restarted():
                DOJO_ACTOR_RESTARTS.inc()

    # -- lifecycle ----------------------------------------------------------------------

    async def _start(self) -> None:
        while True:
            try:
                # Its own pool too: a session created while PostgreSQL restarts must not
                # stay unready forever (every join would wait on it).
                if self._own_db and not self._db.started:
                    await self._db.start()
                initial = await self._load()
                break
            except Exception as exc:  # the store may be down: keep trying, never give up
                log.warning("dojo %s: loading failed (%s); retrying", self._dojo, exc)
                await asyncio.sleep(1.0)
        self._session = DojoSession(str(self._dojo), Limits(), initial_update=initial)
        self._ready.set()
        DOJOS_LIVE.inc()
        self._tasks.append(asyncio.get_running_loop().create_task(self._flusher()))

    async def _load(self) -> bytes | None:
        """Snapshot + log since it, merged into one update."""
        from pycrdt import merge_updates

        async with self._db.tenant_tx(self._tenant) as conn:
            snapshot = await dojos.latest_snapshot(conn, self._dojo)
            after = snapshot["upto_seq"] if snapshot else 0
            rows = await dojos.updates_since(conn, self._dojo, after)
        parts: list[bytes] = []
        if snapshot is not None:
            parts.append(await self._blobs.get(BlobKey.parse(snapshot["blob_key"])))
        parts += [bytes(r["payload"]) for r in rows]
        self._last_seq = rows[-1]["seq"] if rows else after
        self._unsnapshotted_bytes = sum(len(bytes(r["payload"])) for r in rows)
        if not parts:
            return None
        merged: bytes = merge_updates(*parts) if len(parts) > 1 else parts[0]
        return merged

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(1.0 if self._hosted else self._flush_interval_s)
            if not self._hosted:
                await self.flush()
            self._observe_backlog()
            if self._should_snapshot():
                await self._snapshot()
            self._drop_silent_gateways()
            if self._idle_long_enough():
                await self._stop_when_persisted()
                return

    async def _stop_when_persisted(self) -> None:
        """Idle: refuse new joins (gateways retry and get a fresh actor), store everything,
        snapshot, then end this actor for good (no restart)."""
        self._closing = True
        while self._pending:
            if not await self.flush():
                await asyncio.sleep(1.0)
        await self._snapshot()
        if self._session is not None:
            self._session.close()  # its document is freed with it (see DojoSession.close)
        DOJOS_LIVE.dec()
        log.info("dojo %s: idle for %.0fs, state persisted, stopping", self._dojo, self._idle_s)
        if self._on_stopped is not None:
            self._on_stopped()
            return
        await self._db.stop()
        _ray.kill(_ray.get_runtime_context().current_actor, no_restart=True)

    @property
    def closing(self) -> bool:
        return self._closing

    async def shutdown(self) -> None:
        """The hosting process is stopping (or lost the dojo): refuse joins, store what is
        pending (a bounded number of tries: the clients still hold it and resync it into
        the next host) and stop the background tasks."""
        self._closing = True
        for _ in range(3):
            if not self._pending or await self.flush():
                break
            await asyncio.sleep(0.2)
        for task in self._tasks:
            task.cancel()
        if self._session is not None:
            self._session.close()
            if self._ready.is_set():
                DOJOS_LIVE.dec()
        gateways = list(self._gateways.values())
        self._gateways.clear()
        for gateway in gateways:
            gateway.ready.set()
            if gateway.sink is not None:
                gateway.sink(None)

    async def flush(self) -> int:
        """Append what is pending as one batch; on failure keep it and retry later."""
        batch = self.take_batch()
        if batch is None:
            return 0
        started = time.monotonic()
        try:
            async with self._db.tenant_tx(self._tenant) as conn:
                last_seq = await dojos.append_updates(conn, self._tenant, self._dojo, batch)
        except Exception as exc:
            self.batch_done(batch, None, started, exc)
            return 0
        DOJO_UPDATE_LOG_FLUSH_DURATION.observe(time.monotonic() - started)
        self.batch_done(batch, last_seq, started)
        return len(batch)

    @property
    def dojo_key(self) -> tuple[TenantId, uuid.UUID]:
        return self._tenant, self._dojo

    def take_batch(self) -> list[bytes] | None:
        """The pending updates to append now, or None (nothing pending, or a flush of this
        session is already in flight). Must be answered with `batch_done`."""
        if self._flushing or not self._pending:
            return None
        self._flushing = True
        return list(self._pending)

    def batch_done(
        self,
        batch: list[bytes],
        last_seq: int | None,
        started: float,
        error: Exception | None = None,
    ) -> None:
        """``batch`` is in the log up to ``last_seq``, or (None) was not stored: it stays
        pending and goes again with the next flush."""
        self._flushing = False
        if last_seq is None:
            self.flush_failures += 1
            log.warning("dojo %s: %d updates not yet stored (%s)", self._dojo, len(batch), error)
            return
        self._last_seq = last_seq
        del self._pending[: len(batch)]
        # What arrived during the flush is at most this old.
        self._pending_since = started if self._pending else None
        self._unsnapshotted_bytes += sum(len(u) for u in batch)

    def backlog(self) -> tuple[int, float | None]:
        """The accepted updates not yet in the log, and since when (monotonic) the oldest of
        them waits (None: nothing waits)."""
        return len(self._pending), self._pending_since if self._pending else None

    def _observe_backlog(self) -> None:
        if self._applied:
            applied, self._applied = self._applied, 0
            DOJO_UPDATES.labels("applied").inc(applied)
        if self._hosted:
            return  # the host reports its sessions' backlogs together (one gauge a process)
        pending, since = self.backlog()
        DOJO_UPDATE_LOG_BACKLOG.set(pending)
        DOJO_UPDATE_LOG_OLDEST_UNFLUSHED_AGE.set(0.0 if since is None else time.monotonic() - since)

    def _should_snapshot(self) -> bool:
        if self._unsnapshotted_bytes == 0:
            return False
        return (
            self._unsnapshotted_bytes >= self._snapshot_every_bytes
            or time.monotonic() - self._last_snapshot >= self._snapshot_every_s
        )

    async def _snapshot(self) -> None:
        """Compact: the whole document as one blob, recorded with the log position."""
        if self._session is None or self._pending or self._unsnapshotted_bytes == 0:
            return
        state, upto = self._session.state_update(), self._last_seq
        key = BlobKey.for_tenant(self._tenant, "dojos", str(self._dojo), f"snapshot-{upto}.yjs")
        try:
            await self._blobs.put(key, state, "application/octet-stream")
            async with self._db.tenant_tx(self._tenant) as conn:
                await dojos.record_snapshot(
                    conn, self._tenant, self._dojo, upto, key.value, len(state)
                )
        except Exception as exc:
            log.warning(
                "dojo %s: snapshot failed (%s); the log still has everything", self._dojo, exc
            )
            return
        self._unsnapshotted_bytes = 0
        self._last_snapshot = time.monotonic()

    def _idle_long_enough(self) -> bool:
        return (
            not self._gateways
            and self._empty_since is not None
            and time.monotonic() - self._empty_since >= self._idle_s
        )

    def _drop_silent_gateways(self) -> None:
        """A gateway that stopped polling died with its sockets: forget its connections."""
        now = time.monotonic()
        for gateway_id, gateway in list(self._gateways.items()):
            if gateway.sink is not None:
                continue  # in this process: it leaves explicitly
            if now - gateway.last_poll > self._gateway_ttl_s:
                log.warning("dojo %s: gateway %s went silent", self._dojo, gateway_id)
                for conn_id in list(gateway.connections):
                    self._forget(gateway_id, conn_id)

    def _broadcast(self, sender: str | None, messages: list[bytes]) -> None:
        for gateway in self._gateways.values():
            if (
                sender is not None
                and len(gateway.connections) == 1
                and sender in gateway.connections
            ):
                continue  # the sender is this gateway's only connection
            for message in messages:
                gateway.put((sender, message))

    def _forget(self, gateway_id: str, conn_id: str) -> None:
        gateway = self._gateways.get(gateway_id)
        if gateway is None or gateway.connections.pop(conn_id, None) is None:
            return
        if not gateway.connections:
            del self._gateways[gateway_id]
            gateway.ready.set()  # its pending poll returns what is left
        assert self._session is not None
        self._broadcast(None, self._session.disconnect(conn_id))
        if not self._gateways:
            self._empty_since = time.monotonic()

    # -- what gateways call -------------------------------------------------------------

    async def join(
        self,
        gateway_id: str,
        conn_id: str,
        user_id: str,
        can_write: bool,
        traceparent: str | None = None,
    ) -> list[bytes] | None:
        """Register a connection; the messages to send it first (sync step 1 and 2, who is
        present). None while the actor is stopping: the gateway retries with a new one.
        ``traceparent``: the gateway's span, continued here."""
        with span_from(traceparent, "dojo session join", kind=SpanKind.SERVER):
            return await self._join(gateway_id, conn_id, user_id, can_write)

    async def _join(
        self, gateway_id: str, conn_id: str, user_id: str, can_write: bool
    ) -> list[bytes] | None:
        await self._ready.wait()
        assert self._session is not None
        if self._closing:
            return None
        # A gateway whose join call timed out retries with a new link: the connection
        # counts once, under the link that got the answer.
        for other_id, other in list(self._gateways.items()):
            if other_id != gateway_id and conn_id in other.connections:
                self._forget(other_id, conn_id)
        gateway = self._gateways.setdefault(gateway_id, _Gateway())
        gateway.connections[conn_id] = user_id
        self._empty_since = None
        return self._session.connect(conn_id, can_write=can_write, now=time.monotonic())

    def attach(self, gateway_id: str, sink: Callable[[Broadcast | None], None]) -> None:
        """An in-process gateway takes its broadcasts through ``sink`` from now on (what
        was queued for it first)."""
        gateway = self._gateways.get(gateway_id)
        if gateway is None:
            sink(None)
            return
        queued, gateway.queue = gateway.queue, []
        gateway.sink = sink
        for item in queued:
            sink(item)

    async def receive(self, gateway_id: str, batch: list[tuple[str, bytes]]) -> list[Result]:
        """Handle a gateway's messages in order; results only for senders that get replies
        or must be closed (1012 for a connection this actor does not know: it restarted)."""
        await self._ready.wait()
        return self.receive_now(gateway_id, batch)

    def receive_now(self, gateway_id: str, batch: list[tuple[str, bytes]]) -> list[Result]:
        """`receive` for an in-process gateway of a session that is ready."""
        assert self._session is not None
        gateway = self._gateways.get(gateway_id)
        results: list[Result] = []
        now = time.monotonic()
        for conn_id, data in batch:
            if gateway is None or conn_id not in gateway.connections:
                results.append(
                    (conn_id, [], Close(SERVICE_RESTART, "session restarted, reconnect"))
                )
                continue
            outcome = self._session.receive(conn_id, data, now=now)
            if outcome.close is not None:
                DOJO_UPDATES.labels("rejected").inc()
                results.append((conn_id, [], outcome.close))
                continue
            if outcome.stored:
                if not self._pending:
                    self._pending_since = now
                self._pending += outcome.stored
                self._applied += len(outcome.stored)  # counted once a second (hot path)
            if outcome.broadcast:
                self._broadcast(conn_id, outcome.broadcast)
            if outcome.replies:
                results.append((conn_id, outcome.replies, None))
        return results

    async def poll(self, gateway_id: str, wait_s: float = 20.0) -> list[Broadcast] | None:
        """What to send to this gateway's connections (waiting up to ``wait_s`` for the
        first); None if the gateway has no connection here (the actor restarted, or they
        all left): the gateway stops polling."""
        gateway = self._gateways.get(gateway_id)
        if gateway is None:
            return None
        gateway.last_poll = time.monotonic()
        if not gateway.queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gateway.ready.wait(), timeout=wait_s)
        gateway.last_poll = time.monotonic()
        items = gateway.queue[:MAX_POLL_MESSAGES]
        del gateway.queue[:MAX_POLL_MESSAGES]
        if not gateway.queue:
            gateway.ready.clear()
        if not items and gateway_id not in self._gateways:
            return None
        return items

    async def leave(self, gateway_id: str, conn_id: str) -> None:
        self.leave_now(gateway_id, conn_id)

    def leave_now(self, gateway_id: str, conn_id: str) -> None:
        if self._session is not None:
            self._forget(gateway_id, conn_id)

    async def files(self) -> dict[str, str]:
        await self._ready.wait()
        assert self._session is not None
        return self._session.files()

    async def stats(self) -> dict[str, Any]:
        return {
            "connections": sum(len(g.connections) for g in self._gateways.values()),
            "gateways": len(self._gateways),
            "pending": len(self._pending),
            "last_seq": self._last_seq,
            "flush_failures": self.flush_failures,
            "closing": self._closing,
        }

    async def participants(self) -> list[str]:
        return sorted({u for g in self._gateways.values() for u in g.connections.values()})


def _was_restarted() -> bool:
    """Whether this actor instance is Ray's restart of a crashed one."""
    try:
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # not running as a Ray actor (a plain object in a test)
        return False


_ray: Any = ray  # Ray's overloads do not know actor options such as max_concurrency
DojoSessionRemote: Any = _ray.remote(max_restarts=-1, max_concurrency=10_000, num_cpus=0)(
    DojoSessionActor
)


def get_or_create(settings: Settings, tenant_id: uuid.UUID, dojo_id: uuid.UUID) -> Any:
    """The dojo's actor handle: created on first join, found by name afterwards."""
    return DojoSessionRemote.options(
        name=actor_name(tenant_id, dojo_id),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
    ).remote(settings.model_dump_json(), str(tenant_id), str(dojo_id))

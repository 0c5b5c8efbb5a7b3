"""DojoSession actor: hosts one live dojo's engine session; thin shell around the engine.

One actor per live dojo, named ``dojo:<tenant>:<dojo>``, created on first join and gone
after the last participant left ``idle_s`` ago (its state persisted first). Gateways call
``join`` / ``receive`` / ``leave`` and long-poll ``outbox`` for what to send back, so a
dojo's participants can sit on different gateway replicas.

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
from dataclasses import dataclass, field
from typing import Any

import ray

from pocdojo.engine.limits import Limits
from pocdojo.engine.outcome import Close
from pocdojo.engine.session import DojoSession
from pocdojo.settings import Settings
from pocdojo.storage import dojos
from pocdojo.storage.blobs import BlobKey, open_blob_store
from pocdojo.storage.db import Database
from pocdojo.types import TenantId

log = logging.getLogger("pocdojo.dojo")
NAMESPACE = "pocdojo"


def actor_name(tenant_id: uuid.UUID, dojo_id: uuid.UUID) -> str:
    return f"dojo:{tenant_id}:{dojo_id}"


@dataclass(slots=True)
class _Peer:
    user_id: str
    queue: asyncio.Queue[bytes | Close] = field(default_factory=asyncio.Queue)


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
        idle_s: float = 60.0,
    ) -> None:
        self._settings = Settings.model_validate_json(settings_json)
        self._tenant = TenantId(uuid.UUID(tenant_id))
        self._dojo = uuid.UUID(dojo_id)
        self._flush_interval_s = flush_interval_s
        self._snapshot_every_bytes = snapshot_every_bytes
        self._snapshot_every_s = snapshot_every_s
        self._idle_s = idle_s
        self._peers: dict[str, _Peer] = {}
        self._pending: list[bytes] = []
        self._unsnapshotted_bytes = 0
        self._last_seq = 0
        self._last_snapshot = time.monotonic()
        self._empty_since: float | None = time.monotonic()
        self._session: DojoSession | None = None
        self._ready = asyncio.Event()
        self._db = Database(self._settings.database_url, max_size=2)
        self._blobs = open_blob_store(
            self._settings.blob_url,
            signing_key=self._settings.blob_signing_key,
            public_base_url=self._settings.public_base_url,
            s3_endpoint_url=self._settings.s3_endpoint_url,
            s3_region=self._settings.s3_region,
        )
        self._tasks = [asyncio.get_running_loop().create_task(self._start())]
        self.flush_failures = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def _start(self) -> None:
        await self._db.start()
        while True:
            try:
                initial = await self._load()
                break
            except Exception as exc:  # the store may be down: keep trying, never give up
                log.warning("dojo %s: loading failed (%s); retrying", self._dojo, exc)
                await asyncio.sleep(1.0)
        self._session = DojoSession(str(self._dojo), Limits(), initial_update=initial)
        self._ready.set()
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
            await asyncio.sleep(self._flush_interval_s)
            await self.flush()
            if self._should_snapshot():
                await self._snapshot()
            if self._idle_long_enough():
                await self.flush()
                if not self._pending:
                    await self._snapshot()
                    _ray.actor.exit_actor()

    async def flush(self) -> int:
        """Append what is pending as one batch; on failure keep it and retry later."""
        if not self._pending:
            return 0
        batch = list(self._pending)
        try:
            async with self._db.tenant_tx(self._tenant) as conn:
                self._last_seq = await dojos.append_updates(conn, self._tenant, self._dojo, batch)
        except Exception as exc:
            self.flush_failures += 1
            log.warning("dojo %s: %d updates not yet stored (%s)", self._dojo, len(batch), exc)
            return 0
        del self._pending[: len(batch)]
        self._unsnapshotted_bytes += sum(len(u) for u in batch)
        return len(batch)

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
            not self._peers
            and self._empty_since is not None
            and time.monotonic() - self._empty_since >= self._idle_s
        )

    # -- what gateways call -------------------------------------------------------------

    async def join(self, conn_id: str, user_id: str, can_write: bool) -> list[bytes]:
        await self._ready.wait()
        assert self._session is not None
        self._peers[conn_id] = _Peer(user_id)
        self._empty_since = None
        return self._session.connect(conn_id, can_write=can_write, now=time.monotonic())

    async def receive(self, conn_id: str, data: bytes) -> tuple[list[bytes], Close | None]:
        """Handle one message; returns (replies to the sender, close for the sender)."""
        await self._ready.wait()
        assert self._session is not None
        if conn_id not in self._peers:
            return [], Close(1008, "not joined")
        outcome = self._session.receive(conn_id, data, now=time.monotonic())
        if outcome.close is not None:
            return [], outcome.close
        self._pending += outcome.stored
        for message in outcome.broadcast:
            for other_id, peer in self._peers.items():
                if other_id != conn_id:
                    peer.queue.put_nowait(message)
        return outcome.replies, None

    async def outbox(self, conn_id: str, wait_s: float = 20.0) -> list[bytes] | None:
        """Messages for ``conn_id`` (waiting up to ``wait_s`` for the first); None if the
        connection is unknown (left, or the actor restarted: the gateway reconnects)."""
        peer = self._peers.get(conn_id)
        if peer is None:
            return None
        messages: list[bytes] = []
        with contextlib.suppress(TimeoutError):
            first = await asyncio.wait_for(peer.queue.get(), timeout=wait_s)
            messages.append(first)  # type: ignore[arg-type]
            while not peer.queue.empty() and len(messages) < 256:
                messages.append(peer.queue.get_nowait())  # type: ignore[arg-type]
        return messages

    async def leave(self, conn_id: str) -> None:
        if self._session is None:
            return
        self._peers.pop(conn_id, None)
        for message in self._session.disconnect(conn_id):
            for peer in self._peers.values():
                peer.queue.put_nowait(message)
        if not self._peers:
            self._empty_since = time.monotonic()

    async def files(self) -> dict[str, str]:
        await self._ready.wait()
        assert self._session is not None
        return self._session.files()

    async def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self._peers),
            "pending": len(self._pending),
            "last_seq": self._last_seq,
            "flush_failures": self.flush_failures,
        }

    async def participants(self) -> list[str]:
        return sorted({p.user_id for p in self._peers.values()})


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

"""Dojo sessions hosted by the gateway process that owns the dojo.

Each live dojo has exactly one owner at a time: a gateway process (a DojoGateway replica,
or a Serve replica answering the Starlette routes) that won the dojo's lease in Redis
(``pocdojo:dojo-owner:<tenant>:<dojo>`` = the owner's internal websocket address). The
owner runs the dojo's session (`DojoSessionActor`, the same class a per-dojo Ray actor
runs) on its own event loop; its sockets talk to it by plain function calls. A socket that
lands on another process is piped, frame by frame, to the owner's internal listener, where
the owner authenticates it again and serves it like its own. No Ray call on the edit path:
measured in `make bench-dojo` against one Ray actor per dojo (``dojo_session_host =
"actor"``, still available).

The lease is renewed while the session lives and released when it stops. An owner that
dies stops renewing; the next connection finds its address dead, clears the lease (only if
it still names the dead owner) and takes the dojo over, rebuilding it from snapshot + log;
clients resync what the log missed through sync step 1/2. Two owners at once (a partition)
cannot lose edits: both append to the same log and Yjs updates merge; the one that finds
its lease gone closes its sockets with 1012 and the clients reconnect to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import asyncpg
from redis import asyncio as aioredis

from pocdojo.actors.dojo_session import DojoSessionActor
from pocdojo.metrics import (
    DOJO_UPDATE_LOG_BACKLOG,
    DOJO_UPDATE_LOG_FLUSH_DURATION,
    DOJO_UPDATE_LOG_OLDEST_UNFLUSHED_AGE,
)
from pocdojo.settings import Settings
from pocdojo.storage import dojos
from pocdojo.storage.blobs import FileBlobStore, S3BlobStore
from pocdojo.storage.db import Database
from pocdojo.types import TenantId

log = logging.getLogger("pocdojo.gateway")

LEASE_PREFIX = "pocdojo:dojo-owner:"
# Renew only while the value is still ours; release likewise (never someone else's lease).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501

Key = tuple[str, str]
BACKLOG_EVERY_S = 1.0  # how often the backlog gauges are updated


def lease_key(tenant_id: str, dojo_id: str) -> str:
    return f"{LEASE_PREFIX}{tenant_id}:{dojo_id}"


class _Call:
    """``session.method.remote(...)`` for an in-process session: the hub's links use the
    same calls for a local session as for a Ray actor handle."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        self._fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return asyncio.ensure_future(self._fn(*args, **kwargs))


async def append_isolating(
    db: Database, batches: list[tuple[TenantId, uuid.UUID, list[bytes]]]
) -> dict[uuid.UUID, int | Exception]:
    """Append several dojos' batches to the update log in one statement (migration 0019);
    if the database refuses it (a row it will not take: a dojo deleted while its session
    lived), each batch alone, so that one dojo cannot hold back every other dojo's
    durability. Per dojo: the last sequence number written, or why its batch was not (an
    unreachable database fails them all; they stay pending and go again)."""
    try:
        async with db.connection() as conn:
            written = await dojos.append_updates_all(conn, batches)
    except asyncpg.PostgresError as exc:
        if len(batches) == 1:
            return {batches[0][1]: exc}
        outcomes: dict[uuid.UUID, int | Exception] = {}
        for batch in batches:
            outcomes.update(await append_isolating(db, [batch]))
        return outcomes
    except Exception as exc:
        return {dojo_id: exc for _, dojo_id, _ in batches}
    return {dojo_id: written[dojo_id] for _, dojo_id, _ in batches}


class LocalSession:
    """A handle on a session hosted by this process, shaped like its Ray actor handle."""

    def __init__(self, session: DojoSessionActor) -> None:
        self.session = session
        self.join = _Call(session.join)
        self.receive = _Call(session.receive)
        self.poll = _Call(session.poll)
        self.leave = _Call(session.leave)
        self.files = _Call(session.files)
        self.stats = _Call(session.stats)
        self.participants = _Call(session.participants)


class SessionHost:
    """The sessions this process owns, and the leases that say so."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        blobs: FileBlobStore | S3BlobStore,
        redis: aioredis.Redis,
        *,
        lease_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.address = ""  # ws://host:port of this process's internal listener, once bound
        self._db = db
        self._blobs = blobs
        self._redis = redis
        self._lease_ms = int(1000 * (lease_s or settings.dojo_owner_lease_s))
        self._sessions: dict[Key, LocalSession] = {}
        self._renew = redis.register_script(_RENEW)  # EVALSHA, loaded by the pipeline
        self._renewer: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flush_interval_s = 0.05
        # Dojos whose last batch the database refused (their batch stays pending, so each
        # flush takes it again and recomputes this; a stopped session drops out).
        self._refused: set[uuid.UUID] = set()
        self.flushes = 0

    def hosted(self) -> int:
        return len(self._sessions)

    def session(self, tenant_id: str, dojo_id: str) -> LocalSession:
        """This process's session of the dojo, started on first use. A session that is
        stopping is returned as is: its joins answer None and the hub retries until it is
        gone and a fresh one (loaded after the old one stored everything) takes over."""
        key = (tenant_id, dojo_id)
        found = self._sessions.get(key)
        if found is None:
            holder: list[LocalSession] = []

            def stopped() -> None:
                if holder and self._sessions.get(key) is holder[0]:
                    del self._sessions[key]
                    asyncio.get_running_loop().create_task(self._release(key))

            found = LocalSession(
                DojoSessionActor(
                    self.settings.model_dump_json(),
                    tenant_id,
                    dojo_id,
                    db=self._db,
                    blobs=self._blobs,
                    on_stopped=stopped,
                )
            )
            holder.append(found)
            self._sessions[key] = found
            loop = asyncio.get_running_loop()
            if self._renewer is None or self._renewer.done():
                self._renewer = loop.create_task(self._renew_loop())
            if self._flusher is None or self._flusher.done():
                self._flusher = loop.create_task(self._flush_loop())
        return found

    async def _flush_loop(self) -> None:
        """Group commit across the dojos hosted here: every ``flush_interval`` what all
        sessions have pending goes to the log in one transaction (one statement per
        tenant). A failure leaves each batch pending in its session for the next round."""
        observed = time.monotonic()
        while self._sessions:
            await asyncio.sleep(self._flush_interval_s)
            await self.flush()
            if time.monotonic() - observed >= BACKLOG_EVERY_S:
                observed = time.monotonic()
                self.observe_backlog()
        self.observe_backlog()

    def backlog(self) -> tuple[int, float]:
        """The update-log backlog of the whole process: every hosted session's pending
        updates, and the age of the oldest in seconds (0 when nothing waits)."""
        pending, oldest = 0, None
        for local in self._sessions.values():
            count, since = local.session.backlog()
            pending += count
            if since is not None and (oldest is None or since < oldest):
                oldest = since
        return pending, 0.0 if oldest is None else time.monotonic() - oldest

    def observe_backlog(self) -> None:
        """Set the backlog gauges to `backlog` (gauges hold one value per process: sessions
        setting them in turn would overwrite each other, and a stuck dojo could hide behind
        a healthy one)."""
        pending, age = self.backlog()
        DOJO_UPDATE_LOG_BACKLOG.set(pending)
        DOJO_UPDATE_LOG_OLDEST_UNFLUSHED_AGE.set(age)

    async def flush(self) -> int:
        taken: list[tuple[DojoSessionActor, list[bytes]]] = []
        for local in list(self._sessions.values()):
            batch = local.session.take_batch()
            if batch is not None:
                taken.append((local.session, batch))
        if not taken:
            return 0
        started = time.monotonic()
        batches = [(*session.dojo_key, batch) for session, batch in taken]
        # The dojos whose batch the database refused last time go alone, so that retrying
        # them does not make every flush fail first.
        together = [b for b in batches if b[1] not in self._refused]
        outcomes: dict[uuid.UUID, int | Exception] = {}
        for group in [together, *([b] for b in batches if b[1] in self._refused)]:
            if group:
                outcomes.update(await append_isolating(self._db, group))
        self._refused = {
            dojo_id
            for dojo_id, outcome in outcomes.items()
            if isinstance(outcome, asyncpg.PostgresError)
        }
        stored = 0
        for session, batch in taken:
            outcome = outcomes[session.dojo_key[1]]
            if isinstance(outcome, Exception):
                session.batch_done(batch, None, started, outcome)
            else:
                session.batch_done(batch, outcome, started)
                stored += len(batch)
        if stored:
            self.flushes += 1
            # One group commit for every hosted dojo: one observation, not one per dojo.
            DOJO_UPDATE_LOG_FLUSH_DURATION.observe(time.monotonic() - started)
        return stored

    async def owner(self, tenant_id: str, dojo_id: str) -> str | None:
        """None if this process owns the dojo (claiming it if nobody does), else the
        owner's internal address."""
        key = lease_key(tenant_id, dojo_id)
        for _ in range(3):
            if await self._redis.set(key, self.address, nx=True, px=self._lease_ms):
                return None
            value = await self._redis.get(key)
            if value is None:
                continue  # released meanwhile: claim again
            current = value.decode() if isinstance(value, bytes) else str(value)
            if current == self.address:
                return None
            return current
        return None  # the key keeps vanishing: nobody holds it, host here

    async def evict_owner(self, tenant_id: str, dojo_id: str, dead: str) -> None:
        """``dead`` did not answer: clear its lease (only if it is still its) so the next
        claim can take the dojo over."""
        await cast(Any, self._redis).eval(_RELEASE, 1, lease_key(tenant_id, dojo_id), dead)

    async def _release(self, key: Key) -> None:
        with contextlib.suppress(Exception):
            await cast(Any, self._redis).eval(_RELEASE, 1, lease_key(*key), self.address)

    async def _renew_loop(self) -> None:
        period = self._lease_ms / 3000
        while self._sessions:
            await asyncio.sleep(period)
            hosted = list(self._sessions.items())
            try:  # every lease in one round trip
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key, _local in hosted:
                        await self._renew(
                            keys=[lease_key(*key)], args=[self.address, self._lease_ms], client=pipe
                        )
                    answers = await pipe.execute()
            except Exception as exc:  # Redis away: keep hosting, try again next round
                log.warning("dojo lease renewal failed for %d dojos: %s", len(hosted), exc)
                continue
            for (key, local), kept in zip(hosted, answers, strict=True):
                if kept or self._sessions.get(key) is not local or await self._reclaim(key):
                    continue
                log.warning("dojo %s: another process owns it now; handing over", key[1])
                await self._drop(key, local)

    async def _reclaim(self, key: Key) -> bool:
        """Our lease expired (Redis restarted, a long pause) but nobody took it: keep it."""
        claimed = await self._redis.set(lease_key(*key), self.address, nx=True, px=self._lease_ms)
        return bool(claimed)

    async def _drop(self, key: Key, local: LocalSession) -> None:
        if self._sessions.get(key) is local:
            del self._sessions[key]
        await local.session.shutdown()  # its links break: the sockets close with 1012

    async def close(self) -> None:
        """Process stopping: store what is pending, release every lease."""
        for task in (self._renewer, self._flusher):
            if task is not None:
                task.cancel()
        for key, local in list(self._sessions.items()):
            await self._drop(key, local)
            await self._release(key)

"""A session actor's life: participants on two gateway replicas, a gateway that dies with
its sockets, and the idle stop that persists first and comes back with the same document."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import ray
from pycrdt import Doc, Map, Text

from pocdojo.actors.dojo_session import NAMESPACE, DojoSessionRemote, actor_name
from pocdojo.api.context import Services, open_services
from pocdojo.engine.protocol import encode_sync_update
from pocdojo.gateway import hub as hub_module
from pocdojo.gateway.flows import TRY_AGAIN_LATER, admit, events_channel, run_sync
from pocdojo.gateway.hub import DojoHub
from pocdojo.gateway.server import run_gateway
from pocdojo.settings import Settings
from pocdojo.storage.dojos import Dojo
from pocdojo.types import Principal
from tests.conftest import TenantFixture, free_port
from tests.dojos.test_gateway_sync import eventually, new_dojo, sync_url
from tests.dojos.ywsclient import YClient

pytestmark = pytest.mark.ray


def _precreate(settings: Settings, tenant_id: uuid.UUID, dojo_id: str, **options: float) -> Any:
    """The dojo's actor with test timings; gateways find it by name (get_if_exists)."""
    return DojoSessionRemote.options(
        name=actor_name(tenant_id, uuid.UUID(dojo_id)),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
    ).remote(settings.model_dump_json(), str(tenant_id), dojo_id, **options)


def _alive(name: str) -> bool:
    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return False
    return True


async def test_participants_on_two_gateway_replicas_edit_together(
    client: httpx.AsyncClient,
    actor_ws_base: str,
    settings: Settings,
    tenant: TenantFixture,
    ray_cluster: object,
) -> None:
    """Sessions as Ray actors: both replicas talk to the dojo's one actor."""
    ws_base = actor_ws_base
    second = settings.model_copy(
        update={"dojo_gateway_port": free_port(), "dojo_session_host": "actor"}
    )
    stop, started = asyncio.Event(), asyncio.Event()
    replica = asyncio.create_task(run_gateway(second, stop, started=started))
    await asyncio.wait_for(started.wait(), 20)
    other_base = f"ws://127.0.0.1:{second.dojo_gateway_port}"
    dojo = await new_dojo(client, tenant.member, files={"main.py": ""})
    a = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
    b = await YClient(sync_url(other_base, dojo["id"], tenant.other_member.token)).connect()
    c = await YClient(sync_url(other_base, dojo["id"], tenant.member.token)).connect()
    try:
        for i in range(20):
            a.edit("main.py", 0, f"a{i};")
            b.edit("b.py", 0, f"b{i};")
            c.edit("c.py", 0, f"c{i};")
            await asyncio.sleep(0.005)
        await eventually(lambda: a.read() == b.read() == c.read() and len(a.read()) == 3)
        actor = ray.get_actor(actor_name(tenant.id, uuid.UUID(dojo["id"])), namespace=NAMESPACE)
        stats = await actor.stats.remote()
        assert stats["connections"] == 3
        assert stats["gateways"] == 2
    finally:
        for y in (a, b, c):
            await y.close()
        stop.set()
        await asyncio.wait_for(replica, 10)


async def test_a_gateway_that_stops_polling_loses_its_connections(
    client: httpx.AsyncClient, settings: Settings, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo = await new_dojo(client, tenant.member)
    actor: Any = _precreate(settings, tenant.id, dojo["id"], gateway_ttl_s=1.0, idle_s=600.0)
    try:
        first = await actor.join.remote("dead-gw:1", "c1", str(tenant.member.user_id), True)
        assert first
        assert isinstance(first[0], bytes)
        assert (await actor.stats.remote())["connections"] == 1
        # no poll ever comes: after the TTL the connection is dropped
        assert await _wait_for_connections(actor, 0, within_s=10.0) == 0
        assert await actor.poll.remote("dead-gw:1", 0.1) is None
    finally:
        ray.kill(actor, no_restart=True)


async def test_a_retried_join_counts_once_and_a_silent_gateway_is_dropped_with_its_backlog(
    client: httpx.AsyncClient, settings: Settings, tenant: TenantFixture, ray_cluster: object
) -> None:
    """A gateway whose join call timed out retries on a new link while the first call may
    still land: the connection must count once. And a gateway that stopped polling is
    forgotten after the TTL even when broadcasts are queued for it."""
    dojo = await new_dojo(client, tenant.member)
    actor: Any = _precreate(settings, tenant.id, dojo["id"], gateway_ttl_s=1.0, idle_s=600.0)
    user = str(tenant.member.user_id)
    try:
        assert await actor.join.remote("gw:1", "c1", user, True)
        assert await actor.join.remote("gw:2", "c1", user, True)  # the retry
        stats = await actor.stats.remote()
        assert (stats["connections"], stats["gateways"]) == (1, 1)
        # gw:3 stays alive (polls) and types; gw:2 never polls and gets a backlog.
        assert await actor.join.remote("gw:3", "c3", user, True)
        doc = Doc()
        doc["files"] = files = Map()
        files["a.py"] = Text("x = 1\n")
        results = await actor.receive.remote("gw:3", [("c3", encode_sync_update(doc.get_update()))])
        assert all(close is None for _conn, _replies, close in results)

        async def keep_polling() -> None:
            while await actor.poll.remote("gw:3", 0.2) is not None:
                pass

        poller = asyncio.create_task(keep_polling())
        try:
            assert await _wait_for_connections(actor, 1, within_s=10.0) == 1
            assert (await actor.stats.remote())["gateways"] == 1
            assert await actor.poll.remote("gw:2", 0.1) is None
        finally:
            poller.cancel()
    finally:
        ray.kill(actor, no_restart=True)


async def test_idle_session_stops_after_persisting_and_comes_back(
    client: httpx.AsyncClient,
    actor_ws_base: str,
    settings: Settings,
    tenant: TenantFixture,
    ray_cluster: object,
) -> None:
    ws_base = actor_ws_base
    dojo = await new_dojo(client, tenant.member)
    name = actor_name(tenant.id, uuid.UUID(dojo["id"]))
    _precreate(settings, tenant.id, dojo["id"], idle_s=1.0)
    writer = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
    writer.edit("kept.py", 0, "print('still here')\n")
    await asyncio.sleep(0.3)
    await writer.close()
    await eventually(lambda: not _alive(name), within_s=30)
    # A new session (default timings) starts from the snapshot and log.
    reader = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
    try:
        await eventually(lambda: reader.read() == {"kept.py": "print('still here')\n"})
    finally:
        await reader.close()
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)


@contextlib.asynccontextmanager
async def _direct_session(
    client: httpx.AsyncClient, settings: Settings, tenant: TenantFixture
) -> AsyncIterator[tuple[Any, DojoHub, Services, Principal, Dojo]]:
    """A dojo's actor, a hub bound to it and an admitted member: what `run_sync` needs to
    be driven with a fake socket, without a websocket server in between."""
    dojo = await new_dojo(client, tenant.member)
    actor: Any = _precreate(settings, tenant.id, dojo["id"], idle_s=600.0)
    try:
        async with open_services(settings) as services:
            principal, row = await admit(services, tenant.member.token, dojo["id"])
            yield actor, DojoHub(lambda _t, _d: actor), services, principal, row
    finally:
        ray.kill(actor, no_restart=True)


async def _wait_for_connections(actor: Any, expected: int, within_s: float = 5.0) -> int:
    """The actor's connection count once it is ``expected`` (or whatever it is at the end)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        count: int = (await asyncio.wait_for(actor.stats.remote(), 10))["connections"]
        if count == expected or asyncio.get_running_loop().time() > deadline:
            return count
        await asyncio.sleep(0.05)


class _StuckSocket:
    """A socket whose client never speaks: its task can only end by cancellation."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def send_text(self, data: str) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass

    async def receive(self) -> bytes | str | None:
        await asyncio.Event().wait()
        return None


async def test_a_cancelled_socket_task_leaves_no_ghost_connection(
    client: httpx.AsyncClient, settings: Settings, tenant: TenantFixture, ray_cluster: object
) -> None:
    """What Serve's proxy does to a websocket at its request timeout: cancel the task."""
    async with _direct_session(client, settings, tenant) as (actor, hub, services, who, row):
        socket = _StuckSocket()
        task = asyncio.create_task(run_sync(hub, services, socket, who, row))
        for _ in range(200):
            if socket.sent:
                break
            await asyncio.sleep(0.05)
        assert socket.sent  # joined: the initial sync went out
        assert await _wait_for_connections(actor, 1) == 1
        # Cancelled, and cancelled again while it cleans up (a proxy that gives up twice).
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)  # its cleanup is bounded (TimeoutError if not)
        assert await _wait_for_connections(actor, 0) == 0
        assert hub.links() == 0


class _DeadSocket(_StuckSocket):
    """A socket that died without its reader being told: every send fails."""

    async def send_bytes(self, data: bytes) -> None:
        raise ConnectionResetError("peer gone")


async def test_a_socket_that_dies_silently_is_dropped(
    client: httpx.AsyncClient, settings: Settings, tenant: TenantFixture, ray_cluster: object
) -> None:
    async with _direct_session(client, settings, tenant) as (actor, hub, services, who, row):
        # The writer's first send fails; the connection must end on its own.
        await asyncio.wait_for(run_sync(hub, services, _DeadSocket(), who, row), timeout=30)
        assert await _wait_for_connections(actor, 0) == 0
        assert hub.links() == 0


class _ClosedSocket(_StuckSocket):
    """A socket that records how the gateway closed it."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class _NoSession:
    """A session handle whose joins always fail (a session that never comes up)."""

    class join:  # shaped like a Ray actor method
        @staticmethod
        def remote(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("session unavailable")


async def test_a_join_that_fails_is_announced_with_its_leave(
    client: httpx.AsyncClient,
    settings: Settings,
    tenant: TenantFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The join is announced before the joiner's sync; when no sync comes, the leave follows
    and the participation is closed, so presence never shows a ghost."""
    monkeypatch.setattr(hub_module, "JOIN_ATTEMPTS", 2)
    dojo = await new_dojo(client, tenant.member)
    async with open_services(settings) as services:
        principal, row = await admit(services, tenant.member.token, dojo["id"])
        pubsub = services.redis.pubsub()
        await pubsub.subscribe(events_channel(principal.tenant_id, row.id))
        try:
            socket = _ClosedSocket()
            hub = DojoHub(lambda _t, _d: _NoSession())
            await asyncio.wait_for(run_sync(hub, services, socket, principal, row), timeout=30)
            assert socket.closed == (TRY_AGAIN_LATER, "session unavailable, retry")
            assert not socket.sent
            types: list[str] = []
            deadline = asyncio.get_running_loop().time() + 10
            while len(types) < 2 and asyncio.get_running_loop().time() < deadline:
                # None for the subscription's own confirmation, or nothing within the timeout
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    types.append(json.loads(message["data"])["type"])
            assert types == ["participant.joined", "participant.left"]
        finally:
            await pubsub.unsubscribe()
            await cast(Any, pubsub).aclose()
        async with services.db.tenant_tx(principal.tenant_id) as conn:
            left = await conn.fetch(
                "select left_at from dojo_participation where dojo_id = $1 and user_id = $2",
                row.id,
                principal.user_id,
            )
    assert [r["left_at"] is not None for r in left] == [True]

"""Sessions hosted by the gateway process that owns the dojo (``dojo_session_host =
"gateway"``): sockets on other gateways piped to the owner, an owner killed mid-stream
(SIGKILL, a real process), a lease taken away, and the idle stop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
import weakref

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from pocdojo.gateway.host import lease_key
from pocdojo.settings import Settings
from tests.conftest import GatewayThread, TenantFixture, free_port, gateway_thread, settings_env
from tests.dojos.test_dojo_durability_and_events import _expected, _typing, eventually_async
from tests.dojos.test_gateway_sync import eventually, new_dojo, sync_url
from tests.dojos.ywsclient import YClient


def _hosted(gw: GatewayThread) -> set[tuple[str, str]]:
    host = gw.gateway.hub.host
    assert host is not None
    return set(host._sessions)


async def _lease(settings: Settings, tenant: TenantFixture, dojo_id: str) -> str | None:
    r = aioredis.Redis.from_url(settings.redis_url)
    try:
        value = await r.get(lease_key(str(tenant.id), dojo_id))
    finally:
        await r.aclose()
    return value.decode() if value is not None else None


async def _history(client: httpx.AsyncClient, tenant: TenantFixture, dojo_id: str) -> object:
    response = await client.get(f"/v1/dojos/{dojo_id}/history", headers=tenant.member.headers)
    assert response.status_code == 200
    return response.json()["files"]


async def test_sockets_on_another_gateway_are_piped_to_the_owner(
    client: httpx.AsyncClient,
    dojo_gateway_thread: GatewayThread,
    settings: Settings,
    tenant: TenantFixture,
) -> None:
    owner = dojo_gateway_thread
    dojo = await new_dojo(client, tenant.member, files={"main.py": ""})
    key = (str(tenant.id), dojo["id"])
    with gateway_thread(settings) as other:
        a = await YClient(sync_url(owner.url, dojo["id"], tenant.member.token)).connect()
        b = await YClient(sync_url(other.url, dojo["id"], tenant.other_member.token)).connect()
        c = await YClient(sync_url(other.url, dojo["id"], tenant.member.token)).connect()
        try:
            for i in range(20):
                a.edit("main.py", 0, f"a{i};")
                b.edit("b.py", 0, f"b{i};")
                c.edit("c.py", 0, f"c{i};")
                await asyncio.sleep(0.005)
            await eventually(lambda: a.read() == b.read() == c.read() and len(a.read()) == 3)
            assert key in _hosted(owner)
            assert key not in _hosted(other)  # its two sockets are pipes to the owner
            assert await _lease(settings, tenant, dojo["id"]) == owner.gateway.hub.host.address
            stats = await owner.call(owner.gateway.hub.host._sessions[key].session.stats())
            assert stats["connections"] == 3
        finally:
            for y in (a, b, c):
                await y.close()


async def test_a_token_of_another_tenant_is_refused_before_any_pipe(
    client: httpx.AsyncClient,
    dojo_gateway_thread: GatewayThread,
    settings: Settings,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
) -> None:
    dojo = await new_dojo(client, tenant.member)
    owner_client = await YClient(
        sync_url(dojo_gateway_thread.url, dojo["id"], tenant.member.token)
    ).connect()
    try:
        with gateway_thread(settings) as other:
            internal = dojo_gateway_thread.gateway.hub.host.address
            # Through a non-owner gateway, and straight at the owner's internal listener.
            for base in (other.url, internal):
                url = sync_url(base, dojo["id"], other_tenant.member.token)
                async with websockets.connect(url) as ws:
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await asyncio.wait_for(ws.recv(), 10)  # no document byte, the close
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 1008
    finally:
        await owner_client.close()


async def test_owner_killed_mid_stream_loses_no_edit(
    client: httpx.AsyncClient,
    dojo_gateway: str,
    settings: Settings,
    tenant: TenantFixture,
) -> None:
    """8 clients type through one gateway to a dojo another gateway process owns; that
    process is SIGKILLed; the clients reconnect, the survivor takes the dojo over and
    the document is the union of every edit."""
    port = free_port()
    env = settings_env(settings, POCDOJO_DOJO_GATEWAY_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "pocdojo.gateway.server"], env=env)  # noqa: ASYNC220
    try:
        owner_url = f"ws://127.0.0.1:{port}"
        dojo = await new_dojo(client, tenant.member)
        claimer = None
        deadline = time.monotonic() + 30
        while claimer is None:
            try:
                claimer = await YClient(
                    sync_url(owner_url, dojo["id"], tenant.member.token)
                ).connect()
            except OSError:
                assert time.monotonic() < deadline, "gateway process did not start"
                await asyncio.sleep(0.2)
        lease = await _lease(settings, tenant, dojo["id"])
        assert lease is not None
        assert lease.startswith("ws://127.0.0.1:")
        url = sync_url(dojo_gateway, dojo["id"], tenant.member.token)
        clients = [await YClient(url).connect() for _ in range(8)]
        try:
            await _typing(clients, 10, "a")
            await eventually(lambda: all(len(c.read()) == 8 for c in clients))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await _typing(clients, 5, "b")  # typed while the owner is gone
            for c in clients:
                assert await c.closed() == 1012
            for c in clients:
                await c.connect()  # the survivor finds the owner dead and takes over
            await _typing(clients, 5, "c")
            expected = _expected(clients, [("a", 10), ("b", 5), ("c", 5)])
            await eventually(lambda: all(c.read() == expected for c in clients), within_s=60)
        finally:
            for c in clients:
                await c.close()
            await claimer.close()
        await eventually_async(lambda: _history(client, tenant, dojo["id"]), expected, 30)
        assert await _lease(settings, tenant, dojo["id"]) != lease
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def test_a_lost_lease_hands_the_dojo_over(
    client: httpx.AsyncClient,
    dojo_gateway_thread: GatewayThread,
    settings: Settings,
    tenant: TenantFixture,
) -> None:
    """Another process holds the lease now (a partition healed, say): the session here
    stops and its clients are told to reconnect; a dead lease holder is taken over."""
    gw = dojo_gateway_thread
    dojo = await new_dojo(client, tenant.member)
    writer = await YClient(sync_url(gw.url, dojo["id"], tenant.member.token)).connect()
    try:
        writer.edit("a.py", 0, "kept\n")
        await asyncio.sleep(0.2)
        r = aioredis.Redis.from_url(settings.redis_url)
        try:
            unreachable = f"ws://127.0.0.1:{free_port()}"
            await r.set(lease_key(str(tenant.id), dojo["id"]), unreachable, px=60_000)
        finally:
            await r.aclose()
        assert await asyncio.wait_for(writer.closed(), 15) == 1012
        assert (str(tenant.id), dojo["id"]) not in _hosted(gw)
        await writer.connect()  # the unreachable holder is evicted; this gateway hosts again
        await eventually(lambda: writer.read() == {"a.py": "kept\n"})
        assert await _lease(settings, tenant, dojo["id"]) == gw.gateway.hub.host.address
    finally:
        await writer.close()


async def test_idle_hosted_session_stops_after_persisting_and_comes_back(
    client: httpx.AsyncClient, settings: Settings, tenant: TenantFixture, migrated: None
) -> None:
    with gateway_thread(settings.model_copy(update={"dojo_idle_s": 1.0})) as gw:
        dojo = await new_dojo(client, tenant.member)
        key = (str(tenant.id), dojo["id"])
        writer = await YClient(sync_url(gw.url, dojo["id"], tenant.member.token)).connect()
        writer.edit("kept.py", 0, "print('still here')\n")
        await asyncio.sleep(0.3)
        host = gw.gateway.hub.host
        assert host is not None
        live = host._sessions[key].session._session
        assert live is not None
        document = weakref.ref(live._doc)
        del live
        await writer.close()
        await eventually(lambda: key not in _hosted(gw), within_s=30)
        # The stopped session's document is freed with it, not kept by the process.
        await eventually(lambda: gc.collect() >= 0 and document() is None, within_s=10)
        await eventually_async(lambda: _lease(settings, tenant, dojo["id"]), None, 10)
        reader = await YClient(sync_url(gw.url, dojo["id"], tenant.member.token)).connect()
        try:
            await eventually(lambda: reader.read() == {"kept.py": "print('still here')\n"})
        finally:
            await reader.close()


async def test_the_dojo_app_releases_its_leases_when_it_stops(
    client: httpx.AsyncClient, settings: Settings, tenant: TenantFixture
) -> None:
    """Sockets through the Starlette routes (behind Serve's proxy) are hosted by that
    process too: stopping it stores the sessions and frees their dojos at once, not when
    the leases expire."""
    from pocdojo.api.dojo_app import create_dojo_app
    from tests.conftest import uvicorn_thread

    dojo = await new_dojo(client, tenant.member)
    port = free_port()
    app = create_dojo_app(settings)
    with uvicorn_thread(app, port, "dojo app"):
        writer = await YClient(
            sync_url(f"ws://127.0.0.1:{port}", dojo["id"], tenant.member.token)
        ).connect()
        writer.edit("kept.py", 0, "stored at shutdown\n")
        await asyncio.sleep(0.3)
        await writer.close()
        address = app.state.dojo_hub.host.address
        assert await _lease(settings, tenant, dojo["id"]) == address
    assert await _lease(settings, tenant, dojo["id"]) is None
    assert await _history(client, tenant, dojo["id"]) == {"kept.py": "stored at shutdown\n"}


def test_the_backlog_gauges_report_every_hosted_session(settings: Settings) -> None:
    """One process hosts many sessions and the backlog gauges hold one value a process: the
    host reports the sum of their pending updates and the oldest one's age, whatever the
    order of the sessions (each setting the gauges in turn showed only the last one's).

    Asserted on `SessionHost.backlog`, what `observe_backlog` sets: the gauges are the
    process's, and a host another test left running in this process sets them too."""
    from types import SimpleNamespace
    from typing import Any, cast

    from pocdojo.gateway.host import SessionHost

    def stub(count: int, since: float | None) -> Any:
        return SimpleNamespace(session=SimpleNamespace(backlog=lambda: (count, since)))

    host = SessionHost(
        settings, cast(Any, None), cast(Any, None), aioredis.Redis.from_url(settings.redis_url)
    )
    now = time.monotonic()
    stuck, idle, busy = stub(3, now - 5.0), stub(0, None), stub(2, now - 0.1)
    for order in ([stuck, idle, busy], [busy, idle, stuck], [idle]):
        host._sessions = {(str(i), str(i)): s for i, s in enumerate(order)}
        backlog, age = host.backlog()
        if order == [idle]:
            assert (backlog, age) == (0, 0)
        else:
            assert backlog == 5
            assert 5.0 <= age < 6.0

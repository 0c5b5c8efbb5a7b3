"""Editing together through the real gateway and DojoSession actors on a real Ray cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import ray
import websockets

from pocdojo.actors.dojo_session import actor_name
from tests.conftest import TenantFixture
from tests.dojos.ywsclient import YClient

pytestmark = pytest.mark.ray


async def eventually(check: Any, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def new_dojo(client: httpx.AsyncClient, who: Any, **body: Any) -> dict[str, Any]:
    body = {"title": "pairing", "language": "python", **body}
    response = await client.post("/v1/dojos", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    dojo: dict[str, Any] = response.json()
    return dojo


def sync_url(base: str, dojo_id: str, token: str) -> str:
    return f"{base}/v1/dojos/{dojo_id}/sync?token={token}"


async def test_two_clients_converge(
    client: httpx.AsyncClient, each_ws_base: str, tenant: TenantFixture, ray_cluster: object
) -> None:
    ws_base = each_ws_base
    dojo = await new_dojo(client, tenant.member, files={"main.py": "print()\n"})
    a = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
    b = await YClient(sync_url(ws_base, dojo["id"], tenant.other_member.token)).connect()
    try:
        await eventually(lambda: a.read() == b.read() == {"main.py": "print()\n"})
        a.edit("main.py", 0, "# a\n")
        b.edit("test.py", 0, "assert True\n")
        await eventually(lambda: a.read() == b.read() and len(a.read()) == 2)
        assert a.read() == {"main.py": "# a\nprint()\n", "test.py": "assert True\n"}
        online = await client.get(f"/v1/dojos/{dojo['id']}", headers=tenant.member.headers)
        assert len(online.json()["participants_online"]) == 2
    finally:
        await a.close()
        await b.close()


async def test_other_tenant_is_refused_before_any_document_byte(
    client: httpx.AsyncClient,
    each_ws_base: str,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
    ray_cluster: object,
) -> None:
    ws_base = each_ws_base
    dojo = await new_dojo(client, tenant.member, files={"secret.py": "KEY = 1\n"})
    base = f"{ws_base}/v1/dojos/{dojo['id']}"
    for path in ("sync", "events"):
        for url in (
            f"{base}/{path}?token={other_tenant.admin.token}",
            f"{base}/{path}?token=not-a-token",
            f"{base}/{path}",
        ):
            async with websockets.connect(url) as ws:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1008
    # The token also works in Sec-WebSocket-Protocol.
    url = f"{ws_base}/v1/dojos/{dojo['id']}/sync"
    async with websockets.connect(url, subprotocols=[tenant.member.token]) as ws:  # type: ignore[list-item]
        first = await ws.recv()
        assert isinstance(first, bytes)


async def test_bad_input_closes_only_that_connection(
    client: httpx.AsyncClient, ws_base: str, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo = await new_dojo(client, tenant.member, files={"a.py": "x = 1\n"})
    good = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
    bad = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
    try:
        await eventually(lambda: bad.read() == {"a.py": "x = 1\n"})
        await bad.send_raw(b"\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
        assert await bad.closed() in (1002, 1003)
        good.edit("a.py", 0, "# still fine\n")
        await eventually(lambda: good.read() == {"a.py": "# still fine\nx = 1\n"})
        # The session is intact: a newcomer gets the document from it.
        reader = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
        try:
            await eventually(lambda: reader.read() == {"a.py": "# still fine\nx = 1\n"})
        finally:
            await reader.close()
    finally:
        await good.close()
        await bad.close()


async def test_killed_actor_comes_back_with_every_edit(
    client: httpx.AsyncClient,
    actor_ws_base: str,
    tenant: TenantFixture,
    ray_cluster: object,
) -> None:
    dojo = await new_dojo(client, tenant.member)
    url = sync_url(actor_ws_base, dojo["id"], tenant.member.token)
    clients = [await YClient(url).connect() for _ in range(4)]
    expected: dict[str, str] = {}
    try:
        for round_no in range(3):
            for i, c in enumerate(clients):
                c.edit(f"f{i}.py", 10_000, f"{round_no}")
            if round_no == 1:
                actor = ray.get_actor(actor_name(tenant.id, dojo["id"]))
                ray.kill(actor, no_restart=False)
                for c in clients:
                    await c.closed()
                    await asyncio.sleep(0.2)
                # Edits made while disconnected reach the restarted actor on resync.
                for i, c in enumerate(clients):
                    c.edit(f"f{i}.py", 10_000, "x")
                for c in clients:
                    await c.connect()
        for i in range(len(clients)):
            expected[f"f{i}.py"] = "01x2"
        await eventually(lambda: all(c.read() == expected for c in clients), within_s=30)
        actor = ray.get_actor(actor_name(tenant.id, dojo["id"]))
        await eventually(lambda: ray.get(actor.files.remote()) == expected, within_s=30)
    finally:
        for c in clients:
            await c.close()
    # Durable: a new reader long after sees the same files, rebuilt from the log.
    await asyncio.sleep(0.3)
    history = await client.get(f"/v1/dojos/{dojo['id']}/history", headers=tenant.member.headers)
    assert history.json()["files"] == expected

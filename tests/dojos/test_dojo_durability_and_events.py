"""Durability under failure, the /events channel, and fuzzed input through the gateway."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest
import ray
import websockets

from pocdojo.actors.dojo_session import actor_name
from tests.api.test_database_outage import _cluster
from tests.conftest import TenantFixture
from tests.dojos.test_gateway_sync import eventually, new_dojo, sync_url
from tests.dojos.ywsclient import YClient

pytestmark = pytest.mark.ray


async def _typing(clients: list[YClient], rounds: int, tag: str) -> None:
    for round_no in range(rounds):
        for i, c in enumerate(clients):
            c.edit(f"f{i}.py", 10_000, f"{tag}{round_no};")
        await asyncio.sleep(0.01)


def _expected(clients: list[YClient], tags: list[tuple[str, int]]) -> dict[str, str]:
    return {
        f"f{i}.py": "".join(f"{tag}{r};" for tag, rounds in tags for r in range(rounds))
        for i in range(len(clients))
    }


async def test_eight_clients_typing_survive_ray_kill(
    client: httpx.AsyncClient, actor_ws_base: str, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo = await new_dojo(client, tenant.member)
    url = sync_url(actor_ws_base, dojo["id"], tenant.member.token)
    clients = [await YClient(url).connect() for _ in range(8)]
    try:
        await _typing(clients, 10, "a")
        ray.kill(ray.get_actor(actor_name(tenant.id, dojo["id"])), no_restart=False)
        await _typing(clients, 5, "b")  # typed while the session restarts
        for c in clients:
            await c.closed()
        for c in clients:
            await c.connect()
        await _typing(clients, 5, "c")
        expected = _expected(clients, [("a", 10), ("b", 5), ("c", 5)])
        await eventually(lambda: all(c.read() == expected for c in clients), within_s=60)
    finally:
        for c in clients:
            await c.close()
    await asyncio.sleep(0.5)  # the group commit flushes within ~50 ms
    history = await client.get(f"/v1/dojos/{dojo['id']}/history", headers=tenant.member.headers)
    assert history.json()["files"] == expected


async def test_postgres_restarted_mid_session_loses_nothing(
    client: httpx.AsyncClient, ws_base: str, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo = await new_dojo(client, tenant.member)
    clients = [
        await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
        for _ in range(4)
    ]
    try:
        await _typing(clients, 5, "a")
        _cluster("stop")
        try:
            await _typing(clients, 5, "b")  # accepted in memory; the log write retries
            await asyncio.sleep(1.0)
        finally:
            _cluster("start")
        await _typing(clients, 5, "c")
        expected = _expected(clients, [("a", 5), ("b", 5), ("c", 5)])
        await eventually(lambda: all(c.read() == expected for c in clients), within_s=30)
    finally:
        for c in clients:
            await c.close()
    # Everything typed while the log was down reaches it once it is back (retried).
    await eventually_async(lambda: _history(client, tenant, dojo["id"]), expected, within_s=60)


async def _history(client: httpx.AsyncClient, tenant: TenantFixture, dojo_id: str) -> Any:
    response = await client.get(f"/v1/dojos/{dojo_id}/history", headers=tenant.member.headers)
    assert response.status_code == 200
    return response.json()["files"]


async def eventually_async(fetch: Any, expected: Any, within_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while (found := await fetch()) != expected:
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.5)


async def _drain(ws: Any) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), 10)


async def test_fuzzed_messages_close_only_the_sender(
    client: httpx.AsyncClient, ws_base: str, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo = await new_dojo(client, tenant.member, files={"keep.py": "x = 1\n"})
    url = sync_url(ws_base, dojo["id"], tenant.member.token)
    witness = await YClient(url).connect()
    rng = random.Random(1234)
    valid = witness.doc.get_update()
    try:
        for _ in range(25):
            kind = rng.choice(["random", "truncated", "bad-type", "huge-length"])
            if kind == "random":
                payload = rng.randbytes(rng.randint(1, 64))
            elif kind == "truncated":
                payload = (b"\x00\x02" + valid)[: rng.randint(1, len(valid))]
            elif kind == "bad-type":
                payload = bytes([rng.randint(4, 127)]) + rng.randbytes(4)
            else:
                payload = b"\x00\x02\xff\xff\xff\xff\x0f"
            async with websockets.connect(url, max_size=None) as ws:
                await ws.recv()  # the session's SyncStep1
                await ws.send(payload)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await _drain(ws)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code in (1002, 1003, 1008)
        witness.edit("keep.py", 0, "# ok\n")
        reader = await YClient(url).connect()  # the document, as the session serves it
        try:
            await eventually(lambda: reader.read() == {"keep.py": "# ok\nx = 1\n"})
        finally:
            await reader.close()
    finally:
        await witness.close()


async def test_events_channel_carries_presence_chat_and_end(
    client: httpx.AsyncClient, ws_base: str, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo = await new_dojo(client, tenant.member)
    events_url = f"{ws_base}/v1/dojos/{dojo['id']}/events?token={tenant.other_member.token}"
    async with websockets.connect(events_url) as events:
        hello = json.loads(await events.recv())
        assert hello["type"] == "hello"
        coder = await YClient(sync_url(ws_base, dojo["id"], tenant.member.token)).connect()
        # The join is announced before the joiner gets its sync, so a chat sent the moment
        # the sync is done comes after it on the channel.
        await client.post(
            f"/v1/dojos/{dojo['id']}/chat", json={"body": "ready?"}, headers=tenant.member.headers
        )
        await coder.close()
        await client.post(f"/v1/dojos/{dojo['id']}/end", headers=tenant.member.headers)
        seen: list[dict[str, Any]] = []
        while not {"dojo.ended", "participant.left"} <= {e["type"] for e in seen}:
            seen.append(json.loads(await asyncio.wait_for(events.recv(), 10)))
    types = [e["type"] for e in seen]
    assert types.index("participant.joined") < types.index("chat.message")
    chat = next(e for e in seen if e["type"] == "chat.message")
    assert chat["body"] == "ready?"
    assert chat["author"] == str(tenant.member.user_id)
    assert "participant.left" in types


async def test_a_user_in_two_tabs_is_online_until_both_have_left(
    client: httpx.AsyncClient, ws_base: str, tenant: TenantFixture, ray_cluster: object
) -> None:
    """Each connection closes its own participation, whichever of a user's tabs leaves first."""
    dojo = await new_dojo(client, tenant.member)
    url = sync_url(ws_base, dojo["id"], tenant.member.token)

    async def online() -> list[str]:
        response = await client.get(f"/v1/dojos/{dojo['id']}", headers=tenant.member.headers)
        assert response.status_code == 200
        return list(response.json()["participants_online"])

    first = await YClient(url).connect()
    second = await YClient(url).connect()
    assert await online() == [str(tenant.member.user_id)]
    await first.close()
    await second.close()
    await eventually_async(online, [], 10)

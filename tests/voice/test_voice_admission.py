"""Who may join a dojo's call and what bad input gets: another tenant never reaches the
media (404 before any actor exists), a malformed offer is a 400 problem and the call goes
on, a peer that drops off the network is removed and announced."""

from __future__ import annotations

import uuid

import httpx
import pytest
import ray

from pocdojo.actors import voice_room
from pocdojo.media.voice.peer import TonePeer
from pocdojo.media.voice.tracks import ToneTrack
from pocdojo.settings import Settings
from tests.conftest import TenantFixture
from tests.voice.calls import HEARD, Events, eventually, hear, join, new_dojo

pytestmark = pytest.mark.ray


async def _offer() -> str:
    peer = TonePeer(ToneTrack(440.0))
    try:
        return await peer.offer()
    finally:
        await peer.close()


async def test_another_tenant_cannot_join_or_see_the_call(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
    ray_cluster: object,
) -> None:
    dojo_id = await new_dojo(client, tenant.member)
    offer = await _offer()
    url = f"/v1/dojos/{dojo_id}/voice"
    for who in (other_tenant.admin, other_tenant.member):
        joined = await client.post(url, json={"sdp": offer}, headers=who.headers)
        assert joined.status_code == 404, joined.text
        assert joined.headers["content-type"] == "application/problem+json"
        assert dojo_id not in joined.json()["detail"]
        for method, path in (("GET", url), ("DELETE", url), ("POST", f"{url}/mute")):
            response = await client.request(method, path, headers=who.headers)
            assert response.status_code == 404, (method, path, response.text)
    # Refused before any media: no call was even created for the dojo.
    assert voice_room.find(tenant.id, uuid.UUID(dojo_id)) is None
    assert (await client.post(url, json={"sdp": offer})).status_code == 401
    assert voice_room.find(tenant.id, uuid.UUID(dojo_id)) is None


async def test_malformed_offer_is_a_400_and_the_call_goes_on(
    client: httpx.AsyncClient, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo_id = await new_dojo(client, tenant.member)
    url = f"/v1/dojos/{dojo_id}/voice"
    a, _ = await join(client, dojo_id, tenant.member, 440.0)
    b, _ = await join(client, dojo_id, tenant.other_member, 660.0)
    peers = [a, b]
    try:
        await a.connected()
        await b.connected()
        good = await _offer()
        bad_offers = [
            "not an sdp at all",
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n",  # no ICE, no DTLS, no codec
            good.replace("opus/48000/2", "opus/abc/2"),  # unparsable rtpmap
            good.replace("opus/48000/2", "PCMU/8000"),  # no Opus
            # Parses, but aiortc cannot negotiate it: only the actor finds out.
            good.replace("a=sendrecv", "a=sideways"),
        ]
        for sdp in bad_offers:
            response = await client.post(url, json={"sdp": sdp}, headers=tenant.admin.headers)
            assert response.status_code == 400, (sdp[:40], response.text)
            problem = response.json()
            assert response.headers["content-type"] == "application/problem+json"
            assert problem["type"].endswith("/bad-sdp-offer")
            assert problem["status"] == 400
        for body in ({"sdp": ""}, {"type": "answer", "sdp": good}, {"offer": good}):
            response = await client.post(url, json=body, headers=tenant.admin.headers)
            assert response.status_code == 422, (body, response.text)

        # The actor is still up and the call still works.
        actor = voice_room.find(tenant.id, uuid.UUID(dojo_id))
        assert actor is not None
        participants = await actor.participants.remote()
        assert sorted(p.user_id for p in participants) == sorted(
            [str(tenant.member.user_id), str(tenant.other_member.user_id)]
        )
        heard = await hear(peers, [440.0, 660.0])
        assert heard[0][660.0] > HEARD, heard
        assert heard[1][440.0] > HEARD, heard
        c, answer = await join(client, dojo_id, tenant.admin, 880.0)
        peers.append(c)
        assert len(answer["participants"]) == 3
    finally:
        for who in (tenant.member, tenant.other_member, tenant.admin):
            await client.delete(url, headers=who.headers)
        for peer in peers:
            await peer.close()


async def test_ended_dojo_and_not_in_call(
    client: httpx.AsyncClient, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo_id = await new_dojo(client, tenant.member)
    url = f"/v1/dojos/{dojo_id}/voice"
    mute = await client.post(f"{url}/mute", headers=tenant.member.headers)
    assert mute.status_code == 409
    assert (await client.delete(url, headers=tenant.member.headers)).status_code == 204
    ended = await client.post(f"/v1/dojos/{dojo_id}/end", headers=tenant.member.headers)
    assert ended.status_code == 200
    joined = await client.post(url, json={"sdp": await _offer()}, headers=tenant.member.headers)
    assert joined.status_code == 409
    assert voice_room.find(tenant.id, uuid.UUID(dojo_id)) is None


async def test_a_peer_that_drops_off_the_network_is_removed_and_announced(
    client: httpx.AsyncClient,
    server: str,
    settings: Settings,
    tenant: TenantFixture,
    ray_cluster: object,
) -> None:
    dojo_id = await new_dojo(client, tenant.member)
    # The call's actor, created first with a short silence timeout; the API finds it by name.
    actor = voice_room.get_or_create(settings, tenant.id, uuid.UUID(dojo_id), silence_timeout_s=3.0)
    await actor.participants.remote()
    events = await Events.open(server, dojo_id, tenant.member.token)
    a, _ = await join(client, dojo_id, tenant.member, 440.0)
    b, _ = await join(client, dojo_id, tenant.other_member, 660.0)
    try:
        await a.connected()
        await b.connected()
        # b's network goes away: no BYE, no DTLS close, just no more packets.
        await b.pc.getTransceivers()[0].sender.transport.transport.stop()
        await eventually(lambda: events.of("voice.left"), within_s=20)
        assert events.of("voice.left")[0] == {
            "type": "voice.left",
            "user_id": str(tenant.other_member.user_id),
            "reason": "silent",
        }
        participants = await actor.participants.remote()
        assert [p.user_id for p in participants] == [str(tenant.member.user_id)]
    finally:
        await client.delete(f"/v1/dojos/{dojo_id}/voice", headers=tenant.member.headers)
        for peer in (a, b):
            await peer.close()
        await events.close()
    await eventually(lambda: voice_room.find(tenant.id, uuid.UUID(dojo_id)) is None)
    with pytest.raises(ray.exceptions.RayActorError):
        await actor.participants.remote()

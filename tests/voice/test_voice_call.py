"""Three real aiortc peers (this process) in one dojo's call, through the HTTP API and the
VoiceRoom actor on the suite's Ray cluster: who hears whom, mute, leave, events, cleanup."""

from __future__ import annotations

import uuid

import httpx
import pytest

from pocdojo.actors import voice_room
from tests.conftest import TenantFixture
from tests.voice.calls import HEARD, NOT_HEARD, Events, eventually, hear, join, new_dojo

pytestmark = pytest.mark.ray
FREQS = [440.0, 660.0, 880.0]


async def test_three_peers_hear_the_others_not_themselves(
    client: httpx.AsyncClient, server: str, tenant: TenantFixture, ray_cluster: object
) -> None:
    dojo_id = await new_dojo(client, tenant.member)
    users = [tenant.member, tenant.other_member, tenant.admin]
    events = await Events.open(server, dojo_id, tenant.member.token)
    peers = []
    try:
        for user, freq in zip(users, FREQS, strict=True):
            peer, answer = await join(client, dojo_id, user, freq)
            peers.append(peer)
            assert answer["type"] == "answer"
            assert answer["ice_servers"] == []
            assert answer["max_participants"] == 16
            assert str(user.user_id) in {p["user_id"] for p in answer["participants"]}
        for peer in peers:
            await peer.connected()

        # Everyone hears the two others' tones, never their own.
        heard = await hear(peers, FREQS)
        for i, amplitudes in enumerate(heard):
            for j, freq in enumerate(FREQS):
                if i == j:
                    assert amplitudes[freq] < NOT_HEARD, (i, amplitudes)
                else:
                    assert amplitudes[freq] > HEARD, (i, amplitudes)

        # A muted peer is no longer heard; the others still are.
        muted = await client.post(f"/v1/dojos/{dojo_id}/voice/mute", headers=users[0].headers)
        assert muted.status_code == 200, muted.text
        assert muted.json()["muted"] is True
        heard = await hear(peers, FREQS)
        assert heard[1][440.0] < NOT_HEARD, heard
        assert heard[2][440.0] < NOT_HEARD, heard
        assert heard[1][880.0] > HEARD, heard
        assert heard[2][660.0] > HEARD, heard
        assert heard[0][660.0] > HEARD, heard  # the muted one still hears
        assert heard[0][880.0] > HEARD, heard

        unmuted = await client.post(f"/v1/dojos/{dojo_id}/voice/unmute", headers=users[0].headers)
        assert unmuted.json()["muted"] is False
        call = await client.get(f"/v1/dojos/{dojo_id}/voice", headers=users[1].headers)
        assert sorted(p["user_id"] for p in call.json()["participants"]) == sorted(
            str(u.user_id) for u in users
        )
        assert not any(p["muted"] for p in call.json()["participants"])

        # One leaves: the two others go on talking.
        left = await client.delete(f"/v1/dojos/{dojo_id}/voice", headers=users[0].headers)
        assert left.status_code == 204
        await peers[0].close()
        heard = await hear(peers[1:], FREQS)
        assert heard[0][880.0] > HEARD, heard
        assert heard[1][660.0] > HEARD, heard
        assert heard[0][440.0] < NOT_HEARD, heard
        assert heard[1][440.0] < NOT_HEARD, heard
        assert heard[0][660.0] < NOT_HEARD, heard
        assert heard[1][880.0] < NOT_HEARD, heard

        # The dojo's /events channel told everyone.
        member = str(users[0].user_id)
        await eventually(lambda: events.of("voice.left"))
        assert {e["user_id"] for e in events.of("voice.joined")} == {str(u.user_id) for u in users}
        assert [e["user_id"] for e in events.of("voice.muted")] == [member]
        assert [e["user_id"] for e in events.of("voice.unmuted")] == [member]
        assert events.of("voice.left") == [
            {"type": "voice.left", "user_id": member, "reason": "left"}
        ]
        speaking = {
            level["user_id"]
            for e in events.of("voice.levels")
            for level in e["levels"]
            if level["speaking"]
        }
        assert speaking == {str(u.user_id) for u in users}
    finally:
        for user in users:
            await client.delete(f"/v1/dojos/{dojo_id}/voice", headers=user.headers)
        for peer in peers:
            await peer.close()
        await events.close()

    # Nobody left in the call: the actor stops itself.
    await eventually(lambda: voice_room.find(tenant.id, uuid.UUID(dojo_id)) is None)
    call = await client.get(f"/v1/dojos/{dojo_id}/voice", headers=tenant.member.headers)
    assert call.json()["participants"] == []

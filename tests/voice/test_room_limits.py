"""The room's limits without Ray or HTTP (real aiortc peers on loopback, one process):
the participant cap, a rejoin replacing the old connection, an empty room noticing it."""

from __future__ import annotations

import pytest

from pocdojo.media.voice.peer import TonePeer
from pocdojo.media.voice.room import CallFull, VoiceEvent, VoiceRoom
from pocdojo.media.voice.tracks import ToneTrack


async def test_cap_rejoin_and_empty() -> None:
    events: list[VoiceEvent] = []

    async def sink(event: VoiceEvent) -> None:
        events.append(event)

    peers: list[TonePeer] = []
    async with VoiceRoom(max_participants=2, on_event=sink) as room:
        assert room.empty_since is not None
        for pid in ("a", "b"):
            peer = TonePeer(ToneTrack(440.0))
            peers.append(peer)
            await peer.accept(await room.join(pid, await peer.offer()))
        assert room.empty_since is None
        third = TonePeer(ToneTrack(660.0))
        peers.append(third)
        with pytest.raises(CallFull):
            await room.join("c", await third.offer())
        # "a" joins again from another device: replaced, not counted twice, not announced
        # as leaving.
        again = TonePeer(ToneTrack(880.0))
        peers.append(again)
        await again.accept(await room.join("a", await again.offer()))
        await again.connected()
        assert [p.user_id for p in room.participants()] == ["b", "a"]
        assert await room.leave("a")
        assert not await room.leave("a")
        assert await room.leave("b")
        assert room.empty_since is not None
    for peer in peers:
        await peer.close()
    kinds = [(e.type, e.user_id) for e in events if e.type != "voice.levels"]
    assert kinds == [
        ("voice.joined", "a"),
        ("voice.joined", "b"),
        ("voice.joined", "a"),
        ("voice.left", "a"),
        ("voice.left", "b"),
    ]

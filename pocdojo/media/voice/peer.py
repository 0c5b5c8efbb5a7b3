"""A scripted call participant (aiortc): a tone microphone plus recorders of what it
hears. The tests and ``loadtests/bench_voice.py`` use it as the "client app"."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from pocdojo.media.voice.tracks import Recorder, ToneTrack


@dataclass(frozen=True, slots=True)
class ReceiveStats:
    packets_received: int
    packets_lost: int


class TonePeer:
    """One participant: ``offer()`` -> send to the room -> ``accept(answer)``."""

    def __init__(
        self,
        mic: ToneTrack,
        *,
        receive_slots: int = 0,
        ice_servers: list[RTCIceServer] | None = None,
        listen: bool = True,
    ) -> None:
        self.mic = mic
        self.receive_slots = receive_slots
        self.listen = listen
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers or [])))
        self.recorders: list[Recorder] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.recorders.append(Recorder(track))

    async def offer(self) -> str:
        self.pc.addTransceiver(self.mic, direction="sendrecv")
        for _ in range(self.receive_slots):
            self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        description = self.pc.localDescription
        assert description is not None
        return description.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        if not self.listen:
            self._deafen()

    def _deafen(self) -> None:
        # A load generator's extra participants: they send, and drop what they receive
        # before decoding (aiortc's receiver switch, set by negotiation, so set it after),
        # so the machine's cores go to the room being measured rather than to its clients.
        for transceiver in self.pc.getTransceivers():
            transceiver.receiver._enabled = False

    async def answer(self, offer_sdp: str) -> str:
        """The other side of a direct (peer-to-peer) call."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self.pc.addTrack(self.mic)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        description = self.pc.localDescription
        assert description is not None
        return description.sdp

    async def connected(self, timeout_s: float = 15.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed"):
                raise ConnectionError(f"peer connection {self.pc.connectionState}")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("peer connection did not connect")
            await asyncio.sleep(0.05)

    async def receive_stats(self) -> ReceiveStats:
        received = lost = 0
        report = await self.pc.getStats()
        for stat in report.values():
            if getattr(stat, "type", None) == "inbound-rtp":
                received += stat.packetsReceived or 0
                lost += max(0, stat.packetsLost or 0)
        return ReceiveStats(received, lost)

    def clear(self) -> None:
        for recorder in self.recorders:
            recorder.clear()

    async def close(self) -> None:
        for recorder in self.recorders:
            await recorder.stop()
        if self.pc.connectionState != "closed":
            await self.pc.close()

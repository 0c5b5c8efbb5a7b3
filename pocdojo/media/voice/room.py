"""One dojo's voice call on aiortc, independent of Ray and HTTP (the actor is a thin shell).

Two shapes, chosen by measurement (README, "Voice calls"):

- ``mix`` (MCU, the default): each participant's microphone is decoded once; a 20 ms
  clock mixes "everyone but me" for every listener and encodes one stream per listener.
  One audio m-line per participant, so joins and leaves never renegotiate anyone.
- ``forward`` (SFU as aiortc can do it): each microphone is decoded once and relayed to a
  slot of every other participant, where aiortc encodes it again per listener (aiortc has
  no encoded-frame passthrough for received tracks). Clients offer one sendrecv m-line
  plus ``max_participants - 1`` recvonly slots; the room switches slot sources without
  renegotiation.

Joining or leaving touches only the participant concerned. A participant whose transport
fails, whose microphone track ends, or who sends nothing for ``silence_timeout_s`` is
removed and announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription
from av import AudioFrame

from pocdojo.errors import Conflict, DomainError
from pocdojo.media.voice.analysis import (
    FRAME_S,
    SILENCE_DBOV,
    SPEAKING_DBOV,
    level_dbov,
    level_share,
)
from pocdojo.media.voice.mixer import Mixer
from pocdojo.media.voice.tracks import FrameQueueTrack, SlotTrack, frame_samples

log = logging.getLogger("pocdojo.voice")
Shape = Literal["mix", "forward"]
MAX_SDP_BYTES = 64 * 1024
SERVER_JITTER_PREFETCH = 1
"""Frames aiortc's receive jitter buffer holds before decoding. Its default (4, i.e. 80 ms)
is meant for playback; the mixer has its own 60 ms queue per speaker, so the room keeps 1."""


class BadOffer(DomainError):
    """The SDP offer cannot start an audio call (status 400)."""

    type_slug = "bad-sdp-offer"
    title = "Bad SDP offer"


class CallFull(Conflict):
    type_slug = "call-full"
    title = "The call is full"


@dataclass(frozen=True, slots=True)
class VoiceEvent:
    """Something the dojo's ``/events`` channel should hear about."""

    type: str  # voice.joined | voice.left | voice.muted | voice.unmuted | voice.levels
    user_id: str | None = None
    reason: str | None = None
    levels: tuple[tuple[str, float, bool], ...] = ()
    """(user_id, level 0..1, speaking) for ``voice.levels``."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        if self.user_id is not None:
            body["user_id"] = self.user_id
        if self.reason is not None:
            body["reason"] = self.reason
        if self.type == "voice.levels":
            body["levels"] = [
                {"user_id": uid, "level": level, "speaking": speaking}
                for uid, level, speaking in self.levels
            ]
        return body


@dataclass(frozen=True, slots=True)
class ParticipantState:
    user_id: str
    muted: bool
    joined_at: float
    """Unix time."""


@dataclass(slots=True)
class _Participant:
    pid: str
    pc: RTCPeerConnection
    joined_at: float
    last_frame_at: float
    out: FrameQueueTrack | None = None
    slots: list[SlotTrack] = field(default_factory=list)
    mic: MediaStreamTrack | None = None
    reader: asyncio.Task[None] | None = None
    muted: bool = False
    peak_dbov: float = SILENCE_DBOV
    frames_in: int = 0
    rtp_seen: tuple[int, int] = (0, 0)
    """(received, lost) at the last ``loss_ratios`` reading."""


EventSink = Callable[[VoiceEvent], Awaitable[None]]


def validate_offer(sdp: str) -> SessionDescription:
    """Parse the offer and check it can carry a call; ``BadOffer`` otherwise."""
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise BadOffer(f"the offer is larger than {MAX_SDP_BYTES} bytes")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the bad line triggers
        raise BadOffer(f"unparsable SDP: {type(exc).__name__}") from exc
    audio = [m for m in parsed.media if m.kind == "audio"]
    if not audio:
        raise BadOffer("the offer has no audio m-line")
    if not any(c.mimeType.lower() == "audio/opus" for m in audio for c in m.rtp.codecs):
        raise BadOffer("the offer does not offer Opus")
    if not all(m.ice and m.ice.usernameFragment and m.dtls and m.dtls.fingerprints for m in audio):
        raise BadOffer("the offer lacks ICE credentials or a DTLS fingerprint")
    return parsed


def _tune_receiver(transceiver: RTCRtpTransceiver) -> None:
    # aiortc has no public knob for the audio jitter buffer; it is created with the
    # receiver, before any packet, so swapping it here is safe.
    receiver = transceiver.receiver
    if hasattr(receiver, "_RTCRtpReceiver__jitter_buffer"):
        receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(
            capacity=16, prefetch=SERVER_JITTER_PREFETCH
        )


class VoiceRoom:
    """An audio call; an async context manager (``async with VoiceRoom(...) as room``)."""

    def __init__(
        self,
        *,
        shape: Shape = "mix",
        max_participants: int = 16,
        ice_servers: list[RTCIceServer] | None = None,
        silence_timeout_s: float = 10.0,
        levels_interval_s: float = 0.25,
        on_event: EventSink | None = None,
    ) -> None:
        self.shape: Shape = shape
        self.max_participants = max_participants
        # An explicit empty list: aiortc falls back to Google's STUN server on None.
        self._ice_servers = list(ice_servers or [])
        self.silence_timeout_s = silence_timeout_s
        self.levels_interval_s = levels_interval_s
        self._on_event = on_event
        self._participants: dict[str, _Participant] = {}
        self._mixer = Mixer()
        self._relay = MediaRelay()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_speaking: frozenset[str] = frozenset()
        self.empty_since: float | None = time.monotonic()
        self.ticks = 0
        self.late_ticks = 0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.shape == "mix":
            self._tasks.append(loop.create_task(self._mix_clock()))
        self._tasks.append(loop.create_task(self._levels_loop()))
        self._tasks.append(loop.create_task(self._watchdog()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for pid in list(self._participants):
            await self.leave(pid, reason="closed", announce=False)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- participants -------------------------------------------------------------------

    def participants(self) -> list[ParticipantState]:
        return [
            ParticipantState(p.pid, p.muted, p.joined_at)
            for p in sorted(self._participants.values(), key=lambda p: p.joined_at)
        ]

    def __contains__(self, pid: str) -> bool:
        return pid in self._participants

    async def join(self, pid: str, offer_sdp: str) -> str:
        """Admit ``pid`` with its SDP offer and return the answer (candidates included).
        Joining again replaces the participant's previous connection."""
        validate_offer(offer_sdp)
        if pid in self._participants:
            await self.leave(pid, reason="replaced", announce=False)
        if len(self._participants) >= self.max_participants:
            raise CallFull(f"at most {self.max_participants} participants per call")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        now = time.monotonic()
        participant = _Participant(pid, pc, time.time(), last_frame_at=now)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise BadOffer("the offer has no audio m-line")
            for transceiver in audio:
                _tune_receiver(transceiver)
            if self.shape == "mix":
                participant.out = FrameQueueTrack()
                audio[0].sender.replaceTrack(participant.out)
                audio[0].direction = "sendrecv"
                for extra in audio[1:]:
                    extra.direction = "inactive"
            else:
                audio[0].direction = "recvonly"
                for transceiver in audio[1:]:
                    slot = SlotTrack()
                    transceiver.sender.replaceTrack(slot)
                    transceiver.direction = "sendonly"
                    participant.slots.append(slot)
            await pc.setLocalDescription(await pc.createAnswer())
        except BadOffer:
            await pc.close()
            raise
        except Exception as exc:  # aiortc rejects what it cannot negotiate with many types
            await pc.close()
            raise BadOffer(f"cannot negotiate this offer: {type(exc).__name__}: {exc}") from exc
        if pid in self._participants:  # a concurrent join of the same user won the race
            await self.leave(pid, reason="replaced", announce=False)
        mic = audio[0].receiver.track
        participant.mic = mic
        self._participants[pid] = participant
        self.empty_since = None
        if self.shape == "mix":
            self._mixer.add(pid)
            participant.reader = asyncio.ensure_future(self._read(participant, mic))
        else:
            self._connect_slots(participant)
            participant.reader = asyncio.ensure_future(
                self._read(participant, self._relay.subscribe(mic, buffered=False))
            )

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "failed" and self._current(pid, pc):
                await self.leave(pid, reason="connection-failed")

        await self._emit(VoiceEvent("voice.joined", pid))
        answer = pc.localDescription
        assert answer is not None
        return answer.sdp

    async def leave(self, pid: str, *, reason: str = "left", announce: bool = True) -> bool:
        participant = self._participants.pop(pid, None)
        if participant is None:
            return False
        self._mixer.remove(pid)
        if participant.reader is not None:
            participant.reader.cancel()
        for other in self._participants.values():
            for slot in other.slots:
                if slot.owner == pid:
                    slot.attach(None, None)
        with contextlib.suppress(Exception):
            await participant.pc.close()
        if not self._participants:
            self.empty_since = time.monotonic()
        if announce:
            await self._emit(VoiceEvent("voice.left", pid, reason=reason))
        return True

    async def set_muted(self, pid: str, muted: bool) -> ParticipantState:
        participant = self._participants.get(pid)
        if participant is None:
            raise Conflict("join the call first")
        if participant.muted != muted:
            participant.muted = muted
            self._mixer.set_muted(pid, muted)
            for other in self._participants.values():
                for slot in other.slots:
                    if slot.owner == pid:
                        slot.muted = muted
            await self._emit(VoiceEvent("voice.muted" if muted else "voice.unmuted", pid))
        return ParticipantState(pid, participant.muted, participant.joined_at)

    def _current(self, pid: str, pc: RTCPeerConnection) -> bool:
        participant = self._participants.get(pid)
        return participant is not None and participant.pc is pc

    def _connect_slots(self, newcomer: _Participant) -> None:
        """Forwarding: the newcomer hears everyone, everyone hears the newcomer."""
        assert newcomer.mic is not None
        for other in self._participants.values():
            if other is newcomer or other.mic is None:
                continue
            self._attach(newcomer, other.pid, other.mic)
            self._attach(other, newcomer.pid, newcomer.mic)

    def _attach(self, listener: _Participant, owner: str, mic: MediaStreamTrack) -> None:
        free = next((s for s in listener.slots if s.source is None), None)
        if free is None:
            log.info("voice: %s has no free slot for %s", listener.pid, owner)
            return
        free.attach(owner, self._relay.subscribe(mic, buffered=False))

    # -- media --------------------------------------------------------------------------

    async def _read(self, participant: _Participant, track: MediaStreamTrack) -> None:
        """Decoded microphone frames: levels for everyone, into the mixer for ``mix``."""
        pid = participant.pid
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                participant.last_frame_at = time.monotonic()
                participant.frames_in += 1
                if participant.muted:
                    continue
                samples = frame_samples(frame)
                participant.peak_dbov = max(participant.peak_dbov, level_dbov(samples))
                if self.shape == "mix":
                    self._mixer.push(pid, samples)
        except MediaStreamError:
            if self._current(pid, participant.pc):
                await self.leave(pid, reason="disconnected")
        except asyncio.CancelledError:
            pass

    async def _mix_clock(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += FRAME_S
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -5 * FRAME_S:  # the loop stalled: resume from now, do not catch up
                self.late_ticks += 1
                due = loop.time()
            self.ticks += 1
            if not self._participants:
                continue
            try:
                for pid, samples in self._mixer.tick().items():
                    participant = self._participants.get(pid)
                    if participant is not None and participant.out is not None:
                        participant.out.put(samples)
            except Exception:  # one bad frame must not end the call for everyone
                log.exception("voice: mixing tick failed")

    async def _levels_loop(self) -> None:
        while True:
            await asyncio.sleep(self.levels_interval_s)
            levels: list[tuple[str, float, bool]] = []
            for participant in self._participants.values():
                dbov = SILENCE_DBOV if participant.muted else participant.peak_dbov
                participant.peak_dbov = SILENCE_DBOV
                levels.append((participant.pid, level_share(dbov), dbov >= SPEAKING_DBOV))
            speaking = frozenset(uid for uid, _, talking in levels if talking)
            # Quiet rooms stay quiet: publish while someone speaks and once when they stop.
            if speaking or speaking != self._last_speaking:
                await self._emit(VoiceEvent("voice.levels", levels=tuple(levels)))
            self._last_speaking = speaking

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.silence_timeout_s / 2))
            now = time.monotonic()
            for participant in list(self._participants.values()):
                if now - participant.last_frame_at > self.silence_timeout_s:
                    await self.leave(participant.pid, reason="silent")

    async def _emit(self, event: VoiceEvent) -> None:
        if self._on_event is None:
            return
        try:
            await self._on_event(event)
        except Exception:  # events are best effort; the call goes on
            log.exception("voice: publishing %s failed", event.type)

    # -- measurements -------------------------------------------------------------------

    @staticmethod
    async def _rtp_in(pc: RTCPeerConnection) -> tuple[int, int]:
        received = lost = 0
        with contextlib.suppress(Exception):  # a closing connection has no stats
            for stat in (await pc.getStats()).values():
                if getattr(stat, "type", None) == "inbound-rtp":
                    received += stat.packetsReceived or 0
                    lost += max(0, stat.packetsLost or 0)
        return received, lost

    async def loss_rtp(self) -> tuple[int, int]:
        """RTP packets (received, lost) from every participant so far."""
        totals = [await self._rtp_in(p.pc) for p in list(self._participants.values())]
        return sum(r for r, _ in totals), sum(lost for _, lost in totals)

    async def loss_ratios(self) -> dict[str, float]:
        """Per participant: share of their RTP packets lost since the previous reading."""
        ratios: dict[str, float] = {}
        for participant in list(self._participants.values()):
            received, lost = await self._rtp_in(participant.pc)
            seen_received, seen_lost = participant.rtp_seen
            new_received, new_lost = received - seen_received, lost - seen_lost
            participant.rtp_seen = (received, lost)
            if new_received + new_lost > 0:
                ratios[participant.pid] = max(0, new_lost) / (new_received + max(0, new_lost))
        return ratios

    def stats(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "participants": len(self._participants),
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "frames_in": {p.pid: p.frames_in for p in self._participants.values()},
            "dropped": {pid: s.dropped for pid, s in self._mixer.speakers.items()},
        }

"""aiortc media tracks of a voice call: what the room sends and what test/bench peers use.

- ``FrameQueueTrack``: outgoing audio fed frame by frame (the mixer's output for one
  listener); the producer sets the pace, the track never blocks it.
- ``SlotTrack``: an outgoing slot whose source can be switched without renegotiation (the
  forwarding shape's "one slot per other participant").
- ``ToneTrack``: a paced microphone playing a tone, silence, or timestamped bursts.
- ``Recorder``: consumes a received track into mono samples with arrival times.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Callable

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from pocdojo.media.voice.analysis import (
    FRAME_S,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Samples,
    onset,
    to_mono,
    tone,
)

TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


def audio_frame(samples: Samples, pts: int) -> AudioFrame:
    """A mono s16 48 kHz ``AudioFrame`` (what aiortc's Opus encoder takes)."""
    frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


def frame_samples(frame: AudioFrame) -> Samples:
    """A received frame as mono int16 (aiortc's decoder gives packed stereo s16)."""
    return to_mono(frame.to_ndarray(), len(frame.layout.channels))


class FrameQueueTrack(MediaStreamTrack):
    """Outgoing audio pushed by a producer; at most ``depth`` frames wait (oldest dropped),
    so a slow consumer can never add latency."""

    kind = "audio"

    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self._queue: asyncio.Queue[Samples] = asyncio.Queue()
        self._depth = depth
        self._pts = 0

    def put(self, samples: Samples) -> None:
        while self._queue.qsize() >= self._depth:
            self._queue.get_nowait()
        self._queue.put_nowait(samples)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = await self._queue.get()
        frame = audio_frame(samples, self._pts)
        self._pts += samples.size
        return frame


class SlotTrack(MediaStreamTrack):
    """Outgoing audio relayed from a switchable source; waits while the slot is empty."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.source: MediaStreamTrack | None = None
        self.owner: str | None = None
        self.muted = False
        self._changed = asyncio.Event()

    def attach(self, owner: str | None, source: MediaStreamTrack | None) -> None:
        if self.source is not None and source is None:
            self.source.stop()
        self.owner, self.source, self.muted = owner, source, False
        self._changed.set()

    async def recv(self) -> AudioFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            source = self.source
            if source is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                frame = await source.recv()
            except MediaStreamError:
                if self.source is source:
                    self.attach(None, None)
                continue
            if self.muted:
                frame = audio_frame(np.zeros(FRAME_SAMPLES, dtype=np.int16), frame.pts or 0)
            assert isinstance(frame, AudioFrame)
            return frame


class ToneTrack(MediaStreamTrack):
    """A paced microphone: a steady tone (``frequency_hz``), or silence with bursts of
    ``burst_hz`` when ``burst_at`` says so (it is asked per frame with the frame's index
    and the wall time the frame leaves; it returns an id to record, or None)."""

    kind = "audio"

    def __init__(
        self,
        frequency_hz: float | None = None,
        *,
        amplitude: float = 0.3,
        burst_hz: float = 1000.0,
        burst_frames: int = 2,
        burst_at: Callable[[int, float], int | None] | None = None,
    ) -> None:
        super().__init__()
        self.frequency_hz = frequency_hz
        self.amplitude = amplitude
        self.burst_hz = burst_hz
        self.burst_frames = burst_frames
        self.burst_at = burst_at
        self.sent_bursts: dict[int, float] = {}
        self._start: float | None = None
        self._index = 0
        self._burst_left = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index * FRAME_S
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.2:  # far behind (a stalled loop): skip ahead rather than burst
            self._start = time.monotonic() - self._index * FRAME_S
        start_sample = self._index * FRAME_SAMPLES
        samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        if self.frequency_hz is not None:
            samples = tone(self.frequency_hz, start_sample, amplitude=self.amplitude)
        if self.burst_at is not None:
            burst_id = self.burst_at(self._index, time.time())
            if burst_id is not None:
                self.sent_bursts[burst_id] = time.time()
                self._burst_left = self.burst_frames
            if self._burst_left > 0:
                samples = tone(self.burst_hz, start_sample, amplitude=0.5)
                self._burst_left -= 1
        frame = audio_frame(samples, start_sample)
        self._index += 1
        return frame


class Recorder:
    """Reads a received track until stopped: mono samples, and burst onsets with their
    wall-clock arrival (the frame's arrival plus the onset's offset within it)."""

    def __init__(self, track: MediaStreamTrack, *, onset_threshold: float = 0.1) -> None:
        self.track = track
        self.chunks: list[Samples] = []
        self.onsets: list[float] = []
        self.frames = 0
        self._threshold = onset_threshold
        self._in_burst = False
        self._recording = True
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await self.track.recv()
                arrived = time.time()
                assert isinstance(frame, AudioFrame)
                samples = frame_samples(frame)
                self.frames += 1
                if self._recording:
                    self.chunks.append(samples)
                at = onset(samples, self._threshold)
                if at is not None and not self._in_burst:
                    self.onsets.append(arrived + at / SAMPLE_RATE)
                self._in_burst = at is not None

    def clear(self) -> None:
        self.chunks.clear()

    def samples(self, last_s: float | None = None) -> Samples:
        if not self.chunks:
            return np.zeros(0, dtype=np.int16)
        data = np.concatenate(self.chunks)
        if last_s is not None:
            data = data[-int(last_s * SAMPLE_RATE) :]
        return data

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

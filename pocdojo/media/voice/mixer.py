"""The MCU core (pure): one 20 ms tick mixes, for every listener, everyone but them.

Each participant's decoded audio waits in a short queue; every tick takes at most one
frame per participant (a late one is silence for that tick; too many queued, or a queue
that never runs dry, means the oldest is dropped, so latency cannot build up). The sum of
all speakers is computed once and each listener gets ``sum - own``, so a tick costs
O(participants), not O(participants²).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from pocdojo.media.voice.analysis import (
    FRAME_SAMPLES,
    SILENCE_DBOV,
    SPEAKING_DBOV,
    Samples,
    level_dbov,
)

MAX_QUEUED_FRAMES = 3
"""60 ms of jitter absorbed per speaker; more than that is dropped (oldest first)."""
BACKLOG_TICKS = 10
"""A queue that has not run dry for this many ticks (200 ms) carries latency, not jitter:
its next quiet frame is dropped, so the speaker's delay falls back to what the network
needs without an audible cut."""
FORCED_TRIM_TICKS = 50
"""Someone talking without a pause for 1 s with a standing queue loses a frame anyway."""


@dataclass(slots=True)
class Speaker:
    queue: deque[Samples] = field(default_factory=deque)
    muted: bool = False
    dropped: int = 0
    backlog_ticks: int = 0
    level: float = SILENCE_DBOV
    """Level (dBov) of the frame taken at the last tick; silence when muted or late."""


class Mixer:
    """Pure mixing state for one room, keyed by participant id."""

    def __init__(self, max_queued: int = MAX_QUEUED_FRAMES) -> None:
        self.max_queued = max_queued
        self.speakers: dict[str, Speaker] = {}

    def add(self, pid: str) -> None:
        self.speakers.setdefault(pid, Speaker())

    def remove(self, pid: str) -> None:
        self.speakers.pop(pid, None)

    def set_muted(self, pid: str, muted: bool) -> None:
        speaker = self.speakers.get(pid)
        if speaker is not None:
            speaker.muted = muted
            speaker.queue.clear()

    def push(self, pid: str, samples: Samples) -> None:
        """One decoded frame (mono int16, any length) from ``pid``."""
        speaker = self.speakers.get(pid)
        if speaker is None or speaker.muted:
            return
        speaker.queue.append(samples)
        while len(speaker.queue) > self.max_queued:
            speaker.queue.popleft()
            speaker.dropped += 1

    def tick(self) -> dict[str, Samples]:
        """One frame for every participant: the mix of everyone else, clipped to int16."""
        own: dict[str, np.ndarray] = {}
        total = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        for pid, speaker in self.speakers.items():
            if speaker.muted or not speaker.queue:
                speaker.level = SILENCE_DBOV
                continue
            frame = _fit(speaker.queue.popleft())
            speaker.backlog_ticks = speaker.backlog_ticks + 1 if speaker.queue else 0
            if speaker.backlog_ticks >= BACKLOG_TICKS and (
                speaker.backlog_ticks >= FORCED_TRIM_TICKS
                or level_dbov(speaker.queue[0]) < SPEAKING_DBOV
            ):
                speaker.queue.popleft()
                speaker.dropped += 1
                speaker.backlog_ticks = 0
            speaker.level = level_dbov(frame)
            wide = frame.astype(np.int32)
            own[pid] = wide
            total += wide
        out: dict[str, Samples] = {}
        for pid in self.speakers:
            mine = own.get(pid)
            mixed = total - mine if mine is not None else total
            out[pid] = np.clip(mixed, -32768, 32767).astype(np.int16)
        return out

    def levels(self) -> dict[str, float]:
        return {pid: s.level for pid, s in self.speakers.items()}


def _fit(samples: Samples) -> Samples:
    """Exactly one frame: decoders can hand out other sizes (e.g. after packet loss)."""
    if samples.size == FRAME_SAMPLES:
        return samples
    if samples.size > FRAME_SAMPLES:
        return samples[:FRAME_SAMPLES]
    return np.pad(samples, (0, FRAME_SAMPLES - samples.size))

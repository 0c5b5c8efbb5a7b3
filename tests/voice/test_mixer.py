"""The pure parts of a call: mixing "everyone but me", levels, tone analysis, offers."""

from __future__ import annotations

import numpy as np
import pytest

from pocdojo.media.voice.analysis import (
    FRAME_SAMPLES,
    SILENCE_DBOV,
    level_dbov,
    level_share,
    onset,
    to_mono,
    tone,
    tone_amplitude,
)
from pocdojo.media.voice.mixer import BACKLOG_TICKS, FORCED_TRIM_TICKS, Mixer
from pocdojo.media.voice.room import BadOffer, VoiceEvent, validate_offer


def test_each_listener_gets_everyone_but_themselves() -> None:
    mixer = Mixer()
    freqs = {"a": 440.0, "b": 660.0, "c": 880.0}
    for pid in freqs:
        mixer.add(pid)
    heard: dict[str, list[np.ndarray]] = {pid: [] for pid in freqs}
    for i in range(10):
        for pid, f in freqs.items():
            mixer.push(pid, tone(f, i * FRAME_SAMPLES))
        for pid, samples in mixer.tick().items():
            heard[pid].append(samples)
    for pid, chunks in heard.items():
        samples = np.concatenate(chunks)
        for other, f in freqs.items():
            amplitude = tone_amplitude(samples, f)
            if other == pid:
                assert amplitude < 0.001
            else:
                assert amplitude == pytest.approx(0.3, abs=0.02)


def test_muted_late_and_flooding_speakers() -> None:
    mixer = Mixer(max_queued=3)
    for pid in ("a", "b"):
        mixer.add(pid)
    mixer.set_muted("a", True)
    mixer.push("a", tone(440, 0))
    out = mixer.tick()
    assert not out["b"].any()  # a is muted: b hears silence
    assert mixer.levels()["a"] == SILENCE_DBOV
    mixer.set_muted("a", False)
    for i in range(10):  # a floods: only the newest three frames are kept
        mixer.push("a", np.full(FRAME_SAMPLES, i, dtype=np.int16))
    assert mixer.speakers["a"].dropped == 7
    assert [int(mixer.tick()["b"][0]) for _ in range(4)] == [7, 8, 9, 0]
    # Short frames are padded, loud sums are clipped rather than wrapped around.
    mixer.add("c")
    mixer.push("a", np.full(100, 30_000, dtype=np.int16))
    mixer.push("c", np.full(FRAME_SAMPLES, 30_000, dtype=np.int16))
    out = mixer.tick()
    assert out["b"].size == FRAME_SAMPLES
    assert int(out["b"][0]) == 32767
    assert int(out["b"][-1]) == 30_000
    mixer.remove("c")
    assert set(mixer.tick()) == {"a", "b"}


def test_levels_and_analysis_helpers() -> None:
    loud = tone(1000, 0, amplitude=0.5)
    assert level_dbov(loud) == pytest.approx(-9.0, abs=0.2)  # 0.5 / sqrt(2) rms
    assert level_dbov(np.zeros(FRAME_SAMPLES, dtype=np.int16)) == SILENCE_DBOV
    assert level_share(-9.0) == pytest.approx(0.85)
    assert level_share(SILENCE_DBOV) == 0.0
    burst = np.concatenate([np.zeros(100, dtype=np.int16), loud])
    assert onset(burst) == 101  # sin(0) = 0: the first loud sample follows it
    assert onset(np.zeros(10, dtype=np.int16)) is None
    stereo = np.stack([loud, loud], axis=1).reshape(1, -1)
    assert np.array_equal(to_mono(stereo, 2), loud)


def test_offers_are_checked() -> None:
    with pytest.raises(BadOffer):
        validate_offer("hello")
    with pytest.raises(BadOffer, match="no audio"):
        validate_offer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
    with pytest.raises(BadOffer, match="larger"):
        validate_offer("v=0\r\n" + "a=x\r\n" * 20_000)


def test_events_serialise_for_the_events_channel() -> None:
    assert VoiceEvent("voice.left", "u", reason="silent").to_json() == {
        "type": "voice.left",
        "user_id": "u",
        "reason": "silent",
    }
    assert VoiceEvent("voice.levels", levels=(("u", 0.5, True),)).to_json() == {
        "type": "voice.levels",
        "levels": [{"user_id": "u", "level": 0.5, "speaking": True}],
    }


def test_a_standing_queue_is_trimmed_quietly() -> None:
    mixer = Mixer(max_queued=3)
    for pid in ("quiet", "loud", "b"):
        mixer.add(pid)
    # Frames arrive two at a time once (jitter), then steadily: the queue would carry one
    # frame of extra delay forever. A quiet speaker's is trimmed after BACKLOG_TICKS; a
    # speaker who never pauses loses a frame only after FORCED_TRIM_TICKS.
    for pid in ("quiet", "loud"):
        mixer.push(pid, tone(440, 0, amplitude=0.0001 if pid == "quiet" else 0.3))
    for i in range(BACKLOG_TICKS + 1):
        mixer.push("quiet", tone(440, i * FRAME_SAMPLES, amplitude=0.0001))
        mixer.push("loud", tone(440, i * FRAME_SAMPLES))
        mixer.tick()
    assert mixer.speakers["quiet"].dropped == 1
    assert len(mixer.speakers["quiet"].queue) == 0
    assert mixer.speakers["loud"].dropped == 0
    for i in range(FORCED_TRIM_TICKS):
        mixer.push("loud", tone(440, i * FRAME_SAMPLES))
        mixer.tick()
    assert mixer.speakers["loud"].dropped == 1

"""The film's sound: a tenant's soundtrack from the blob store, or a generated music bed.

Both come out as float32 stereo at the film's sample rate, exactly as long as the film,
with a fade in and a longer fade out.
"""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np

Audio = np.ndarray[Any, np.dtype[np.float32]]

# A I-V-vi-IV progression in C major, as MIDI notes (root position triads, an octave pad).
CHORDS = ((48, 60, 64, 67), (43, 59, 62, 67), (45, 57, 60, 64), (41, 57, 60, 65))
CHORD_S = 4.0
LEVEL = 0.18


def _hz(note: int) -> float:
    return float(440.0 * 2 ** ((note - 69) / 12))


def music_bed(seconds: float, rate: int) -> Audio:
    """A soft pad: slow chords of sine partials with smooth swells, gently detuned
    between the channels. One cycle of the progression is computed (its last chord's tail
    wraps around to the start) and repeated, so any length costs the same."""
    n = max(1, round(seconds * rate))
    chord_n = round(CHORD_S * rate)
    period = chord_n * len(CHORDS)
    tail = rate // 2  # half a second of overlap into the next chord
    local = np.arange(chord_n + tail, dtype=np.float64) / rate
    envelope = np.sin(np.pi * np.clip(local / (CHORD_S + 0.5), 0, 1)) ** 2
    cycle = np.zeros((2, period), dtype=np.float64)
    for c, chord in enumerate(CHORDS):
        where = (c * chord_n + np.arange(chord_n + tail)) % period
        for channel, detune in ((0, 0.998), (1, 1.002)):
            voice = np.zeros(chord_n + tail)
            for k, note in enumerate(chord):
                f = _hz(note) * detune
                weight = 0.5 if k == 0 else 0.3
                voice += weight * np.sin(2 * np.pi * f * local + k)
                voice += 0.08 * weight * np.sin(2 * np.pi * 2 * f * local)
            np.add.at(cycle[channel], where, voice * envelope)
    cycle *= LEVEL / max(1e-9, float(np.abs(cycle).max()))
    out = np.tile(cycle, (1, -(-n // period)))[:, :n]
    return fade(out.astype(np.float32), rate)


def fade(audio: Audio, rate: int, fade_in_s: float = 1.0, fade_out_s: float = 2.5) -> Audio:
    n = audio.shape[1]
    out = audio.copy()
    a = min(n, round(fade_in_s * rate))
    b = min(n, round(fade_out_s * rate))
    if a:
        out[:, :a] *= np.linspace(0.0, 1.0, a, dtype=np.float32)
    if b:
        out[:, n - b :] *= np.linspace(1.0, 0.0, b, dtype=np.float32)
    return out


def decode_soundtrack(data: bytes, seconds: float, rate: int) -> Audio:
    """Decode any audio PyAV reads to stereo float32, looped or cut to ``seconds``.

    Raises ``ValueError`` when the bytes hold no decodable audio.
    """
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                raise ValueError("no audio stream")
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
            chunks: list[Audio] = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().astype(np.float32))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().astype(np.float32))
    except av.FFmpegError as exc:
        raise ValueError(f"undecodable soundtrack: {exc}") from exc
    if not chunks:
        raise ValueError("the soundtrack has no samples")
    track = np.concatenate(chunks, axis=1)
    n = max(1, round(seconds * rate))
    repeats = -(-n // track.shape[1])
    return fade(np.tile(track, (1, repeats))[:, :n], rate)

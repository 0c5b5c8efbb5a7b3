"""Pure audio helpers (numpy only): tones, levels and frequency analysis.

Every call in a room runs at 48 kHz in 20 ms frames (Opus's native rate and WebRTC's
usual packet time). Samples are int16 mono unless said otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960
"""20 ms at 48 kHz."""
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
SILENCE_DBOV = -127.0
SPEAKING_DBOV = -45.0
"""Above this a participant counts as speaking (a normal voice sits at -30..-10 dBov)."""

Samples = npt.NDArray[np.int16]


def tone(
    frequency_hz: float, start_sample: int, count: int = FRAME_SAMPLES, amplitude: float = 0.3
) -> Samples:
    """``count`` samples of a sine at ``frequency_hz``, phase-continuous from ``start_sample``."""
    t = (np.arange(count) + start_sample) / SAMPLE_RATE
    wave = amplitude * 32767 * np.sin(2 * math.pi * frequency_hz * t)
    return wave.astype(np.int16)


def level_dbov(samples: npt.NDArray[np.integer]) -> float:
    """RMS level in dBov (0 = full scale square wave; silence -127), as RFC 6464 defines."""
    if samples.size == 0:
        return SILENCE_DBOV
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64))))) / 32768.0
    if rms <= 0.0:
        return SILENCE_DBOV
    return max(SILENCE_DBOV, 20.0 * math.log10(rms))


def level_share(dbov: float) -> float:
    """A dBov level as 0..1 for clients' meters (-60 dBov and below is 0)."""
    return round(min(1.0, max(0.0, (dbov + 60.0) / 60.0)), 3)


def tone_power(
    samples: npt.NDArray[np.integer], frequency_hz: float, width_hz: float = 15.0
) -> float:
    """Share (0..1) of the signal's energy within ``width_hz`` of ``frequency_hz`` (Hann
    window FFT)."""
    if samples.size < 64:
        return 0.0
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1.0 / SAMPLE_RATE)
    total = float(spectrum.sum())
    if total <= 0.0:
        return 0.0
    band = np.abs(freqs - frequency_hz) <= width_hz
    return float(spectrum[band].sum()) / total


def tone_amplitude(samples: npt.NDArray[np.integer], frequency_hz: float) -> float:
    """Estimated peak amplitude (0..1 of full scale) of the sine at ``frequency_hz``, so
    "heard" and "not heard" do not depend on what else is in the mix."""
    if samples.size < 64:
        return 0.0
    x = samples.astype(np.float64) / 32768.0
    window = np.hanning(x.size)
    spectrum = np.abs(np.fft.rfft(x * window))
    freqs = np.fft.rfftfreq(x.size, 1.0 / SAMPLE_RATE)
    band = np.abs(freqs - frequency_hz) <= 3 * SAMPLE_RATE / x.size
    if not band.any():
        return 0.0
    return float(spectrum[band].max()) * 2.0 / float(window.sum())


def onset(samples: npt.NDArray[np.integer], threshold: float = 0.05) -> int | None:
    """Index of the first sample whose magnitude exceeds ``threshold`` of full scale."""
    above = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold * 32767)
    return int(above[0]) if above.size else None


def to_mono(interleaved: npt.NDArray[Any], channels: int) -> Samples:
    """Packed int16 (``channels`` interleaved) to mono int16 (channel average)."""
    flat = interleaved.reshape(-1)
    if channels == 1:
        mono: Samples = flat.astype(np.int16, copy=False)
        return mono
    mixed = flat.reshape(-1, channels).astype(np.int32).sum(axis=1) // channels
    out: Samples = mixed.astype(np.int16)
    return out

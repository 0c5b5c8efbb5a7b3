"""H.264 encoding of one segment with PyAV, and the join of segments by remuxing.

Segments are encoded with identical settings, a fixed GOP, no B-frames, no scene-cut
keyframes and x264's ``stitchable`` headers, so each segment starts on a keyframe and the
segments' streams concatenate packet by packet: the join shifts timestamps and never
decodes or re-encodes video. The soundtrack is encoded once for the whole film (AAC
segments joined end to end would click at every border).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from pocdojo.video.frames import Frame
from pocdojo.video.plan import RenderSpec

AUDIO_FRAME = 1024  # AAC frame size in samples


class JoinError(RuntimeError):
    """Segments that cannot be joined without re-encoding (different stream settings)."""


@dataclass(frozen=True, slots=True)
class EncodeStats:
    frames: int
    encode_s: float
    """Time spent converting to YUV and in the encoder (not drawing)."""
    peak_rss_mib: float


def x264_options(spec: RenderSpec) -> dict[str, str]:
    return {
        "preset": spec.preset,
        "crf": str(spec.crf),
        "g": str(spec.gop),
        "keyint_min": str(spec.gop),
        "bf": "0",
        "sc_threshold": "0",
        "x264-params": "stitchable=1",
    }


def ffmpeg_args(spec: RenderSpec) -> list[str]:
    """The same settings for the ffmpeg command line (the benchmark's baseline)."""
    return [
        "-c:v",
        "libx264",
        "-preset",
        spec.preset,
        "-crf",
        str(spec.crf),
        "-g",
        str(spec.gop),
        "-keyint_min",
        str(spec.gop),
        "-bf",
        "0",
        "-sc_threshold",
        "0",
        "-x264-params",
        "stitchable=1",
        "-threads",
        str(spec.encoder_threads),
        "-pix_fmt",
        "yuv420p",
    ]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encode_frames(
    frames: Iterator[tuple[bool, Frame]], spec: RenderSpec, path: Path
) -> EncodeStats:
    """Encode RGB frames (with "same as the previous one" flags) into an MP4 at ``path``."""
    encode_s = 0.0
    count = 0
    with av.open(os.fspath(path), "w", format="mp4") as container:
        stream: Any = container.add_stream("libx264", rate=spec.fps, options=x264_options(spec))
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.codec_context.thread_count = spec.encoder_threads
        stream.codec_context.time_base = Fraction(1, spec.fps)
        previous: av.VideoFrame | None = None
        for same, rgb in frames:
            started = time.perf_counter()
            if not same or previous is None:
                previous = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                    format="yuv420p"
                )
            previous.pts = count
            previous.time_base = Fraction(1, spec.fps)
            container.mux(stream.encode(previous))
            encode_s += time.perf_counter() - started
            count += 1
        started = time.perf_counter()
        container.mux(stream.encode(None))
        encode_s += time.perf_counter() - started
    return EncodeStats(count, encode_s, peak_rss_mib())


def encode_audio(audio: np.ndarray[Any, np.dtype[np.float32]], spec: RenderSpec, out: Path) -> None:
    """``audio`` (float32, shape (2, samples) at ``spec.audio_rate``) as AAC in an MP4."""
    with av.open(os.fspath(out), "w", format="mp4") as container:
        sound: Any = container.add_stream("aac", rate=spec.audio_rate, layout="stereo")
        sound.bit_rate = spec.audio_bitrate
        for packet in _encode_audio(sound, audio, spec.audio_rate):
            container.mux(packet)


def join(segments: list[Path], audio: Path, spec: RenderSpec, out: Path) -> int:
    """Concatenate the segments' video and add the AAC track of ``audio``, both by
    remuxing (nothing is decoded); MP4 with the index first (faststart), packets
    interleaved by time. Returns the number of video frames written."""
    inputs = [av.open(os.fspath(p)) for p in segments]
    sound_in = av.open(os.fspath(audio))
    try:
        first = inputs[0].streams.video[0]
        extradata = first.codec_context.extradata
        for container in inputs[1:]:
            stream = container.streams.video[0]
            if (stream.width, stream.height, stream.codec_context.extradata) != (
                first.width,
                first.height,
                extradata,
            ):
                raise JoinError("segments were encoded with different stream settings")
        with av.open(
            os.fspath(out), "w", format="mp4", options={"movflags": "+faststart"}
        ) as output:
            video: Any = output.add_stream_from_template(first)
            audio_in = sound_in.streams.audio[0]
            sound: Any = output.add_stream_from_template(audio_in)
            audio_tb: Fraction = audio_in.time_base or Fraction(1, spec.audio_rate)
            pending = (p for p in sound_in.demux(audio_in) if p.dts is not None)
            next_audio = next(pending, None)
            frames = 0
            frame_s = Fraction(1, spec.fps)
            for container in inputs:
                stream = container.streams.video[0]
                tb: Fraction = stream.time_base or Fraction(1, 1000)
                offset = round(frames * frame_s / tb)
                count = 0
                for packet in container.demux(stream):
                    if packet.dts is None or packet.pts is None:
                        continue  # the demuxer's flush packet
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = video
                    at = packet.pts * tb
                    # Interleave: audio up to this video time goes first.
                    while next_audio is not None and (next_audio.dts or 0) * audio_tb <= at:
                        next_audio.stream = sound
                        output.mux(next_audio)
                        next_audio = next(pending, None)
                    output.mux(packet)
                    count += 1
                frames += count
            while next_audio is not None:
                next_audio.stream = sound
                output.mux(next_audio)
                next_audio = next(pending, None)
        return frames
    finally:
        for container in inputs:
            container.close()
        sound_in.close()


def _encode_audio(
    stream: Any, audio: np.ndarray[Any, np.dtype[np.float32]], rate: int
) -> Iterator[Any]:
    samples = audio.shape[1]
    for start in range(0, samples, AUDIO_FRAME):
        chunk = np.ascontiguousarray(audio[:, start : start + AUDIO_FRAME], dtype=np.float32)
        if chunk.shape[1] < AUDIO_FRAME:
            chunk = np.pad(chunk, ((0, 0), (0, AUDIO_FRAME - chunk.shape[1])))
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        yield from stream.encode(frame)
    yield from stream.encode(None)

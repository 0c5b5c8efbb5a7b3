"""What a test wants to know of an MP4, read back with PyAV (and the box order by hand)."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from fractions import Fraction

import av


@dataclass
class FilmProbe:
    duration_s: float
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    audio_rate: int | None
    audio_duration_s: float
    frames: int
    fps: Fraction
    pts_s: list[Fraction]
    keyframes: list[int]
    top_boxes: list[str]

    @property
    def faststart(self) -> bool:
        return self.top_boxes.index("moov") < self.top_boxes.index("mdat")


def top_level_boxes(data: bytes) -> list[str]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size == 0:
            break
        offset += size
    return boxes


def probe(data: bytes) -> FilmProbe:
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        pts: list[Fraction] = []
        keyframes: list[int] = []
        for i, frame in enumerate(container.decode(video=0)):
            assert frame.pts is not None
            pts.append(frame.pts * video.time_base)
            if frame.key_frame:
                keyframes.append(i)
            assert (frame.width, frame.height) == (video.width, video.height)
        duration = container.duration / 1_000_000 if container.duration else 0.0
        audio_s = 0.0
        if audio is not None and audio.duration is not None and audio.time_base is not None:
            audio_s = float(audio.duration * audio.time_base)
        return FilmProbe(
            duration_s=duration,
            width=video.width,
            height=video.height,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio else None,
            audio_rate=audio.codec_context.sample_rate if audio else None,
            audio_duration_s=audio_s,
            frames=len(pts),
            fps=video.average_rate or Fraction(0),
            pts_s=pts,
            keyframes=keyframes,
            top_boxes=top_level_boxes(data),
        )

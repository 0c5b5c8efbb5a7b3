"""The film plan: what a yearly video shows, segment by segment (pure values, no I/O).

A plan is built once from the year's PoCs when a job is created and stored in the job row,
so a resumed render draws exactly the same film. Its ``content_hash`` names the content:
the same user, year, format and unchanged PoCs give the same hash (one render per content).
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

RENDERER_VERSION = "video-1"
"""Bump when the look of the film changes: old hashes then no longer match."""

FilmFormat = Literal["landscape", "portrait"]
SegmentKind = Literal["intro", "poc", "outro"]
SIZES: dict[str, tuple[int, int]] = {"landscape": (1280, 720), "portrait": (720, 1280)}
MAX_POCS = 60
MAX_IMAGES_PER_POC = 6
"""Candidates per PoC: the first ``IMAGES_SHOWN`` that decode are shown."""
IMAGES_SHOWN = 3
EXCERPT_CHARS = 220
_MARKDOWN = re.compile(r"(```.*?```|`|[*_#>~]|\[([^\]]*)\]\([^)]*\)|!\[[^\]]*\]\([^)]*\))", re.S)


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RenderSpec(_Value):
    """How the film is drawn and encoded: 30 fps H.264 (fixed GOP, no B-frames, so that
    segments join by remuxing) and 48 kHz stereo AAC."""

    width: int = 1280
    height: int = 720
    fps: int = 30
    intro_s: float = 3.0
    poc_s: float = 4.0
    outro_s: float = 5.0
    crf: int = 23
    preset: str = "veryfast"
    gop_s: float = 2.0
    encoder_threads: int = 1
    """Per segment: parallelism comes from rendering segments side by side."""
    audio_rate: int = 48_000
    audio_bitrate: int = 128_000

    @classmethod
    def for_format(
        cls, film_format: FilmFormat, *, scale: int = 1, **overrides: object
    ) -> RenderSpec:
        width, height = SIZES[film_format]
        # Even sizes only: yuv420p halves both axes.
        w, h = (width // scale) // 2 * 2, (height // scale) // 2 * 2
        return cls.model_validate({"width": w, "height": h, **overrides})

    def frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))

    @property
    def gop(self) -> int:
        return max(1, round(self.gop_s * self.fps))


class ImageRef(_Value):
    key: str
    size_bytes: int
    filename: str


class PocInput(_Value):
    id: str
    version: int
    name: str
    description: str
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    built_on: dt.date
    images: tuple[ImageRef, ...] = ()


class FilmInputs(_Value):
    """Everything the film depends on, read from the database in one tenant transaction."""

    tenant_id: str
    user_id: str
    user_name: str
    tenant_name: str
    year: int
    format: FilmFormat
    pocs: tuple[PocInput, ...]
    soundtrack: ImageRef | None = None


class IntroCard(_Value):
    user_name: str
    tenant_name: str
    year: int
    poc_count: int
    language_count: int
    tag_count: int


class PocCard(_Value):
    number: int
    total: int
    name: str
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    excerpt: str
    built_on: dt.date
    images: tuple[ImageRef, ...]


class OutroCard(_Value):
    year: int
    poc_count: int
    top_languages: tuple[tuple[str, int], ...]
    top_tags: tuple[str, ...]
    image_count: int


class Segment(_Value):
    index: int
    kind: SegmentKind
    frames: int
    start_frame: int
    intro: IntroCard | None = None
    poc: PocCard | None = None
    outro: OutroCard | None = None


class FilmPlan(_Value):
    tenant_id: str
    user_id: str
    year: int
    format: FilmFormat
    spec: RenderSpec
    segments: tuple[Segment, ...]
    content_hash: str
    soundtrack: ImageRef | None
    notes: tuple[str, ...] = ()

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.segments)

    @property
    def duration_s(self) -> float:
        return self.total_frames / self.spec.fps

    @property
    def thumbnail_segment(self) -> int:
        """The first PoC with images, else the intro: the film's poster frame."""
        for segment in self.segments:
            if segment.poc is not None and segment.poc.images:
                return segment.index
        return 0


def excerpt(markdown: str, limit: int = EXCERPT_CHARS) -> str:
    """A plain-text start of a markdown description, cut at a word boundary."""
    text = _MARKDOWN.sub(lambda m: m.group(2) or " ", markdown)
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",.;:-")
    return cut + "…"


def content_hash(inputs: FilmInputs, spec: RenderSpec) -> str:
    """Names the film's content: equal inputs and spec give an equal hash."""
    canonical = json.dumps(
        {
            "renderer": RENDERER_VERSION,
            "inputs": inputs.model_dump(mode="json"),
            "spec": spec.model_dump(mode="json"),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_plan(inputs: FilmInputs, spec: RenderSpec) -> FilmPlan:
    """Intro, one segment per PoC in ``built_on`` order, outro."""
    pocs = sorted(inputs.pocs, key=lambda p: (p.built_on, p.name, p.id))
    notes: list[str] = []
    if len(pocs) > MAX_POCS:
        notes.append(f"{len(pocs)} PoCs this year: the film shows the first {MAX_POCS}")
    shown = pocs[:MAX_POCS]
    languages = collections.Counter(lang for p in pocs for lang in p.languages)
    tags = collections.Counter(tag for p in pocs for tag in p.tags)
    segments: list[Segment] = []
    start = 0

    def add(kind: SegmentKind, seconds: float, **payload: object) -> None:
        nonlocal start
        frames = spec.frames(seconds)
        segments.append(
            Segment.model_validate(
                {
                    "index": len(segments),
                    "kind": kind,
                    "frames": frames,
                    "start_frame": start,
                    **payload,
                }
            )
        )
        start += frames

    add(
        "intro",
        spec.intro_s,
        intro=IntroCard(
            user_name=inputs.user_name,
            tenant_name=inputs.tenant_name,
            year=inputs.year,
            poc_count=len(pocs),
            language_count=len(languages),
            tag_count=len(tags),
        ),
    )
    for number, poc in enumerate(shown, start=1):
        add(
            "poc",
            spec.poc_s,
            poc=PocCard(
                number=number,
                total=len(shown),
                name=poc.name,
                languages=poc.languages,
                tags=poc.tags,
                excerpt=excerpt(poc.description),
                built_on=poc.built_on,
                images=poc.images[:MAX_IMAGES_PER_POC],
            ),
        )
    add(
        "outro",
        spec.outro_s,
        outro=OutroCard(
            year=inputs.year,
            poc_count=len(pocs),
            top_languages=tuple(languages.most_common(5)),
            top_tags=tuple(t for t, _ in tags.most_common(12)),
            image_count=sum(len(p.images) for p in pocs),
        ),
    )
    return FilmPlan(
        tenant_id=inputs.tenant_id,
        user_id=inputs.user_id,
        year=inputs.year,
        format=inputs.format,
        spec=spec,
        segments=tuple(segments),
        content_hash=content_hash(inputs, spec),
        soundtrack=inputs.soundtrack,
        notes=tuple(notes),
    )

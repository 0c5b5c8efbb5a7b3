"""The two units of work of a render, as plain synchronous functions that Ray tasks (or a
local process pool) run: draw and encode one segment; join the segments into the film.

Each fetches what it needs from the blob store and puts its result back there, so a task
can run on any node and a retried task simply overwrites its own output.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pocdojo.storage.blobs import BlobKey, FileBlobStore, S3BlobStore, open_blob_store
from pocdojo.video.encode import encode_audio, encode_frames, join, peak_rss_mib
from pocdojo.video.frames import Frame, SegmentRenderer
from pocdojo.video.plan import IMAGES_SHOWN, FilmPlan, ImageRef
from pocdojo.video.soundtrack import Audio, decode_soundtrack, music_bed

THUMBNAIL_WIDTH = 640
# Photos are decoded at a reduced size (JPEG draft mode): the panel is at most ~700 px.
DECODE_MAX = (1600, 1600)


@dataclass(frozen=True, slots=True)
class BlobConfig:
    """How a worker opens the blob store (the same settings as the service)."""

    blob_url: str
    signing_key: str
    public_base_url: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"

    def open(self) -> FileBlobStore | S3BlobStore:
        return open_blob_store(
            self.blob_url,
            signing_key=self.signing_key,
            public_base_url=self.public_base_url,
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
        )


@dataclass(frozen=True, slots=True)
class FilmKeys:
    """Where a render's pieces live: under the tenant's prefix, one folder per render."""

    tenant_id: str
    render_id: str

    def _key(self, name: str) -> BlobKey:
        return BlobKey.parse(f"tenants/{self.tenant_id}/videos/{self.render_id}/{name}")

    def segment(self, index: int) -> BlobKey:
        return self._key(f"seg-{index:04d}.mp4")

    @property
    def film(self) -> BlobKey:
        return self._key("film.mp4")

    @property
    def thumbnail(self) -> BlobKey:
        return self._key("thumbnail.jpg")

    @property
    def soundtrack(self) -> BlobKey:
        return self._key("soundtrack.m4a")


@dataclass(frozen=True, slots=True)
class SegmentResult:
    index: int
    frames: int
    notes: tuple[str, ...]
    render_s: float
    encode_s: float
    peak_rss_mib: float


@dataclass(frozen=True, slots=True)
class FilmResult:
    frames: int
    duration_s: float
    size_bytes: int
    notes: tuple[str, ...] = ()
    peak_rss_mib: float = 0.0
    join_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def decode_image(data: bytes) -> Image.Image:
    """A fully decoded image, or ``OSError``/``ValueError`` for anything that is not one
    (truncated files, text named .png, decompression bombs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", DECODE_MAX)
        image.load()  # decodes every byte: a truncated JPEG fails here
    if image.width < 2 or image.height < 2:
        raise ValueError("image too small")
    return image.convert("RGB")


def _own_key(ref: ImageRef, tenant_id: str) -> BlobKey:
    """The blob key of ``ref``, which must be under the film's tenant (defence in depth:
    plans are built from rows that row-level security already scoped)."""
    key = BlobKey.parse(ref.key)
    if str(key.tenant_id) != tenant_id:
        raise PermissionError("another tenant's blob")
    return key


def load_images(
    store: FileBlobStore | S3BlobStore, refs: tuple[ImageRef, ...], tenant_id: str
) -> tuple[list[Image.Image], list[str]]:
    """The images that decode; a note for each one that is missing or corrupt."""
    images: list[Image.Image] = []
    notes: list[str] = []
    for ref in refs:
        if len(images) == IMAGES_SHOWN:
            break
        try:
            data = asyncio.run(store.get(_own_key(ref, tenant_id)))
        except Exception as exc:  # missing blob, S3 error: skip the image, keep the film
            notes.append(f"skipped {ref.filename}: could not be read ({type(exc).__name__})")
            continue
        try:
            images.append(decode_image(data))
        except UnidentifiedImageError:
            notes.append(f"skipped {ref.filename}: not a readable image (not an image file)")
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
            notes.append(f"skipped {ref.filename}: not a readable image ({exc})")
    return images, notes


def _frames(renderer: SegmentRenderer, timings: list[float]) -> Iterator[tuple[bool, Frame]]:
    for i in range(renderer.segment.frames):
        started = time.perf_counter()
        item = renderer.frame(i)
        timings.append(time.perf_counter() - started)
        yield item


def render_segment(plan: FilmPlan, index: int, blobs: BlobConfig, keys: FilmKeys) -> SegmentResult:
    """Draw and encode segment ``index``; store it (and the poster frame, if it is the
    thumbnail segment) in the blob store."""
    store = blobs.open()
    segment = plan.segments[index]
    started = time.perf_counter()
    images, notes = (
        ([], []) if segment.poc is None else load_images(store, segment.poc.images, plan.tenant_id)
    )
    if segment.poc is not None:
        notes = [f"{segment.poc.name}: {n}" for n in notes]
    renderer = SegmentRenderer(segment, plan.spec, images)
    timings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pocdojo-seg-") as tmp:
        path = Path(tmp) / f"seg-{index:04d}.mp4"
        stats = encode_frames(_frames(renderer, timings), plan.spec, path)
        asyncio.run(store.put(keys.segment(index), path.read_bytes(), "video/mp4"))
    if index == plan.thumbnail_segment:
        _, poster = renderer.frame(segment.frames // 2)
        image = Image.fromarray(poster)
        image.thumbnail((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        asyncio.run(store.put(keys.thumbnail, out.getvalue(), "image/jpeg"))
    setup_s = time.perf_counter() - started - sum(timings) - stats.encode_s
    return SegmentResult(
        index=index,
        frames=stats.frames,
        notes=tuple(notes),
        render_s=sum(timings) + max(0.0, setup_s),
        encode_s=stats.encode_s,
        peak_rss_mib=peak_rss_mib(),
    )


def soundtrack_for(plan: FilmPlan, store: FileBlobStore | S3BlobStore) -> tuple[Audio, list[str]]:
    rate = plan.spec.audio_rate
    if plan.soundtrack is not None:
        try:
            data = asyncio.run(store.get(_own_key(plan.soundtrack, plan.tenant_id)))
            return decode_soundtrack(data, plan.duration_s, rate), []
        except Exception as exc:  # a broken soundtrack must not fail the film
            note = f"the tenant soundtrack could not be used ({exc}); a music bed plays instead"
            return music_bed(plan.duration_s, rate), [note]
    return music_bed(plan.duration_s, rate), []


def render_soundtrack(plan: FilmPlan, blobs: BlobConfig, keys: FilmKeys) -> tuple[str, ...]:
    """The film's sound as AAC in its own blob (it runs beside the segments, so the join
    only remuxes); returns the notes (a broken tenant soundtrack)."""
    store = blobs.open()
    audio, notes = soundtrack_for(plan, store)
    with tempfile.TemporaryDirectory(prefix="pocdojo-sound-") as tmp:
        path = Path(tmp) / "soundtrack.m4a"
        encode_audio(audio, plan.spec, path)
        asyncio.run(store.put(keys.soundtrack, path.read_bytes(), "audio/mp4"))
    return tuple(notes)


def join_film(
    plan: FilmPlan, blobs: BlobConfig, keys: FilmKeys, sound_notes: tuple[str, ...] | None = None
) -> FilmResult:
    """Fetch every segment and the soundtrack, remux them into the film, store it.

    ``sound_notes`` is what :func:`render_soundtrack` returned when it already ran; with
    None (a resumed job, the local CLI) the soundtrack is rendered here first."""
    started = time.perf_counter()
    store = blobs.open()
    if sound_notes is None or asyncio.run(store.stat(keys.soundtrack)) is None:
        sound_notes = render_soundtrack(plan, blobs, keys)
    with tempfile.TemporaryDirectory(prefix="pocdojo-join-") as tmp:
        paths: list[Path] = []
        for segment in plan.segments:
            path = Path(tmp) / f"{segment.index:04d}.mp4"
            path.write_bytes(asyncio.run(store.get(keys.segment(segment.index))))
            paths.append(path)
        sound = Path(tmp) / "soundtrack.m4a"
        sound.write_bytes(asyncio.run(store.get(keys.soundtrack)))
        out = Path(tmp) / f"film-{uuid.uuid4().hex}.mp4"
        frames = join(paths, sound, plan.spec, out)
        data = out.read_bytes()
    if frames != plan.total_frames:
        raise RuntimeError(f"joined {frames} frames, the plan has {plan.total_frames}")
    asyncio.run(store.put(keys.film, data, "video/mp4"))
    return FilmResult(
        frames=frames,
        duration_s=plan.duration_s,
        size_bytes=len(data),
        notes=sound_notes,
        peak_rss_mib=peak_rss_mib(),
        join_s=time.perf_counter() - started,
    )

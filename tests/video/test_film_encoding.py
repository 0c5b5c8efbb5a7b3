"""Films rendered in process (no Ray) and decoded back with PyAV: the encoding contract."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pocdojo.storage.blobs import BlobKey, FileBlobStore
from pocdojo.video.encode import JoinError, encode_audio, join
from pocdojo.video.frames import font
from pocdojo.video.plan import FilmInputs, ImageRef, PocInput, RenderSpec, build_plan
from pocdojo.video.render import BlobConfig, FilmKeys, join_film, render_segment
from tests.video.conftest import jpeg
from tests.video.filmprobe import probe


def _store(tmp_path: Path) -> tuple[BlobConfig, FileBlobStore]:
    config = BlobConfig(f"file://{tmp_path}", "k", "http://127.0.0.1:1")
    store = config.open()
    assert isinstance(store, FileBlobStore)
    return config, store


def _put(store: FileBlobStore, tenant: str, name: str, data: bytes, ctype: str) -> ImageRef:
    key = BlobKey.parse(f"tenants/{tenant}/pocs/p/media/{name}")
    asyncio.run(store.put(key, data, ctype))
    return ImageRef(key=key.value, size_bytes=len(data), filename=name)


def _inputs(tenant: str, pocs: int, images: tuple[ImageRef, ...] = (), **kw: object) -> FilmInputs:
    return FilmInputs.model_validate(
        {
            "tenant_id": tenant,
            "user_id": str(uuid.uuid4()),
            "user_name": "Conceição Ñúñez",
            "tenant_name": "Globex Brasil Ltda.",
            "year": 2026,
            "format": "landscape",
            "pocs": [
                PocInput(
                    id=str(i),
                    version=1,
                    name=f"Integração nº{i}",
                    description="Ação rápida",
                    languages=("python",),
                    tags=("pix",),
                    built_on=dt.date(2026, 1 + i, 1),
                    images=images,
                )
                for i in range(pocs)
            ],
            **kw,
        }
    )


def _render(plan_inputs: FilmInputs, spec: RenderSpec, tmp_path: Path) -> tuple[bytes, list[str]]:
    config, store = _store(tmp_path)
    plan = build_plan(plan_inputs, spec)
    keys = FilmKeys(plan.tenant_id, "r")
    notes: list[str] = []
    for segment in plan.segments:
        result = render_segment(plan, segment.index, config, keys)
        assert result.frames == segment.frames
        notes += result.notes
    film = join_film(plan, config, keys)
    notes += film.notes
    assert film.frames == plan.total_frames
    assert asyncio.run(store.stat(keys.thumbnail)) is not None
    return asyncio.run(store.get(keys.film)), notes


def test_tiny_film_decodes_with_every_property(tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    _, store = _store(tmp_path)
    refs = (_put(store, tenant, "a.jpg", jpeg(1), "image/jpeg"),)
    spec = RenderSpec.for_format("landscape", scale=8, intro_s=0.4, poc_s=0.5, outro_s=0.4)
    data, notes = _render(_inputs(tenant, 3, refs), spec, tmp_path)
    film = probe(data)
    assert notes == []
    assert (film.width, film.height) == (160, 90)
    assert film.video_codec == "h264"
    assert film.audio_codec == "aac"
    assert film.audio_rate == 48_000
    expected = 12 + 3 * 15 + 12
    assert film.frames == expected
    assert film.fps == 30
    assert film.duration_s == pytest.approx(expected / 30, abs=0.05)
    assert film.audio_duration_s == pytest.approx(expected / 30, abs=0.1)
    assert film.faststart, film.top_boxes
    # No gap, no duplicate at the segment borders: exactly one frame period apart.
    steps = {b - a for a, b in zip(film.pts_s, film.pts_s[1:], strict=False)}
    assert steps == {Fraction(1, 30)}
    assert film.pts_s[0] == 0
    # Every segment starts on a keyframe (what makes the remux join valid).
    assert {0, 12, 27, 42, 57} <= set(film.keyframes)


def test_real_spec_720p_portrait_and_landscape(tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    _, store = _store(tmp_path)
    refs = (
        _put(store, tenant, "wide.jpg", jpeg(2, (1600, 900)), "image/jpeg"),
        _put(store, tenant, "tall.jpg", jpeg(3, (600, 1000)), "image/jpeg"),
    )
    spec = RenderSpec.for_format("landscape", intro_s=0.5, poc_s=1.0, outro_s=0.5)
    assert (spec.width, spec.height, spec.fps) == (1280, 720, 30)
    film = probe(_render(_inputs(tenant, 2, refs), spec, tmp_path)[0])
    assert (film.width, film.height, film.frames, film.fps) == (1280, 720, 90, 30)
    assert film.duration_s == pytest.approx(3.0, abs=0.05)
    assert film.faststart
    portrait = RenderSpec.for_format("portrait", intro_s=0.3, poc_s=0.5, outro_s=0.3)
    inputs = _inputs(tenant, 1, refs).model_copy(update={"format": "portrait"})
    film = probe(_render(inputs, portrait, tmp_path)[0])
    assert (film.width, film.height, film.frames) == (720, 1280, 33)


def test_corrupt_media_is_skipped_with_a_note(tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    _, store = _store(tmp_path)
    good = jpeg(4)
    refs = (
        _put(store, tenant, "truncated.jpg", good[: len(good) // 2], "image/jpeg"),
        _put(store, tenant, "notes.png", b"this is a text file, not a PNG\n", "image/png"),
        ImageRef(key=f"tenants/{tenant}/pocs/p/media/gone.jpg", size_bytes=1, filename="gone.jpg"),
        _put(store, tenant, "fine.jpg", good, "image/jpeg"),
        # Another tenant's blob, even if a plan named it, is never read.
        _put(store, str(uuid.uuid4()), "foreign.jpg", good, "image/jpeg"),
    )
    spec = RenderSpec.for_format("landscape", scale=8, intro_s=0.2, poc_s=0.4, outro_s=0.2)
    data, notes = _render(_inputs(tenant, 1, refs), spec, tmp_path)
    assert probe(data).frames == 6 + 12 + 6
    assert len(notes) == 4
    assert any("foreign.jpg" in n for n in notes)
    assert any("truncated.jpg" in n for n in notes)
    assert any("notes.png" in n and "not a readable image" in n for n in notes)
    assert any("gone.jpg" in n for n in notes)


def _wav(seconds: float, rate: int = 22_050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 12_000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def test_tenant_soundtrack_is_used_and_a_broken_one_falls_back(tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    _, store = _store(tmp_path)
    spec = RenderSpec.for_format("landscape", scale=8, intro_s=0.5, poc_s=0.5, outro_s=0.5)
    track = _put(store, tenant, "track.wav", _wav(0.4), "audio/wav")  # shorter: it loops
    data, notes = _render(_inputs(tenant, 1, soundtrack=track), spec, tmp_path)
    assert notes == []
    film = probe(data)
    assert film.audio_codec == "aac"
    assert film.audio_duration_s == pytest.approx(1.5, abs=0.1)
    broken = _put(store, tenant, "broken.wav", b"RIFF....nonsense", "audio/wav")
    data, notes = _render(_inputs(tenant, 1, soundtrack=broken), spec, tmp_path)
    assert probe(data).audio_codec == "aac"
    assert len(notes) == 1
    assert "soundtrack" in notes[0]


def test_join_refuses_segments_with_other_settings(tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    config, store = _store(tmp_path)
    paths = []
    for scale in (8, 4):
        spec = RenderSpec.for_format("landscape", scale=scale, intro_s=0.2, poc_s=0.2, outro_s=0.2)
        plan = build_plan(_inputs(tenant, 0), spec)
        keys = FilmKeys(tenant, f"s{scale}")
        render_segment(plan, 0, config, keys)
        path = tmp_path / f"{scale}.mp4"
        path.write_bytes(asyncio.run(store.get(keys.segment(0))))
        paths.append(path)
    sound = tmp_path / "sound.m4a"
    encode_audio(np.zeros((2, 4800), np.float32), spec, sound)
    with pytest.raises(JoinError):
        join(paths, sound, spec, tmp_path / "out.mp4")


def test_shipped_font_covers_portuguese_and_other_latin_text() -> None:
    face = font("regular", 40)
    missing = face.getmask("\ue000").getbbox()  # a private-use code point: no glyph
    for char in "ãçéêíõúÃÇÉÕÑñßøåłŁőűğşıžčřęąΩЖ€":
        assert face.getmask(char).getbbox() != missing, char

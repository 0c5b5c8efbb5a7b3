"""Segments as Ray tasks over the S3 API (moto server, boto3), and stuck segments."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import pytest

from pocdojo.settings import Settings
from pocdojo.storage.blobs import BlobKey, S3BlobStore
from pocdojo.video.executors import RayExecutor, SegmentFailed
from pocdojo.video.plan import FilmInputs, ImageRef, PocInput, RenderSpec, build_plan
from pocdojo.video.render import BlobConfig, FilmKeys, SegmentResult
from tests.video.conftest import jpeg
from tests.video.filmprobe import probe

pytestmark = pytest.mark.ray


def _inputs(tenant: str, refs: tuple[ImageRef, ...], pocs: int) -> FilmInputs:
    return FilmInputs(
        tenant_id=tenant,
        user_id=str(uuid.uuid4()),
        user_name="Zoë Åsa",
        tenant_name="Ünïcode GmbH",
        year=2026,
        format="landscape",
        pocs=tuple(
            PocInput(
                id=str(i),
                version=1,
                name=f"poc {i}",
                description="",
                languages=("rust",),
                tags=(),
                built_on=dt.date(2026, 5, 1 + i),
                images=refs,
            )
            for i in range(pocs)
        ),
    )


async def test_render_on_ray_over_s3(
    ray_cluster: Settings, s3_endpoint: str, s3_bucket: str
) -> None:
    tenant = str(uuid.uuid4())
    config = BlobConfig(f"s3://{s3_bucket}/films", "k", "http://127.0.0.1:1", s3_endpoint)
    store = config.open()
    assert isinstance(store, S3BlobStore)
    refs = []
    for name, data in (("a.jpg", jpeg(7)), ("cut.jpg", jpeg(8)[:300]), ("t.png", b"text")):
        key = BlobKey.parse(f"tenants/{tenant}/pocs/p/media/{name}")
        await store.put(key, data, "image/jpeg")
        refs.append(ImageRef(key=key.value, size_bytes=len(data), filename=name))
    spec = RenderSpec.for_format("landscape", scale=4, intro_s=0.3, poc_s=0.5, outro_s=0.3)
    plan = build_plan(_inputs(tenant, tuple(refs), 3), spec)
    keys = FilmKeys(tenant, "s3-render")
    done: list[SegmentResult] = []

    async def on_done(result: SegmentResult, attempts: int) -> None:
        done.append(result)

    executor = RayExecutor(workers=2, timeout_s=60)
    await executor.render(plan, [s.index for s in plan.segments], config, keys, on_done)
    assert sorted(r.index for r in done) == [0, 1, 2, 3, 4]
    notes = [n for r in done for n in r.notes]
    assert len(notes) == 6  # two bad images in each of three PoCs
    film = await executor.join(plan, config, keys)
    data = await store.get(keys.film)
    assert len(data) == film.size_bytes
    decoded = probe(data)
    assert decoded.frames == plan.total_frames == 9 + 3 * 15 + 9
    assert decoded.faststart
    assert decoded.audio_codec == "aac"
    # Everything the render wrote sits under the tenant's prefix (and the store's prefix).
    listed = await asyncio.to_thread(
        store._client.list_objects_v2, Bucket=s3_bucket, Prefix="films/"
    )
    written = [o["Key"] for o in listed["Contents"]]
    assert all(k.startswith(f"films/tenants/{tenant}/") for k in written)
    assert f"films/tenants/{tenant}/videos/s3-render/film.mp4" in written


async def test_a_stuck_segment_times_out_and_is_retried(
    ray_cluster: Settings, tmp_path: Path
) -> None:
    tenant = str(uuid.uuid4())
    config = BlobConfig(f"file://{tmp_path}", "k", "http://127.0.0.1:1")
    # A full-size segment takes seconds; 0.3 s is "stuck" for this test.
    spec = RenderSpec.for_format("landscape", intro_s=3.0, poc_s=3.0, outro_s=3.0)
    plan = build_plan(_inputs(tenant, (), 1), spec)
    retries: list[tuple[int, int, str]] = []

    async def on_done(result: SegmentResult, attempts: int) -> None:
        raise AssertionError("no segment can finish within the timeout")

    async def on_retry(index: int, attempt: int, reason: str) -> None:
        retries.append((index, attempt, reason))

    executor = RayExecutor(workers=1, timeout_s=0.3, max_attempts=2)
    with pytest.raises(SegmentFailed, match="timed out"):
        await executor.render(plan, [0], config, FilmKeys(tenant, "stuck"), on_done, on_retry)
    assert retries == [(0, 1, "timed out after 0.3s")]

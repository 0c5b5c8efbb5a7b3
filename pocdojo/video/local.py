"""``pocdojo video render``: one user's film rendered from this machine, with a progress bar.

The same plan, segment renderer and join as the service; segments run in a local process
pool (or on a Ray cluster with ``--ray ADDRESS``), through the configured blob store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from pocdojo import admin
from pocdojo.settings import Settings
from pocdojo.storage import videos
from pocdojo.storage.blobs import BlobKey
from pocdojo.storage.db import Database
from pocdojo.video.executors import LocalExecutor, RayExecutor, SegmentExecutor
from pocdojo.video.plan import FilmFormat, FilmPlan, ImageRef, build_plan
from pocdojo.video.render import FilmKeys, SegmentResult
from pocdojo.video.runner import blob_config, render_spec


@dataclass(frozen=True, slots=True)
class LocalRender:
    plan: FilmPlan
    out: Path
    size_bytes: int
    wall_s: float
    notes: list[str]


async def _plan(
    settings: Settings, email: str, tenant: str | None, year: int, film_format: FilmFormat
) -> FilmPlan:
    store = blob_config(settings).open()
    async with Database(settings.owner_database_url, max_size=2) as db:
        who = await admin.identity_for(db, email, tenant)
        soundtrack_key = BlobKey.for_tenant(who.tenant_id, *videos.SOUNDTRACK_PARTS)
        info = await store.stat(soundtrack_key)
        soundtrack = (
            ImageRef(key=soundtrack_key.value, size_bytes=info.size, filename="soundtrack")
            if info
            else None
        )
        async with db.tenant_tx(who.tenant_id) as conn:
            inputs = await videos.film_inputs(
                conn, who.tenant_id, who.user_id, year, film_format, soundtrack
            )
    return build_plan(inputs, render_spec(settings, film_format))


async def render_locally(
    settings: Settings,
    *,
    email: str,
    year: int,
    out: Path,
    tenant: str | None = None,
    film_format: FilmFormat = "landscape",
    workers: int = 2,
    ray_address: str | None = None,
    progress: bool = True,
) -> LocalRender:
    started = time.perf_counter()
    plan = await _plan(settings, email, tenant, year, film_format)
    config = blob_config(settings)
    store = config.open()
    keys = FilmKeys(plan.tenant_id, f"local-{plan.content_hash[:24]}")
    executor: SegmentExecutor
    if ray_address:
        import ray

        ray.init(address=ray_address, log_to_driver=False)
        executor = RayExecutor(workers, timeout_s=settings.video_segment_timeout_s)
    else:
        executor = LocalExecutor(workers)
    notes = list(plan.notes)
    bar = tqdm(
        total=len(plan.segments) + 1,
        unit="segment",
        desc=f"{year} film",
        disable=not progress,
    )

    async def on_done(result: SegmentResult, attempts: int) -> None:
        notes.extend(result.notes)
        bar.update(1)

    try:
        await executor.render(plan, [s.index for s in plan.segments], config, keys, on_done, None)
        bar.set_postfix_str("joining")
        film = await executor.join(plan, config, keys)
        bar.update(1)
        notes.extend(film.notes)
        data = await store.get(keys.film)
        await asyncio.to_thread(out.write_bytes, data)
    finally:
        bar.close()
        if isinstance(executor, LocalExecutor):
            executor.close()
        pieces = [keys.film, keys.thumbnail, keys.soundtrack]
        for key in [*pieces, *(keys.segment(s.index) for s in plan.segments)]:
            with contextlib.suppress(Exception):
                await store.delete(key)
    return LocalRender(plan, out, len(data), time.perf_counter() - started, notes)


def main(
    settings: Settings,
    *,
    email: str,
    year: int,
    out: Path,
    tenant: str | None,
    film_format: FilmFormat,
    workers: int,
    ray_address: str | None,
) -> None:
    result = asyncio.run(
        render_locally(
            settings,
            email=email,
            year=year,
            out=out,
            tenant=tenant,
            film_format=film_format,
            workers=workers,
            ray_address=ray_address,
        )
    )
    plan = result.plan
    print(
        f"wrote {out} ({result.size_bytes / 2**20:.1f} MiB): {plan.spec.width}x{plan.spec.height}"
        f" {plan.spec.fps} fps, {plan.duration_s:.1f} s, {plan.total_frames} frames,"
        f" {sum(1 for s in plan.segments if s.poc)} PoCs, rendered in {result.wall_s:.1f} s"
    )
    for note in result.notes:
        print(f"note: {note}")

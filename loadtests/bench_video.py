"""make bench-video: a fixed 40-PoC year rendered on Ray with 1 and 2 workers, and the
encoding part against the ffmpeg command line.

    .venv/bin/python -m loadtests.bench_video [--pocs 40] [--encode-frames 240]

Side "project": the production path without the HTTP/DB edges: the film plan, segments as
Ray tasks on a local Ray cluster of the benchmark's own (shifted ports, own temp dir),
images fetched from a file blob store, PyAV/libx264 encoding, the remux join with the
AAC soundtrack, thumbnail. 1280x720, 30 fps, intro 3 s + 40 x 4 s + outro 5 s = 168 s.

Side "baseline": Debian's ``ffmpeg`` encoding the same raw RGB frames (a slice of the
film, written to a file first) with the same libx264 settings (preset, CRF, GOP, no
B-frames, no scene cut, 1 thread), next to PyAV encoding the same file the same way.

Writes ``bench-results/video.json``: rows ``{"case", "metric", "value", "unit", "side"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import psutil
import ray
from PIL import Image

from loadtests.common import host_busy, machine, run
from pocdojo import local_cluster
from pocdojo.settings import Settings
from pocdojo.storage.blobs import BlobKey
from pocdojo.video.encode import ffmpeg_args, x264_options
from pocdojo.video.executors import RayExecutor
from pocdojo.video.frames import SegmentRenderer
from pocdojo.video.plan import FilmInputs, FilmPlan, ImageRef, PocInput, RenderSpec, build_plan
from pocdojo.video.render import BlobConfig, FilmKeys, SegmentResult, decode_image

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "bench-results" / "video.json"
GOAL_FRACTION = 0.25  # of the film's own duration
GOAL_SPEEDUP = 1.7
GOAL_ENCODE_RATIO = 1.2
LANGUAGES = ("python", "go", "typescript", "rust", "kotlin", "swift", "java", "elixir")
Row = dict[str, Any]


class BenchError(RuntimeError):
    """A precondition failed; the message says what to do."""


def log(message: str) -> None:
    print(f"[bench-video] {message}", flush=True)


def ensure_ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("ffmpeg is not installed: run `sudo apt-get install -y ffmpeg`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log("ffmpeg is missing: apt-get install -y ffmpeg")
    run(["apt-get", "update"], 600, env=env)
    result = run(["apt-get", "install", "-y", "--no-install-recommends", "ffmpeg"], 900, env=env)
    if result.returncode != 0 or not shutil.which("ffmpeg"):
        raise BenchError(f"apt-get install ffmpeg failed:\n{result.stderr[-2000:]}")
    return str(shutil.which("ffmpeg"))


# --------------------------------------------------------------------------- the fixed year


def photo(seed: int, size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A deterministic photo-like JPEG: smooth gradients and shapes, like a screenshot."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = rng.uniform(0.002, 0.012, 3)
    rgb = np.stack(
        [
            127 + 110 * np.sin(x * a + seed),
            127 + 110 * np.sin(y * b + 2 * seed),
            127 + 110 * np.sin((x + y) * c + 3 * seed),
        ],
        axis=-1,
    )
    for _ in range(12):  # a few flat "windows"
        x0, y0 = int(rng.integers(0, w - 200)), int(rng.integers(0, h - 150))
        rgb[y0 : y0 + int(rng.integers(60, 400)), x0 : x0 + int(rng.integers(80, 500))] = (
            rng.integers(0, 255, 3)
        )
    out = io.BytesIO()
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=88)
    return out.getvalue()


async def fixed_year(blobs: BlobConfig, tenant: str, pocs: int) -> FilmInputs:
    store = blobs.open()
    items = []
    for i in range(pocs):
        refs = []
        for k in range(2):
            key = BlobKey.parse(f"tenants/{tenant}/pocs/p{i}/media/shot{k}.jpg")
            data = photo(i * 7 + k)
            await store.put(key, data, "image/jpeg")
            refs.append(ImageRef(key=key.value, size_bytes=len(data), filename=f"shot{k}.jpg"))
        items.append(
            PocInput(
                id=f"poc-{i:03d}",
                version=1,
                name=f"PoC {i + 1}: integração de pagamentos nº{i}",
                description="Um protótipo que prova a ideia: **fila**, *retries*, métricas e "
                "um painel para acompanhar tudo em tempo real. " * 2,
                languages=(LANGUAGES[i % len(LANGUAGES)], LANGUAGES[(i * 3 + 1) % len(LANGUAGES)]),
                tags=(f"tag{i % 9}", "pix", "demo"),
                built_on=dt.date(2026, 1 + i % 12, 1 + i % 28),
                images=tuple(refs),
            )
        )
    return FilmInputs(
        tenant_id=tenant,
        user_id="00000000-0000-4000-8000-000000000001",
        user_name="Conceição Benchmark",
        tenant_name="Acme Corporation",
        year=2026,
        format="landscape",
        pocs=tuple(items),
    )


# --------------------------------------------------------------------------- project side


@dataclass
class RenderRun:
    workers: int
    wall_s: float
    frames: int
    duration_s: float
    render_s: float
    encode_s: float
    join_s: float
    peak_worker_mib: float
    size_bytes: int


async def render_once(plan: FilmPlan, blobs: BlobConfig, workers: int, tag: str) -> RenderRun:
    keys = FilmKeys(plan.tenant_id, f"bench-{tag}")
    results: list[SegmentResult] = []

    async def on_done(result: SegmentResult, attempts: int) -> None:
        results.append(result)

    executor = RayExecutor(workers, timeout_s=600)
    started = time.perf_counter()
    await executor.render(plan, [s.index for s in plan.segments], blobs, keys, on_done)
    film = await executor.join(plan, blobs, keys)
    wall = time.perf_counter() - started
    store = blobs.open()
    for key in [keys.soundtrack, *(keys.segment(s.index) for s in plan.segments)]:
        await store.delete(key)
    return RenderRun(
        workers=workers,
        wall_s=wall,
        frames=film.frames,
        duration_s=film.duration_s,
        render_s=sum(r.render_s for r in results),
        encode_s=sum(r.encode_s for r in results),
        join_s=film.join_s,
        peak_worker_mib=max([r.peak_rss_mib for r in results] + [film.peak_rss_mib]),
        size_bytes=film.size_bytes,
    )


# --------------------------------------------------------------------------- encoding part


def write_raw_frames(plan: FilmPlan, blobs: BlobConfig, count: int, path: Path) -> int:
    """RGB frames of the film's PoC segments, back to back, as the encoders' common input."""
    store = blobs.open()
    written = 0
    with path.open("wb") as out:
        for segment in plan.segments:
            if segment.poc is None:
                continue
            images = [
                decode_image(asyncio.run(store.get(BlobKey.parse(r.key))))
                for r in segment.poc.images
            ]
            renderer = SegmentRenderer(segment, plan.spec, images)
            for i in range(segment.frames):
                out.write(renderer.frame(i)[1].tobytes())
                written += 1
                if written == count:
                    return written
    return written


@dataclass
class EncodeRun:
    wall_s: float
    cpu_s: float
    peak_mib: float
    size_bytes: int


def pyav_encode(raw: Path, spec: RenderSpec, frames: int, out: Path) -> EncodeRun:
    """PyAV encoding the raw file exactly as a render worker encodes (every frame converted)."""
    frame_bytes = spec.width * spec.height * 3
    before = psutil.Process().cpu_times()
    started = time.perf_counter()
    with raw.open("rb") as source, av.open(os.fspath(out), "w", format="mp4") as container:
        stream: Any = container.add_stream("libx264", rate=spec.fps, options=x264_options(spec))
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.codec_context.thread_count = spec.encoder_threads
        stream.codec_context.time_base = Fraction(1, spec.fps)
        for i in range(frames):
            rgb = np.frombuffer(source.read(frame_bytes), np.uint8).reshape(
                spec.height, spec.width, 3
            )
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, spec.fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    wall = time.perf_counter() - started
    after = psutil.Process().cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    peak = psutil.Process().memory_info().rss / 2**20
    return EncodeRun(wall, cpu, peak, out.stat().st_size)


def ffmpeg_encode(ffmpeg: str, raw: Path, spec: RenderSpec, out: Path) -> EncodeRun:
    command = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{spec.width}x{spec.height}",
        "-r",
        str(spec.fps),
        "-i",
        str(raw),
        *ffmpeg_args(spec),
        "-f",
        "mp4",
        str(out),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise BenchError(f"ffmpeg failed ({process.returncode}): {' '.join(command)}")
    return EncodeRun(
        wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.stat().st_size
    )


# --------------------------------------------------------------------------- driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cluster_settings(workdir: Path) -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "ray_address": f"127.0.0.1:{free_port()}",
            "ray_dashboard_port": free_port(),
            "ray_port_base": 600 + os.getpid() % 100,
            "ray_temp_dir": tempfile.mkdtemp(prefix="ray-bench-video-", dir="/tmp"),
            "serve_port": free_port(),
            "blob_url": f"file://{workdir / 'blobs'}",
        }
    )


def rows_for(runs: list[RenderRun], enc: dict[str, EncodeRun], frames: int) -> list[Row]:
    rows: list[Row] = []
    for r in runs:
        case = f"film-40-pocs/{r.workers}-worker{'s' if r.workers > 1 else ''}"
        rows += [
            {"case": case, "metric": "wall", "value": round(r.wall_s, 2), "unit": "s"},
            {
                "case": case,
                "metric": "frames_per_s",
                "value": round(r.frames / r.wall_s, 1),
                "unit": "frames/s",
            },
            {
                "case": case,
                "metric": "real_time_factor",
                "value": round(r.duration_s / r.wall_s, 2),
                "unit": "x (film seconds per wall second)",
            },
            {
                "case": case,
                "metric": "wall_fraction_of_duration",
                "value": round(r.wall_s / r.duration_s, 3),
                "unit": "ratio",
            },
            {
                "case": case,
                "metric": "peak_worker_rss",
                "value": round(r.peak_worker_mib, 1),
                "unit": "MiB",
            },
            {
                "case": case,
                "metric": "draw_time_in_tasks",
                "value": round(r.render_s, 1),
                "unit": "s",
            },
            {
                "case": case,
                "metric": "encode_time_in_tasks",
                "value": round(r.encode_s, 1),
                "unit": "s",
            },
            {"case": case, "metric": "join", "value": round(r.join_s, 2), "unit": "s"},
            {
                "case": case,
                "metric": "film_size",
                "value": round(r.size_bytes / 2**20, 1),
                "unit": "MiB",
            },
        ]
    for row in rows:
        row["side"] = "project"
    for side, run_ in (("project", enc["pyav"]), ("baseline", enc["ffmpeg"])):
        case = f"encode-{frames}-raw-frames"
        rows += [
            {
                "case": case,
                "metric": "wall",
                "value": round(run_.wall_s, 2),
                "unit": "s",
                "side": side,
            },
            {
                "case": case,
                "metric": "frames_per_s",
                "value": round(frames / run_.wall_s, 1),
                "unit": "frames/s",
                "side": side,
            },
            {
                "case": case,
                "metric": "cpu",
                "value": round(run_.cpu_s, 2),
                "unit": "s",
                "side": side,
            },
            {
                "case": case,
                "metric": "peak_rss",
                "value": round(run_.peak_mib, 1),
                "unit": "MiB",
                "side": side,
            },
            {
                "case": case,
                "metric": "size",
                "value": round(run_.size_bytes / 2**20, 2),
                "unit": "MiB",
                "side": side,
            },
        ]
    return rows


async def main_async(args: argparse.Namespace) -> list[Row]:
    ffmpeg = ensure_ffmpeg()
    version = run([ffmpeg, "-hide_banner", "-version"], 30).stdout.splitlines()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-video-", dir=args.workdir))
    cluster = cluster_settings(workdir)
    blobs = BlobConfig(cluster.blob_url, "bench", "http://127.0.0.1:1")
    tenant = "00000000-0000-4000-8000-00000000be4c"
    log(f"machine: {machine()}; ffmpeg: {version}; PyAV {av.__version__}")
    inputs = await fixed_year(blobs, tenant, args.pocs)
    plan = build_plan(inputs, RenderSpec())
    log(f"film: {len(plan.segments)} segments, {plan.total_frames} frames, {plan.duration_s:.0f} s")
    local_cluster.start_ray(cluster)
    runs: list[RenderRun] = []
    busy_before = psutil.cpu_times()
    try:
        ray.init(address=cluster.ray_address, log_to_driver=False)
        warm = build_plan(
            inputs.model_copy(update={"pocs": inputs.pocs[:2]}),
            RenderSpec(intro_s=0.5, poc_s=0.5, outro_s=0.5),
        )
        await render_once(warm, blobs, 2, "warmup")  # worker processes started, imports done
        for workers in args.workers:
            log(f"rendering with {workers} worker(s) ...")
            result = await render_once(plan, blobs, workers, f"w{workers}")
            log(
                f"  {result.wall_s:.1f} s wall, {result.frames / result.wall_s:.1f} frames/s, "
                f"{result.duration_s / result.wall_s:.2f}x real time, "
                f"peak worker {result.peak_worker_mib:.0f} MiB"
            )
            runs.append(result)
    finally:
        ray.shutdown()
        local_cluster.stop_ray(cluster)
    busy = host_busy(busy_before, psutil.cpu_times())
    raw = workdir / "frames.rgb"
    frames = await asyncio.to_thread(write_raw_frames, plan, blobs, args.encode_frames, raw)
    raw.read_bytes()  # both encoders read it from the page cache
    log(f"encoding part: {frames} raw 1280x720 frames, ffmpeg vs PyAV, same x264 settings")
    enc = {
        "ffmpeg": ffmpeg_encode(ffmpeg, raw, plan.spec, workdir / "ffmpeg.mp4"),
        "pyav": pyav_encode(raw, plan.spec, frames, workdir / "pyav.mp4"),
    }
    shutil.rmtree(workdir, ignore_errors=True)
    rows = rows_for(runs, enc, frames)
    print_table(runs, enc, frames, busy)
    return rows


def print_table(runs: list[RenderRun], enc: dict[str, EncodeRun], frames: int, busy: float) -> None:
    print()
    print("| workers | wall s | frames/s | x real time | wall / duration | peak worker RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(
            f"| {r.workers} | {r.wall_s:.1f} | {r.frames / r.wall_s:.1f} | "
            f"{r.duration_s / r.wall_s:.2f} | {r.wall_s / r.duration_s:.2f} | "
            f"{r.peak_worker_mib:.0f} MiB |"
        )
    if len(runs) >= 2:
        speedup = runs[0].wall_s / runs[-1].wall_s
        print(
            f"speed-up {runs[-1].workers} vs {runs[0].workers} workers: {speedup:.2f}x "
            f"(goal >= {GOAL_SPEEDUP})"
        )
    best = min(runs, key=lambda r: r.wall_s)
    print(
        f"best wall / film duration: {best.wall_s / best.duration_s:.2f} (goal < {GOAL_FRACTION})"
    )
    print(f"host CPU busy during the renders: {busy:.0f}% of all cores (shared machine)")
    print()
    print("| encoding part | wall s | frames/s | CPU s | peak RSS |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("pyav", "ffmpeg"):
        e = enc[name]
        print(
            f"| {name} | {e.wall_s:.2f} | {frames / e.wall_s:.1f} | {e.cpu_s:.2f} | "
            f"{e.peak_mib:.0f} MiB |"
        )
    ratio = enc["pyav"].wall_s / enc["ffmpeg"].wall_s
    print(f"PyAV / ffmpeg wall: {ratio:.2f} (goal <= {GOAL_ENCODE_RATIO})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pocs", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--encode-frames", type=int, default=240)
    parser.add_argument("--workdir", default="/tmp")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    try:
        rows = asyncio.run(main_async(args))
    except BenchError as exc:
        raise SystemExit(f"bench-video: {exc}") from exc
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""make bench-voice: voice rooms of 2, 4, 8 and 16 participants, mixing (MCU) vs
forwarding (SFU), next to a direct peer-to-peer aiortc call.

    .venv/bin/python -m loadtests.bench_voice [--sizes 2,4,8,16] [--shapes mix,forward]
                                              [--duration 30] [--warmup 3]

Each case starts one ``VoiceRoom`` (``pocdojo/media/voice/room.py``, the code the
VoiceRoom actor hosts) in a process of its own, so its CPU is measured alone, and N
simulated participants in this process: real aiortc peer connections on loopback, each
sending an Opus microphone track. The microphones are silent except for timestamped tone
bursts (1 kHz, 40 ms), one every ``--burst-every`` seconds, the speaker rotating over the
participants; the first ``--listeners`` participants (4) detect each burst's onset in
what they receive, the others drop what they receive undecoded (the room does the same
work; the load generator, on the same cores, does much less). Latency =
onset arrival - the moment the burst frame left the sender's microphone (both in this
process: one clock). Resolution is one 20 ms frame at worst (onsets are placed within
the received frame).

Measured per case over ``--duration`` s after ``--warmup``: the room process's CPU per
participant (user + system, every thread, as % of one core) and the participants one core
would carry at that rate, latency p50/p95/p99 and "added" latency (the same percentile minus
the baseline's), packet loss (RTP, both directions, from the peers' and the room's
receiver statistics), bursts delivered, room memory. Baseline: a direct aiortc call between
two peers in this process, same tracks, same detection: what a call costs without a room.

Writes ``bench-results/voice.json``: rows ``{"case", "metric", "value", "unit", "side"}``.
The load generator (every participant's Opus encode/decode) shares the machine with the
room: "everything on one box" figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from loadtests.common import machine
from pocdojo.media.voice.peer import TonePeer
from pocdojo.media.voice.room import Shape, VoiceRoom
from pocdojo.media.voice.tracks import ToneTrack

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "bench-results" / "voice.json"
KEEP_UP = 0.95
"""Share of bursts every listener must hear (within ``--burst-every``) for a case to count
as keeping up."""


# -- the room, in a process of its own ------------------------------------------------------


def _room_main(conn: Connection, shape: Shape, max_participants: int) -> None:
    asyncio.run(_serve_room(conn, shape, max_participants))


async def _serve_room(conn: Connection, shape: Shape, max_participants: int) -> None:
    loop = asyncio.get_running_loop()
    async with VoiceRoom(
        shape=shape, max_participants=max_participants, silence_timeout_s=120
    ) as room:
        while True:
            request = await loop.run_in_executor(None, conn.recv)
            op = request["op"]
            if op == "join":
                conn.send({"sdp": await room.join(request["pid"], request["sdp"])})
            elif op == "loss":
                conn.send({"loss": await room.loss_rtp()})
            elif op == "stats":
                conn.send(room.stats())
            else:
                conn.send({})
                return


class RoomProcess:
    """A VoiceRoom in a child process, driven through a pipe (request, answer)."""

    def __init__(self, shape: Shape, max_participants: int) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_room_main, args=(child, shape, max_participants), daemon=True
        )
        self.process.start()
        assert self.process.pid is not None
        self.ps = psutil.Process(self.process.pid)

    async def ask(self, **request: Any) -> dict[str, Any]:
        self._conn.send(request)
        answer: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
            None, self._conn.recv
        )
        return answer

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ask(op="close"), 10)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


# -- bursts -----------------------------------------------------------------------------------


@dataclass
class BurstSchedule:
    """One burst every ``period_s``, speakers taking turns; records who sent when."""

    speakers: int
    period_s: float
    active: bool = False
    next_at: float = 0.0
    seq: int = 0
    sent: list[tuple[float, int]] = field(default_factory=list)

    def start(self) -> None:
        self.next_at = time.time() + 0.05
        self.active = True

    def for_speaker(self, index: int) -> Any:
        def burst_at(_frame: int, now: float) -> int | None:
            if not self.active or now < self.next_at or self.seq % self.speakers != index:
                return None
            self.seq += 1
            self.next_at += self.period_s
            self.sent.append((now, index))
            return self.seq

        return burst_at


@dataclass
class CaseResult:
    case: str
    side: str
    participants: int
    latencies_ms: list[float]
    bursts: int
    deliveries_expected: int
    deliveries: int
    rtp_received: int
    rtp_lost: int
    room_cpu_s: float | None
    room_rss_mib: float | None
    loadgen_cpu_s: float
    duration_s: float
    mixer_dropped: int = 0

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, math.ceil(q * len(data)) - 1)]


def _attribute(
    schedule: BurstSchedule, listeners: list[tuple[int, list[float]]], period_s: float
) -> tuple[list[float], int]:
    """Latency of every onset a listener heard, matched to the latest burst sent before
    it by someone else; returns (latencies in ms, deliveries)."""
    times = [t for t, _ in schedule.sent]
    latencies: list[float] = []
    delivered: set[tuple[int, int]] = set()
    for listener, onsets in listeners:
        for at in onsets:
            i = bisect.bisect_right(times, at) - 1
            if i < 0:
                continue
            sent_at, speaker = schedule.sent[i]
            if speaker == listener or at - sent_at > period_s or (i, listener) in delivered:
                continue
            delivered.add((i, listener))
            latencies.append((at - sent_at) * 1000)
    return latencies, len(delivered)


async def _measure(
    peers: list[TonePeer],
    schedule: BurstSchedule,
    args: argparse.Namespace,
    room: RoomProcess | None,
) -> tuple[float, float | None, float, list[tuple[int, list[float]]], tuple[int, int]]:
    await asyncio.gather(*(p.connected() for p in peers))
    await asyncio.sleep(args.warmup)
    me = psutil.Process(os.getpid())
    before_rtp = [await p.receive_stats() for p in peers]
    room_rtp_before = (await room.ask(op="loss"))["loss"] if room else [0, 0]
    for peer in peers:
        for recorder in peer.recorders:
            recorder.onsets.clear()
    room_cpu0 = room.cpu_s() if room else None
    own0 = sum(me.cpu_times()[:2])
    start = time.monotonic()
    schedule.start()
    await asyncio.sleep(args.duration)
    schedule.active = False
    elapsed = time.monotonic() - start
    room_cpu = room.cpu_s() - room_cpu0 if room and room_cpu0 is not None else None
    own = sum(me.cpu_times()[:2]) - own0
    await asyncio.sleep(min(1.0, args.burst_every))  # the last bursts are still in flight
    after_rtp = [await p.receive_stats() for p in peers]
    room_rtp_after = (await room.ask(op="loss"))["loss"] if room else [0, 0]
    received = sum(
        a.packets_received - b.packets_received for a, b in zip(after_rtp, before_rtp, strict=True)
    )
    lost = sum(a.packets_lost - b.packets_lost for a, b in zip(after_rtp, before_rtp, strict=True))
    received += room_rtp_after[0] - room_rtp_before[0]
    lost += room_rtp_after[1] - room_rtp_before[1]
    listeners = [(i, [t for r in p.recorders for t in r.onsets]) for i, p in enumerate(peers)]
    return elapsed, room_cpu, own, listeners, (received, max(0, lost))


async def run_room(shape: Shape, n: int, args: argparse.Namespace) -> CaseResult:
    room = RoomProcess(shape, max(n, 2))
    schedule = BurstSchedule(n, args.burst_every)
    peers = [
        TonePeer(
            ToneTrack(None, burst_at=schedule.for_speaker(i)),
            receive_slots=n - 1 if shape == "forward" else 0,
            listen=i < args.listeners,
        )
        for i in range(n)
    ]
    try:
        for i, peer in enumerate(peers):
            answer = await room.ask(op="join", pid=f"p{i}", sdp=await peer.offer())
            await peer.accept(answer["sdp"])
        elapsed, room_cpu, own, listeners, (received, lost) = await _measure(
            peers, schedule, args, room
        )
        stats = await room.ask(op="stats")
        rss = room.ps.memory_info().rss / 2**20
    finally:
        for peer in peers:
            await peer.close()
        await room.stop()
    measuring = min(n, args.listeners)
    latencies, deliveries = _attribute(schedule, listeners[:measuring], args.burst_every)
    expected = sum(measuring - (1 if speaker < measuring else 0) for _, speaker in schedule.sent)
    return CaseResult(
        f"{shape}-{n}",
        "project",
        n,
        latencies,
        len(schedule.sent),
        expected,
        deliveries,
        received,
        lost,
        room_cpu,
        rss,
        own,
        elapsed,
        sum(stats.get("dropped", {}).values()),
    )


async def run_p2p(args: argparse.Namespace) -> CaseResult:
    schedule = BurstSchedule(2, args.burst_every)
    a = TonePeer(ToneTrack(None, burst_at=schedule.for_speaker(0)))
    b = TonePeer(ToneTrack(None, burst_at=schedule.for_speaker(1)))
    try:
        await a.accept(await b.answer(await a.offer()))
        elapsed, _, own, listeners, (received, lost) = await _measure([a, b], schedule, args, None)
    finally:
        # Together: a peer whose other side hung up closes itself, and aiortc trips over a
        # second close() racing with that one.
        await asyncio.gather(a.close(), b.close())
    latencies, deliveries = _attribute(schedule, listeners, args.burst_every)
    return CaseResult(
        "p2p",
        "baseline",
        2,
        latencies,
        len(schedule.sent),
        len(schedule.sent),
        deliveries,
        received,
        lost,
        None,
        None,
        own,
        elapsed,
    )


# -- report -----------------------------------------------------------------------------------


def build_rows(result: CaseResult, baseline: CaseResult | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(metric: str, value: float | None, unit: str) -> None:
        if value is None:
            return
        rows.append(
            {
                "case": result.case,
                "metric": metric,
                "value": round(value, 3),
                "unit": unit,
                "side": result.side,
            }
        )

    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        add(f"latency_{name}", result.percentile(q), "ms")
        if baseline is not None and result is not baseline:
            mine, base = result.percentile(q), baseline.percentile(q)
            if mine is not None and base is not None:
                add(f"added_latency_{name}", mine - base, "ms")
    add("bursts_sent", result.bursts, "count")
    add("deliveries_expected", result.deliveries_expected, "count")
    add("deliveries", result.deliveries, "count")
    total = result.rtp_received + result.rtp_lost
    add("packet_loss", 100.0 * result.rtp_lost / total if total else None, "%")
    add("rtp_packets", total, "count")
    if result.room_cpu_s is not None:
        per = 100.0 * result.room_cpu_s / result.duration_s / result.participants
        add("room_cpu", 100.0 * result.room_cpu_s / result.duration_s, "% of one core")
        add("cpu_per_participant", per, "% of one core")
        add("participants_per_core", 100.0 / per if per > 0 else None, "count")
    delivered = result.deliveries / result.deliveries_expected if result.deliveries_expected else 0
    add("delivered", 100.0 * delivered, "%")
    # A room that cannot keep up drops or delays bursts beyond the attribution window: its
    # CPU figure is then a lower bound (it wanted more than it got).
    add("kept_up", 1.0 if delivered >= KEEP_UP else 0.0, "bool")
    add("room_rss", result.room_rss_mib, "MiB")
    add("mixer_frames_dropped", result.mixer_dropped, "count")
    add("loadgen_cpu", 100.0 * result.loadgen_cpu_s / result.duration_s, "% of one core")
    return rows


COLUMNS = (
    ("cpu_per_participant", "CPU/part %"),
    ("participants_per_core", "part/core"),
    ("latency_p50", "p50 ms"),
    ("latency_p99", "p99 ms"),
    ("added_latency_p50", "+p50 ms"),
    ("added_latency_p99", "+p99 ms"),
    ("packet_loss", "loss %"),
    ("delivered", "heard %"),
    ("kept_up", "kept up"),
    ("loadgen_cpu", "loadgen %"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    cases: dict[str, dict[str, float]] = {}
    for row in rows:
        cases.setdefault(f"{row['case']} ({row['side']})", {})[row["metric"]] = row["value"]
    print(f"{'case':<22}" + "".join(f"{label:>12}" for _, label in COLUMNS))
    for case, metrics in cases.items():
        cells = []
        for metric, _ in COLUMNS:
            value = metrics.get(metric)
            cells.append(f"{'-' if value is None else f'{value:,.1f}':>12}")
        print(f"{case:<22}" + "".join(cells))


def choose(rows: list[dict[str, Any]], sizes: list[int]) -> str:
    def metric(name: str) -> dict[tuple[str, int], float]:
        return {
            (r["case"].split("-")[0], int(r["case"].split("-")[1])): r["value"]
            for r in rows
            if r["metric"] == name and r["side"] == "project"
        }

    per, kept = metric("cpu_per_participant"), metric("kept_up")
    lines = []
    for n in sizes:
        mix, forward = per.get(("mix", n)), per.get(("forward", n))
        if mix is None or forward is None:
            continue
        note = {
            shape: "" if kept.get((shape, n)) else " (did not keep up: a lower bound)"
            for shape in ("mix", "forward")
        }
        if kept.get(("mix", n)) and not kept.get(("forward", n)):
            cheaper = "mix"
        else:
            cheaper = "mix" if mix <= forward else "forward"
        lines.append(
            f"  {n:>2} participants: mix {mix:.1f}%{note['mix']} vs forward "
            f"{forward:.1f}%{note['forward']} -> {cheaper}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2,4,8,16")
    parser.add_argument("--shapes", default="mix,forward")
    parser.add_argument("--forward-max", type=int, default=16, help="largest forwarding room")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--burst-every", type=float, default=0.5)
    parser.add_argument(
        "--listeners",
        type=int,
        default=4,
        help="participants that decode what they receive and measure it; the others only "
        "send (the room's work is the same, the load generator's is not)",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> list[dict[str, Any]]:
    info = machine()
    print(
        f"machine: nproc {info['nproc']}, {info['cpu']}, {info['memory']}, "
        f"Python {info['python']}; {args.duration:g} s per case after {args.warmup:g} s warm-up"
    )
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes: list[Shape] = [s for s in ("mix", "forward") if s in args.shapes.split(",")]
    baseline = await run_p2p(args)
    rows = build_rows(baseline, None)
    print_table(rows)
    for shape in shapes:
        for n in sizes:
            if shape == "forward" and n > args.forward_max:
                continue
            result = await run_room(shape, n, args)
            case_rows = build_rows(result, baseline)
            rows += case_rows
            print_table(case_rows)
    print()
    print_table(rows)
    print("\ncheaper shape per call size (room CPU per participant):")
    print(choose(rows, sizes))
    return rows


def _quiet_double_close(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # aiortc closes a peer connection by itself once the far end's DTLS closed; a close()
    # racing with that one fails in a task nobody awaits. Harmless at teardown.
    if isinstance(context.get("exception"), asyncio.InvalidStateError):
        return
    loop.default_exception_handler(context)


async def _run(args: argparse.Namespace) -> list[dict[str, Any]]:
    asyncio.get_running_loop().set_exception_handler(_quiet_double_close)
    return await amain(args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = asyncio.run(_run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""make bench-tracing: the PoC API with tracing off, on without exporter, and recording all.

    .venv/bin/python -m loadtests.bench_tracing [--duration 10] [--rounds 2] [--cases get,create]

The same app as `make bench-api`'s baseline side (``create_local_app`` under one uvicorn
worker, JSON access logs on) on 127.0.0.1:8110, restarted per mode with:

- ``off``: ``OTEL_SDK_DISABLED=true``, no tracer provider (side "baseline");
- ``on``: tracing on and no exporter configured (the default: spans get ids, so
  ``traceparent`` and log trace ids flow through every hop, but nothing is sampled or
  exported); the 5% goal applies to this mode (side "project");
- ``all-recorded``: ``OTEL_TRACES_SAMPLER=always_on`` and no exporter: every span (HTTP,
  each database query, outbox) is built and recorded, then dropped; the price of sampling
  100% once a collector is configured (side "project").

Modes alternate per round (off, on, all-recorded, off, ...) so drift of a shared machine hits all
of them. Load comes from wrk with `make bench-api`'s Lua scripts. Besides throughput and
latency, the server's CPU time per request is reported: on a busy machine it is the steadier
measure of what tracing costs. Writes ``bench-results/tracing.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from loadtests.bench_api import (
    LUA_DIR,
    SERVE_URL,
    BenchError,
    ensure_wrk,
    get_token,
    log,
    precreate,
    run_wrk,
    wait_http,
    wrk_version,
)
from loadtests.common import machine

ROOT = Path(__file__).resolve().parents[1]
HOST, PORT = "127.0.0.1", 8110
URL = f"http://{HOST}:{PORT}"
MODES: dict[str, dict[str, str]] = {
    "off": {"OTEL_SDK_DISABLED": "true"},
    "on": {},
    "all-recorded": {"OTEL_TRACES_SAMPLER": "always_on"},
}
SIDE = {"off": "baseline", "on": "project", "all-recorded": "project"}
WARMUP_S = 3
GOAL_LOSS = 5.0  # % throughput


@dataclass
class Run:
    mode: str
    case: str
    rps: float
    p50: float
    p99: float
    errors: int
    cpu_ms_per_request: float


@contextmanager
def server(mode: str, workdir: Path) -> Iterator[psutil.Process]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("OTEL_") or k == "OTEL_SERVICE_NAME"
    }
    env.update(MODES[mode])
    env["POCDOJO_OIDC_ISSUER"] = os.environ.get("POCDOJO_OIDC_ISSUER", f"{SERVE_URL}/auth")
    env["POCDOJO_OIDC_JWKS_URL"] = f"{URL}/auth/jwks.json"
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "loadtests.baseline_app:create",
        "--host", HOST, "--port", str(PORT), "--workers", "1", "--no-access-log",
        "--log-level", "warning",
    ]  # fmt: skip
    log_path = workdir / f"server-{mode}.log"
    with log_path.open("w") as log_file:
        popen = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_http(f"{URL}/healthz", 60, alive=lambda: popen.poll() is None)
        yield psutil.Process(popen.pid)
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=5)


def measure(
    wrk: str, mode: str, case: str, proc: psutil.Process, args: argparse.Namespace, env: Any
) -> Run:
    run_wrk(wrk, URL, case, WARMUP_S, args, env)
    before = proc.cpu_times()
    data, _ = run_wrk(wrk, URL, case, args.duration, args, env)
    after = proc.cpu_times()
    cpu_s = (after.user + after.system) - (before.user + before.system)
    requests = max(int(data["requests"]), 1)
    return Run(
        mode=mode,
        case=case,
        rps=float(data["rps"]),
        p50=float(data["p50_ms"]),
        p99=float(data["p99_ms"]),
        errors=sum(int(v) for v in data["errors"].values()),
        cpu_ms_per_request=1000 * cpu_s / requests,
    )


def summarise(runs: list[Run], cases: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    lines = [
        f"{'case':<8}{'mode':<13}{'req/s (median)':>15}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU ms/req':>12}{'loss vs off':>13}"
    ]
    rows: list[dict[str, Any]] = []
    for case in cases:
        off_rps = statistics.median(r.rps for r in runs if r.case == case and r.mode == "off")
        off_cpu = statistics.median(
            r.cpu_ms_per_request for r in runs if r.case == case and r.mode == "off"
        )
        for mode in MODES:
            mine = [r for r in runs if r.case == case and r.mode == mode]
            rps = statistics.median(r.rps for r in mine)
            p50 = statistics.median(r.p50 for r in mine)
            p99 = statistics.median(r.p99 for r in mine)
            cpu = statistics.median(r.cpu_ms_per_request for r in mine)
            loss = 100 * (off_rps - rps) / off_rps if off_rps else 0.0
            cpu_extra = 100 * (cpu - off_cpu) / off_cpu if off_cpu else 0.0
            lines.append(
                f"{case:<8}{mode:<13}{rps:>15,.0f}{p50:>9.2f}{p99:>9.2f}{cpu:>12.3f}"
                + (f"{loss:>12.1f}%" if mode != "off" else f"{'':>13}")
            )
            label = case if mode != "all-recorded" else f"{case} (every span recorded)"
            for metric, value, unit in (
                ("throughput", round(rps, 1), "req/s"),
                ("latency_p50", p50, "ms"),
                ("latency_p99", p99, "ms"),
                ("server_cpu_per_request", round(cpu, 4), "ms"),
                ("throughput_loss_vs_off", round(loss, 2), "%"),
                ("cpu_per_request_vs_off", round(cpu_extra, 2), "%"),
                ("runs", len(mine), "count"),
                ("errors", sum(r.errors for r in mine), "count"),
            ):
                if mode == "off" and metric.endswith("_vs_off"):
                    continue
                rows.append(
                    {"case": label, "metric": metric, "value": value, "unit": unit,
                     "side": SIDE[mode]}
                )  # fmt: skip
    return lines, rows


def cpu_worker(mode: str, token: str, case: str, requests: int) -> float:
    """CPU microseconds per request of the app driven in-process (`tracing_cpu_worker`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(MODES[mode])
    env["POCDOJO_LOG_LEVEL"] = "WARNING"  # logging is the same in every mode; keep it quiet
    cmd = [sys.executable, "-m", "loadtests.tracing_cpu_worker", token, case, str(requests)]
    result = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    for line in result.stdout.splitlines():
        if line.startswith("CPU_JSON "):
            return float(json.loads(line.removeprefix("CPU_JSON "))["cpu_us_per_request"])
    raise BenchError(f"tracing_cpu_worker failed: {(result.stdout + result.stderr)[-2000:]}")


def cpu_rounds(
    token: str, cases: list[str], rounds: int, requests: int
) -> tuple[list[str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[float]] = {}
    for round_no in range(rounds):
        for case in cases:
            for mode in MODES:
                us = cpu_worker(mode, token, case, requests)
                found.setdefault((case, mode), []).append(us)
                log(f"cpu round {round_no + 1} {case:<7}{mode:<8}{us:>8.0f} us/request")
    lines = [f"{'case':<8}{'mode':<13}{'CPU us/req (median)':>20}{'min':>8}{'vs off':>9}"]
    rows: list[dict[str, Any]] = []
    for case in cases:
        off = statistics.median(found[(case, "off")])
        for mode in MODES:
            values = found[(case, mode)]
            med = statistics.median(values)
            extra = 100 * (med - off) / off
            lines.append(
                f"{case:<8}{mode:<13}{med:>20.0f}{min(values):>8.0f}"
                + (f"{extra:>8.1f}%" if mode != "off" else "")
            )
            label = f"{case} in-process" + ("" if mode != "all-recorded" else " (all recorded)")
            rows.append(
                {"case": label, "metric": "app_cpu_per_request", "value": round(med, 1),
                 "unit": "us", "side": SIDE[mode]}
            )  # fmt: skip
            if mode != "off":
                rows.append(
                    {"case": label, "metric": "app_cpu_per_request_vs_off",
                     "value": round(extra, 2), "unit": "%", "side": SIDE[mode]}
                )  # fmt: skip
    return lines, rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench-tracing", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of off/on/all-recorded")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default="get,create", help="subset of create,get,list")
    parser.add_argument("--ids", type=int, default=100, help="PoCs pre-created for GET")
    parser.add_argument(
        "--cpu-rounds", type=int, default=5, help="rounds of the in-process CPU measurement"
    )
    parser.add_argument("--cpu-requests", type=int, default=1000, help="requests per CPU run")
    parser.add_argument("--skip-wrk", action="store_true", help="only the CPU measurement")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench-results" / "tracing.json", help="JSON rows"
    )
    args = parser.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    try:
        wrk = ensure_wrk()
        info = machine()
        log(f"machine: nproc {info['nproc']}, {info['cpu']}, {info['memory']}; {wrk_version(wrk)}")
        token = get_token()
        runs: list[Run] = []
        with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
            workdir = Path(tmp)
            ids_file = workdir / "ids.txt"
            env = {
                **os.environ,
                "BENCH_TOKEN": token,
                "BENCH_IDS_FILE": str(ids_file),
                "BENCH_LUA_DIR": str(LUA_DIR),
            }
            for round_no in range(0 if args.skip_wrk else args.rounds):
                for mode in MODES:
                    with server(mode, workdir) as proc:
                        if not ids_file.exists():
                            precreate(URL, token, args.ids, ids_file)
                        for case in args.cases:
                            run = measure(wrk, mode, case, proc, args, env)
                            runs.append(run)
                            log(
                                f"round {round_no + 1} {mode:<8}{case:<7}{run.rps:>8,.0f} req/s "
                                f"p99 {run.p99:.1f} ms, {run.cpu_ms_per_request:.3f} CPU ms/req"
                            )
        cpu_lines, cpu_rows = cpu_rounds(token, args.cases, args.cpu_rounds, args.cpu_requests)
    except BenchError as exc:
        print(f"bench-tracing: {exc}", file=sys.stderr)
        return 2
    print()
    print(
        f"in-process: CPU time of the poc-api app per request, {args.cpu_rounds} alternating "
        f"rounds x {args.cpu_requests} requests, 8 in flight"
    )
    print("\n".join(cpu_lines))
    for row in cpu_rows:
        if row["metric"] == "app_cpu_per_request_vs_off" and row["case"].endswith("in-process"):
            verdict = "MET" if row["value"] < GOAL_LOSS else "NOT MET"
            print(
                f"goal: tracing on (no exporter) adds < {GOAL_LOSS:.0f}% CPU per request "
                f"({row['case']}): {row['value']:.1f}% -> {verdict}"
            )
    rows = list(cpu_rows)
    if args.skip_wrk:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.output}")
        return 0
    lines, wrk_rows = summarise(runs, args.cases)
    rows += wrk_rows
    print()
    print(
        f"bench-tracing: {args.rounds} rounds x {args.duration}s per case and mode, "
        f"wrk -t{args.threads} -c{args.connections} on the same host, one uvicorn worker"
    )
    print("\n".join(lines))
    for case in args.cases:
        loss = next(
            r["value"]
            for r in rows
            if r["case"] == case
            and r["metric"] == "throughput_loss_vs_off"
            and r["side"] == "project"
        )
        verdict = "MET" if loss < GOAL_LOSS else "NOT MET"
        print(
            f"goal: tracing on costs < {GOAL_LOSS:.0f}% throughput ({case}): "
            f"{loss:.1f}% -> {verdict}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""make bench-api: create, get and list PoCs through Ray Serve and through plain uvicorn.

    .venv/bin/python -m loadtests.bench_api [--duration 15] [--connections 32] [--threads 2]

Side "project" is the production path: HAProxy on 127.0.0.1:8000 in front of the Ray Serve
replica of poc-api (``pocdojo up``). Side "baseline" is the same Starlette app
(``create_local_app``) under one plain uvicorn worker on 127.0.0.1:8100, with the same
database, token issuer key and settings. Load comes from wrk (C, epoll) with the Lua
scripts in ``loadtests/wrk``: a Python load generator would take the 2 cores from the
server. wrk shares the machine with the server all the same: figures are for "server and
load generator on the same 2 cores".

Writes ``bench-results/api.json``: a list of rows
``{"case", "metric", "value", "unit", "side": "project" | "baseline"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlparse

import httpx
import psutil

from loadtests.common import cmdline, host_busy, machine, pocdojo_bin, run
from pocdojo.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
LUA_DIR = ROOT / "loadtests" / "wrk"
SERVE_URL = "http://127.0.0.1:8000"
BASELINE_HOST, BASELINE_PORT = "127.0.0.1", 8100
BASELINE_URL = f"http://{BASELINE_HOST}:{BASELINE_PORT}"
DASHBOARD_URL = "http://127.0.0.1:8265"
_ray_host, _, _ray_port = get_settings().ray_address.rpartition(":")
RAY_GCS = (_ray_host or "127.0.0.1", int(_ray_port))
DATABASE_NAME = urlparse(get_settings().database_url).path.lstrip("/") or "pocdojo"
BENCH_EMAIL = "alice@acme.test"
CASES = ("create", "get", "list")
WARMUP_S = 3
WRK_TIMEOUT = "5s"  # per request: slower answers count as timeout errors
GOAL_GET_P99_MS = 15.0
GOAL_RPS = 1500.0
SETTLED_BUSY = 15.0  # % of all cores: Ray's idle processes take ~5-10%
OTHER_CPU_WARN = 25.0  # % of one core taken by processes outside server, PG, wrk, Ray
RAY_CPU_WARN = 80.0  # Ray's other processes: ~15-25 idle, ~50-60 after creates

Side = Literal["project", "baseline"]
SIDE_LABEL: dict[str, str] = {"project": "Ray Serve", "baseline": "uvicorn"}


class BenchError(RuntimeError):
    """A precondition failed; the message says what to do."""


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[bench-api] {message}", flush=True)


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_http(url: str, timeout_s: float, alive: Callable[[], bool] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if http_ok(url):
            return
        if alive is not None and not alive():
            raise BenchError(f"the server behind {url} exited while starting")
        time.sleep(0.3)
    raise BenchError(f"{url} did not answer 200 within {timeout_s:.0f}s")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- machine, wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed: run `sudo apt-get install -y wrk`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    log("wrk is missing: apt-get install -y wrk")
    if run(install, 300, env=env).returncode != 0:
        log("install failed: apt-get update, then install again")
        run(["apt-get", "update"], 300, env=env)
        result = run(install, 300, env=env)
        if result.returncode != 0:
            raise BenchError(f"apt-get install wrk failed:\n{result.stderr[-2000:]}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk still not on PATH after apt-get install")
    return found


def wrk_version(wrk: str) -> str:
    result = run([wrk, "-v"], 10)
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def serve_description() -> str:
    """Replicas of PocApi and the ingress in front of them, for the report."""
    ingress = "HAProxy" if haproxy_processes() else "Python proxy"
    replicas = "?"
    try:
        url = f"{DASHBOARD_URL}/api/serve/applications/"
        with urllib.request.urlopen(url, timeout=3) as response:
            body = json.load(response)
        app = (body.get("applications") or {}).get("poc-api") or {}
        deployment = (app.get("deployments") or {}).get("PocApi") or {}
        config = deployment.get("deployment_config") or {}
        replicas = str(config.get("num_replicas", len(deployment.get("replicas") or [])))
        ongoing = config.get("max_ongoing_requests")
        if ongoing is not None:
            replicas += f" (max_ongoing_requests {ongoing})"
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        pass
    return f"ingress {ingress}, PocApi replicas {replicas}"


# --------------------------------------------------------------------------- processes


def haproxy_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name"]):
        name = proc.info.get("name") or ""
        if name == "haproxy" or cmdline(proc).split(" ", 1)[0].endswith("/haproxy"):
            found.append(proc)
    return found


def serve_processes() -> list[psutil.Process]:
    """poc-api replicas and the ingress: HAProxy, or the Python ProxyActor without it."""
    replicas = [p for p in psutil.process_iter() if "ServeReplica:poc-api" in cmdline(p)]
    ingress = haproxy_processes()
    if not ingress:
        ingress = [p for p in psutil.process_iter() if "ray::ProxyActor" in cmdline(p)]
    return replicas + ingress


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return [root]


def warn_if_busy() -> None:
    """Other load on the 2 cores skews every figure: say so before measuring."""
    procs = list(psutil.process_iter(["pid", "name", "cpu_times"]))
    before = psutil.cpu_times()
    time.sleep(2.0)
    busy = host_busy(before, psutil.cpu_times())
    if busy < 20.0:
        log(f"machine idle before the run: {busy:.0f}% busy")
        return
    used: list[tuple[float, str]] = []
    for proc in procs:
        start = proc.info.get("cpu_times")
        try:
            end = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if start is not None:
            delta = end.user + end.system - start.user - start.system
            used.append((delta, f"{proc.info['name']}({proc.info['pid']})"))
    names = ", ".join(name for _, name in sorted(used, reverse=True)[:5])
    log(f"WARNING: the machine is {busy:.0f}% busy before the run ({names}): figures will be low")


def settle(max_wait_s: float, threshold: float = SETTLED_BUSY) -> None:
    """Wait until the machine is quiet again: after the create case the outbox relay and
    the search indexer (other Serve deployments) work off the new events for a while."""
    started = time.monotonic()
    busy = 100.0
    while True:
        before = psutil.cpu_times()
        time.sleep(2.0)
        busy = host_busy(before, psutil.cpu_times())
        waited = time.monotonic() - started
        if busy < threshold:
            if waited > 3.0:
                log(f"  waited {waited:.0f}s for the machine to settle ({busy:.0f}% busy)")
            return
        if waited >= max_wait_s:
            log(f"  WARNING: still {busy:.0f}% busy after {waited:.0f}s: measuring anyway")
            return


@dataclass
class Usage:
    """Server memory and where the CPU went during one measured run (100 = one core)."""

    peak_rss_mib: float = 0.0
    cpu_percent: float = 0.0  # the server processes
    postgres_percent: float = 0.0
    wrk_percent: float = 0.0
    ray_percent: float = 0.0  # Ray's own processes and the other Serve deployments
    other_percent: float = 0.0  # anything else running on the machine
    top_other: list[str] = field(default_factory=list)  # its busiest processes
    host_busy_percent: float = 0.0  # the whole machine, 100 = every core busy

    def describe(self) -> str:
        return (
            f"machine {self.host_busy_percent:.0f}% busy; CPU (100 = one core): server "
            f"{self.cpu_percent:.0f}, postgres {self.postgres_percent:.0f}, "
            f"wrk {self.wrk_percent:.0f}, other Ray {self.ray_percent:.0f}, "
            f"other {self.other_percent:.0f}"
        )


# (pid, created) -> (kind, name, CPU seconds)
CpuSnapshot = dict[tuple[int, float], tuple[str, str, float]]


def process_kind(name: str, cmdline: list[str] | None) -> str:
    line = " ".join(cmdline or [])
    if name.startswith("postgres"):
        # A backend reads "postgres: 15/main: USER DATABASE HOST(PORT) STATE": one serving
        # another database (tests, another benchmark) is someone else's load.
        fields = line.split()
        if len(fields) >= 5 and "(" in fields[4] and fields[3] != DATABASE_NAME:
            return "other"
        return "postgres"
    if name == "wrk":
        return "wrk"
    if name.startswith(("ray", "gcs_server")) or "ray::" in line or "/site-packages/ray/" in line:
        return "ray"
    return "other"


def cpu_snapshot() -> CpuSnapshot:
    snapshot: CpuSnapshot = {}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times", "create_time"]):
        times, created = proc.info.get("cpu_times"), proc.info.get("create_time")
        if times is not None and created is not None:
            name = proc.info.get("name") or ""
            kind = process_kind(name, proc.info.get("cmdline"))
            snapshot[(proc.pid, created)] = (kind, name, times.user + times.system)
    return snapshot


def children_cpu() -> float:
    """CPU seconds of this process's finished, reaped children (the measured wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class UsageSampler:
    """Peak summed RSS of the server (every 0.5 s) and every process's CPU over the run."""

    def __init__(self, find: Callable[[], list[psutil.Process]]) -> None:
        self._find = find
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._peak = 0
        self._server_pids: set[int] = set()
        self._t0 = 0.0
        self._epoch0 = 0.0
        self._wall = 0.0
        self._host0 = psutil.cpu_times()
        self._host1 = self._host0
        self._cpu0: CpuSnapshot = {}
        self._cpu1: CpuSnapshot = {}
        self._children0 = 0.0
        self._children1 = 0.0

    def _sample(self) -> None:
        total = 0
        for proc in self._find():
            self._server_pids.add(proc.pid)
            try:
                total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self._peak = max(self._peak, total)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def __enter__(self) -> Self:
        self._sample()
        self._cpu0 = cpu_snapshot()
        self._children0 = children_cpu()
        self._host0 = psutil.cpu_times()
        self._t0, self._epoch0 = time.monotonic(), time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cpu1 = cpu_snapshot()
        self._children1 = children_cpu()
        self._host1 = psutil.cpu_times()
        self._wall = max(time.monotonic() - self._t0, 1e-6)
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def result(self) -> Usage:
        used = {"server": 0.0, "postgres": 0.0, "wrk": 0.0, "ray": 0.0, "other": 0.0}
        others: list[tuple[float, str]] = []
        for key, (kind, name, seconds) in self._cpu1.items():
            if key in self._cpu0:
                delta = seconds - self._cpu0[key][2]
            elif key[1] >= self._epoch0 - 1.0:
                delta = seconds  # started during the run
            else:
                continue
            if key[0] in self._server_pids:
                used["server"] += delta
            elif kind != "wrk":  # wrk is counted below, once it has been reaped
                used[kind] += delta
                if kind == "other" and delta > 0.01 * self._wall:
                    others.append((delta, f"{name}({key[0]}) {100.0 * delta / self._wall:.0f}%"))
        # wrk exits (and is reaped) inside the run: its CPU shows in RUSAGE_CHILDREN.
        used["wrk"] = self._children1 - self._children0
        pct = {k: 100.0 * v / self._wall for k, v in used.items()}
        return Usage(
            peak_rss_mib=self._peak / 2**20,
            cpu_percent=pct["server"],
            postgres_percent=pct["postgres"],
            wrk_percent=pct["wrk"],
            ray_percent=pct["ray"],
            other_percent=pct["other"],
            top_other=[label for _, label in sorted(others, reverse=True)[:4]],
            host_busy_percent=host_busy(self._host0, self._host1),
        )


# --------------------------------------------------------------------------- servers


@contextmanager
def platform_up(skip_start: bool) -> Iterator[bool]:
    """Yields whether Serve answers on :8000; starts it (and stops it after) if needed."""
    if http_ok(f"{SERVE_URL}/healthz"):
        log(f"Ray Serve answers on {SERVE_URL}: using it")
        yield True
        return
    if skip_start:
        log(f"{SERVE_URL}/healthz does not answer and --skip-serve-start: baseline only")
        yield False
        return
    # Stop it at the end only if this run started Ray itself: a Ray head someone else
    # runs (with Serve not answering) is left running, with our deployment on it.
    owned = not port_open(*RAY_GCS)
    log("Ray Serve is not up: pocdojo up --detach (up to 5 minutes)")
    try:
        result = run([pocdojo_bin(), "up", "--detach"], 300)
    except subprocess.TimeoutExpired as exc:
        result = subprocess.CompletedProcess(exc.cmd, -1, "", "timed out after 300 s")
    try:
        if result.returncode != 0:
            raise BenchError(f"pocdojo up failed:\n{(result.stdout + result.stderr)[-3000:]}")
        wait_http(f"{SERVE_URL}/healthz", 60)
        yield True
    finally:
        if owned:
            log("stopping the platform this run started: pocdojo down")
            run([pocdojo_bin(), "down"], 180)
        else:
            log("Ray was already running before this run: leaving it up")


@contextmanager
def baseline_server(workdir: Path) -> Iterator[psutil.Process]:
    """One uvicorn worker with the local all-in-one app on 127.0.0.1:8100."""
    if http_ok(f"{BASELINE_URL}/healthz", 1.0):
        raise BenchError(f"something already answers on {BASELINE_URL}: stop it first")
    env = {
        **os.environ,
        # Same issuer (so the same token verifies), keys from this process's own JWKS.
        "POCDOJO_OIDC_ISSUER": os.environ.get("POCDOJO_OIDC_ISSUER", f"{SERVE_URL}/auth"),
        "POCDOJO_OIDC_JWKS_URL": f"{BASELINE_URL}/auth/jwks.json",
    }
    log_path = workdir / "baseline-uvicorn.log"
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "loadtests.baseline_app:create",
        "--host", BASELINE_HOST, "--port", str(BASELINE_PORT), "--workers", "1",
        "--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip
    with log_path.open("w") as log_file:
        popen = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        try:
            wait_http(f"{BASELINE_URL}/healthz", 60, alive=lambda: popen.poll() is None)
        except BenchError as exc:
            tail = log_path.read_text()[-3000:]
            raise BenchError(f"{exc}\n--- baseline log ---\n{tail}") from exc
        log(f"baseline uvicorn (pid {popen.pid}) answers on {BASELINE_URL}")
        yield psutil.Process(popen.pid)
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)
        log(f"baseline uvicorn stopped (exit {popen.returncode})")


# --------------------------------------------------------------------------- data


def get_token() -> str:
    try:
        result = run([pocdojo_bin(), "token", "--email", BENCH_EMAIL], 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError("`pocdojo token` did not answer in 60 s: is PostgreSQL up?") from exc
    token = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or token.count(".") != 2:
        raise BenchError(
            f"could not get a token for {BENCH_EMAIL} (exit {result.returncode}).\n"
            "The benchmark needs the migrated and seeded database: run\n"
            "  .venv/bin/pocdojo migrate && .venv/bin/pocdojo seed demo\n"
            f"--- pocdojo token said ---\n{(result.stdout + result.stderr)[-2000:]}"
        )
    return token


def check_api(base: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = httpx.get(f"{base}/v1/pocs?limit=1", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise BenchError(f"GET {base}/v1/pocs failed: {exc!r}") from exc
    if response.status_code != 200:
        raise BenchError(
            f"GET {base}/v1/pocs answered {response.status_code}: {response.text[:500]}"
        )


def precreate(base: str, token: str, count: int, path: Path) -> list[str]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ids: list[str] = []
    stamp = time.strftime("%Y%m%dT%H%M%S")
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        for i in range(count):
            body = {"name": f"bench get {stamp} {i}", "languages": ["python"], "tags": ["bench"]}
            response = client.post("/v1/pocs", json=body)
            if response.status_code != 201:
                raise BenchError(
                    f"POST /v1/pocs answered {response.status_code}: {response.text[:500]}"
                )
            ids.append(str(response.json()["id"]))
    path.write_text("\n".join(ids) + "\n")
    return ids


# --------------------------------------------------------------------------- wrk runs


@dataclass
class Result:
    case: str
    side: Side
    rps: float
    p50: float
    p95: float
    p99: float
    requests: int
    errors: int
    error_detail: dict[str, int]
    usage: Usage
    raw: str = field(repr=False, default="")


def run_wrk(
    wrk: str, url: str, case: str, seconds: int, args: argparse.Namespace, env: dict[str, str]
) -> tuple[dict[str, Any], str]:
    cmd = [
        wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
        f"--timeout={WRK_TIMEOUT}", "--latency", "-s", str(LUA_DIR / f"{case}.lua"), url,
    ]  # fmt: skip
    try:
        result = run(cmd, seconds + 60, env=env)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {seconds + 60}s: {' '.join(cmd)}") from exc
    out = result.stdout + result.stderr
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return data, out
    raise BenchError(f"wrk printed no BENCH_JSON line (exit {result.returncode}):\n{out[-3000:]}")


def bench_case(
    wrk: str,
    side: Side,
    case: str,
    args: argparse.Namespace,
    env: dict[str, str],
    find: Callable[[], list[psutil.Process]],
) -> Result:
    url = SERVE_URL if side == "project" else BASELINE_URL
    settle(args.settle)
    log(f"{case:<6} {side:<8} ({SIDE_LABEL[side]}): warm-up {WARMUP_S}s, then {args.duration}s")
    run_wrk(wrk, url, case, WARMUP_S, args, env)
    with UsageSampler(find) as sampler:
        data, raw = run_wrk(wrk, url, case, args.duration, args, env)
    errors = {k: int(v) for k, v in data["errors"].items()}
    return Result(
        case=case,
        side=side,
        rps=float(data["rps"]),
        p50=float(data["p50_ms"]),
        p95=float(data["p95_ms"]),
        p99=float(data["p99_ms"]),
        requests=int(data["requests"]),
        errors=sum(errors.values()),
        error_detail=errors,
        usage=sampler.result(),
        raw=raw,
    )


# --------------------------------------------------------------------------- report


def rows(results: list[Result]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in results:
        figures: list[tuple[str, float, str]] = [
            ("throughput", round(r.rps, 1), "req/s"),
            ("latency_p50", r.p50, "ms"),
            ("latency_p95", r.p95, "ms"),
            ("latency_p99", r.p99, "ms"),
            ("requests", r.requests, "count"),
            ("errors", r.errors, "count"),
            ("server_rss", round(r.usage.peak_rss_mib, 1), "MiB"),
            ("server_cpu", round(r.usage.cpu_percent, 1), "% of one core"),
            ("postgres_cpu", round(r.usage.postgres_percent, 1), "% of one core"),
            ("loadgen_cpu", round(r.usage.wrk_percent, 1), "% of one core"),
            ("ray_other_cpu", round(r.usage.ray_percent, 1), "% of one core"),
            ("other_cpu", round(r.usage.other_percent, 1), "% of one core"),
            ("host_busy", round(r.usage.host_busy_percent, 1), "% of all cores"),
        ]
        out.extend(
            {"case": r.case, "metric": m, "value": v, "unit": u, "side": r.side}
            for m, v, u in figures
        )
    return out


def table(results: list[Result]) -> str:
    head = (
        f"{'case':<7}{'side':<20}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'RSS MiB':>9}{'srv CPU%':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        side = f"{r.side} ({SIDE_LABEL[r.side]})"
        lines.append(
            f"{r.case:<7}{side:<20}{r.rps:>9.0f}{r.p50:>9.2f}{r.p95:>9.2f}{r.p99:>9.2f}"
            f"{r.errors:>8}{r.usage.peak_rss_mib:>9.0f}{r.usage.cpu_percent:>10.0f}"
        )
    return "\n".join(lines)


def cpu_table(results: list[Result]) -> str:
    head = (
        f"{'case':<7}{'side':<20}{'machine%':>9}{'server':>8}{'postgres':>9}{'wrk':>6}"
        f"{'Ray etc':>8}{'other':>7}"
    )
    lines = ["where the CPU went (100 = one core; machine% of all cores):", head]
    for r in results:
        u = r.usage
        side = f"{r.side} ({SIDE_LABEL[r.side]})"
        lines.append(
            f"{r.case:<7}{side:<20}{u.host_busy_percent:>9.0f}{u.cpu_percent:>8.0f}"
            f"{u.postgres_percent:>9.0f}{u.wrk_percent:>6.0f}{u.ray_percent:>8.0f}"
            f"{u.other_percent:>7.0f}"
        )
    return "\n".join(lines)


def goal_lines(results: list[Result]) -> list[str]:
    get = next((r for r in results if r.side == "project" and r.case == "get"), None)
    if get is None:
        return ["goal: not measured (no GET through Ray Serve in this run)"]
    p99_ok, rps_ok = get.p99 < GOAL_GET_P99_MS, get.rps >= GOAL_RPS
    lines = [
        f"goal GET p99 < {GOAL_GET_P99_MS:.0f} ms through Ray Serve: {get.p99:.2f} ms "
        f"-> {'MET' if p99_ok else 'NOT MET'}",
        f"goal >= {GOAL_RPS:,.0f} req/s through Ray Serve (GET): {get.rps:,.0f} req/s "
        f"-> {'MET' if rps_ok else 'NOT MET'}",
    ]
    for r in results:
        if r.side == "project" and r.case != "get":
            lines.append(
                f"  ({r.case}: {r.rps:,.0f} req/s, p99 {r.p99:.2f} ms; "
                f"{'at or above' if r.rps >= GOAL_RPS else 'below'} {GOAL_RPS:,.0f} req/s)"
            )
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench-api", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per case (default 15)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument(
        "--skip-serve-start",
        action="store_true",
        help="never run `pocdojo up`; without Serve on :8000 only the baseline runs",
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated subset of create,get,list"
    )
    parser.add_argument("--ids", type=int, default=200, help="PoCs pre-created for GET")
    parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="at most this many seconds to wait for a quiet machine before each case",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench-results" / "api.json", help="JSON rows"
    )
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
    if args.duration < 1 or args.connections < 1 or args.threads < 1:
        parser.error("--duration, --connections and --threads must be positive")
    if args.connections < args.threads:
        parser.error("wrk needs --connections >= --threads")
    args.cases = cases
    return args


def bench(args: argparse.Namespace) -> list[Result]:
    wrk = ensure_wrk()
    info = machine()
    log(
        f"machine: nproc {info['nproc']}, {info['cpu']}, kernel {info['kernel']}, "
        f"{info['memory']} RAM, Python {info['python']}"
    )
    log(f"load generator: {wrk_version(wrk)} (-t{args.threads} -c{args.connections}, same host)")
    results: list[Result] = []
    serve_info = ""
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as tmp,
        platform_up(args.skip_serve_start) as serve_up,
    ):
        workdir = Path(tmp)
        warn_if_busy()
        token = get_token()
        log(f"token for {BENCH_EMAIL}: ok")
        with baseline_server(workdir) as baseline_proc:
            sides: list[Side] = ["project", "baseline"] if serve_up else ["baseline"]
            if serve_up:
                check_api(SERVE_URL, token)
                serve_info = serve_description()
                log(f"Ray Serve: {serve_info}")
            check_api(BASELINE_URL, token)
            ids_file = workdir / "poc-ids.txt"
            ids = precreate(BASELINE_URL, token, args.ids, ids_file)
            log(f"pre-created {len(ids)} PoCs for GET ({ids_file})")
            env = {
                **os.environ,
                "BENCH_TOKEN": token,
                "BENCH_IDS_FILE": str(ids_file),
                "BENCH_LUA_DIR": str(LUA_DIR),
            }
            finders: dict[Side, Callable[[], list[psutil.Process]]] = {
                "project": serve_processes,
                "baseline": lambda: tree(baseline_proc),
            }
            for case in args.cases:
                for side in sides:
                    result = bench_case(wrk, side, case, args, env, finders[side])
                    results.append(result)
                    log(
                        f"  {result.rps:,.0f} req/s, p99 {result.p99:.2f} ms; "
                        + result.usage.describe()
                    )
                    if result.errors:
                        log(f"  {result.errors} errors: {result.error_detail}")
    print()
    print(
        f"bench-api: {args.duration}s per case after a {WARMUP_S}s warm-up, "
        f"{args.connections} connections, wrk -t{args.threads} on the same host"
    )
    print(
        f"machine: nproc {info['nproc']} | {info['cpu']} | kernel {info['kernel']} | "
        f"{wrk_version(wrk)}"
    )
    if serve_info:
        print(f"Ray Serve: {serve_info}")
    print(table(results))
    print(
        "RSS: peak during the run; project = ServeReplica:poc-api + HAProxy (or ProxyActor), "
        "baseline = the uvicorn process. srv CPU%: 100 = one core."
    )
    print()
    print(cpu_table(results))
    print(
        "Ray etc: Ray's own processes and the other Serve deployments (outbox relay, search "
        "indexer: they work off the events the create case writes)"
    )
    print()
    for line in goal_lines(results):
        print(line)
    noisy = [r for r in results if r.usage.other_percent > OTHER_CPU_WARN]
    if noisy:
        names = "; ".join(
            f"{r.case}/{r.side} {r.usage.other_percent:.0f}% ({', '.join(r.usage.top_other)})"
            for r in noisy
        )
        print(
            f"WARNING: processes other than the server, PostgreSQL, wrk and Ray took more than "
            f"{OTHER_CPU_WARN:.0f}% of a core during {names}: something else ran on the "
            "machine; run again when it is quiet"
        )
    busy_ray = [r for r in results if r.usage.ray_percent > RAY_CPU_WARN]
    if busy_ray:
        names = ", ".join(f"{r.case}/{r.side} {r.usage.ray_percent:.0f}%" for r in busy_ray)
        print(
            f"WARNING: Ray's other processes took more than {RAY_CPU_WARN:.0f}% of a core "
            f"during {names}: other deployments or actors were busy; see `ray status`"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)  # the dev issuer key path (./var/...) is relative to the working directory
    try:
        results = bench(args)
    except BenchError as exc:
        print(f"bench-api: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows(results), indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""make bench-dojo: live dojos under typing load, the gateway vs the reference y-websocket server.

    .venv/bin/python -m loadtests.bench_dojo [--dojos 50] [--participants 8] [--cps 3]
                                              [--duration 30] [--warmup 5]

S dojos x P participants, each participant a real websocket client (a stock y-websocket
``WebsocketProvider`` with its own Y.Doc, in ``loadtests/dojo/loadgen.js``) typing K
characters per second at random positions of ``files.get('main.py')``. Measured per edit and
peer: the time from the local insert to the moment the peer's doc integrates it
(edit-to-every-peer latency, p50/p95/p99), deliveries/s, and the server processes' CPU and
memory over the measured window.

Side "project": the production path: HAProxy on 127.0.0.1:8000 -> the dojo-api Serve replica
(gateway) -> one DojoSession Ray actor per dojo, which logs every update to PostgreSQL.
Side "baseline": the reference server of npm ``y-websocket@1`` (``bin/server.js``, one Node
process, in memory, persists nothing), same clients, same load.

Rounds (``--rounds``, default 3): each side runs that many times, alternating (baseline
first in odd rounds, project first in even ones), all with the platform up, so both sides
see the same machine (its idle processes, its drift); the table pools every round's samples
and each round's p99 is printed beside it. One 30 s window per side varied more from run to
run than between the sides (p99 3.7-25 ms for the reference server alone on this machine).

Durability (project): each dojo's ``dojo_updates`` log is replayed into a fresh doc and its
state vector compared with every participant's own clock (one clock per typed character), so
an update that reached the log merged with others (a reconnecting client resends what the
server lacks in one message) still counts. After the run the benchmark dojos' session
actors are killed (``--keep-actors`` keeps them): one Ray worker each, ~115 MB.

Writes ``bench-results/dojo.json``: rows ``{"case", "metric", "value", "unit", "side"}``.
Load generator and servers share the machine's cores: figures are "everything on one box".
See ``loadtests/dojo/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import queue
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
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
import psutil

from loadtests.common import cmdline, host_busy, pocdojo_bin, run
from loadtests.common import machine as base_machine
from pocdojo.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
DOJO_DIR = ROOT / "loadtests" / "dojo"
LOADGEN = DOJO_DIR / "loadgen.js"
REFERENCE_SERVER = DOJO_DIR / "node_modules" / "y-websocket" / "bin" / "server.js"
SERVE_URL = "http://127.0.0.1:8000"
SERVE_WS = "ws://127.0.0.1:8000/v1/dojos"
LISTENER_WS = f"ws://127.0.0.1:{get_settings().dojo_gateway_port}/v1/dojos"
PATHS = {
    # the gateway's own `websockets` listener in the DojoGateway replica (production path)
    "listener": ("dojo-gateway", LISTENER_WS),
    # Starlette websocket routes of the dojo-api replica, behind HAProxy and Serve
    "serve": ("dojo-api", SERVE_WS),
}
DASHBOARD_URL = "http://127.0.0.1:8265"
DATABASE_NAME = urlparse(get_settings().database_url).path.lstrip("/") or "pocdojo"
TOKEN_EMAILS = ("alice@acme.test", "bob@acme.test")
OUTPUT = ROOT / "bench-results" / "dojo.json"
BENCH_TITLE = "bench-dojo"  # dojos are titled "bench-dojo <time> #<n>"
SAMPLE_S = 1.0
SETTLE_AFTER_CONNECT_S = 3.0
Side = Literal["project", "baseline"]


class BenchError(RuntimeError):
    """A precondition failed; the message says what to do."""


def log(message: str) -> None:
    print(f"[bench-dojo] {message}", file=sys.stderr, flush=True)


def http_get(url: str, timeout_s: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (urllib.error.URLError, OSError, ValueError):
        return 0, b""


# --------------------------------------------------------------------------- machine, node


def machine() -> dict[str, str]:
    node = shutil.which("node")
    node_version = run([node, "--version"], 10).stdout.strip() if node else "missing"
    return {**base_machine(), "node": node_version}


def ensure_node_modules() -> str:
    """The generator's and the reference server's npm packages (``npm ci`` from the lock)."""
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is not installed (Node 20 is needed for the load generator)")
    needed = ("yjs", "y-websocket", "ws")
    if not all((DOJO_DIR / "node_modules" / name / "package.json").exists() for name in needed):
        npm = shutil.which("npm")
        if npm is None:
            raise BenchError("npm is not installed: it installs loadtests/dojo/package-lock.json")
        log("loadtests/dojo/node_modules is missing: npm ci --prefix loadtests/dojo")
        result = run([npm, "ci", "--prefix", str(DOJO_DIR), "--no-audit", "--no-fund"], 600)
        if result.returncode != 0:
            raise BenchError(f"npm ci failed:\n{(result.stdout + result.stderr)[-3000:]}")
    if not REFERENCE_SERVER.exists():
        raise BenchError(f"{REFERENCE_SERVER} is missing: is y-websocket@1 in package-lock.json?")
    return node


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def busiest(seconds: float = 2.0, top: int = 5) -> tuple[float, list[str]]:
    """The machine's busy share over ``seconds`` and its busiest processes."""
    start = {
        (p.pid, p.info["create_time"]): (p.info["name"], p.info["cpu_times"])
        for p in psutil.process_iter(["name", "cpu_times", "create_time"])
        if p.info.get("cpu_times") is not None
    }
    before = psutil.cpu_times()
    time.sleep(seconds)
    busy = host_busy(before, psutil.cpu_times())
    used: list[tuple[float, str]] = []
    for proc in psutil.process_iter(["name", "cpu_times", "create_time"]):
        key = (proc.pid, proc.info.get("create_time"))
        end = proc.info.get("cpu_times")
        if key in start and end is not None:
            t0 = start[key][1]
            delta = end.user + end.system - t0.user - t0.system
            used.append((delta, f"{proc.info['name']}({proc.pid}) {100 * delta / seconds:.0f}%"))
    return busy, [name for _, name in sorted(used, reverse=True)[:top]]


def warn_if_busy() -> None:
    busy, names = busiest()
    if busy < 25.0:
        log(f"machine before the run: {busy:.0f}% busy")
    else:
        log(f"WARNING: the machine is {busy:.0f}% busy before the run ({', '.join(names)})")


# --------------------------------------------------------------------------- processes


def ingress_processes() -> list[psutil.Process]:
    """Whatever listens on 127.0.0.1:8000: HAProxy (test clusters run their own elsewhere)."""
    port = urlparse(SERVE_URL).port or 80
    pids = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }
    return processes(sorted(pids))


def postgres_backends() -> list[psutil.Process]:
    """Backends connected to the pocdojo database ("postgres: 15/main: USER DB HOST(PORT) ...")."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if not (proc.info.get("name") or "").startswith("postgres"):
            continue
        fields = cmdline(proc).split()
        if len(fields) >= 5 and "(" in fields[4] and fields[3] == DATABASE_NAME:
            found.append(proc)
    return found


def ray_system_processes() -> list[psutil.Process]:
    """raylet and GCS of the platform's cluster (not of test clusters on other ports)."""
    port = get_settings().ray_address.rpartition(":")[2]
    found = []
    for proc in psutil.process_iter(["name"]):
        line = cmdline(proc)
        if ("/raylet/raylet" in line and f":{port} " in line + " ") or (
            "/gcs/gcs_server" in line and f"--gcs_server_port={port} " in line + " "
        ):
            found.append(proc)
    return found


def ray_actors() -> list[dict[str, Any]]:
    """Every alive actor with its name, class and pid (Ray's state API on the dashboard)."""
    status, body = http_get(f"{DASHBOARD_URL}/api/v0/actors?limit=10000&detail=false", 15.0)
    if status != 200:
        return []
    try:
        data = json.loads(body)["data"]["result"]["result"]
    except (ValueError, KeyError, TypeError):
        return []
    return [a for a in data if isinstance(a, dict) and a.get("state") == "ALIVE"]


def project_server_pids(
    dojo_ids: list[str], app: str = "dojo-api"
) -> tuple[list[int], list[int], int]:
    """(``app`` replica pids, the benchmark dojos' DojoSession actor pids, dojo actors found)."""
    wanted = {i.lower() for i in dojo_ids}
    replicas, sessions = [], []
    for actor in ray_actors():
        pid = actor.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            continue
        cls, name = str(actor.get("class_name") or ""), str(actor.get("name") or "")
        if cls.startswith(f"ServeReplica:{app}:"):
            replicas.append(pid)
        elif name.startswith("dojo:") and name.rsplit(":", 1)[-1].lower() in wanted:
            sessions.append(pid)
    if not replicas:  # the state API did not answer: fall back to process titles
        replicas = [p.pid for p in psutil.process_iter() if f"ServeReplica:{app}:" in cmdline(p)]
    return replicas, sessions, len(sessions)


@contextmanager
def ray_driver() -> Iterator[Any]:
    """A Ray driver on the platform's cluster (local: token auth is off, see TRAPS.md)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(
        address=get_settings().ray_address,
        logging_level=logging.ERROR,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def session_actor_names(ids: list[str] | None) -> list[str]:
    """Alive DojoSession actors of these dojos, or (None) of any dojo titled "bench-dojo ..."."""
    by_id: dict[str, str] = {}
    for actor in ray_actors():
        name = str(actor.get("name") or "")
        if actor.get("class_name") == "DojoSessionActor" and name.startswith("dojo:"):
            by_id[name.rsplit(":", 1)[-1].lower()] = name
    if not by_id:
        return []
    if ids is None:
        with _pg() as conn:
            rows = conn.execute(
                "select id::text from dojos where id = any(%s::uuid[]) and title like %s",
                (list(by_id), f"{BENCH_TITLE} %"),
            ).fetchall()
        ids = [str(r[0]) for r in rows]
    return [by_id[i.lower()] for i in ids if i.lower() in by_id]


@dataclass
class Retired:
    actors: int = 0
    connections: int = 0  # still registered although every client had gone
    pending: int = 0  # updates accepted but not yet in the log


def retire_session_actors(names: list[str]) -> Retired:
    """Read each actor's stats, then kill it for good: a benchmark's 50 sessions are ~6 GB."""
    from pocdojo.actors.dojo_session import NAMESPACE

    found = Retired()
    if not names:
        return found
    with ray_driver() as ray:
        for name in names:
            try:
                handle = ray.get_actor(name, namespace=NAMESPACE)
                stats = ray.get(handle.stats.remote(), timeout=15)
                found.connections += int(stats.get("connections", 0))
                found.pending += int(stats.get("pending", 0))
                ray.kill(handle, no_restart=True)
                found.actors += 1
            except Exception as exc:  # gone already, or not answering: say so, carry on
                log(f"  could not retire {name}: {exc!r}")
    return found


def processes(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            found.append(psutil.Process(pid))
    return found


def rss_mib(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total / 2**20


# --------------------------------------------------------------------------- measuring


@dataclass
class GroupUsage:
    cpu_percent: float = 0.0  # 100 = one core, over the measured window
    rss_mib: float = 0.0  # at the end of the window
    pss_mib: float = 0.0  # proportional set size: shared pages split between processes
    peak_rss_mib: float = 0.0
    processes: int = 0


class Meter:
    """CPU seconds of groups of processes over a window (polled every second so processes
    that come or go inside it count too), their RSS/PSS at the end, and the host's busy%."""

    def __init__(
        self, groups: dict[str, Callable[[], list[psutil.Process]]], exclude: set[int]
    ) -> None:
        self._groups = groups
        self._exclude = exclude | {os.getpid()}
        self._first: dict[str, dict[tuple[int, float], float]] = {g: {} for g in groups}
        self._last: dict[str, dict[tuple[int, float], float]] = {g: {} for g in groups}
        self._peak: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._alive: dict[str, list[psutil.Process]] = {g: [] for g in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._epoch0 = 0.0
        self._wall = 0.0
        self._t0 = 0.0
        self._host0: Any = None
        self._host1: Any = None
        self._other: list[str] = []
        self._other0: dict[tuple[int, float], tuple[str, float]] = {}

    def _poll(self, first: bool) -> None:
        for group, find in self._groups.items():
            alive, rss = [], 0
            for proc in find():
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        key = (proc.pid, proc.create_time())
                        rss += proc.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                alive.append(proc)
                seconds = times.user + times.system
                if key not in self._first[group]:
                    # there at the start, or born during the window (then all of it counts)
                    self._first[group][key] = seconds if first or key[1] < self._epoch0 else 0.0
                self._last[group][key] = seconds
            self._alive[group] = alive
            self._peak[group] = max(self._peak[group], rss / 2**20)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._poll(first=False)

    def _snapshot_all(self) -> dict[tuple[int, float], tuple[str, float]]:
        snap = {}
        for proc in psutil.process_iter(["name", "cpu_times", "create_time"]):
            times = proc.info.get("cpu_times")
            if times is not None:
                key = (proc.pid, float(proc.info.get("create_time") or 0.0))
                snap[key] = (str(proc.info.get("name")), times.user + times.system)
        return snap

    def start(self) -> None:
        self._epoch0, self._t0 = time.time(), time.monotonic()
        self._host0 = psutil.cpu_times()
        self._other0 = self._snapshot_all()
        self._poll(first=True)
        self._thread.start()

    def stop(self) -> None:
        self._poll(first=False)
        self._wall = max(time.monotonic() - self._t0, 1e-6)
        self._host1 = psutil.cpu_times()
        self._stop.set()
        self._thread.join(timeout=10)
        counted = {k[0] for g in self._last.values() for k in g}
        used: list[tuple[float, str]] = []
        for key, (name, seconds) in self._snapshot_all().items():
            if key[0] in counted or key[0] in self._exclude:
                continue
            before = self._other0.get(key, (name, 0.0) if key[1] >= self._epoch0 else None)
            if before is None:
                continue
            delta = seconds - before[1]
            if delta > 0.02 * self._wall:
                used.append((delta, f"{name}({key[0]}) {100 * delta / self._wall:.0f}%"))
        self._other = [label for _, label in sorted(used, reverse=True)[:6]]

    @property
    def host_busy_percent(self) -> float:
        return host_busy(self._host0, self._host1) if self._host1 is not None else 0.0

    @property
    def busiest_others(self) -> list[str]:
        """Processes outside every group (and this driver) that used > 2% of a core."""
        return self._other

    def usage(self, group: str) -> GroupUsage:
        seconds = sum(
            max(0.0, last - self._first[group].get(key, last))
            for key, last in self._last[group].items()
        )
        rss = pss = 0
        for proc in self._alive[group]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                info = proc.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
        return GroupUsage(
            cpu_percent=100.0 * seconds / self._wall,
            rss_mib=rss / 2**20,
            pss_mib=pss / 2**20,
            peak_rss_mib=self._peak[group],
            processes=len(self._alive[group]),
        )


# --------------------------------------------------------------------------- load generator


@dataclass
class LoadResult:
    edits_total: int = 0
    edits_measured: int = 0
    deliveries_expected: int = 0
    deliveries: int = 0
    deliveries_missing: int = 0
    deliveries_late: int = 0
    disconnects_during_run: int = 0
    disconnects_total: int = 0
    connection_errors: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    setup_s: float = 0.0
    drained_s: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    loadgen_cpu_percent: float = 0.0
    loop_delay_p99_ms: float = 0.0
    loop_delay_max_ms: float = 0.0
    gc_pause_total_ms: float = 0.0  # the generators' GC pauses in a window, summed over them
    gc_pause_max_ms: float = 0.0
    own_clocks: list[list[Any]] = field(default_factory=list)  # [room, client id, clock]
    inbound_frames_per_s: float = 0.0  # websocket frames the clients received
    inbound_bytes_per_s: float = 0.0
    inbound_by_type: dict[str, int] = field(default_factory=dict)  # y-protocols type

    def percentile(self, q: float) -> float:
        """Nearest rank, as the generator computes it (NaN without samples)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return float(ordered[rank])


class LoadGen:
    """One ``node loadgen.js`` process: stdout JSON events go to a queue, stderr is echoed."""

    def __init__(self, node: str, args: list[str], label: str) -> None:
        self.label = label
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.popen = subprocess.Popen(
            [node, str(LOADGEN), *args, "--label", label],
            cwd=DOJO_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self.events.put(event)
        self.events.put({"event": "exit"})

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            if "MaxListenersExceededWarning" in line or "--trace-warnings" in line:
                continue
            print(f"  {line.rstrip()}", file=sys.stderr, flush=True)

    def expect(self, kind: str, deadline: float) -> dict[str, Any]:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{self.label}: no {kind!r} in time")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event.get("event") == kind:
                return event
            if event.get("event") in ("error", "exit"):
                raise BenchError(f"{self.label} failed: {event.get('message', 'exited')}")

    def go(self, epoch_ms: int) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(f"go {epoch_ms}\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


@dataclass
class SideRun:
    side: Side
    load: LoadResult
    usage: dict[str, GroupUsage]
    host_busy_percent: float
    others: list[str]
    load_duration: float
    rss_before_mib: float = 0.0  # the server before any client connected
    durable: Durability | None = None  # project: what the update log holds
    retired: Retired | None = None  # project: the dojo actors after the run
    notes: list[str] = field(default_factory=list)
    round_p99_ms: list[float] = field(default_factory=list)  # each round's p99 (pooled runs)


def run_load(
    side: Side,
    node: str,
    url: str,
    rooms: list[str],
    tokens: list[str],
    args: argparse.Namespace,
    workdir: Path,
    groups_after_ready: Callable[[], dict[str, Callable[[], list[psutil.Process]]]],
) -> SideRun:
    """Connect every client, start typing together, measure the window, collect results."""
    procs = max(1, min(args.procs, len(rooms)))
    gens: list[LoadGen] = []
    lat_files: list[Path] = []
    stamp = time.strftime("%H%M%S")  # one name stem for every generator of this round
    if args.timeline is not None:
        args.timeline.mkdir(parents=True, exist_ok=True)
    try:
        for k in range(procs):
            mine = rooms[k::procs]
            rooms_file = workdir / f"{side}-rooms-{k}.txt"
            rooms_file.write_text("\n".join(mine) + "\n")
            lat_file = workdir / f"{side}-latencies-{k}.f64"
            lat_files.append(lat_file)
            gen_args = [
                "--url", url, "--rooms-file", str(rooms_file),
                "--participants", str(args.participants), "--cps", str(args.cps),
                "--warmup", str(args.warmup), "--duration", str(args.duration),
                "--drain", str(args.drain), "--connect-timeout", str(args.connect_timeout),
                "--latencies-out", str(lat_file),
            ]  # fmt: skip
            if args.timeline is not None:
                gen_args += ["--timeline-out", str(args.timeline / f"{stamp}-{side}-{k}.f64")]
            for token in tokens:
                gen_args += ["--token", token]
            if side == "project":
                for header in args.ws_header:
                    gen_args += ["--header", header]
            gens.append(LoadGen(node, gen_args, f"{side}-{k}"))
        deadline = time.monotonic() + args.connect_timeout + 30
        for gen in gens:
            gen.expect("ready", deadline)
        time.sleep(SETTLE_AFTER_CONNECT_S)  # joins' side effects (participation rows) settle
        meter = Meter(groups_after_ready(), {gen.popen.pid for gen in gens})
        go_at = time.time() + 1.0
        for gen in gens:
            gen.go(int(go_at * 1000))
        time.sleep(max(0.0, go_at + args.warmup - time.time()))
        meter.start()
        log(f"{side}: measuring {args.duration:.0f}s")
        time.sleep(max(0.0, go_at + args.warmup + args.duration - time.time()))
        meter.stop()
        deadline = time.monotonic() + args.drain + 60
        results = [gen.expect("result", deadline) for gen in gens]
        for gen in gens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                gen.popen.wait(timeout=15)
    finally:
        for gen in gens:
            gen.stop()
    load = LoadResult()
    for res in results:
        load.edits_total += int(res["edits_total"])
        load.edits_measured += int(res["edits_measured"])
        load.deliveries_expected += int(res["deliveries_expected"])
        load.deliveries += int(res["deliveries"])
        load.deliveries_missing += int(res["deliveries_missing"])
        load.deliveries_late += int(res["deliveries_late"])
        load.disconnects_during_run += int(res["disconnects_during_run"])
        load.disconnects_total += int(res["disconnects_total"])
        load.connection_errors += int(res["connection_errors"])
        for code, count in dict(res.get("close_codes") or {}).items():
            load.close_codes[code] = load.close_codes.get(code, 0) + int(count)
        load.setup_s = max(load.setup_s, float(res["setup_s"]))
        load.drained_s = max(load.drained_s, float(res["drained_s"]))
        load.loadgen_cpu_percent += float(res["loadgen_cpu_pct"])
        delay = res.get("loop_delay_ms") or {}
        load.loop_delay_p99_ms = max(load.loop_delay_p99_ms, float(delay.get("p99") or 0.0))
        load.loop_delay_max_ms = max(load.loop_delay_max_ms, float(delay.get("max") or 0.0))
        gc = res.get("gc_pauses") or {}
        load.gc_pause_total_ms += float(gc.get("total_ms") or 0.0)
        load.gc_pause_max_ms = max(load.gc_pause_max_ms, float(gc.get("max_ms") or 0.0))
        load.own_clocks += list(res.get("own_clocks") or [])
        load.inbound_frames_per_s += float(res.get("inbound_frames_per_s") or 0.0)
        load.inbound_bytes_per_s += float(res.get("inbound_bytes_per_s") or 0.0)
        for kind, count in dict(res.get("inbound_by_type") or {}).items():
            load.inbound_by_type[kind] = load.inbound_by_type.get(kind, 0) + int(count)
    for lat_file in lat_files:
        values = array("d")
        values.frombytes(lat_file.read_bytes())
        load.latencies.extend(values)
    usage = {group: meter.usage(group) for group in meter._groups}
    return SideRun(side, load, usage, meter.host_busy_percent, meter.busiest_others, args.duration)


def pooled(side_runs: list[SideRun]) -> SideRun:
    """One side's rounds as one run: every latency sample and count together (percentiles
    over the pooled samples), CPU and machine load averaged over the rounds, memory of the
    last round; ``round_p99_ms`` keeps each round's own p99."""
    if len(side_runs) == 1:
        only = side_runs[0]
        only.round_p99_ms = [only.load.percentile(0.99)]
        return only
    n = len(side_runs)
    load = LoadResult()
    for sr in side_runs:
        one = sr.load
        load.edits_total += one.edits_total
        load.edits_measured += one.edits_measured
        load.deliveries_expected += one.deliveries_expected
        load.deliveries += one.deliveries
        load.deliveries_missing += one.deliveries_missing
        load.deliveries_late += one.deliveries_late
        load.disconnects_during_run += one.disconnects_during_run
        load.disconnects_total += one.disconnects_total
        load.connection_errors += one.connection_errors
        for code, count in one.close_codes.items():
            load.close_codes[code] = load.close_codes.get(code, 0) + count
        load.setup_s = max(load.setup_s, one.setup_s)
        load.drained_s = max(load.drained_s, one.drained_s)
        load.loadgen_cpu_percent += one.loadgen_cpu_percent / n
        load.loop_delay_p99_ms = max(load.loop_delay_p99_ms, one.loop_delay_p99_ms)
        load.loop_delay_max_ms = max(load.loop_delay_max_ms, one.loop_delay_max_ms)
        load.gc_pause_total_ms += one.gc_pause_total_ms / n
        load.gc_pause_max_ms = max(load.gc_pause_max_ms, one.gc_pause_max_ms)
        load.inbound_frames_per_s += one.inbound_frames_per_s / n
        load.inbound_bytes_per_s += one.inbound_bytes_per_s / n
        for kind, count in one.inbound_by_type.items():
            load.inbound_by_type[kind] = load.inbound_by_type.get(kind, 0) + count
        load.latencies.extend(one.latencies)
    last = side_runs[-1]
    usage = {
        group: GroupUsage(
            cpu_percent=sum(sr.usage[group].cpu_percent for sr in side_runs) / n,
            rss_mib=last.usage[group].rss_mib,
            pss_mib=last.usage[group].pss_mib,
            peak_rss_mib=max(sr.usage[group].peak_rss_mib for sr in side_runs),
            processes=last.usage[group].processes,
        )
        for group in last.usage
    }
    durable = None
    if all(sr.durable is not None for sr in side_runs):
        parts = [sr.durable for sr in side_runs if sr.durable is not None]
        durable = Durability(*(sum(getattr(d, f.name) for d in parts) for f in fields(Durability)))
    retired = None
    if all(sr.retired is not None for sr in side_runs):
        gone = [sr.retired for sr in side_runs if sr.retired is not None]
        retired = Retired(*(sum(getattr(r, f.name) for r in gone) for f in fields(Retired)))
    others = sorted({name for sr in side_runs for name in sr.others})
    return SideRun(
        last.side,
        load,
        usage,
        sum(sr.host_busy_percent for sr in side_runs) / n,
        others,
        sum(sr.load_duration for sr in side_runs),
        rss_before_mib=side_runs[0].rss_before_mib,
        durable=durable,
        retired=retired,
        notes=last.notes,
        round_p99_ms=[sr.load.percentile(0.99) for sr in side_runs],
    )


# --------------------------------------------------------------------------- the two sides


@contextmanager
def reference_server(node: str, workdir: Path) -> Iterator[tuple[psutil.Process, int]]:
    """``node node_modules/y-websocket/bin/server.js`` on a free loopback port."""
    port = free_port()
    log_path = workdir / "reference-server.log"
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    env.pop("YPERSISTENCE", None)  # in memory, as the goal says
    with log_path.open("w") as log_file:
        popen = subprocess.Popen(
            [node, str(REFERENCE_SERVER)], cwd=DOJO_DIR, env=env, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while http_get(f"http://127.0.0.1:{port}/", 1.0)[0] != 200:
            if popen.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the reference server did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        log(f"reference y-websocket server (pid {popen.pid}) on ws://127.0.0.1:{port}")
        yield psutil.Process(popen.pid), port
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)


def dojo_api_status() -> str | None:
    status, body = http_get(f"{DASHBOARD_URL}/api/serve/applications/", 5.0)
    if status != 200:
        return None
    try:
        apps = json.loads(body).get("applications") or {}
    except ValueError:
        return None
    statuses = set()
    for name in ("dojo-api", "dojo-gateway"):  # both websocket paths are measured
        app = apps.get(name)
        statuses.add(str(app.get("status")) if isinstance(app, dict) else "ABSENT")
    return statuses.pop() if len(statuses) == 1 else "/".join(sorted(statuses))


def dojo_api_replicas() -> str:
    _, body = http_get(f"{DASHBOARD_URL}/api/serve/applications/", 5.0)
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        app = (json.loads(body).get("applications") or {}).get("dojo-api") or {}
        deployment = (app.get("deployments") or {}).get("DojoApi") or {}
        config = deployment.get("deployment_config") or {}
        return (
            f"{config.get('num_replicas', '?')} (max_ongoing_requests "
            f"{config.get('max_ongoing_requests', '?')})"
        )
    return "?"


@contextmanager
def platform_up(restart: bool, keep: bool) -> Iterator[None]:
    """The platform on :8000 with dojo-api RUNNING: used if it is, started if nothing runs
    (and stopped afterwards unless ``keep``), restarted on request if it runs old code."""
    up = http_get(f"{SERVE_URL}/healthz", 2.0)[0] == 200
    status = dojo_api_status() if up else None
    if up and status == "RUNNING":
        log(f"the platform answers on {SERVE_URL} with dojo-api RUNNING: using it")
        yield
        return
    started = False
    if up:
        if not restart:
            raise BenchError(
                f"the platform on {SERVE_URL} has no running dojo-api (status {status}): it "
                "runs code from before the dojos. Restart it:\n"
                "  .venv/bin/pocdojo down && .venv/bin/pocdojo up --detach\n"
                "or pass --restart-platform (that stops it for everyone using it)"
            )
        log(f"dojo-api is {status}: pocdojo down && pocdojo up --detach (--restart-platform)")
        run([pocdojo_bin(), "down"], 300)
    else:
        log("the platform is not up: pocdojo up --detach (up to 5 minutes)")
        started = True
    result = run([pocdojo_bin(), "up", "--detach"], 600)
    if result.returncode != 0:
        raise BenchError(f"pocdojo up failed:\n{(result.stdout + result.stderr)[-3000:]}")
    if dojo_api_status() != "RUNNING":
        raise BenchError(f"after pocdojo up, dojo-api is {dojo_api_status()}")
    try:
        yield
    finally:
        if started and not keep:
            log("stopping the platform this run started: pocdojo down")
            run([pocdojo_bin(), "down"], 300)


def get_token(email: str) -> str:
    try:
        result = run([pocdojo_bin(), "token", "--email", email], 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError("`pocdojo token` did not answer in 60 s: is PostgreSQL up?") from exc
    token = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or token.count(".") != 2:
        raise BenchError(
            f"could not get a token for {email} (exit {result.returncode}). The benchmark "
            "needs the migrated and seeded database:\n"
            "  .venv/bin/pocdojo migrate && .venv/bin/pocdojo seed demo\n"
            f"--- pocdojo token said ---\n{(result.stdout + result.stderr)[-2000:]}"
        )
    return token


def create_dojos(token: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    ids: list[str] = []
    with httpx.Client(base_url=SERVE_URL, headers=headers, timeout=15) as client:
        for i in range(count):
            body = {
                "title": f"{BENCH_TITLE} {stamp} #{i}",
                "language": "python",
                "files": {"main.py": ""},
            }
            response = client.post("/v1/dojos", json=body)
            if response.status_code != 201:
                raise BenchError(
                    f"POST /v1/dojos answered {response.status_code}: {response.text[:500]}"
                )
            ids.append(str(response.json()["id"]))
    return ids


def end_dojos(token: str, ids: list[str]) -> None:
    """Best effort: the benchmark's dojos are ended (not deleted) so they leave the live list."""
    headers = {"Authorization": f"Bearer {token}"}
    with (
        contextlib.suppress(httpx.HTTPError),
        httpx.Client(base_url=SERVE_URL, headers=headers, timeout=10) as client,
    ):
        for dojo_id in ids:
            client.post(f"/v1/dojos/{dojo_id}/end")


def _pg() -> Any:
    """The pocdojo database as the postgres superuser on loopback (no RLS in the way)."""
    import psycopg

    dsn = f"host=127.0.0.1 user=postgres dbname={DATABASE_NAME}"
    try:
        return psycopg.connect(dsn, connect_timeout=5)
    except psycopg.Error as exc:
        raise BenchError(f"cannot connect as postgres to {DATABASE_NAME}: {exc}") from exc


def count_logged(ids: list[str]) -> int:
    """Rows of ``dojo_updates`` for these dojos."""
    with _pg() as conn:
        row = conn.execute(
            "select count(*) from dojo_updates where dojo_id = any(%s::uuid[])", (ids,)
        ).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Durability:
    rows: int  # dojo_updates rows written since the dojos were created
    edits_logged: int  # edits (characters) the log holds, replayed as the actor would
    edits: int  # edits the participants made
    relayed: int  # edits some peer received, i.e. the server accepted them
    relayed_logged: int  # of those, in the log


def durability(ids: list[str], rows_before: int, own_clocks: list[list[Any]]) -> Durability:
    """Replay each dojo's log (seq order) into a fresh doc and compare its state vector with
    each participant's own clock: every edit is one character, so one clock of its client.
    A reconnecting client resends what the server lacks as one merged update, so counting
    rows would undercount; the state vector does not."""
    from pycrdt import Doc

    from pocdojo.engine.updates import read_state_vector

    with _pg() as conn:
        records = conn.execute(
            "select dojo_id::text, payload from dojo_updates "
            "where dojo_id = any(%s::uuid[]) order by dojo_id, seq",
            (ids,),
        ).fetchall()
    logs: dict[str, list[bytes]] = {}
    for dojo_id, payload in records:
        logs.setdefault(str(dojo_id), []).append(bytes(payload))
    states: dict[str, dict[int, int]] = {}
    for dojo_id, payloads in logs.items():
        doc: Any = Doc()
        for payload in payloads:
            doc.apply_update(payload)
        states[dojo_id] = read_state_vector(doc.get_state())
    logged = made = relayed = relayed_logged = 0
    for room, client_id, clock, seen in own_clocks:
        in_log = states.get(str(room).split("/")[0], {}).get(int(client_id), 0)
        made += int(clock)
        logged += min(int(clock), in_log)
        relayed += int(seen)
        relayed_logged += min(int(seen), in_log)
    return Durability(len(records) - rows_before, logged, made, relayed, relayed_logged)


def wait_durable(
    ids: list[str], rows_before: int, own_clocks: list[list[Any]], timeout_s: float = 30.0
) -> Durability:
    """The log's coverage once it holds every edit, or stopped growing for 5 s."""
    deadline = time.monotonic() + timeout_s
    last, last_change = -1, time.monotonic()
    while True:
        found = durability(ids, rows_before, own_clocks)
        if found.edits_logged != last:
            last, last_change = found.edits_logged, time.monotonic()
        if (
            found.edits_logged >= found.edits
            or time.monotonic() - last_change > 5
            or time.monotonic() > deadline
        ):
            return found
        time.sleep(1.0)


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def build_rows(case: str, dojos: int, runs: dict[Side, SideRun]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(side: Side, metric: str, value: float | None, unit: str) -> None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        rounded = round(value, 3) if isinstance(value, float) else value
        rows.append({"case": case, "metric": metric, "value": rounded, "unit": unit, "side": side})

    for side, sr in runs.items():
        load, duration = sr.load, max(sr.load_duration, 1e-9)
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
            add(side, f"latency_{name}", load.percentile(q), "ms")
        add(side, "latency_max", max(load.latencies) if load.latencies else None, "ms")
        if len(sr.round_p99_ms) > 1:
            for r, p99 in enumerate(sr.round_p99_ms, 1):
                add(side, f"latency_p99_round{r}", p99, "ms")
        add(side, "edits_per_s", load.edits_measured / duration, "1/s")
        add(side, "deliveries_per_s", load.deliveries / duration, "1/s")
        add(side, "inbound_frames_per_s", load.inbound_frames_per_s, "1/s")
        add(side, "inbound_kib_per_s", load.inbound_bytes_per_s / 1024, "KiB/s")
        add(side, "edits", load.edits_measured, "count")
        add(side, "deliveries_expected", load.deliveries_expected, "count")
        add(side, "deliveries", load.deliveries, "count")
        add(side, "deliveries_missing", load.deliveries_missing, "count")
        add(side, "disconnects", load.disconnects_during_run, "count")
        if side == "project":
            parts = [sr.usage[g] for g in ("gateway", "sessions", "ingress")]
            server = GroupUsage(
                cpu_percent=sum(u.cpu_percent for u in parts),
                rss_mib=sum(u.rss_mib for u in parts),
                pss_mib=sum(u.pss_mib for u in parts),
                peak_rss_mib=sum(u.peak_rss_mib for u in parts),
                processes=sum(u.processes for u in parts),
            )
            pg = sr.usage["postgres"]
            add(side, "server_cpu", server.cpu_percent, "% of one core")
            for group in ("gateway", "sessions", "ingress"):
                add(side, f"server_cpu_{group}", sr.usage[group].cpu_percent, "% of one core")
            add(side, "server_cpu_postgres", pg.cpu_percent, "% of one core")
            add(side, "server_cpu_total", server.cpu_percent + pg.cpu_percent, "% of one core")
            add(side, "server_cpu_ray_system", sr.usage["ray_system"].cpu_percent, "% of one core")
        else:
            server = sr.usage["node"]
            add(side, "server_cpu", server.cpu_percent, "% of one core")
            add(side, "server_cpu_total", server.cpu_percent, "% of one core")
        add(side, "server_rss", server.rss_mib, "MiB")
        add(side, "server_rss_per_dojo", server.rss_mib / dojos, "MiB")
        add(side, "server_rss_added_per_dojo", (server.rss_mib - sr.rss_before_mib) / dojos, "MiB")
        add(side, "server_pss", server.pss_mib, "MiB")
        add(side, "server_pss_per_dojo", server.pss_mib / dojos, "MiB")
        add(side, "server_processes", server.processes, "count")
        add(side, "loadgen_cpu", load.loadgen_cpu_percent, "% of one core")
        add(side, "loadgen_loop_delay_p99", load.loop_delay_p99_ms, "ms")
        add(side, "loadgen_gc_pause_total", load.gc_pause_total_ms, "ms")
        add(side, "loadgen_gc_pause_max", load.gc_pause_max_ms, "ms")
        add(side, "host_busy", sr.host_busy_percent, "% of all cores")
        add(side, "setup", load.setup_s, "s")
        if sr.durable is not None:
            d = sr.durable
            add(side, "edits_all", d.edits, "count")
            add(side, "edits_logged", d.edits_logged, "count")
            add(side, "logged_ratio", d.edits_logged / max(d.edits, 1), "logged/edits")
            add(side, "logged_rows", d.rows, "count")
            add(side, "edits_relayed", d.relayed, "count")
            add(side, "edits_relayed_logged", d.relayed_logged, "count")
        if sr.retired is not None:
            add(side, "ghost_connections", sr.retired.connections, "count")
    return rows


TABLE: tuple[tuple[str, str], ...] = (
    ("latency_p50", "edit->peer latency p50"),
    ("latency_p95", "edit->peer latency p95"),
    ("latency_p99", "edit->peer latency p99"),
    ("latency_p999", "edit->peer latency p99.9"),
    ("latency_max", "edit->peer latency max"),
    ("edits_per_s", "edits/s (measured window)"),
    ("deliveries_per_s", "deliveries/s (edit x peer)"),
    ("inbound_frames_per_s", "frames/s the clients received"),
    ("inbound_kib_per_s", "  KiB/s the clients received"),
    ("deliveries_expected", "deliveries expected"),
    ("deliveries_missing", "deliveries never arrived"),
    ("disconnects", "client disconnects in run"),
    ("server_cpu", "server CPU (Ray+HAProxy | node)"),
    ("server_cpu_gateway", "  dojo-api replica (gateway)"),
    ("server_cpu_sessions", "  DojoSession actors"),
    ("server_cpu_ingress", "  HAProxy"),
    ("server_cpu_postgres", "  PostgreSQL (pocdojo db)"),
    ("server_cpu_total", "  server CPU incl. PostgreSQL"),
    ("server_cpu_ray_system", "  raylet + GCS (info)"),
    ("server_rss", "server RSS"),
    ("server_rss_per_dojo", "  RSS per dojo"),
    ("server_rss_added_per_dojo", "  RSS added per dojo (vs idle)"),
    ("server_pss", "server PSS (shared split)"),
    ("server_pss_per_dojo", "  PSS per dojo"),
    ("server_processes", "server processes"),
    ("edits_all", "edits made (warm-up + window)"),
    ("edits_logged", "  of them in the update log"),
    ("logged_ratio", "  logged / edits"),
    ("logged_rows", "  dojo_updates rows written"),
    ("edits_relayed", "edits relayed to a peer"),
    ("edits_relayed_logged", "  of them in the update log"),
    ("ghost_connections", "connections left on actors"),
    ("loadgen_cpu", "load generator CPU"),
    ("loadgen_loop_delay_p99", "load generator loop delay p99"),
    ("loadgen_gc_pause_total", "  its GC pauses per measured window"),
    ("loadgen_gc_pause_max", "  its longest GC pause"),
    ("host_busy", "machine busy (all cores)"),
    ("setup", "connect + sync all clients"),
)


def print_report(
    info: dict[str, str],
    case: str,
    title: str,
    rows: list[dict[str, Any]],
    runs: dict[Side, SideRun],
) -> None:
    print()
    print(
        f"machine: nproc {info['nproc']}, {info['cpu']}, kernel {info['kernel']}, "
        f"{info['memory']}, Python {info['python']}, Node {info['node']}"
    )
    print(f"case {case}: {title}")
    values: dict[tuple[str, str], tuple[Any, str]] = {
        (r["metric"], r["side"]): (r["value"], r["unit"]) for r in rows
    }
    print(f"{'metric':<34} {'unit':<14} {'project':>12} {'baseline':>12}")
    print("-" * 75)
    for metric, label in TABLE:
        project = values.get((metric, "project"))
        baseline = values.get((metric, "baseline"))
        if project is None and baseline is None:
            continue
        unit = (project or baseline or (None, ""))[1]
        unit = {"% of one core": "% 1 core", "% of all cores": "% all"}.get(unit, unit)
        digits = 3 if metric == "logged_ratio" else 1
        cells = [fmt(v[0], digits) if v is not None else "-" for v in (project, baseline)]
        print(f"{label:<34} {unit:<14} {cells[0]:>12} {cells[1]:>12}")
    for side, sr in runs.items():
        if sr.load.close_codes:
            codes = ", ".join(f"{c} x{n}" for c, n in sorted(sr.load.close_codes.items()))
            print(
                f"note ({side}): {sr.load.disconnects_total} disconnects in all "
                f"({sr.load.disconnects_during_run} while typing), websocket close codes: {codes}"
            )
        for note in sr.notes:
            print(f"note ({side}): {note}")
        if sr.load.inbound_by_type:
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(sr.load.inbound_by_type.items()))
            print(f"note ({side}): frames the clients received by y-protocols type: {kinds}")
        if len(sr.round_p99_ms) > 1:
            each = ", ".join(fmt(v) for v in sr.round_p99_ms)
            print(f"note ({side}): p99 of each round, ms: {each} (the table pools them)")
        if sr.others:
            print(f"other busy processes during {side}: {', '.join(sr.others)}")


def goals(runs: dict[Side, SideRun], rows: list[dict[str, Any]]) -> list[str]:
    if set(runs) != {"project", "baseline"}:
        return []
    get = {(r["metric"], r["side"]): float(r["value"]) for r in rows}
    lines = []
    p, b = runs["project"].load, runs["baseline"].load
    p99, b99 = p.percentile(0.99), b.percentile(0.99)
    # more than 1% of deliveries missing means the true p99 is unbounded
    missing_ok = p.deliveries_missing <= 0.01 * max(p.deliveries_expected, 1)
    met = missing_ok and not math.isnan(p99) and p99 <= b99
    lines.append(
        f"p99 edit->peer: project {p99:.1f} ms vs baseline {b99:.1f} ms "
        f"({p.deliveries_missing:,} deliveries missing) -> {'MET' if met else 'NOT MET'}"
    )
    durable = runs["project"].durable or Durability(0, 0, 0, 0, 0)
    lines.append(
        f"durability: {durable.edits_logged:,} of {durable.edits:,} edits made are in the update "
        f"log ({durable.rows:,} rows); of the {durable.relayed:,} the server relayed, "
        f"{durable.relayed_logged:,} -> "
        f"{'MET' if durable.edits_logged >= durable.edits > 0 else 'NOT MET'}"
    )
    base_cpu = get.get(("server_cpu", "baseline"), 0.0)
    for metric, label in (("server_cpu", "Ray+HAProxy"), ("server_cpu_total", "incl. PostgreSQL")):
        cpu = get.get((metric, "project"), math.nan)
        ok = cpu <= 2 * base_cpu
        lines.append(
            f"server CPU ({label}): {cpu:.0f}% vs 2 x baseline {2 * base_cpu:.0f}% "
            f"({cpu / max(base_cpu, 1e-9):.1f}x) -> {'MET' if ok else 'NOT MET'}"
        )
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_dojo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dojos", type=int, default=50, help="S: dojos (rooms)")
    parser.add_argument("--participants", type=int, default=8, help="P: clients per dojo")
    parser.add_argument("--cps", type=float, default=3.0, help="K: characters/s per client")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="typing seconds not measured")
    parser.add_argument("--drain", type=float, default=5.0, help="max wait for late deliveries")
    parser.add_argument("--connect-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument(
        "--procs",
        type=int,
        default=2,
        help="load generator processes (default 2: one Node process at S=50 is ~65%% busy, "
        "and its own queueing showed up in both sides' p99)",
    )
    parser.add_argument("--side", choices=("both", "project", "baseline"), default="both")
    parser.add_argument(
        "--path",
        choices=("both", *PATHS),
        default="both",
        help="project websocket path: the gateway's own listener, Serve's proxy, or both",
    )
    parser.add_argument(
        "--restart-platform",
        action="store_true",
        help="pocdojo down && up when the running platform has no dojo-api",
    )
    parser.add_argument(
        "--keep-platform", action="store_true", help="leave a platform this run started running"
    )
    parser.add_argument(
        "--keep-actors",
        action="store_true",
        help="leave the benchmark dojos' DojoSession actors alive (killed by default)",
    )
    parser.add_argument(
        "--ws-header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="investigation only (browsers cannot send it): extra websocket handshake header "
        "on the project side, e.g. 'x-request-timeout-seconds: 0' lifts Serve's request timeout",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measured rounds per side, alternating (B P, P B, ...); figures pool every round",
    )
    parser.add_argument(
        "--timeline",
        type=Path,
        default=None,
        metavar="DIR",
        help="investigation: each generator writes every measured delivery as float64 "
        "[send time (epoch ms), latency ms, room, sender, receiver] to DIR/HHMMSS-SIDE-K.f64",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)  # fmt: skip
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("need --rounds >= 1")
    if args.dojos < 1 or args.participants < 2 or args.cps <= 0 or args.duration <= 0:
        parser.error("need --dojos >= 1, --participants >= 2, --cps > 0, --duration > 0")
    return args


def round_label(r: int, rounds: int) -> str:
    return f" (round {r + 1} of {rounds})" if rounds > 1 else ""


def run_baseline(node: str, args: argparse.Namespace, workdir: Path) -> SideRun:
    with reference_server(node, workdir) as (server, port):
        rooms = [f"bench-dojo-{i}" for i in range(args.dojos)]
        before = rss_mib([server])
        sr = run_load(
            "baseline", node, f"ws://127.0.0.1:{port}", rooms, [], args, workdir,
            lambda: {"node": lambda: [server]},
        )  # fmt: skip
    sr.rss_before_mib = before
    return sr


def run_project(
    node: str, args: argparse.Namespace, workdir: Path, tokens: list[str], path: str
) -> SideRun:
    app, ws_url = PATHS[path]
    stale = session_actor_names(None)
    if stale:
        log(f"project: retiring {len(stale)} DojoSession actors left by earlier benchmark runs")
        retire_session_actors(stale)
    log(f"project: creating {args.dojos} dojos (POST /v1/dojos)")
    ids = create_dojos(tokens[0], args.dojos)
    logged_before = count_logged(ids)
    found: dict[str, int] = {}
    replicas, _, _ = project_server_pids(ids, app)
    ingress = ingress_processes if path == "serve" else list  # the listener needs no proxy
    before = rss_mib(processes(replicas) + ingress())  # no dojo actor yet

    def groups() -> dict[str, Callable[[], list[psutil.Process]]]:
        replicas, sessions, found["actors"] = project_server_pids(ids, app)
        gateway, actors = processes(replicas), processes(sessions)
        return {
            "gateway": lambda: gateway,
            "sessions": lambda: actors,
            "ingress": ingress,
            "postgres": postgres_backends,
            "ray_system": ray_system_processes,
        }

    try:
        sr = run_load(
            "project", node, ws_url, [f"{i}/sync" for i in ids], tokens, args, workdir, groups
        )
        sr.rss_before_mib = before
        log("project: waiting for the update log to catch up")
        sr.durable = wait_durable(ids, logged_before, sr.load.own_clocks)
    finally:
        end_dojos(tokens[0], ids)
        if not args.keep_actors:
            time.sleep(2.0)  # the clients are gone: let the gateway tell the actors
            retired = retire_session_actors(session_actor_names(ids))
    sr.notes.append(
        f"sessions hosted by: {get_settings().dojo_session_host}; "
        f"{found.get('actors', 0)} DojoSession actors found for {args.dojos} dojos; "
        + (
            f"dojo-api replicas {dojo_api_replicas()}; ingress HAProxy -> Serve"
            if path == "serve"
            else "DojoGateway listener (no proxy)"
        )
    )
    if not args.keep_actors:
        sr.retired = retired
        sr.notes.append(
            f"after the run: {retired.actors} dojo actors killed (--keep-actors keeps them); "
            f"they still counted {retired.connections} connections and {retired.pending} "
            "unflushed updates although every client had left"
        )
    return sr


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    started = time.monotonic()
    case = f"s{args.dojos}_p{args.participants}_k{args.cps:g}"
    # Where the platform runs dojo sessions (its Ray head got the settings as environment
    # at `pocdojo up`): POCDOJO_DOJO_SESSION_HOST=actor ... --restart-platform measures the
    # one-Ray-actor-per-dojo form.
    hosting = get_settings().dojo_session_host
    if hosting != "gateway":
        case += f"_sessions_{hosting}"
    if args.ws_header:
        case += "_with_headers"
        log(f"WARNING: project clients send {args.ws_header}: not what a browser can do")
    title = (
        f"{args.dojos} dojos x {args.participants} participants x {args.cps:g} chars/s, "
        f"{args.duration:g}s measured after {args.warmup:g}s warm-up"
        + (f", {args.rounds} rounds per side pooled" if args.rounds > 1 else "")
    )
    try:
        info = machine()
        node = ensure_node_modules()
        log(f"{case}: {title}")
        runs: dict[Side, SideRun] = {}
        projects: dict[str, SideRun] = {}
        paths = list(PATHS) if args.path == "both" else [args.path]
        baselines: list[SideRun] = []
        project_rounds: dict[str, list[SideRun]] = {path: [] for path in paths}
        with tempfile.TemporaryDirectory(prefix="bench-dojo-") as tmp:
            workdir = Path(tmp)

            def baseline_round(label: str) -> None:
                warn_if_busy()
                log(f"baseline{label}: reference y-websocket server")
                baselines.append(run_baseline(node, args, workdir))

            if args.side == "baseline":
                for r in range(args.rounds):
                    baseline_round(round_label(r, args.rounds))
            else:
                # Every round on the same machine: the platform is up (idle between its own
                # rounds) while the reference server runs too, and the order alternates
                # (baseline first in even rounds) so drift of the machine hits both sides.
                with platform_up(args.restart_platform, args.keep_platform):
                    tokens = [get_token(email) for email in TOKEN_EMAILS]
                    for r in range(args.rounds):
                        label = round_label(r, args.rounds)
                        if args.side == "both" and r % 2 == 0:
                            baseline_round(label)
                        for path in paths:
                            warn_if_busy()
                            log(f"project ({path}){label}: sessions via {PATHS[path][1]}")
                            project_rounds[path].append(
                                run_project(node, args, workdir, tokens, path)
                            )
                        if args.side == "both" and r % 2 == 1:
                            baseline_round(label)
        if baselines:
            runs["baseline"] = pooled(baselines)
        for path, side_runs in project_rounds.items():
            if side_runs:
                projects[path] = pooled(side_runs)
        rows: list[dict[str, Any]] = []
        for path in paths or [""]:
            both = dict(runs)
            if path in projects:
                both["project"] = projects[path]
            path_case = f"{case}:{path}" if path in projects else case
            path_rows = build_rows(
                path_case, args.dojos, {s: both[s] for s in ("project", "baseline") if s in both}
            )
            rows += path_rows
            print_report(info, path_case, title, path_rows, both)
            for line in goals(both, path_rows):
                print(line)
        print(f"run time {time.monotonic() - started:.0f}s")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(rows, indent=1) + "\n")
        log(f"wrote {args.output}")
    except BenchError as exc:
        log(f"ERROR: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""make bench-dojo-cpu: the server CPU one typing edit costs, the dojo gateway vs the reference
y-websocket server, under the same deterministic load.

    .venv/bin/python -m loadtests.bench_dojo_cpu [--dojos 50] [--participants 8] [--rate 1200]
                                                  [--edits 24000] [--rounds 3]

`make bench-dojo` measures latency end to end, with Node clients that share the two cores with
the server; its CPU figures move by +-10 % from round to round with the machine and the
clients' timing. This one isolates the server's CPU per edit, to compare two versions of the
edit path or the two servers: one Python process drives raw websocket clients. Each client's
edits are made beforehand on its own pycrdt document (the dojo's initial state, then random
inserts into ``main.py``) and sent as pre-masked frames, round robin in a shuffled order at a
fixed total rate; every socket is drained without being parsed. The figure is the server
process's CPU time (``/proc/<pid>/stat``) over the sending window divided by the edits.

Sides, alternating round by round: "project", a gateway process started from this checkout
(``pocdojo.gateway.server`` on uvloop, the code a DojoGateway replica runs, without Ray
around it) on a free port, hosting the dojos' sessions and logging every update to
PostgreSQL; "baseline", the reference server of npm ``y-websocket@1`` (``bin/server.js``, in
memory). The reference also echoes each edit to its sender: 8 writes per edit at P=8, the
project 7. Needs the platform for tokens and dojos (started and stopped if it is not up).

Writes ``bench-results/dojo-cpu.json``: rows ``{"case", "metric", "value", "unit", "side"}``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from pycrdt import Doc, Map, Text, TransactionEvent

from loadtests import bench_dojo as dojo_bench
from pocdojo.engine.protocol import SyncStep1, SyncStep2, SyncUpdate, decode, encode

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = "import uvloop; uvloop.install(); from pocdojo.gateway.server import main; main()"


def log(message: str) -> None:
    print(f"[bench-dojo-cpu] {message}", file=sys.stderr, flush=True)


def masked(payload: bytes) -> bytes:
    """A client's binary frame (masked, as RFC 6455 requires of clients)."""
    key = os.urandom(4)
    size = len(payload)
    head = bytes((0x82, 0x80 | size)) if size < 126 else bytes((0x82, 0xFE)) + size.to_bytes(2)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def server_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """The payloads of the whole (unmasked) server frames at the start of ``buf``, and the rest."""
    out, i = [], 0
    while len(buf) - i >= 2:
        size, start = buf[i + 1] & 0x7F, i + 2
        if size >= 126:
            width = 2 if size == 126 else 8
            if len(buf) - start < width:
                break
            size, start = int.from_bytes(buf[start : start + width]), start + width
        if len(buf) - start < size:
            break
        out.append(buf[start : start + size])
        i = start + size
    return out, buf[i:]


class Client:
    """A raw websocket client: synced once through the Yjs protocol, then frames only."""

    def __init__(self, port: int, path: str, create_file: bool, rng: random.Random) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self._recv()
        head, _, buf = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"{path}: {head.decode(errors='replace')}")
        self.doc: Doc[Any] = Doc()
        self.files: Map[Any] = self.doc.get("files", type=Map)
        self.sock.sendall(masked(encode(SyncStep1(b"\x00"))))  # both servers answer SyncStep2
        while True:
            payloads, buf = server_frames(buf)
            if any(self._apply(p) for p in payloads):
                break
            buf += self._recv()
        if "main.py" not in self.files:
            if not create_file:
                raise RuntimeError(f"{path}: no main.py")
            self.sock.sendall(masked(encode(SyncUpdate(self._edit(Text("# starter\n" * 3))))))
            time.sleep(0.05)  # in the server's document before the room's next client syncs
        self.rng = rng
        self.frames: list[bytes] = []

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed the connection")
        return data

    def _apply(self, payload: bytes) -> bool:
        message = decode(payload)
        if isinstance(message, SyncStep2):
            self.doc.apply_update(message.update)
            return True
        return False

    def _edit(self, text: Text | None = None, index: int = 0, char: str = "") -> bytes:
        updates: list[bytes] = []

        def made(event: TransactionEvent) -> None:
            updates.append(event.update)

        subscription = self.doc.observe(made)
        if text is not None:
            self.files["main.py"] = text
        else:
            self.files["main.py"].insert(index, char)
        self.doc.unobserve(subscription)
        return updates[0]

    def prepare(self, edits: int) -> None:
        for _ in range(edits):
            index = self.rng.randint(0, len(self.files["main.py"]))
            update = self._edit(index=index, char=self.rng.choice("abcdefghij \n"))
            self.frames.append(masked(encode(SyncUpdate(update))))


def drive(
    pid: int, port: int, paths: list[list[str]], args: argparse.Namespace, seed: int
) -> dict[str, float]:
    """Connect, prepare, send ``args.edits`` edits at ``args.rate``; the server's CPU per edit."""
    rng = random.Random(seed)
    clients: list[Client] = []
    per_client = args.edits // (len(paths) * args.participants) + 1
    for room in paths:
        for k, path in enumerate(room):
            clients.append(Client(port, path, create_file=k == 0, rng=rng))
    for client in clients:
        client.prepare(per_client)
    selector = selectors.DefaultSelector()
    for client in clients:
        client.sock.setblocking(False)
        selector.register(client.sock, selectors.EVENT_READ)
    received = 0

    def drain(timeout: float) -> None:
        nonlocal received
        for key, _ in selector.select(timeout):
            with contextlib.suppress(BlockingIOError):
                received += len(key.fileobj.recv(1 << 18))  # type: ignore[union-attr]

    settle = time.monotonic() + 1.0
    while time.monotonic() < settle:
        drain(0.05)
    order = [
        (i, j) for j in range(per_client) for i in rng.sample(range(len(clients)), len(clients))
    ]
    order = order[: args.edits]
    received = 0
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    due = wall0
    for i, j in order:
        while (now := time.monotonic()) < due:
            drain(due - now)
        clients[i].sock.send(clients[i].frames[j])
        due += 1.0 / args.rate
    end = time.monotonic() + 1.0  # the last deliveries
    while time.monotonic() < end:
        drain(0.05)
    cpu1, wall1 = cpu_seconds(pid), time.monotonic()
    for client in clients:
        client.sock.close()
    return {
        "us_per_edit": (cpu1 - cpu0) / len(order) * 1e6,
        "cpu_percent": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "received_kib": received / 1024,
        "rss_mib": dojo_bench.rss_mib([psutil.Process(pid)]),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def gateway() -> Iterator[tuple[int, int]]:
    port = dojo_bench.free_port()
    env = dict(
        os.environ,
        POCDOJO_DOJO_GATEWAY_PORT=str(port),
        POCDOJO_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-c", GATEWAY], env=env, stdout=out, stderr=out)
        try:
            wait_for_port(port, proc)
            yield proc.pid, port
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise dojo_bench.BenchError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise dojo_bench.BenchError(f"nothing listens on {port}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_dojo_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--dojos", type=int, default=50)
    parser.add_argument("--participants", type=int, default=8)
    parser.add_argument("--rate", type=float, default=1200.0, help="edits/s, all clients")
    parser.add_argument("--edits", type=int, default=24_000, help="edits measured per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side, alternating")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results" / "dojo-cpu.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    node = dojo_bench.ensure_node_modules()
    case = f"s{args.dojos}_p{args.participants}_r{args.rate:g}"
    try:
        with dojo_bench.platform_up(restart=False, keep=False):
            token = dojo_bench.get_token(dojo_bench.TOKEN_EMAILS[0])
            with (
                gateway() as project,
                tempfile.TemporaryDirectory() as tmp,
                dojo_bench.reference_server(node, Path(tmp)) as (ref, ref_port),
            ):
                results = rounds(args, token, project, (ref.pid, ref_port))
    except dojo_bench.BenchError as exc:
        log(f"ERROR: {exc}")
        return 2
    rows = report(case, args, results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=1) + "\n")
    log(f"wrote {args.output}")
    return 0


def rounds(
    args: argparse.Namespace, token: str, project: tuple[int, int], baseline: tuple[int, int]
) -> dict[str, list[dict[str, float]]]:
    """Each side ``args.rounds`` times, alternating (project first in even rounds)."""
    results: dict[str, list[dict[str, float]]] = {"project": [], "baseline": []}
    for r in range(args.rounds):
        for side in ("baseline", "project") if r % 2 else ("project", "baseline"):
            if side == "project":
                ids = dojo_bench.create_dojos(token, args.dojos)
                rooms = [[f"/v1/dojos/{i}/sync?token={token}"] * args.participants for i in ids]
                row = drive(*project, rooms, args, seed=r)
                dojo_bench.end_dojos(token, ids)
            else:
                rooms = [[f"/cpu-{r}-{d}"] * args.participants for d in range(args.dojos)]
                row = drive(*baseline, rooms, args, seed=r)
            results[side].append(row)
            log(
                f"round {r + 1} {side}: {row['us_per_edit']:.1f} us/edit, "
                f"{row['cpu_percent']:.1f} % of a core"
            )
    return results


def report(
    case: str, args: argparse.Namespace, results: dict[str, list[dict[str, float]]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    metrics = [
        ("server CPU per edit (median of rounds)", "us_per_edit", "us"),
        ("server CPU", "cpu_percent", "% 1 core"),
        ("server RSS at the end", "rss_mib", "MiB"),
        ("bytes the clients received", "received_kib", "KiB"),
    ]
    print(
        f"case {case}: {args.dojos} dojos x {args.participants} clients, {args.rate:g} edits/s, "
        f"{args.edits} edits per round, {args.rounds} rounds per side"
    )
    print(f"{'metric':40} {'unit':10} {'project':>10} {'baseline':>10}")
    for label, key, unit in metrics:
        values = {side: statistics.median(r[key] for r in runs) for side, runs in results.items()}
        print(f"{label:40} {unit:10} {values['project']:10.1f} {values['baseline']:10.1f}")
        for side, value in values.items():
            rows.append(
                {"case": case, "metric": key, "value": round(value, 2), "unit": unit, "side": side}
            )
    for side, runs in results.items():
        print(
            f"note ({side}): us per edit, round by round: "
            + ", ".join(f"{r['us_per_edit']:.1f}" for r in runs)
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())

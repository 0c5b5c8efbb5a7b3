"""Making ``pocdojo_*`` metrics scrapeable when a node runs many processes.

Every Ray actor and Serve replica is a process of its own, and ``prometheus_client`` keeps
metric values per process: a dojo session actor's ``pocdojo_dojos_live`` would be invisible
to the ``/metrics`` of the poc-api replica. With ``POCDOJO_METRICS_DIR`` set (the same
directory for every pocdojo process of a node, e.g. an ``emptyDir`` on a Ray pod; `pocdojo
up` sets it), values live in ``prometheus_client``'s multiprocess files there and any
process's ``/metrics`` (`render_latest`) reports the node's total: counters and histograms
summed over processes, gauges per process with a ``pid`` label (the alert rules aggregate
with ``sum``/``max``). Gauges of processes that are gone are dropped at scrape time.

`enable_from_env` must run before the first metric object is created: `pocdojo.api.metrics`
(imported by `pocdojo.metrics`) calls it first thing.
"""

from __future__ import annotations

import glob
import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    values,
)

ENV = "POCDOJO_METRICS_DIR"
_GAUGE_FILE = re.compile(r"^gauge_[a-z]+_(?P<pid>\d+)\.db$")
_enabled_dir: str | None = None
CONTENT_TYPE = CONTENT_TYPE_LATEST


def enable_from_env() -> str | None:
    """Switch this process to multiprocess values if ``POCDOJO_METRICS_DIR`` is set; the
    directory in use (created if missing), or None."""
    global _enabled_dir
    if _enabled_dir is not None:
        return _enabled_dir
    path = os.environ.get(ENV)
    if not path:
        return None
    os.makedirs(path, exist_ok=True)
    # prometheus_client's mmap values find their directory through this variable.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _enabled_dir = path
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_dead_gauges(path: str) -> int:
    """Delete the gauge files of processes that no longer run (their last values would
    otherwise be reported forever); counters and histograms stay, so totals never drop."""
    removed = 0
    for file in glob.glob(os.path.join(path, "gauge_*.db")):
        found = _GAUGE_FILE.match(os.path.basename(file))
        if found and int(found["pid"]) != os.getpid() and not _alive(int(found["pid"])):
            try:
                os.remove(file)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def render_latest() -> bytes:
    """The Prometheus text exposition of this node (multiprocess) or this process."""
    if _enabled_dir is None:
        return generate_latest(REGISTRY)
    prune_dead_gauges(_enabled_dir)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_enabled_dir)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def serve_node_metrics(host: str, port: int) -> None:
    """Serve this node's metrics (``render_latest``) on ``http://host:port/metrics`` until
    interrupted: the per-pod endpoint for nodes that run no poc-api replica."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render_latest()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer((host, port), Handler) as httpd:
        httpd.serve_forever()

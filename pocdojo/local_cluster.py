"""The local one-node Ray cluster that ``pocdojo up`` starts, and Serve deployment on it.

Traps handled here (../shared/TRAPS.md): token auth is disabled for the local cluster
only; Ray's GCS uses port 6380 because 6379 is Redis; replicas get fractional CPUs in the
Serve config; the HAProxy ingress replaces the Python proxy. Every fixed port moves with
``POCDOJO_RAY_PORT_BASE`` so that a second cluster (the end-to-end tests') can run beside
a developer's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from pocdojo.settings import Settings

# Logical CPUs for the local node: Serve replicas reserve fractions of these, so the
# number bounds how many replicas fit, not how many cores are used.
LOCAL_LOGICAL_CPUS = 8


def _haproxy_dir(settings: Settings) -> str:
    return (
        f"/tmp/haproxy-serve-{settings.ray_port_base}"
        if settings.ray_port_base
        else "/tmp/haproxy-serve"
    )


def metrics_dir(settings: Settings) -> str:
    base = settings.ray_temp_dir or tempfile.gettempdir()
    return os.path.join(base, f"pocdojo-metrics-{settings.ray_port_base}")


def ray_env(settings: Settings) -> dict[str, str]:
    base = settings.ray_port_base
    haproxy = _haproxy_dir(settings)
    env = dict(os.environ)
    env.update(
        {
            "RAY_AUTH_MODE": "disabled",  # local only: production keeps token auth on
            "RAY_SERVE_ENABLE_HA_PROXY": env.get("RAY_SERVE_ENABLE_HA_PROXY", "1"),
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": env.get("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"),
            "RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S": str(int(settings.request_timeout_s)),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(8404 + base),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(9101 + base),
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{haproxy}/haproxy.cfg",
            "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{haproxy}/admin.sock",
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": haproxy,
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{haproxy}/server-state",
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(30000 + base),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(30500 + base),
            "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(40000 + base),
            "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(40500 + base),
            "RAY_usage_stats_enabled": "0",
        }
    )
    # One directory of prometheus_client multiprocess files for every pocdojo process of
    # this node (actors, replicas): any /metrics then reports them all (docs/operations.md).
    env.setdefault("POCDOJO_METRICS_DIR", metrics_dir(settings))
    # The services read the same settings the CLI was given.
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"POCDOJO_{name.upper()}"] = str(value)
    return env


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def ray_running(settings: Settings) -> bool:
    host, _, port = settings.ray_address.rpartition(":")
    return _port_open(host, int(port))


def _dashboard(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.ray_dashboard_port}"


def start_ray(settings: Settings) -> bool:
    """Start a head node unless one answers; True if this call started it."""
    if ray_running(settings):
        return False
    _, _, port = settings.ray_address.rpartition(":")
    base = settings.ray_port_base
    command = [
        _bin("ray"),
        "start",
        "--head",
        f"--port={port}",
        f"--num-cpus={LOCAL_LOGICAL_CPUS}",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={settings.ray_dashboard_port}",
        f"--dashboard-agent-listen-port={52365 + base}",
        # Below the worker port range (10002-19999), which it may not overlap.
        f"--ray-client-server-port={10001 - base}",
        "--disable-usage-stats",
    ]
    if settings.ray_temp_dir:
        command.append(f"--temp-dir={settings.ray_temp_dir}")
    # A fresh cluster starts from empty metric files (the last one's processes are gone).
    for stale in Path(os.environ.get("POCDOJO_METRICS_DIR") or metrics_dir(settings)).glob("*.db"):
        stale.unlink(missing_ok=True)
    try:
        subprocess.run(command, env=ray_env(settings), check=True, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        # On a saturated 2-core machine the raylet can miss its start-up deadline once.
        stop_ray(settings)
        time.sleep(2.0)
        subprocess.run(command, env=ray_env(settings), check=True, stdout=subprocess.DEVNULL)
    return True


def stop_ray(settings: Settings) -> None:
    """Stop this cluster's processes (``ray stop`` would stop every cluster on the host)."""
    if not settings.ray_temp_dir:
        subprocess.run([_bin("ray"), "stop", "--force"], check=False, stdout=subprocess.DEVNULL)
        return
    import psutil

    # Every process of that cluster names its temp dir (or HAProxy dir) on its command line.
    markers = (settings.ray_temp_dir, _haproxy_dir(settings))
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if any(marker in cmdline for marker in markers):
            with contextlib.suppress(psutil.Error):
                process.kill()


def serve_config(settings: Settings, path: Path) -> dict[str, Any]:
    """The Serve config file with the HTTP host and port of these settings."""
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config.setdefault("http_options", {}).update(
        {"host": settings.serve_host, "port": settings.serve_port}
    )
    return config


def deploy(settings: Settings, path: Path) -> list[str]:
    config = serve_config(settings, path)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    try:
        subprocess.run(
            [_bin("serve"), "deploy", handle.name, "-a", _dashboard(settings)],
            env=ray_env(settings),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        os.unlink(handle.name)
    return [app["name"] for app in config["applications"]]


def application_statuses(settings: Settings) -> dict[str, str]:
    try:
        with urllib.request.urlopen(
            f"{_dashboard(settings)}/api/serve/applications/", timeout=3
        ) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return {name: app["status"] for name, app in (body.get("applications") or {}).items()}


def wait_until_running(settings: Settings, expected: list[str], timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = application_statuses(settings)
        if statuses and all(statuses.get(name) == "RUNNING" for name in expected):
            return
        failed = {n: s for n, s in statuses.items() if s in {"DEPLOY_FAILED", "UNHEALTHY"}}
        if failed:
            raise RuntimeError(f"Serve applications failed: {failed}")
        time.sleep(1.0)
    raise TimeoutError(f"Serve applications not running after {timeout_s:.0f}s: {statuses}")


def wait_for_http(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f}s")


def shutdown_serve(settings: Settings) -> None:
    subprocess.run(
        [_bin("serve"), "shutdown", "-y", "-a", _dashboard(settings)],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )

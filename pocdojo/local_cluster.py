"""The local one-node Ray cluster that ``pocdojo up`` starts, and Serve deployment on it.

Traps handled here (../shared/TRAPS.md): token auth is disabled for the local cluster
only; Ray's GCS uses port 6380 because 6379 is Redis; replicas get fractional CPUs in the
Serve config; the HAProxy ingress replaces the Python proxy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pocdojo.settings import Settings

DASHBOARD_PORT = 8265
# Logical CPUs for the local node: Serve replicas reserve fractions of these, so the
# number bounds how many replicas fit, not how many cores are used.
LOCAL_LOGICAL_CPUS = 8


def ray_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RAY_AUTH_MODE", "disabled")  # local only: production keeps token auth
    env.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
    env.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    env.setdefault("RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S", str(int(settings.request_timeout_s)))
    env.setdefault("RAY_usage_stats_enabled", "0")
    env.setdefault("RAY_SERVE_HTTP_REQUEST_MAX_RETRIES", "1")
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


def start_ray(settings: Settings) -> bool:
    """Start a head node unless one answers; True if this call started it."""
    if ray_running(settings):
        return False
    _, _, port = settings.ray_address.rpartition(":")
    subprocess.run(
        [
            _bin("ray"),
            "start",
            "--head",
            f"--port={port}",
            f"--num-cpus={LOCAL_LOGICAL_CPUS}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={DASHBOARD_PORT}",
            "--disable-usage-stats",
        ],
        env=ray_env(settings),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return True


def stop_ray() -> None:
    subprocess.run([_bin("ray"), "stop", "--force"], check=False, stdout=subprocess.DEVNULL)


def deploy(settings: Settings, config_path: Path) -> None:
    subprocess.run(
        [_bin("serve"), "deploy", str(config_path), "-a", f"http://127.0.0.1:{DASHBOARD_PORT}"],
        env=ray_env(settings),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def application_statuses() -> dict[str, str]:
    url = f"http://127.0.0.1:{DASHBOARD_PORT}/api/serve/applications/"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return {name: app["status"] for name, app in (body.get("applications") or {}).items()}


def wait_until_running(expected: list[str], timeout_s: float = 180.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = application_statuses()
        if statuses and all(statuses.get(name) == "RUNNING" for name in expected):
            return statuses
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


def shutdown_serve() -> None:
    subprocess.run(
        [_bin("serve"), "shutdown", "-y", "-a", f"http://127.0.0.1:{DASHBOARD_PORT}"],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

"""Every Ray pod serves the pocdojo_* metrics the PodMonitors scrape on ``app-metrics``
(9464): a sidecar runs `pocdojo metrics serve` over the pod's shared metrics directory, in
the pod's one process namespace, and answers with what the pod's other processes wrote.

The sidecar's command is run here for real, with the environment the manifest gives it,
over a metrics directory a separate process wrote into (as a Serve replica would).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cluster.kuberay.render import render
from cluster.tests.support import CLUSTER
from pocdojo.cli import build_parser, cmd_metrics_serve

PORT_NAME = "app-metrics"


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render()


def pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pod templates of the RayService by ``pocdojo.io/role`` (one serve group per zone:
    the last one of a role wins; they differ only by zone)."""
    (rs,) = [d for d in docs if d["kind"] == "RayService"]
    cluster = rs["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["workerGroupSpecs"]
    ]
    return {t["metadata"]["labels"]["pocdojo.io/role"]: t for t in templates}


def serving_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [
        c for c in pod["spec"]["containers"] if any(p["name"] == PORT_NAME for p in c["ports"])
    ]
    return container


def metrics_dir_volume(pod: dict[str, Any], container: dict[str, Any]) -> tuple[str, str]:
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    path = env["POCDOJO_METRICS_DIR"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    return mount["name"], path


def test_every_ray_pod_serves_app_metrics_from_the_shared_directory(docs) -> None:
    found = pods(docs)
    assert set(found) == {"ray-head", "serve-worker", "render-worker"}
    for role, pod in found.items():
        spec = pod["spec"]
        sidecar = serving_container(pod)
        ray_container = spec["containers"][0]  # KubeRay runs Ray in the first container
        assert sidecar is not ray_container, role
        (port,) = [p for p in sidecar["ports"] if p["name"] == PORT_NAME]
        assert port["containerPort"] == 9464, role

        # The command is `pocdojo metrics serve` on all interfaces, on that very port.
        command = sidecar["command"]
        assert command[0] == "pocdojo", role
        args = build_parser().parse_args(command[1:])
        assert args.func is cmd_metrics_serve, role
        assert (args.host, args.port) == ("0.0.0.0", 9464), role
        for probe in ("readinessProbe", "livenessProbe"):
            assert sidecar[probe]["httpGet"] == {"path": "/metrics", "port": PORT_NAME}

        # It reads the directory the Ray container's processes write (same emptyDir).
        volume, path = metrics_dir_volume(pod, sidecar)
        ray_mounts = {m["name"]: m["mountPath"] for m in ray_container["volumeMounts"]}
        assert ray_mounts[volume] == path, role
        (declared,) = [v for v in spec["volumes"] if v["name"] == volume]
        assert "emptyDir" in declared, role
        # Writers are Ray's processes, found by pid: one process namespace per pod.
        assert spec["shareProcessNamespace"] is True, role
        # The same user as Ray's processes: it may remove the gauge files of dead ones.
        assert (
            sidecar["securityContext"]["runAsUser"] == ray_container["securityContext"]["runAsUser"]
        )
        assert sidecar["resources"]["requests"] == sidecar["resources"]["limits"]


def test_the_ray_processes_write_where_the_sidecar_reads(docs) -> None:
    config_maps = [d for d in docs if d["kind"] == "ConfigMap"]
    env = {k: v for cm in config_maps for k, v in cm.get("data", {}).items()}
    for role, pod in pods(docs).items():
        _, path = metrics_dir_volume(pod, serving_container(pod))
        assert env["POCDOJO_METRICS_DIR"] == path, role
        ray_container = pod["spec"]["containers"][0]
        sources = {
            s["configMapRef"]["name"] for s in ray_container["envFrom"] if "configMapRef" in s
        }
        assert {cm["metadata"]["name"] for cm in config_maps} & sources, role


def test_pod_monitors_scrape_app_metrics_on_every_role_and_the_policy_lets_them() -> None:
    monitors = list(
        yaml.safe_load_all((CLUSTER / "observability" / "podmonitors.yaml").read_text())
    )
    scraped: set[str] = set()
    for monitor in monitors:
        endpoints = monitor["spec"]["podMetricsEndpoints"]
        if not any(
            e["port"] == PORT_NAME and e.get("path", "/metrics") == "/metrics" for e in endpoints
        ):
            continue
        selector = monitor["spec"]["selector"]
        scraped.update(selector.get("matchLabels", {}).values())
        for expression in selector.get("matchExpressions", []):
            scraped.update(expression["values"])
    assert scraped >= {"ray-head", "serve-worker", "render-worker"}


def test_network_policy_admits_prometheus_to_app_metrics(docs) -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    monitoring = policies["monitoring-and-operator"]
    ports = {
        p["port"]
        for rule in monitoring["ingress"]
        if any(
            f.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            == "monitoring"
            for f in rule["from"]
        )
        for p in rule["ports"]
    }
    assert {8080, 9464} <= ports


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_sidecar_command_serves_what_another_process_wrote(docs, tmp_path: Path) -> None:
    pod = pods(docs)["render-worker"]
    sidecar = serving_container(pod)
    metrics_dir = tmp_path / "pocdojo-metrics"
    env = {
        **os.environ,
        **{e["name"]: e["value"] for e in sidecar["env"]},
        "POCDOJO_METRICS_DIR": str(metrics_dir),  # the emptyDir, here
    }
    # A writer process of the "pod": a finished export attempt, as a Ray task records it.
    writer = (
        "from pocdojo.observability.jobs import JobKind, Outcome, record_attempt\n"
        "record_attempt(JobKind.EXPORT, Outcome.SUCCEEDED, 2.5)\n"
    )
    subprocess.run([sys.executable, "-c", writer], env=env, check=True, timeout=60)

    port = _free_port()
    args = [a if a != "9464" else str(port) for a in sidecar["command"][1:]]
    args = [a if a != "0.0.0.0" else "127.0.0.1" for a in args]
    server = subprocess.Popen([str(Path(sys.executable).parent / "pocdojo"), *args], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except httpx.HTTPError:
                assert server.poll() is None, "pocdojo metrics serve exited"
                assert time.monotonic() < deadline, "pocdojo metrics serve did not answer"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert response.status_code == 200
    text = response.text
    assert 'pocdojo_render_jobs_total{kind="export",outcome="succeeded"} 1.0' in text
    assert 'pocdojo_render_job_duration_seconds_count{kind="export"} 1.0' in text

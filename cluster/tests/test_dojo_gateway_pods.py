"""Pods that can run dojo gateways (the head and the serve groups) tell each gateway process
the address other gateways reach it on: sockets of a dojo land on any replica and are piped
to the one that owns the dojo (its internal listener, on the pod IP)."""

from __future__ import annotations

from typing import Any

from cluster.kuberay.render import render
from cluster.tests.test_app_metrics_endpoint import pods
from pocdojo.settings import Settings


def test_serve_pods_export_their_ip_as_the_gateway_internal_host() -> None:
    templates = pods(render())
    assert "dojo_gateway_internal_host" in Settings.model_fields
    checked = 0
    for role, pod in templates.items():
        ray: dict[str, Any] = pod["spec"]["containers"][0]
        if ray["name"] not in ("ray-head", "ray-worker") or role == "render-worker":
            continue
        env = {e["name"]: e for e in ray.get("env", [])}
        found = env.get("POCDOJO_DOJO_GATEWAY_INTERNAL_HOST")
        assert found is not None, role
        assert found["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", role
        checked += 1
    assert checked >= 2  # the head and at least one serve group

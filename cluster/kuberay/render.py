"""Render the production Kubernetes manifests.

``python -m cluster.kuberay.render [--outputs cdk-outputs.json] [--image IMAGE] > all.yaml``

- ``serveConfigV2`` is derived from ``cluster/kuberay/serve-config.yaml`` (the file the local
  ``pocdojo up`` deploys) with the overlay ``production.yaml`` and the timeouts of
  ``cluster/config/topology.py``: same applications, import paths and routes, production
  replica counts and timeouts.
- ``${NAME}`` placeholders in ``manifests/*.yaml`` come from the CDK stack outputs (endpoints,
  ARNs) and the topology. Without ``--outputs`` example values are used (tests, dry runs).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import string
import sys
from pathlib import Path
from typing import Any

import yaml

from cluster.config import topology

HERE = Path(__file__).resolve().parent
LOCAL_SERVE_CONFIG = HERE / "serve-config.yaml"
OVERLAY = HERE / "production.yaml"
MANIFESTS = HERE / "manifests"
RAYSERVICE_NAME = "pocdojo"

_UUID = "00000000-0000-0000-0000-000000000000"
#: Values used when no stack outputs are given (documentation and tests); real deploys pass
#: ``--outputs`` (``cdk deploy --outputs-file``).
EXAMPLE_OUTPUTS = {
    "RedisEndpoint": "master.pocdojo-redis.abc123.euw1.cache.amazonaws.com",
    "PostgresEndpoint": f"pocdojo.abc123.{topology.REGION}.rds.amazonaws.com",
    "SearchEndpoint": f"vpc-prod-pocdojo-search-abc123.{topology.REGION}.es.amazonaws.com",
    "CertificateArn": f"arn:aws:acm:{topology.REGION}:{topology.ACCOUNT}:certificate/{_UUID}",
    "OidcIssuer": f"https://cognito-idp.{topology.REGION}.amazonaws.com/{topology.REGION}_Example01",
    "WebAclArn": (
        f"arn:aws:wafv2:{topology.REGION}:{topology.ACCOUNT}:regional/webacl/pocdojo/{_UUID}"
    ),
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``override`` replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def production_serve_config(
    local: dict[str, Any] | None = None, overlay: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The production Serve config derived from the local one (see module docstring)."""
    if local is None:
        local = yaml.safe_load(LOCAL_SERVE_CONFIG.read_text())
    if overlay is None:
        overlay = yaml.safe_load(OVERLAY.read_text())
    timeouts = topology.TIMEOUTS
    config = copy.deepcopy(local)
    config["proxy_location"] = "EveryNode"
    config["http_options"] = _merge(
        _merge(config.get("http_options", {}), overlay.get("http_options", {})),
        {
            "keep_alive_timeout_s": timeouts.serve_keep_alive_s,
            "request_timeout_s": timeouts.serve_request_timeout_s,
        },
    )
    excluded = set(overlay.get("exclude_applications", []))
    defaults = overlay.get("deployment_defaults", {})
    per_deployment = overlay.get("deployments", {})
    applications = []
    for app in config["applications"]:
        if app["name"] in excluded:
            continue
        deployments = []
        for deployment in app.get("deployments", []):
            merged = _merge(deployment, defaults)
            merged = _merge(merged, per_deployment.get(deployment["name"], {}))
            merged.pop("num_replicas", None)
            merged["graceful_shutdown_timeout_s"] = timeouts.graceful_shutdown_s
            deployments.append(merged)
        applications.append({**app, "deployments": deployments})
    config["applications"] = applications
    return config


def _values(outputs: dict[str, str], image: str) -> dict[str, str]:
    t = topology.TIMEOUTS
    return {
        **outputs,
        "NAMESPACE": topology.NAMESPACE,
        "IMAGE": image,
        "RAY_VERSION": "2.60.0",
        "API_DOMAIN": topology.API_DOMAIN,
        "VPC_CIDR": topology.VPC_CIDR,
        "ACCOUNT": topology.ACCOUNT,
        "REGION": topology.REGION,
        "CLUSTER_NAME": topology.CLUSTER_NAME,
        "ALB_IDLE_S": str(t.alb_idle_s),
        "DEREGISTRATION_DELAY_S": str(t.deregistration_delay_s),
        "CLUSTER_DELETION_DELAY_S": str(t.cluster_deletion_delay_s),
        "POD_TERMINATION_GRACE_S": str(t.pod_termination_grace_s),
    }


def _serve_worker_group(template: dict[str, Any], zone: str) -> dict[str, Any]:
    group = copy.deepcopy(template)
    name = topology.serve_group_name(zone)
    group["groupName"] = name
    group["minReplicas"] = topology.SERVE_WORKERS_PER_ZONE_MIN
    group["maxReplicas"] = topology.SERVE_WORKERS_PER_ZONE_MAX
    group["replicas"] = max(group.get("replicas", 1), topology.SERVE_WORKERS_PER_ZONE_MIN)
    pod = group["template"]
    pod["metadata"]["labels"]["pocdojo.io/zone"] = zone
    pod["spec"]["nodeSelector"]["topology.kubernetes.io/zone"] = zone
    return group


def render(outputs: dict[str, str] | None = None, image: str | None = None) -> list[dict[str, Any]]:
    """All production manifests as Kubernetes objects, in apply order."""
    values = _values(
        outputs or EXAMPLE_OUTPUTS,
        image or f"{topology.ACCOUNT}.dkr.ecr.{topology.REGION}.amazonaws.com/pocdojo:latest",
    )
    documents: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        text = string.Template(path.read_text()).substitute(values)
        documents.extend(d for d in yaml.safe_load_all(text) if d)
    for doc in documents:
        if doc["kind"] == "RayService":
            spec = doc["spec"]
            spec["serveConfigV2"] = yaml.safe_dump(production_serve_config(), sort_keys=False)
            groups = spec["rayClusterConfig"]["workerGroupSpecs"]
            serve_template = next(g for g in groups if g["groupName"] == "serve")
            zone_groups = [
                _serve_worker_group(serve_template, zone) for zone in topology.AVAILABILITY_ZONES
            ]
            spec["rayClusterConfig"]["workerGroupSpecs"] = zone_groups + [
                g for g in groups if g["groupName"] != "serve"
            ]
    return documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", help="cdk deploy --outputs-file JSON")
    parser.add_argument("--image", help="the PoC Dojo Ray image")
    args = parser.parse_args(argv)
    outputs: dict[str, str] | None = None
    if args.outputs:
        stacks = json.loads(Path(args.outputs).read_text())
        outputs = {}
        for stack_outputs in stacks.values():
            outputs.update({re.sub(r"[^A-Za-z0-9]", "", k): v for k, v in stack_outputs.items()})
        outputs = {k: outputs[k] for k in EXAMPLE_OUTPUTS}
    yaml.safe_dump_all(render(outputs, args.image), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

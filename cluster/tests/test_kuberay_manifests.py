"""The rendered Kubernetes manifests: schemas (KubeRay's CRD, Kubernetes' own, strict) and the
high-availability rules that span files."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cluster.config import topology
from cluster.kuberay.render import render
from cluster.tests.support import CLUSTER

CRD_FILE = Path("shared") / "vendor" / "kuberay-v1.7.0" / "ray.io_rayservices.yaml"


def _find_crd() -> Path:
    """KubeRay's CRD, read in place from the shared vendor folder beside the checkout (never
    copied into the repo). A clone elsewhere (CI clones into a scratch directory) finds it
    beside the repository it was cloned from; POCDOJO_KUBERAY_CRD names it explicitly."""
    if explicit := os.environ.get("POCDOJO_KUBERAY_CRD"):
        return Path(explicit)
    repo = Path(__file__).resolve().parents[2]
    candidates = [repo.parent / CRD_FILE]
    origin = subprocess.run(
        ["git", "-C", str(repo), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and "://" not in origin:
        candidates.append(Path(origin).expanduser().resolve().parent / CRD_FILE)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"KubeRay's CRD not found at {', '.join(map(str, candidates))}: "
        "set POCDOJO_KUBERAY_CRD to ray.io_rayservices.yaml of KubeRay v1.7.0"
    )


CRD = _find_crd()


def strict_schema(node: Any) -> Any:
    """The CRD's OpenAPI schema as JSON Schema that rejects unknown fields, like the API
    server's strict field validation: every object with declared properties is closed,
    unless Kubernetes marks it x-kubernetes-preserve-unknown-fields."""
    if isinstance(node, dict):
        out = {k: strict_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
        if node.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict_schema(v) for v in node]
    return node


@pytest.fixture(scope="module")
def rayservice_schema() -> jsonschema.protocols.Validator:
    crd = yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict_schema(version["schema"]["openAPIV3Schema"])
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)  # once: the CRD's schema is large
    return validator_class(schema)


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render()


def kind(docs: list[dict[str, Any]], k: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == k]


def rayservice(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (rs,) = kind(docs, "RayService")
    return rs


def test_rayservice_validates_against_kuberay_crd(docs, rayservice_schema) -> None:
    rayservice_schema.validate(rayservice(docs))


def test_crd_validation_rejects_unknown_fields(docs, rayservice_schema) -> None:
    bad = copy.deepcopy(rayservice(docs))
    bad["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParms"] = {}
    with pytest.raises(jsonschema.ValidationError, match="rayStartParms"):
        rayservice_schema.validate(bad)
    bad = copy.deepcopy(rayservice(docs))
    bad["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0][
        "resource"
    ] = {}
    with pytest.raises(jsonschema.ValidationError):
        rayservice_schema.validate(bad)


def test_standard_objects_validate_strictly(docs) -> None:
    standard = [
        d
        for d in docs
        if "." not in d["apiVersion"].split("/")[0]
        or d["apiVersion"].startswith(("networking.k8s.io", "policy"))
    ]
    assert {d["kind"] for d in standard} >= {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "PodDisruptionBudget",
        "Ingress",
        "NetworkPolicy",
    }
    for doc in standard:
        kubernetes_validate.validate(doc, topology.KUBERNETES_VERSION + ".0", strict=True)
    typo = copy.deepcopy(kind(docs, "Ingress")[0])
    typo["spec"]["ingressClass"] = "alb"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, topology.KUBERNETES_VERSION + ".0", strict=True)


def test_nothing_left_unrendered(docs) -> None:
    assert "${" not in yaml.safe_dump_all(docs)


def test_one_serve_worker_group_per_zone(docs) -> None:
    groups = rayservice(docs)["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    serve = [
        g
        for g in groups
        if g["template"]["metadata"]["labels"]["pocdojo.io/role"] == "serve-worker"
    ]
    zones = [g["template"]["spec"]["nodeSelector"]["topology.kubernetes.io/zone"] for g in serve]
    assert sorted(zones) == sorted(topology.AVAILABILITY_ZONES)
    for g in serve:
        assert g["minReplicas"] >= 1
        assert g["replicas"] >= 1
    assert any(g["groupName"] == "render" for g in groups)


def test_head_runs_no_work_and_is_not_a_serve_target(docs) -> None:
    spec = rayservice(docs)["spec"]
    assert spec["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert spec["excludeHeadPodFromServeSvc"] is True


def test_every_container_requests_equal_limits(docs) -> None:
    cluster = rayservice(docs)["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["workerGroupSpecs"]
    ]
    for pod in pods:
        for container in pod["spec"]["containers"]:
            res = container["resources"]
            assert res["requests"] == res["limits"], container["name"]
            assert {"cpu", "memory"} <= set(res["limits"])


def test_gcs_fault_tolerance_on_elasticache_tls(docs) -> None:
    ft = rayservice(docs)["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert ft["redisAddress"].startswith("rediss://")
    assert ft["redisPassword"]["valueFrom"]["secretKeyRef"]["key"]


def pod_labels(docs: list[dict[str, Any]]) -> list[dict[str, str]]:
    cluster = rayservice(docs)["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["workerGroupSpecs"]
    ]
    return [p["metadata"]["labels"] for p in pods]


def test_disruption_budgets_select_our_own_pod_labels(docs) -> None:
    labels = pod_labels(docs)
    pdbs = kind(docs, "PodDisruptionBudget")
    assert pdbs
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert not any(k.startswith("ray.io/") for k in selector), "use labels of our own"
        matched = [ls for ls in labels if all(ls.get(k) == v for k, v in selector.items())]
        assert matched, f"{pdb['metadata']['name']} selects no pod"
    covered = {
        ls["pocdojo.io/role"]
        for ls in labels
        for pdb in pdbs
        if all(ls.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    }
    assert {"serve-worker", "render-worker"} <= covered


def annotations(docs: list[dict[str, Any]]) -> dict[str, str]:
    (ingress,) = kind(docs, "Ingress")
    return ingress["metadata"]["annotations"]


def attributes(value: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in value.split(","))


def test_ingress_for_the_aws_load_balancer_controller(docs) -> None:
    a = annotations(docs)
    assert a["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert a["alb.ingress.kubernetes.io/wafv2-acl-arn"].startswith("arn:aws:wafv2:")
    assert a["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
    assert json.loads(a["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]
    (ingress,) = kind(docs, "Ingress")
    paths = {
        p["path"]: p["backend"]["service"] for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    # KubeRay names the Serve service <rayservice>-serve-svc
    assert paths["/"]["name"] == f"{rayservice(docs)['metadata']['name']}-serve-svc"
    # dojo websockets go to the gateway's own listener on the Serve workers
    services = {s["metadata"]["name"]: s for s in kind(docs, "Service")}
    worker_ports = {
        port["name"]: port["containerPort"]
        for g in rayservice(docs)["spec"]["rayClusterConfig"]["workerGroupSpecs"]
        if g["template"]["metadata"]["labels"]["pocdojo.io/role"] == "serve-worker"
        for c in g["template"]["spec"]["containers"]
        for port in c["ports"]
    }
    for path in ("/v1/dojos/*/sync", "/v1/dojos/*/events"):
        backend = paths[path]
        service = services[backend["name"]]["spec"]
        assert service["selector"] == {"pocdojo.io/role": "serve-worker"}
        (port,) = [p for p in service["ports"] if p["port"] == backend["port"]["number"]]
        assert worker_ports[port["targetPort"]] == port["port"]


def test_timeouts_agree_across_alb_serve_and_kuberay(docs) -> None:
    lb = attributes(annotations(docs)["alb.ingress.kubernetes.io/load-balancer-attributes"])
    tg = attributes(annotations(docs)["alb.ingress.kubernetes.io/target-group-attributes"])
    idle = int(lb["idle_timeout.timeout_seconds"])
    deregistration = int(tg["deregistration_delay.timeout_seconds"])
    spec = rayservice(docs)["spec"]
    serve = yaml.safe_load(spec["serveConfigV2"])
    assert idle >= 120, "websocket-friendly idle timeout"
    assert serve["http_options"]["keep_alive_timeout_s"] > idle
    assert spec["rayClusterDeletionDelaySeconds"] >= deregistration
    cluster = spec["rayClusterConfig"]
    for group in cluster["workerGroupSpecs"]:
        grace = group["template"]["spec"]["terminationGracePeriodSeconds"]
        for app in serve["applications"]:
            for d in app["deployments"]:
                assert d["graceful_shutdown_timeout_s"] < grace


def test_network_policies_default_deny_and_open_serve_to_the_vpc(docs) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in kind(docs, "NetworkPolicy")}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    alb = policies["alb-to-serve"]
    assert alb["ingress"][0]["from"][0]["ipBlock"]["cidr"] == topology.VPC_CIDR
    assert alb["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 8000},  # Serve proxy
        {"protocol": "TCP", "port": 8001},  # dojo gateway
    ]
    labels = pod_labels(docs)
    for name, spec in policies.items():
        selector = spec["podSelector"].get("matchLabels", {})
        assert any(all(ls.get(k) == v for k, v in selector.items()) for ls in labels), name


def test_service_accounts_carry_the_irsa_roles(docs) -> None:
    accounts = {sa["metadata"]["name"]: sa for sa in kind(docs, "ServiceAccount")}
    for name, role in topology.SERVICE_ACCOUNT_ROLES.items():
        arn = accounts[name]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert arn == f"arn:aws:iam::{topology.ACCOUNT}:role/{role}"
    cluster = rayservice(docs)["spec"]["rayClusterConfig"]
    used = {g["template"]["spec"]["serviceAccountName"] for g in cluster["workerGroupSpecs"]}
    assert used <= set(accounts)


def test_pod_monitors_select_pods_that_expose_their_ports(docs) -> None:
    monitors = list(
        yaml.safe_load_all((CLUSTER / "observability" / "podmonitors.yaml").read_text())
    )
    cluster = rayservice(docs)["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["workerGroupSpecs"]
    ]
    for monitor in monitors:
        selector = monitor["spec"]["selector"]
        selected = [
            p
            for p in pods
            if all(
                p["metadata"]["labels"].get(k) == v
                for k, v in selector.get("matchLabels", {}).items()
            )
            and all(
                p["metadata"]["labels"].get(e["key"]) in e["values"]
                for e in selector.get("matchExpressions", [])
            )
        ]
        assert selected, monitor["metadata"]["name"]
        for pod in selected:
            ports = {port["name"] for c in pod["spec"]["containers"] for port in c["ports"]}
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                assert endpoint["port"] in ports, (monitor["metadata"]["name"], endpoint["port"])

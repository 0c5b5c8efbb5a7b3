"""The production topology, defined once.

The CDK app (``cluster/aws``), the RayService renderer (``cluster/kuberay/render.py``) and
every test under ``cluster/tests`` read these values, so the three availability zones, the
timeouts that must agree across the ALB, Serve and KubeRay, and the capacity a zone loss
needs are written exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: AWS account and region of the production deployment; override the account with
#: ``CDK_DEFAULT_ACCOUNT`` / ``-c account=...`` at deploy time.
ACCOUNT = "111111111111"
REGION = "eu-west-1"
#: Exactly three zones: every stateful service spreads over all of them and the Serve worker
#: group of one zone can be lost while the other two carry the load.
AVAILABILITY_ZONES: tuple[str, str, str] = ("eu-west-1a", "eu-west-1b", "eu-west-1c")

ENV_NAME = "prod"
CLUSTER_NAME = "pocdojo-prod"
NAMESPACE = "pocdojo"
KUBERNETES_VERSION = "1.33"

#: Public DNS: the hosted zone is created outside this app (registrar delegation) and imported.
HOSTED_ZONE_NAME = "pocdojo.example.com"
API_DOMAIN = f"api.{HOSTED_ZONE_NAME}"
#: Canonical hosted zone id of Application Load Balancers in REGION (AWS-published constant),
#: needed for the Route 53 alias record to the ALB that the Load Balancer Controller creates.
ALB_CANONICAL_HOSTED_ZONE_ID = "Z32O12XQLNTSW2"

VPC_CIDR = "10.40.0.0/16"


@dataclass(frozen=True)
class Timeouts:
    """Timeouts that must agree across the ALB, Ray Serve and KubeRay (tests check the order).

    - Dojo websockets stay idle between edits; the ALB must not cut them sooner than the
      clients' heartbeat (30 s) allows, so the ALB idle timeout is generous.
    - Serve's HTTP keep-alive must outlive the ALB's idle timeout, otherwise the proxy closes
      a connection the ALB still thinks is open and the next request on it gets a 502.
    - During an upgrade the ALB drains a target for ``deregistration_delay_s``; KubeRay must
      keep the old RayCluster at least that long (``cluster_deletion_delay_s``), or the
      draining websockets are cut when the old pods are deleted.
    """

    alb_idle_s: int = 300
    serve_keep_alive_s: int = 330
    serve_request_timeout_s: int = 30
    deregistration_delay_s: int = 120
    cluster_deletion_delay_s: int = 300
    graceful_shutdown_s: int = 60
    pod_termination_grace_s: int = 90


@dataclass(frozen=True)
class NodeGroup:
    """One EKS managed node group."""

    name: str
    zones: tuple[str, ...]
    instance_types: tuple[str, ...]
    min_size: int
    desired_size: int
    max_size: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[tuple[str, str, str], ...] = ()


def serve_group_name(zone: str) -> str:
    """Name of the Serve worker group (and node group) pinned to one zone."""
    return f"serve-{zone[-1]}"


#: Serve worker pods per zone (KubeRay worker group ``serve-<zone letter>``); with
#: ``max_replicas_per_node: 1`` and ``min_replicas: 3`` one zone holds one of each replica.
SERVE_WORKERS_PER_ZONE_MIN = 1
SERVE_WORKERS_PER_ZONE_MAX = 10
#: Capacity rule: losing one zone must leave enough Serve workers for the minimum replicas of
#: every deployment; the other two zones scale up to the peak alone.
SERVE_WORKER_CPU = "3"
SERVE_WORKER_MEMORY = "12Gi"
RENDER_WORKER_CPU = "7"
RENDER_WORKER_MEMORY = "28Gi"

NODE_GROUPS: tuple[NodeGroup, ...] = (
    *(
        NodeGroup(
            name=serve_group_name(zone),
            zones=(zone,),
            instance_types=("m7i.xlarge",),
            min_size=SERVE_WORKERS_PER_ZONE_MIN,
            desired_size=2,
            max_size=SERVE_WORKERS_PER_ZONE_MAX,
            labels={"pocdojo.io/pool": "serve", "pocdojo.io/zone": zone},
        )
        for zone in AVAILABILITY_ZONES
    ),
    NodeGroup(
        name="render",
        zones=AVAILABILITY_ZONES,
        instance_types=("c7i.2xlarge",),
        min_size=0,
        desired_size=1,
        max_size=12,
        labels={"pocdojo.io/pool": "render"},
        taints=(("pocdojo.io/pool", "render", "NO_SCHEDULE"),),
    ),
    NodeGroup(
        # Ray heads, KubeRay, the Load Balancer Controller, Prometheus: spread over the zones.
        name="system",
        zones=AVAILABILITY_ZONES,
        instance_types=("m7i.large",),
        min_size=3,
        desired_size=3,
        max_size=6,
        labels={"pocdojo.io/pool": "system"},
    ),
)

TIMEOUTS = Timeouts()

#: IRSA: Kubernetes service account (namespace NAMESPACE) -> IAM role name. The CDK app creates
#: the roles with these names and trust conditions; the manifests annotate the accounts.
SERVICE_ACCOUNT_ROLES: dict[str, str] = {
    "pocdojo-serve": f"{CLUSTER_NAME}-serve",
    "pocdojo-render": f"{CLUSTER_NAME}-render",
}
ALB_CONTROLLER_ROLE = f"{CLUSTER_NAME}-alb-controller"

#: Production Serve autoscaling floor: one replica per zone survives a zone loss.
SERVE_MIN_REPLICAS = len(AVAILABILITY_ZONES)

#: Service-level goals the alerts use (p99 latency per Serve application, seconds).
LATENCY_GOALS_S: dict[str, float] = {
    "poc-api": 0.25,
    "search-api": 0.2,
    "dojo-api": 0.5,
}
ERROR_RATIO_GOAL = 0.01

"""The CDK app: ``python -m cluster.aws.app [outdir]`` synthesises every stack in-process.

No CDK CLI is needed to synthesise (tests do it in-process); deploying uses the templates
(``cdk deploy --app cluster/cdk.out`` or CloudFormation directly, see cluster/README.md).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from cluster.aws.compute import ComputeStack
from cluster.aws.data import DataStack
from cluster.aws.edge import EdgeStack
from cluster.aws.network import NetworkStack
from cluster.config import topology


@dataclass
class PocDojoApp:
    """The app and its stacks (tests read the synthesised assembly of each)."""

    app: cdk.App
    network: NetworkStack
    data: DataStack
    compute: ComputeStack
    edge: EdgeStack

    @property
    def stacks(self) -> list[cdk.Stack]:
        return [self.network, self.data, self.compute, self.edge]


def build(outdir: str | None = None, *, nag: bool = True) -> PocDojoApp:
    """Build the app with the production topology; call ``.app.synth()`` to synthesise."""
    account, region = topology.ACCOUNT, topology.REGION
    app = cdk.App(
        outdir=outdir,
        context={
            # The zones are given, not looked up: synthesis never calls AWS.
            f"availability-zones:account={account}:region={region}": list(
                topology.AVAILABILITY_ZONES
            ),
        },
    )
    env = cdk.Environment(account=account, region=region)
    network = NetworkStack(app, "PocDojoNetwork", env=env)
    data = DataStack(app, "PocDojoData", vpc=network.vpc, env=env)
    compute = ComputeStack(
        app,
        "PocDojoCompute",
        vpc=network.vpc,
        data_key=data.key,
        env=env,
    )
    edge = EdgeStack(app, "PocDojoEdge", env=env)
    for stack in (network, data, compute, edge):
        cdk.Tags.of(stack).add("project", "pocdojo")
        cdk.Tags.of(stack).add("environment", topology.ENV_NAME)
    if nag:
        # Acknowledgements are also written to the templates (cdk_nag metadata) for auditing.
        cdk.Validations.of(app).add_plugins(
            AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
        )
    return PocDojoApp(app, network, data, compute, edge)


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "cluster/cdk.out").app.synth()

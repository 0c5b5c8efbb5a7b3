"""Justified exceptions to the offline checkers, recorded next to the resource they concern.

cdk-nag findings are acknowledged with CDK's ``Validations`` API; checkov reads its skips
from the resource's CloudFormation metadata. Each needs a reason a reviewer can check.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import Construct


def nag(construct: Construct, **reasons: str) -> None:
    """Acknowledge cdk-nag findings on ``construct``; keys are rule ids with ``-`` as ``_``.

    A finding id with a bracket part (``AwsSolutions-IAM5[Resource::*]``) is passed through
    ``nag_finding`` instead.
    """
    for rule, reason in reasons.items():
        Validations.of(construct).acknowledge(
            Acknowledgment(id=rule.replace("_", "-"), reason=reason)
        )


def nag_finding(construct: Construct, finding: str, reason: str) -> None:
    """Acknowledge one exact cdk-nag finding id (for rules that report one per wildcard)."""
    Validations.of(construct).acknowledge(Acknowledgment(id=finding, reason=reason))


def checkov(construct: Construct, **reasons: str) -> None:
    """Record checkov skips (``CKV_AWS_18="why"``) in the CloudFormation resource's metadata."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    assert isinstance(resource, CfnResource), f"no CloudFormation resource under {construct}"
    existing = resource.get_metadata("checkov") or {"skip": []}
    existing["skip"].extend({"id": rule, "comment": reason} for rule, reason in reasons.items())
    resource.add_metadata("checkov", existing)

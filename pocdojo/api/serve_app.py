"""The Ray Serve deployment graph: every service is its own deployment and application.

``cluster/kuberay/serve-config.yaml`` names these builders; ``pocdojo up`` deploys that
file locally and KubeRay's RayService deploys the same file on EKS. Replica counts, CPU
shares and concurrency live in that file, not here.
"""

from __future__ import annotations

from typing import Any, cast

from ray import serve
from ray.serve import Application
from starlette.applications import Starlette


def _build_poc_app() -> Starlette:
    # Imported on the replica, so settings come from the replica's environment.
    from pocdojo.api.poc_app import create_poc_app

    return create_poc_app()


def _build_identity_app() -> Starlette:
    from pocdojo.api.identity import create_identity_app

    return create_identity_app()


@serve.deployment(name="PocApi")
@serve.ingress(_build_poc_app)
class PocApi:
    """poc-api: the PoC registry, media, members, health, metrics, OpenAPI."""


@serve.deployment(name="Identity")
@serve.ingress(_build_identity_app)
class Identity:
    """The dev OIDC issuer (not deployed in production: Cognito is the issuer there)."""


def poc_api(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, PocApi.bind())  # type: ignore[attr-defined]


def identity(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, Identity.bind())  # type: ignore[attr-defined]

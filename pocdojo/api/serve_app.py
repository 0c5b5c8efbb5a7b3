"""The Ray Serve deployment graph: every service is its own deployment and application.

``cluster/kuberay/serve-config.yaml`` names these builders; ``pocdojo up`` deploys that
file locally and KubeRay's RayService deploys the same file on EKS. Replica counts, CPU
shares and concurrency live in that file, not here.
"""

from __future__ import annotations

import asyncio
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


def _build_search_app() -> Starlette:
    from pocdojo.api.search_app import create_search_app
    from pocdojo.runtime import quiet_gc

    quiet_gc()  # the replica's process serves searches alone
    return create_search_app()


@serve.deployment(name="SearchApi")
@serve.ingress(_build_search_app)
class SearchApi:
    """search-api: PoC search, facets and typeahead."""


def _build_dojo_app() -> Starlette:
    from pocdojo.api.dojo_app import create_dojo_app

    return create_dojo_app()


@serve.deployment(name="DojoApi")
@serve.ingress(_build_dojo_app)
class DojoApi:
    """dojo-api: dojos as a resource, chat, replay."""


def _build_reports_app() -> Starlette:
    from pocdojo.api.reports_app import create_reports_app

    return create_reports_app()


@serve.deployment(name="ReportsApi")
@serve.ingress(_build_reports_app)
class ReportsApi:
    """reports-api: dashboards from rollups, export jobs (Ray tasks) and their sweeper."""


class _BackgroundWorker:
    """A Serve replica that runs one long-lived worker loop; unhealthy if the loop died,
    so Serve replaces the replica (and the consumer resumes its pending entries)."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stop))

    async def _run(self, stop: asyncio.Event) -> None:
        raise NotImplementedError

    async def check_health(self) -> None:
        if self._task.done():
            raise RuntimeError(f"worker stopped: {self._task.exception()!r}")

    def __del__(self) -> None:
        # Serve calls this on shutdown; the loop notices the event and exits cleanly.
        self._stop.set()


@serve.deployment(name="OutboxRelay")
class OutboxRelayWorker(_BackgroundWorker):
    """Committed outbox rows -> the Redis event stream."""

    async def _run(self, stop: asyncio.Event) -> None:
        from pocdojo.settings import get_settings
        from pocdojo.workers.run import run_relay

        await run_relay(get_settings(), stop)


@serve.deployment(name="SearchIndexer")
class SearchIndexerWorker(_BackgroundWorker):
    """PoC events -> the search index (a Redis Streams consumer group)."""

    async def _run(self, stop: asyncio.Event) -> None:
        from pocdojo.settings import get_settings
        from pocdojo.workers.run import run_search_indexer

        await run_search_indexer(get_settings(), stop)


@serve.deployment(name="DojoGateway")
class DojoGatewayWorker(_BackgroundWorker):
    """Dojo websockets on the gateway's own port (`pocdojo.gateway.server`), not through
    Serve's HTTP proxy; replicas on one node share the port (SO_REUSEPORT)."""

    async def _run(self, stop: asyncio.Event) -> None:
        from pocdojo.gateway.server import run_gateway
        from pocdojo.settings import get_settings

        await run_gateway(get_settings(), stop, own_process=True)


@serve.deployment(name="Identity")
@serve.ingress(_build_identity_app)
class Identity:
    """The dev OIDC issuer (not deployed in production: Cognito is the issuer there)."""


def _build_video_app() -> Starlette:
    from pocdojo.api.video_app import create_video_app

    return create_video_app()


@serve.deployment(name="VideoApi")
@serve.ingress(_build_video_app)
class VideoApi:
    """video-api: yearly video jobs; its replicas run the renders as Ray tasks."""


def poc_api(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, PocApi.bind())  # type: ignore[attr-defined]


def search_api(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, SearchApi.bind())  # type: ignore[attr-defined]


def dojo_api(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, DojoApi.bind())  # type: ignore[attr-defined]


def reports_api(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, ReportsApi.bind())  # type: ignore[attr-defined]


def outbox_relay(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, OutboxRelayWorker.bind())  # type: ignore[attr-defined]


def search_indexer(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, SearchIndexerWorker.bind())  # type: ignore[attr-defined]


def dojo_gateway(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, DojoGatewayWorker.bind())  # type: ignore[attr-defined]


def video_api(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, VideoApi.bind())  # type: ignore[attr-defined]


def identity(args: dict[str, Any] | None = None) -> Application:
    return cast(Application, Identity.bind())  # type: ignore[attr-defined]

"""The report service (reports-api) as a Starlette app, with the export sweeper."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from pocdojo.api import reports
from pocdojo.api.asgi import AbsolutePaths
from pocdojo.api.context import open_services
from pocdojo.api.metrics import MetricsMiddleware
from pocdojo.api.problems import EXCEPTION_HANDLERS
from pocdojo.observability.middleware import ObservabilityMiddleware
from pocdojo.reports.runner import ExportLauncher, ExportSweeper
from pocdojo.reports.tasks import RayExportLauncher
from pocdojo.settings import Settings, get_settings


def create_reports_app(
    settings: Settings | None = None, *, launcher: ExportLauncher | None = None
) -> Starlette:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            chosen = launcher or RayExportLauncher(settings)
            sweeper = ExportSweeper(
                services.db,
                chosen,
                stale_after_s=settings.report_export_stale_s,
                every_s=settings.report_sweep_interval_s,
            )
            app.state.services = services
            app.state.verifier = services.verifier
            app.state.export_launcher = chosen
            app.state.export_sweeper = sweeper
            async with sweeper.running():
                yield

    return Starlette(
        routes=reports.spec.routes(),
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(AbsolutePaths),
            Middleware(ObservabilityMiddleware, service="reports-api"),
            Middleware(MetricsMiddleware, service="reports-api"),
        ],
    )

"""reports-api plus the aggregate baseline under one plain uvicorn worker, for
``make bench-reports``:

    .venv/bin/python -m uvicorn --factory loadtests.reports_service:create --port 8320

``/v1/reports/*`` is the production app (rollups; exports are not launched here, the
benchmark runs them itself); ``/baseline/summary`` is the same dashboard by aggregate
queries; ``/auth`` is the dev issuer (JWKS).
"""

from __future__ import annotations

import uuid

from starlette.applications import Starlette

from loadtests.reports_baseline import create_baseline_app
from pocdojo.api.asgi import prefix_dispatcher
from pocdojo.api.identity import create_identity_app
from pocdojo.api.reports_app import create_reports_app
from pocdojo.settings import get_settings
from pocdojo.types import TenantId


class _NoLaunch:
    def launch(self, job_id: uuid.UUID, tenant_id: TenantId, lease: uuid.UUID) -> None:
        return None


def create() -> Starlette:
    settings = get_settings()
    return prefix_dispatcher(
        {
            "/auth": create_identity_app(settings),
            "/v1/reports": create_reports_app(settings, launcher=_NoLaunch()),
            "/baseline": create_baseline_app(settings),
        }
    )

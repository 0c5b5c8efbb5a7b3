"""Liveness, readiness and Prometheus metrics: every service mounts these."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from pocdojo.api.context import services
from pocdojo.api.metrics import metrics_endpoint
from pocdojo.api.params import json_response
from pocdojo.api.schemas import Health
from pocdojo.api.spec import ApiSpec
from pocdojo.errors import DomainError

spec = ApiSpec("operations")


@spec.operation(
    "GET",
    "/healthz",
    summary="The process is up",
    responses={200: ("Up", Health)},
    public=True,
)
async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


@spec.operation(
    "GET",
    "/readyz",
    summary="Database and Redis are reachable",
    responses={200: ("Ready", Health), 503: ("Not ready", Health)},
    public=True,
)
async def readyz(request: Request) -> Response:
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(svc.db.ping(), timeout=2.0)
        checks["database"] = "ok"
    except (DomainError, TimeoutError) as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        await asyncio.wait_for(svc.redis.ping(), timeout=2.0)
        checks["redis"] = "ok"
    except (RedisError, OSError, TimeoutError) as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        200 if ready else 503,
        headers=None if ready else {"Retry-After": "2"},
    )


@spec.operation(
    "GET",
    "/metrics",
    summary="Prometheus metrics of this replica",
    responses={200: ("text/plain exposition format", None)},
    public=True,
)
async def metrics(request: Request) -> Response:
    return await metrics_endpoint(request)

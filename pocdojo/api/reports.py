"""report-api routes: the dashboard (from rollups) and export jobs (CSV, XLSX, PDF)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from pocdojo.api.context import authenticate, services
from pocdojo.api.params import json_response, path_uuid
from pocdojo.api.problems import parse_model, read_json
from pocdojo.api.spec import ApiSpec, Param
from pocdojo.errors import FieldError, Forbidden, NotFound, ValidationFailed
from pocdojo.reports import jobs
from pocdojo.reports.cache import SummaryCache
from pocdojo.reports.jobs import ExportFormat, ExportJob, JobStatus
from pocdojo.reports.period import Period
from pocdojo.reports.runner import ExportLauncher
from pocdojo.reports.summary import Scope
from pocdojo.storage.blobs import BlobKey
from pocdojo.types import Principal

spec = ApiSpec("reports")


class CountOut(BaseModel):
    key: str
    count: int


class MonthOut(BaseModel):
    month: str
    created: int
    archived: int
    dojos: int


class ContributorOut(BaseModel):
    user_id: uuid.UUID
    display_name: str
    pocs: int


class ActiveDojoOut(BaseModel):
    id: uuid.UUID
    title: str
    participant_minutes: float
    chat_messages: int


class DojoActivityOut(BaseModel):
    held: int
    participant_minutes: float
    chat_messages: int
    most_active: list[ActiveDojoOut]


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str


class SummaryOut(BaseModel):
    scope: Literal["tenant", "me"]
    period: PeriodOut
    totals: dict[str, int]
    new_vs_archived: dict[str, int]
    per_month: list[MonthOut]
    by_language: list[CountOut]
    by_tag: list[CountOut] = Field(description="top 20")
    by_status: dict[str, int] = Field(description="current status of the period's PoCs")
    top_contributors: list[ContributorOut]
    dojos: DojoActivityOut


class ExportIn(BaseModel):
    """Body of ``POST /v1/reports/exports``; months as ``YYYY-MM`` (default: last 12)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    format: ExportFormat
    scope: Scope = Scope.ME
    from_: str | None = Field(default=None, alias="from", max_length=20)
    to: str | None = Field(default=None, max_length=20)


class ExportOut(BaseModel):
    id: uuid.UUID
    format: ExportFormat
    scope: Scope
    period: PeriodOut
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    attempts: int
    row_count: int | None
    size_bytes: int | None
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    download_url: str | None = Field(description="when done; expires")
    download_url_expires_at: dt.datetime | None


def _scope(raw: str | None, principal: Principal, loc: str) -> Scope:
    try:
        scope = Scope(raw or "me")
    except ValueError:
        raise ValidationFailed([FieldError(loc, "'tenant' or 'me'")]) from None
    if scope is Scope.TENANT and not principal.is_admin:
        raise Forbidden("only tenant admins may report on the whole tenant; ask for scope=me")
    return scope


@spec.operation(
    "GET",
    "/v1/reports/summary",
    summary="Dashboard figures for your tenant (admins) or yourself",
    responses={
        200: ("The dashboard", SummaryOut),
        403: ("A member asked for scope=tenant", None),
    },
    params=(
        Param("from", "query", "first month, YYYY-MM (default: 11 months before 'to')"),
        Param("to", "query", "last month, YYYY-MM (default: this month)"),
        Param("scope", "query", "tenant (admins) or me (default)"),
    ),
)
async def report_summary(request: Request) -> Response:
    principal = await authenticate(request)
    query = request.query_params
    scope = _scope(query.get("scope"), principal, "query.scope")
    period = Period.parse(query.get("from"), query.get("to"))
    svc = services(request)
    cache = SummaryCache(svc.redis)
    entry = await cache.lookup(principal.tenant_id, scope, principal.user_id, period)
    async with svc.db.tenant_tx(principal.tenant_id) as conn:
        summary, hit = await cache.summary(
            conn, principal.tenant_id, scope, principal.user_id, period, entry
        )
    return json_response(
        summary.to_json(),
        headers={"Cache-Control": "private, max-age=5", "X-Report-Cache": "hit" if hit else "miss"},
    )


async def _job_json(request: Request, job: ExportJob) -> dict[str, object]:
    url, expires = None, None
    if job.status is JobStatus.DONE and job.blob_key:
        svc = services(request)
        ttl = svc.settings.download_url_ttl_s
        url = await svc.blobs.download_url(BlobKey.parse(job.blob_key), ttl_s=ttl)
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
    return job.to_json(url, expires)


@spec.operation(
    "POST",
    "/v1/reports/exports",
    summary="Start an export (CSV, XLSX or PDF) as a job",
    body=ExportIn,
    responses={
        202: ("Accepted: poll the Location", ExportOut),
        403: ("A member asked for scope=tenant", None),
    },
)
async def create_export(request: Request) -> Response:
    principal = await authenticate(request)
    data = parse_model(ExportIn, await read_json(request))
    scope = _scope(str(data.scope), principal, "body.scope")
    period = Period.parse(data.from_, data.to, loc="body")
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        job = await jobs.insert_job(
            conn, principal.tenant_id, principal.user_id, scope, data.format, period
        )
    # The row is committed first: if launching fails, the sweeper launches it later.
    launcher: ExportLauncher = request.app.state.export_launcher
    launcher.launch(job.id, job.tenant_id, job.lease)
    return json_response(
        await _job_json(request, job),
        202,
        headers={"Location": f"/v1/reports/exports/{job.id}"},
    )


@spec.operation(
    "GET",
    "/v1/reports/exports/{id}",
    summary="An export's status, progress and (when done) an expiring download URL",
    responses={200: ("The export job", ExportOut)},
)
async def get_export(request: Request) -> Response:
    principal = await authenticate(request)
    job_id = path_uuid(request)
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        job = await jobs.get_job(conn, job_id)
    # Members see their own exports only; the same answer as a missing one.
    if not principal.is_admin and job.requested_by != principal.user_id:
        raise NotFound("no such export")
    return json_response(await _job_json(request, job), headers={"Cache-Control": "no-store"})

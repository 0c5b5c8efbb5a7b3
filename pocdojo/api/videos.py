"""video-api routes: yearly video jobs (create, read with progress and URLs, list)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from pocdojo.api.context import authenticate, services
from pocdojo.api.params import json_response, parse_limit, path_uuid
from pocdojo.api.problems import parse_model, read_json
from pocdojo.api.spec import ApiSpec, Param
from pocdojo.errors import FieldError, Forbidden, NotFound, ValidationFailed
from pocdojo.storage import videos
from pocdojo.storage.blobs import BlobKey
from pocdojo.storage.pagination import Cursor
from pocdojo.storage.videos import VideoJob
from pocdojo.types import Principal, UserId
from pocdojo.video.plan import ImageRef, build_plan
from pocdojo.video.runner import VideoRunner, render_spec

spec = ApiSpec("videos")


class VideoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    year: int = Field(ge=1970, le=2100)
    user_id: uuid.UUID | None = Field(
        default=None, description="whose film; members may only ask for their own"
    )
    format: Literal["landscape", "portrait"] = "landscape"


class VideoOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    year: int
    format: str
    status: Literal["queued", "running", "done", "failed"]
    progress: int = Field(description="0-100, from the segments rendered")
    segments_total: int
    segments_done: int
    notes: list[str] = Field(description="media that were skipped, and why")
    error: str | None
    frames: int | None
    duration_s: float | None
    size_bytes: int | None
    width: int
    height: int
    download_url: str | None = Field(description="expiring URL of the MP4 once done")
    thumbnail_url: str | None
    urls_expire_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


class VideoPage(BaseModel):
    items: list[VideoOut]
    next_cursor: str | None


async def _video_json(request: Request, job: VideoJob) -> dict[str, object]:
    svc = services(request)
    ttl = svc.settings.download_url_ttl_s
    download = thumbnail = expires = None
    if job.status == "done" and job.output_key:
        download = await svc.blobs.download_url(BlobKey.parse(job.output_key), ttl_s=ttl)
        if job.thumbnail_key:
            thumbnail = await svc.blobs.download_url(BlobKey.parse(job.thumbnail_key), ttl_s=ttl)
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)).isoformat()
    return {
        "id": str(job.id),
        "user_id": str(job.user_id),
        "year": job.year,
        "format": job.format,
        "status": job.status,
        "progress": job.progress,
        "segments_total": len(job.segments),
        "segments_done": job.segments_done,
        "notes": job.notes,
        "error": job.error if job.status == "failed" else None,
        "frames": job.frames,
        "duration_s": job.duration_s,
        "size_bytes": job.size_bytes,
        "width": job.plan.spec.width,
        "height": job.plan.spec.height,
        "download_url": download,
        "thumbnail_url": thumbnail,
        "urls_expire_at": expires,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def _visible(principal: Principal, job: VideoJob) -> None:
    """Members see their own films, admins every film of their tenant."""
    if not principal.is_admin and job.user_id != principal.user_id:
        raise NotFound("no such video")


@spec.operation(
    "POST",
    "/v1/videos",
    summary="Render a user's film of the year (or get the existing one for unchanged PoCs)",
    body=VideoCreate,
    responses={
        200: ("The existing video for this content", VideoOut),
        202: ("Render queued", VideoOut),
        403: ("Members render their own film only", None),
    },
)
async def create_video(request: Request) -> Response:
    principal = await authenticate(request)
    body = parse_model(VideoCreate, await read_json(request))
    target = UserId(body.user_id or principal.user_id)
    if target != principal.user_id and not principal.is_admin:
        raise Forbidden("members render their own film; admins any member's")
    svc = services(request)
    soundtrack_key = BlobKey.for_tenant(principal.tenant_id, *videos.SOUNDTRACK_PARTS)
    info = await svc.blobs.stat(soundtrack_key)
    soundtrack = (
        ImageRef(key=soundtrack_key.value, size_bytes=info.size, filename="soundtrack")
        if info is not None
        else None
    )
    async with svc.db.tenant_tx(principal.tenant_id) as conn:
        if target != principal.user_id and not await videos.is_member(conn, target):
            raise NotFound("no such member")
        inputs = await videos.film_inputs(
            conn, principal.tenant_id, target, body.year, body.format, soundtrack
        )
        plan = build_plan(inputs, render_spec(svc.settings, body.format))
        job, created = await videos.insert_or_get(conn, plan, principal.user_id)
    runner: VideoRunner | None = getattr(request.app.state, "runner", None)
    if runner is not None and job.status in {"queued", "running"}:
        runner.wake()
    response = json_response(await _video_json(request, job), 202 if created else 200)
    response.headers["Location"] = f"/v1/videos/{job.id}"
    return response


@spec.operation(
    "GET",
    "/v1/videos/{id}",
    summary="A video job: status, progress, notes, and download/thumbnail URLs when done",
    responses={200: ("The video", VideoOut)},
)
async def get_video(request: Request) -> Response:
    principal = await authenticate(request)
    video_id = path_uuid(request)
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        job = await videos.get_job(conn, video_id)
    _visible(principal, job)
    return json_response(await _video_json(request, job))


@spec.operation(
    "GET",
    "/v1/videos",
    summary="Video jobs, newest first: your own, or (admins) the tenant's",
    params=(
        Param("user_id", "query", "admins: only this member's videos", {"type": "string"}),
        Param("cursor", "query", "next_cursor of the previous page"),
        Param("limit", "query", "1-100, default 20", {"type": "integer"}),
    ),
    responses={200: ("The videos", VideoPage)},
)
async def list_videos(request: Request) -> Response:
    principal = await authenticate(request)
    limit = parse_limit(request)
    raw_cursor = request.query_params.get("cursor")
    cursor = Cursor.decode(raw_cursor) if raw_cursor else None
    user: uuid.UUID | None = principal.user_id
    raw_user = request.query_params.get("user_id")
    if principal.is_admin:
        try:
            user = uuid.UUID(raw_user) if raw_user else None
        except ValueError as exc:
            raise ValidationFailed([FieldError("query.user_id", "a user id")]) from exc
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        items, next_cursor = await videos.list_jobs(conn, user, cursor, limit)
    return json_response(
        {
            "items": [await _video_json(request, job) for job in items],
            "next_cursor": next_cursor.encode() if next_cursor else None,
        }
    )

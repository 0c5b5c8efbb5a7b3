"""Video job rows and what a film is made of (tenant transactions only).

The job row is the truth of a render: its plan, which segments are done, progress, notes,
the lease of the runner working on it, and the finished film's keys.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from pocdojo.errors import NotFound
from pocdojo.observability.tracing import current_traceparent
from pocdojo.storage.pagination import Cursor
from pocdojo.types import TenantId, UserId
from pocdojo.video.plan import FilmFormat, FilmInputs, FilmPlan, ImageRef, PocInput

SOUNDTRACK_PARTS = ("video", "soundtrack")
"""A tenant's soundtrack lives at ``tenants/<id>/video/soundtrack`` when configured."""


@dataclass(frozen=True, slots=True)
class SegmentState:
    done: bool
    attempts: int
    frames: int

    def to_json(self) -> dict[str, Any]:
        return {"done": self.done, "attempts": self.attempts, "frames": self.frames}


@dataclass(frozen=True, slots=True)
class VideoJob:
    id: uuid.UUID
    tenant_id: TenantId
    user_id: UserId
    requested_by: UserId
    year: int
    format: str
    content_hash: str
    status: str
    plan: FilmPlan
    segments: list[SegmentState]
    progress: int
    notes: list[str]
    error: str | None
    attempts: int
    output_key: str | None
    thumbnail_key: str | None
    frames: int | None
    duration_s: float | None
    size_bytes: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    traceparent: str | None = None
    """W3C trace context of the request that created (or re-queued) the job."""

    @property
    def segments_done(self) -> int:
        return sum(1 for s in self.segments if s.done)


def _job(row: asyncpg.Record) -> VideoJob:
    segments = json.loads(row["segments"])
    return VideoJob(
        id=row["id"],
        tenant_id=TenantId(row["tenant_id"]),
        user_id=UserId(row["user_id"]),
        requested_by=UserId(row["requested_by"]),
        year=row["year"],
        format=row["format"],
        content_hash=row["content_hash"],
        status=row["status"],
        plan=FilmPlan.model_validate_json(row["plan"]),
        segments=[SegmentState(s["done"], s["attempts"], s["frames"]) for s in segments],
        progress=row["progress"],
        notes=list(json.loads(row["notes"])),
        error=row["error"],
        attempts=row["attempts"],
        output_key=row["output_key"],
        thumbnail_key=row["thumbnail_key"],
        frames=row["frames"],
        duration_s=row["duration_s"],
        size_bytes=row["size_bytes"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        traceparent=row["traceparent"],
    )


async def film_inputs(
    conn: asyncpg.Connection,
    tenant_id: TenantId,
    user_id: UserId,
    year: int,
    film_format: FilmFormat,
    soundtrack: ImageRef | None,
) -> FilmInputs:
    """The user's PoCs built in ``year`` (drafts left out) with their ready images."""
    user_name = await conn.fetchval("select display_name from users where id = $1", user_id)
    tenant_name = await conn.fetchval("select name from tenants where id = $1", tenant_id)
    if user_name is None or tenant_name is None:
        raise NotFound("no such member")
    rows = await conn.fetch(
        """select id, version, name, description, languages, tags, built_on from pocs
           where owner_id = $1 and built_on >= $2 and built_on < $3 and status <> 'draft'
           order by built_on, name, id""",
        user_id,
        dt.date(year, 1, 1),
        dt.date(year + 1, 1, 1),
    )
    media = await conn.fetch(
        """select poc_id, blob_key, filename, size_bytes from poc_media
           where poc_id = any($1::uuid[]) and status = 'ready' and content_type like 'image/%'
           order by created_at, id""",
        [r["id"] for r in rows],
    )
    images: dict[uuid.UUID, list[ImageRef]] = {}
    for m in media:
        images.setdefault(m["poc_id"], []).append(
            ImageRef(key=m["blob_key"], size_bytes=m["size_bytes"], filename=m["filename"])
        )
    return FilmInputs(
        tenant_id=str(tenant_id),
        user_id=str(user_id),
        user_name=user_name,
        tenant_name=tenant_name,
        year=year,
        format=film_format,
        pocs=tuple(
            PocInput(
                id=str(r["id"]),
                version=r["version"],
                name=r["name"],
                description=r["description"],
                languages=tuple(r["languages"]),
                tags=tuple(r["tags"]),
                built_on=r["built_on"],
                images=tuple(images.get(r["id"], [])),
            )
            for r in rows
        ),
        soundtrack=soundtrack,
    )


async def is_member(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    found = await conn.fetchval("select 1 from memberships where user_id = $1", user_id)
    return found is not None


async def insert_or_get(
    conn: asyncpg.Connection, plan: FilmPlan, requested_by: UserId
) -> tuple[VideoJob, bool]:
    """The job for this content: a new one (True), or the existing one (False).

    Concurrent calls for the same content meet at the unique constraint: one inserts,
    the others wait for it and read its row. A failed job is queued again. A new or
    re-queued job keeps the current trace context, so its render continues this trace.
    """
    traceparent = current_traceparent()
    segments = [SegmentState(False, 0, s.frames).to_json() for s in plan.segments]
    row = await conn.fetchrow(
        """insert into video_jobs (tenant_id, user_id, requested_by, year, format,
                                   content_hash, plan, segments, notes, traceparent)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           on conflict (tenant_id, user_id, year, format, content_hash) do nothing
           returning *""",
        uuid.UUID(plan.tenant_id),
        uuid.UUID(plan.user_id),
        requested_by,
        plan.year,
        plan.format,
        plan.content_hash,
        plan.model_dump_json(),
        json.dumps(segments),
        json.dumps(list(plan.notes)),
        traceparent,
    )
    if row is not None:
        return _job(row), True
    row = await conn.fetchrow(
        """update video_jobs set
              status = case when status = 'failed' then 'queued' else status end,
              attempts = case when status = 'failed' then 0 else attempts end,
              error = case when status = 'failed' then null else error end,
              updated_at = case when status = 'failed' then now() else updated_at end,
              traceparent = case when status = 'failed' then $5 else traceparent end
           where user_id = $1 and year = $2 and format = $3 and content_hash = $4
           returning *""",
        uuid.UUID(plan.user_id),
        plan.year,
        plan.format,
        plan.content_hash,
        traceparent,
    )
    if row is None:
        raise RuntimeError("the conflicting video job is gone")
    return _job(row), False


async def get_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> VideoJob:
    row = await conn.fetchrow("select * from video_jobs where id = $1", job_id)
    if row is None:
        raise NotFound("no such video")
    return _job(row)


async def list_jobs(
    conn: asyncpg.Connection, user_id: uuid.UUID | None, cursor: Cursor | None, limit: int
) -> tuple[list[VideoJob], Cursor | None]:
    clauses: list[str] = []
    args: list[Any] = []
    if user_id is not None:
        args.append(user_id)
        clauses.append(f"user_id = ${len(args)}")
    if cursor is not None:
        args += [cursor.created_at, cursor.id]
        clauses.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    where = f"where {' and '.join(clauses)}" if clauses else ""
    args.append(limit + 1)
    rows = await conn.fetch(
        f"select * from video_jobs {where} order by created_at desc, id desc limit ${len(args)}",
        *args,
    )
    items = [_job(r) for r in rows[:limit]]
    next_cursor = Cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return items, next_cursor


async def unfinished(conn: asyncpg.Connection, limit: int = 50) -> list[tuple[TenantId, uuid.UUID]]:
    """Every tenant's queued or running jobs (ids only), oldest first."""
    rows = await conn.fetch("select tenant_id, job_id from video_jobs_unfinished($1)", limit)
    return [(TenantId(r["tenant_id"]), r["job_id"]) for r in rows]


async def claim(
    conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, lease_s: float
) -> VideoJob | None:
    """Take (or renew) the lease on an unfinished job; None if another runner holds it."""
    row = await conn.fetchrow(
        """update video_jobs set status = 'running', lease_owner = $2,
                  lease_until = now() + make_interval(secs => $3), updated_at = now()
           where id = $1 and status in ('queued', 'running')
             and (lease_until is null or lease_until < now() or lease_owner = $2)
           returning *""",
        job_id,
        owner,
        lease_s,
    )
    return _job(row) if row is not None else None


async def segment_done(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    owner: str,
    index: int,
    state: SegmentState,
    notes: list[str],
    progress: int,
) -> bool:
    """Record a finished segment; False if this runner lost the lease."""
    updated = await conn.fetchval(
        """update video_jobs set
              segments = jsonb_set(segments, array[$3::text], $4::jsonb),
              notes = notes || $5::jsonb,
              progress = greatest(progress, $6),
              updated_at = now()
           where id = $1 and lease_owner = $2 and status = 'running'
           returning id""",
        job_id,
        owner,
        str(index),
        json.dumps(state.to_json()),
        json.dumps(notes),
        progress,
    )
    return updated is not None


async def record_attempts(
    conn: asyncpg.Connection, job_id: uuid.UUID, index: int, attempts: int
) -> None:
    await conn.execute(
        """update video_jobs set segments = jsonb_set(segments, array[$2::text, 'attempts'],
                                                      to_jsonb($3::int))
           where id = $1""",
        job_id,
        str(index),
        attempts,
    )


async def finish(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    owner: str,
    *,
    output_key: str,
    thumbnail_key: str | None,
    frames: int,
    duration_s: float,
    size_bytes: int,
    notes: list[str],
) -> None:
    await conn.execute(
        """update video_jobs set status = 'done', progress = 100, output_key = $3,
                  thumbnail_key = $4, frames = $5, duration_s = $6, size_bytes = $7,
                  notes = notes || $8::jsonb, lease_owner = null, lease_until = null,
                  finished_at = now(), updated_at = now()
           where id = $1 and lease_owner = $2""",
        job_id,
        owner,
        output_key,
        thumbnail_key,
        frames,
        duration_s,
        size_bytes,
        json.dumps(notes),
    )


async def fail_attempt(
    conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, error: str, max_attempts: int
) -> str | None:
    """Count a failed attempt: queued again for another runner, or failed for good.

    The job's status afterwards (``queued`` or ``failed``); None if this runner no longer
    held the lease (nothing was recorded)."""
    status: str | None = await conn.fetchval(
        """update video_jobs set attempts = attempts + 1, error = $3,
                  status = case when attempts + 1 >= $4 then 'failed' else 'queued' end,
                  finished_at = case when attempts + 1 >= $4 then now() end,
                  lease_owner = null, lease_until = null, updated_at = now()
           where id = $1 and lease_owner = $2
           returning status""",
        job_id,
        owner,
        error[:2000],
        max_attempts,
    )
    return status


async def release(conn: asyncpg.Connection, job_id: uuid.UUID, owner: str) -> None:
    """Give the lease back (a runner shutting down): the next runner resumes at once."""
    await conn.execute(
        """update video_jobs set lease_owner = null, lease_until = null
           where id = $1 and lease_owner = $2""",
        job_id,
        owner,
    )

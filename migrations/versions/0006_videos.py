"""Yearly videos: render jobs (the job row is the truth of a render).

One row per (tenant, user, year, format, content hash): asking again for unchanged content
finds the same row, even under concurrent requests (the unique constraint decides).
Runners find unfinished jobs of every tenant through one SECURITY DEFINER function that
returns only ids; everything else is read inside the job's tenant transaction.

Revision ID: 0006_videos
Revises: 0005_reports
Create Date: 2026-11-25
"""

from alembic import op

revision = "0006_videos"
down_revision = "0005_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    create table video_jobs (
        id uuid primary key default gen_random_uuid(),
        tenant_id uuid not null references tenants(id) on delete cascade,
        user_id uuid not null,
        requested_by uuid not null,
        year integer not null check (year between 1970 and 9999),
        format text not null check (format in ('landscape', 'portrait')),
        content_hash text not null check (char_length(content_hash) = 64),
        status text not null default 'queued'
            check (status in ('queued', 'running', 'done', 'failed')),
        plan jsonb not null,
        -- One entry per segment: {"done": bool, "attempts": int, "frames": int}.
        segments jsonb not null,
        progress integer not null default 0 check (progress between 0 and 100),
        notes jsonb not null default '[]',
        error text,
        attempts integer not null default 0,
        lease_owner text,
        lease_until timestamptz,
        output_key text,
        thumbnail_key text,
        frames integer,
        duration_s double precision,
        size_bytes bigint,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        finished_at timestamptz,
        unique (tenant_id, user_id, year, format, content_hash)
    );
    create index video_jobs_tenant_created on video_jobs (tenant_id, created_at desc, id desc);
    create index video_jobs_unfinished on video_jobs (created_at) where status in ('queued', 'running');

    alter table video_jobs enable row level security;
    alter table video_jobs force row level security;
    create policy tenant_isolation on video_jobs
        using (tenant_id = app_current_tenant())
        with check (tenant_id = app_current_tenant());
    grant select, insert, update, delete on video_jobs to pocdojo_app;

    -- Runners resume every tenant's unfinished jobs after a restart: ids only, owned by the
    -- BYPASSRLS role like auth_lookup; the job itself is then read in its tenant's transaction.
    grant select (id, tenant_id, status, created_at) on video_jobs to pocdojo_auth;
    create function video_jobs_unfinished(p_limit integer)
        returns table (tenant_id uuid, job_id uuid)
        language sql stable security definer
        set search_path = public, pg_temp
        as $$
            select tenant_id, id from video_jobs
            where status in ('queued', 'running')
            order by created_at
            limit p_limit
        $$;
    grant create on schema public to pocdojo_auth;
    alter function video_jobs_unfinished(integer) owner to pocdojo_auth;
    revoke create on schema public from pocdojo_auth;
    revoke all on function video_jobs_unfinished(integer) from public;
    grant execute on function video_jobs_unfinished(integer) to pocdojo_app, pocdojo_owner;
    """)


def downgrade() -> None:
    op.execute("""
    drop function if exists video_jobs_unfinished(integer);
    drop table if exists video_jobs;
    """)

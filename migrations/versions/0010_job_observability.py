"""Observability of render and export jobs: the creating request's trace, and queue figures.

- ``traceparent`` on ``video_jobs`` and ``report_exports``: the W3C trace context of the
  request that created (or re-queued) the job, so the runner and the Ray tasks that do the
  work continue that trace, whichever replica picks the job up and however late.
- ``render_queue_stats()``: per kind (``video``, ``export``), how many jobs are queued and
  how long the oldest has waited, over every tenant. SECURITY DEFINER owned by the
  BYPASSRLS ``pocdojo_auth`` like ``video_jobs_unfinished``, and it returns two numbers per
  kind, nothing about any tenant.

A queued video job has waited since ``updated_at`` (set when it is created or queued again
after a failed attempt); a queued export since ``heartbeat_at`` (set when it is created or
re-launched by the sweeper).

Revision ID: 0010_job_observability
Revises: 0009_search_speed
Create Date: 2026-12-04
"""

from alembic import op

revision = "0010_job_observability"
down_revision = "0009_search_speed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    alter table video_jobs add column traceparent text
        check (traceparent is null or char_length(traceparent) <= 64);
    alter table report_exports add column traceparent text
        check (traceparent is null or char_length(traceparent) <= 64);

    grant select (updated_at) on video_jobs to pocdojo_auth;
    create index report_exports_queued on report_exports (heartbeat_at)
        where status = 'queued';
    create index video_jobs_queued on video_jobs (updated_at) where status = 'queued';

    create function render_queue_stats()
        returns table (kind text, depth bigint, oldest_age_s double precision)
        language sql stable security definer
        set search_path = public, pg_temp
        as $$
            select 'video', count(*),
                   coalesce(extract(epoch from now() - min(updated_at)), 0)::double precision
            from video_jobs where status = 'queued'
            union all
            select 'export', count(*),
                   coalesce(extract(epoch from now() - min(heartbeat_at)), 0)::double precision
            from report_exports where status = 'queued'
        $$;
    grant create on schema public to pocdojo_auth;
    alter function render_queue_stats() owner to pocdojo_auth;
    revoke create on schema public from pocdojo_auth;
    revoke all on function render_queue_stats() from public;
    grant execute on function render_queue_stats() to pocdojo_app, pocdojo_owner;
    """)


def downgrade() -> None:
    op.execute("""
    drop function if exists render_queue_stats();
    drop index if exists video_jobs_queued;
    drop index if exists report_exports_queued;
    revoke select (updated_at) on video_jobs from pocdojo_auth;
    alter table report_exports drop column if exists traceparent;
    alter table video_jobs drop column if exists traceparent;
    """)

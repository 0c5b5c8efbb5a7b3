"""Reports: rollups kept exact by triggers, and export jobs.

Rollups. ``report_rollup`` holds counts per (tenant, scope owner, month, metric, key); the
tenant-wide rows use the all-zero owner id, each PoC's owner gets rows of their own for
``scope=me``. Statement-level triggers with transition tables keep it current in the same
transaction as every write to ``pocs``, ``dojos``, ``dojo_chat`` and
``dojo_participation``: one grouped upsert per statement (a bulk insert of 100,000 PoCs is one
aggregate, a single-row write a handful of rows). Why triggers and not the outbox stream: the
stream is at least once, and counter deltas are not idempotent (a redelivered event would
count twice without a per-event ledger); the trigger is exact by construction, has no lag and
runs under the writer's row-level security. Deltas are upserted in key order, so concurrent
writers lock rollup rows in the same order (no deadlocks).

``pocs.archived_at`` (kept by a BEFORE trigger) dates the "archived" figure.

Backfill: the owner role is bound by FORCE row-level security too, so the backfill lifts
FORCE on the two tables inside this migration's transaction (the ALTERs hold ACCESS
EXCLUSIVE locks until commit, so nobody observes it) and restores it.

Export jobs: ``report_exports`` is the truth about a job; a Ray task does the work under a
lease. ``report_claim_stale_exports`` (SECURITY DEFINER, owned by the BYPASSRLS
``pocdojo_auth``) is the one cross-tenant call: it hands the sweeper the ids of jobs whose
heartbeat went stale, with a fresh lease, and nothing else.

Revision ID: 0005_reports
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005_reports"
down_revision = "0004"
branch_labels = None
depends_on = None

_ROLLUP_UPSERT = """
    insert into report_rollup as r (tenant_id, owner_id, span, month, metric, key, n)
    select f.tenant_id, f.owner_id, b.span, b.month, f.metric, f.key, sum(f.d)
    from (select tenant_id, owner_id, month, metric, key, sum(d) as d
          from ({facts}) f0 group by tenant_id, owner_id, month, metric, key) f
    cross join lateral report_buckets(
        f.month, f.owner_id = '00000000-0000-0000-0000-000000000000'::uuid, f.metric) b
    group by 1, 2, 3, 4, 5, 6
    having sum(f.d) <> 0
    order by 1, 2, 3, 5, 4, 6
    on conflict (tenant_id, owner_id, span, metric, month, key)
    do update set n = r.n + excluded.n
"""

# One SELECT of facts per table, for a transition table named {rows} with sign {d}.
_POC_FACTS = """
    select p.tenant_id, s.owner_id, f.month, f.metric, f.key, {d} as d
    from {rows} p
    cross join lateral (values (p.owner_id),
                               ('00000000-0000-0000-0000-000000000000'::uuid)) s(owner_id)
    cross join lateral report_poc_facts(p.owner_id, p.created_at, p.archived_at, p.status,
                                        p.languages, p.tags) f
    -- contributors are ranked only for the whole tenant
    where f.metric <> 'owner' or s.owner_id <> p.owner_id
"""
_DOJO_FACTS = """
    select x.tenant_id, s.owner_id, report_month(x.created_at) as month,
           'dojos' as metric, '' as key, {d} as d
    from {rows} x
    cross join lateral (values (x.host_id),
                               ('00000000-0000-0000-0000-000000000000'::uuid)) s(owner_id)
"""
_CHAT_FACTS = """
    select x.tenant_id, s.owner_id, report_month(x.created_at) as month,
           'chat' as metric, x.dojo_id::text as key, {d} as d
    from {rows} x
    cross join lateral (values (x.author_id),
                               ('00000000-0000-0000-0000-000000000000'::uuid)) s(owner_id)
"""
_PARTICIPATION_FACTS = """
    select x.tenant_id, s.owner_id, report_month(x.joined_at) as month,
           'dojo_seconds' as metric, x.dojo_id::text as key,
           {d} * report_seconds(x.joined_at, x.left_at) as d
    from {rows} x
    cross join lateral (values (x.user_id),
                               ('00000000-0000-0000-0000-000000000000'::uuid)) s(owner_id)
    where x.left_at is not null
"""

_TABLES = {
    "pocs": _POC_FACTS,
    "dojos": _DOJO_FACTS,
    "dojo_chat": _CHAT_FACTS,
    "dojo_participation": _PARTICIPATION_FACTS,
}


def _trigger_function(table: str, facts: str) -> str:
    insert = _ROLLUP_UPSERT.format(facts=facts.format(rows="new_rows", d="1"))
    delete = _ROLLUP_UPSERT.format(facts=facts.format(rows="old_rows", d="-1"))
    update = _ROLLUP_UPSERT.format(
        facts=facts.format(rows="new_rows", d="1")
        + " union all "
        + facts.format(rows="old_rows", d="-1")
    )
    return f"""
    create function report_rollup_{table}() returns trigger
        language plpgsql as $$
    begin
        if tg_op = 'INSERT' then
            {insert};
        elsif tg_op = 'DELETE' then
            {delete};
        else
            {update};
        end if;
        return null;
    end $$;
    create trigger report_rollup_ins after insert on {table}
        referencing new table as new_rows for each statement
        execute function report_rollup_{table}();
    create trigger report_rollup_upd after update on {table}
        referencing new table as new_rows old table as old_rows for each statement
        execute function report_rollup_{table}();
    create trigger report_rollup_del after delete on {table}
        referencing old table as old_rows for each statement
        execute function report_rollup_{table}();
    """


def upgrade() -> None:
    op.execute("""
    create table report_rollup (
        -- No foreign key: the triggers still run (decrements) while a tenant's rows are
        -- deleted by cascade, and would then reference a tenant already gone.
        tenant_id uuid not null,
        -- the all-zero id: the whole tenant; otherwise one user's own figures
        owner_id uuid not null,
        -- months counted by the row: 1, or (tenant-wide rankings) 2, 4, 8, 16, 32
        span smallint not null,
        -- the first month, aligned to a multiple of span (months since year 0)
        month date not null,
        metric text not null,
        key text not null,
        -- integer: sum() over it is a bigint, over a bigint a (much slower) numeric
        n integer not null,
        -- metric before month: a monthly series reads only its own metric's rows
        primary key (tenant_id, owner_id, span, metric, month, key)
    );

    alter table pocs add column archived_at timestamptz;

    create function report_month(ts timestamptz) returns date
        language sql immutable parallel safe
        as $$ select date_trunc('month', ts at time zone 'UTC')::date $$;

    create function report_seconds(joined timestamptz, left_ timestamptz) returns bigint
        language sql immutable parallel safe
        as $$ select floor(extract(epoch from (left_ - joined)))::bigint $$;

    -- The buckets one month's count goes to: its own month, and for the tenant-wide rankings
    -- also the aligned 2, 4, ..., 32-month buckets containing it, so a range of months reads
    -- at most ~10 buckets (dyadic decomposition) instead of one row set per month.
    create function report_buckets(m date, tenant_wide boolean, metric text)
        returns table (span smallint, month date)
        language sql immutable parallel safe
        as $$
            select s::smallint, make_date((i - i % s) / 12, (i - i % s) % 12 + 1, 1)
            from (select (extract(year from m) * 12 + extract(month from m) - 1)::int) x(i),
                 unnest(case when tenant_wide and metric in
                                  ('status', 'language', 'tag', 'owner', 'chat', 'dojo_seconds')
                             then array[1, 2, 4, 8, 16, 32] else array[1] end) s
        $$;

    -- What one PoC contributes to the rollup (distinct languages/tags: a PoC counts once).
    create function report_poc_facts(
        owner uuid, created timestamptz, archived timestamptz, status text,
        languages text[], tags text[])
        returns table (month date, metric text, key text)
        language sql immutable parallel safe
        as $$
            select report_month(created), 'created', ''
            union all select report_month(created), 'status', status
            union all select report_month(created), 'owner', owner::text
            union all select report_month(created), 'language', l
                from (select distinct unnest(languages)) u(l)
            union all select report_month(created), 'tag', t
                from (select distinct unnest(tags)) u(t)
            union all select report_month(archived), 'archived', ''
                where archived is not null
        $$;

    create function report_pocs_archived_at() returns trigger
        language plpgsql as $$
    begin
        if new.status <> 'archived' then
            new.archived_at := null;
        elsif tg_op = 'INSERT' then
            new.archived_at := coalesce(new.archived_at, new.created_at);
        elsif old.status <> 'archived' then
            new.archived_at := now();
        end if;
        return new;
    end $$;
    create trigger report_archived_at before insert or update of status on pocs
        for each row execute function report_pocs_archived_at();

    create table report_exports (
        id uuid primary key default gen_random_uuid(),
        tenant_id uuid not null references tenants(id) on delete cascade,
        requested_by uuid not null,
        scope text not null check (scope in ('tenant', 'me')),
        format text not null check (format in ('csv', 'xlsx', 'pdf')),
        period_from date not null,
        period_to date not null,
        status text not null default 'queued'
            check (status in ('queued', 'running', 'done', 'failed')),
        progress integer not null default 0 check (progress between 0 and 100),
        attempts integer not null default 0,
        lease uuid not null default gen_random_uuid(),
        heartbeat_at timestamptz not null default now(),
        worker text,
        blob_key text,
        size_bytes bigint,
        row_count bigint,
        error text,
        created_at timestamptz not null default now(),
        finished_at timestamptz
    );
    create index report_exports_tenant_created on report_exports (tenant_id, created_at desc);
    create index report_exports_unfinished on report_exports (heartbeat_at)
        where status in ('queued', 'running');
    """)
    for table in ("report_rollup", "report_exports"):
        op.execute(f"""
        alter table {table} enable row level security;
        alter table {table} force row level security;
        create policy tenant_isolation on {table}
            using (tenant_id = app_current_tenant())
            with check (tenant_id = app_current_tenant());
        """)
    op.execute("""
    -- Rows change only through the triggers (which run as the writer, under its RLS).
    grant select, insert, update on report_rollup to pocdojo_app;
    grant select, insert, update on report_exports to pocdojo_app;
    grant execute on function report_month(timestamptz), report_seconds(timestamptz, timestamptz),
        report_buckets(date, boolean, text),
        report_poc_facts(uuid, timestamptz, timestamptz, text, text[], text[]) to pocdojo_app;
    """)
    for table, facts in _TABLES.items():
        op.execute(_trigger_function(table, facts))

    backfill = " union all ".join(
        facts.format(rows=table, d="1") for table, facts in _TABLES.items()
    )
    lifted = ("pocs", "dojos", "dojo_chat", "dojo_participation", "report_rollup")
    for table in lifted:
        op.execute(f"alter table {table} no force row level security")
    op.execute(_ROLLUP_UPSERT.format(facts=backfill))
    op.execute("update pocs set archived_at = updated_at where status = 'archived'")
    for table in lifted:
        op.execute(f"alter table {table} force row level security")

    op.execute("""
    grant select, update on report_exports to pocdojo_auth;
    create function report_claim_stale_exports(stale_after_s integer, max_attempts integer)
        returns table (id uuid, tenant_id uuid, lease uuid)
        language plpgsql volatile security definer
        set search_path = public, pg_temp
        as $$
        begin
            update report_exports e set status = 'failed', finished_at = now(),
                   error = 'gave up after ' || e.attempts || ' attempts'
             where e.status in ('queued', 'running') and e.attempts >= max_attempts
               and e.heartbeat_at < now() - make_interval(secs => stale_after_s);
            return query
            update report_exports e set lease = gen_random_uuid(), heartbeat_at = now(),
                   status = 'queued'
             where e.id in (select x.id from report_exports x
                             where x.status in ('queued', 'running')
                               and x.heartbeat_at < now() - make_interval(secs => stale_after_s)
                             order by x.heartbeat_at
                             limit 100
                             for update skip locked)
            returning e.id, e.tenant_id, e.lease;
        end $$;
    grant create on schema public to pocdojo_auth;
    alter function report_claim_stale_exports(integer, integer) owner to pocdojo_auth;
    revoke create on schema public from pocdojo_auth;
    revoke all on function report_claim_stale_exports(integer, integer) from public;
    grant execute on function report_claim_stale_exports(integer, integer) to pocdojo_app;
    """)


def downgrade() -> None:
    op.execute("""
    drop function if exists report_claim_stale_exports(integer, integer);
    drop table if exists report_exports;
    """)
    for table in _TABLES:
        op.execute(f"""
        drop trigger if exists report_rollup_ins on {table};
        drop trigger if exists report_rollup_upd on {table};
        drop trigger if exists report_rollup_del on {table};
        drop function if exists report_rollup_{table}();
        """)
    op.execute("""
    drop trigger if exists report_archived_at on pocs;
    drop function if exists report_pocs_archived_at();
    drop function if exists report_poc_facts(uuid, timestamptz, timestamptz, text, text[], text[]);
    drop function if exists report_seconds(timestamptz, timestamptz);
    drop function if exists report_buckets(date, boolean, text);
    drop function if exists report_month(timestamptz);
    alter table pocs drop column if exists archived_at;
    drop table if exists report_rollup;
    """)

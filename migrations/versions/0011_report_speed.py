"""Reports: the tenant dashboard's rankings read the largest rollup rows first, and the dojo
totals have rows of their own.

Measured on the 1,000,000-PoC bench (EXPLAIN ANALYZE, the 100,000-PoC tenant, 36 months):
the dashboard statement read ~11,000 rollup rows, ~5,000 of them tag and contributor rows
summed over every key to keep the top 20 / top 10, and ~6,000 dojo rows (seconds and chat
of ~3,000 dojos) summed for the five most active dojos and the two totals.

- ``report_rollup_rank``: the tenant-wide ``tag``, ``owner``, ``dojo_seconds`` and
  ``dojo_seconds_ever`` rows of a bucket in descending order of their figure (partial).
- ``report_top(tenant, metric, months, spans, k)``: the exact top ``k`` keys of a metric over
  a set of buckets, reading each bucket's largest rows first (the threshold algorithm of
  Fagin et al.): it lists the ``4k`` largest rows of every bucket, bounds what a key not
  listed can reach (the sum of each bucket's ``4k``-th figure), sums exactly the few keys
  that can still be among the first ``k``, and is done when the ``k``-th exact sum is above
  the bound. Skewed figures (tags, contributors) are settled so; when they are not (flat
  figures), or a bucket has a negative figure (a participation that ended before it
  began), every key is summed, as before.
- ``report_top_ever(...)``: the same answer for dojo seconds, which are flat across dojos
  and concentrated in time (a dojo is large in one bucket and absent from the others, so
  the bound above is the sum of every bucket's top and settles nothing). ``dojo_seconds_ever``
  rows hold each dojo's seconds over all time (negative durations count 0: never below the
  dojo's seconds in any period); the function walks the dojos from the largest of those
  down, sums each exactly over the buckets, and is done when the ``k``-th exact sum is above
  the next dojo's seconds ever (4 rounds, 40 -> 2,560 dojos, then ``report_top``).
- ``chat_total`` and ``dojo_seconds_total``: tenant-wide monthly rows with the totals, so the
  totals no longer sum every dojo's rows.

The functions are STABLE (their statements see the snapshot of the calling statement) and
use generic plans (planning them costs more than running them). Measured after this
migration (the 100,000-PoC tenant, vacuumed, p50 of 50 runs on a busy 2-core machine): the
dashboard statement takes 2.9 ms instead of 7.6 ms for 36 months (3.9 vs 8.8 ms when the
period needs four buckets) and 2.3 vs 5.9 ms for 12 months, and no longer grows with the
number of tags, contributors or dojos when their figures are skewed or concentrated. Writes: one more rollup row per chat message, two per closed participation,
and one more index entry per changed tenant-wide tag, contributor or dojo-seconds row
(backend CPU per transaction measured +0-9 % for a PoC insert with 3 tags, +0-10 % for a
chat message, +17-40 % for a closed participation). Building the index takes a write lock
on ``report_rollup`` for its duration (~10-30 s on the bench).

Revision ID: 0011_report_speed
Revises: 0010_job_observability
Create Date: 2026-12-04
"""

from alembic import op

revision = "0011_report_speed"
down_revision = "0010_job_observability"
branch_labels = None
depends_on = None

TENANT_WIDE = "'00000000-0000-0000-0000-000000000000'::uuid"
RANKED = "('tag', 'owner', 'dojo_seconds', 'dojo_seconds_ever')"
EVER = "date '1970-01-01'"
"""The month of the ``dojo_seconds_ever`` rows (one per dojo, not per month)."""

# As in migration 0005: one grouped upsert of the facts, in key order.
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

# Migration 0005's chat and participation facts plus one tenant-wide total per month, and
# each dojo's seconds ever (``report_buckets`` gives the new metrics monthly rows only).
_CHAT_FACTS = f"""
    select x.tenant_id, s.owner_id, report_month(x.created_at) as month,
           s.metric, s.key, {{d}} as d
    from {{rows}} x
    cross join lateral (values (x.author_id, 'chat', x.dojo_id::text),
                               ({TENANT_WIDE}, 'chat', x.dojo_id::text),
                               ({TENANT_WIDE}, 'chat_total', '')) s(owner_id, metric, key)
"""
_PARTICIPATION_FACTS = f"""
    select x.tenant_id, s.owner_id, s.month, s.metric, s.key, {{d}} * s.seconds as d
    from {{rows}} x
    cross join lateral (select report_month(x.joined_at) as month,
                               report_seconds(x.joined_at, x.left_at) as seconds) f
    cross join lateral (
        values (x.user_id, f.month, 'dojo_seconds', x.dojo_id::text, f.seconds),
               ({TENANT_WIDE}, f.month, 'dojo_seconds', x.dojo_id::text, f.seconds),
               ({TENANT_WIDE}, f.month, 'dojo_seconds_total', '', f.seconds),
               ({TENANT_WIDE}, {EVER}, 'dojo_seconds_ever', x.dojo_id::text,
                greatest(f.seconds, 0))) s(owner_id, month, metric, key, seconds)
    where x.left_at is not null
"""
TABLES = {"dojo_chat": _CHAT_FACTS, "dojo_participation": _PARTICIPATION_FACTS}
"""The fact queries this migration changes (the bench loader builds rollups from them)."""

# Migration 0005's versions, restored by the downgrade.
_OLD_TABLES = {
    "dojo_chat": f"""
    select x.tenant_id, s.owner_id, report_month(x.created_at) as month,
           'chat' as metric, x.dojo_id::text as key, {{d}} as d
    from {{rows}} x
    cross join lateral (values (x.author_id), ({TENANT_WIDE})) s(owner_id)
""",
    "dojo_participation": f"""
    select x.tenant_id, s.owner_id, report_month(x.joined_at) as month,
           'dojo_seconds' as metric, x.dojo_id::text as key,
           {{d}} * report_seconds(x.joined_at, x.left_at) as d
    from {{rows}} x
    cross join lateral (values (x.user_id), ({TENANT_WIDE})) s(owner_id)
    where x.left_at is not null
""",
}


def _trigger_function(table: str, facts: str) -> str:
    """The statement-level trigger function of ``table`` (its triggers stay as they are)."""
    insert = _ROLLUP_UPSERT.format(facts=facts.format(rows="new_rows", d="1"))
    delete = _ROLLUP_UPSERT.format(facts=facts.format(rows="old_rows", d="-1"))
    update = _ROLLUP_UPSERT.format(
        facts=facts.format(rows="new_rows", d="1")
        + " union all "
        + facts.format(rows="old_rows", d="-1")
    )
    return f"""
    create or replace function report_rollup_{table}() returns trigger
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
    """


# The threshold algorithm over the buckets (months[i], spans[i]); see the module docstring.
# Returns every key that can be among the first k by (n desc, key): the first k exactly, plus
# the keys tied with the k-th (callers order and cut). Figures are sums of integer rows.
_REPORT_TOP = f"""
create function report_top(
    p_tenant uuid, p_metric text, p_months date[], p_spans smallint[], p_k integer)
    returns table (key text, n bigint)
    language plpgsql stable
    -- Planned once per session: the statements below are built for any arguments, and a
    -- custom plan costs more to make (~1.5 ms) than to run.
    set plan_cache_mode = force_generic_plan
    as $$
#variable_conflict use_column
declare
    m constant integer := 4 * p_k;  -- rows listed per bucket
    bound bigint;                   -- the most a key never listed can have
    whole boolean;                  -- every bucket was listed whole
    keys text[];
    sums bigint[];
begin
    if not exists (
        select from unnest(p_months, p_spans) t(month, span)
        cross join lateral (
            select from report_rollup r
            where r.tenant_id = p_tenant and r.owner_id = {TENANT_WIDE}
              and r.metric in {RANKED} and r.metric = p_metric
              and r.span = t.span and r.month = t.month and r.n < 0
            limit 1) neg) then
        with tiles as (
            select t.i, t.month, t.span
            from unnest(p_months, p_spans) with ordinality t(month, span, i)),
        listed as (  -- each bucket's m largest rows
            select t.i, r.key, r.n from tiles t cross join lateral (
                select r.key, r.n from report_rollup r
                where r.tenant_id = p_tenant and r.owner_id = {TENANT_WIDE}
                  and r.metric in {RANKED} and r.metric = p_metric
                  and r.span = t.span and r.month = t.month
                order by r.n desc limit m) r),
        edge as (  -- the most a key not listed in a bucket has there (0: listed whole)
            select t.i, t.month, t.span, count(l.key) < m as whole,
                   case when count(l.key) < m then 0 else min(l.n) end as most
            from tiles t left join listed l on l.i = t.i group by t.i, t.month, t.span),
        known as (  -- a listed key has at least its listed rows, at most those + the edges
            select l.key, sum(l.n) as low, array_agg(l.i) as seen,
                   sum(l.n) + (select sum(most) from edge) - sum(e.most) as high
            from listed l join edge e on e.i = l.i group by l.key),
        cut as (select low from known order by low desc offset p_k - 1 limit 1),
        contenders as (  -- keys that may still be among the first k
            select key, low, seen from known
            where high >= coalesce((select low from cut), high)),
        missing as (  -- their rows where they were not listed (not looked up when no k
                      -- keys can get above the bound: then every key is summed below)
            select c.key, r.n from contenders c cross join edge e cross join lateral (
                select r.n from report_rollup r
                where r.tenant_id = p_tenant and r.owner_id = {TENANT_WIDE}
                  and r.span = e.span and r.metric = p_metric and r.month = e.month
                  and r.key = c.key
                limit 1) r  -- one primary key lookup each (a row is unique per bucket)
            where not e.whole and e.i <> all(c.seen)
              and (select high from known order by high desc offset p_k - 1 limit 1)
                  > (select sum(most) from edge)),
        exact as (
            select x.key, sum(x.n)::bigint as n
            from (select key, low as n from contenders union all select key, n from missing) x
            group by x.key having sum(x.n) <> 0)
        select coalesce(array_agg(e.key order by e.n desc, e.key collate "C"), '{{}}'),
               coalesce(array_agg(e.n order by e.n desc, e.key collate "C"), '{{}}'),
               (select sum(most) from edge), (select bool_and(whole) from edge)
        into keys, sums, bound, whole
        from exact e;
        if coalesce(whole, true)
           or (cardinality(sums) >= p_k and sums[p_k] > bound) then
            return query
                select u.key, u.n from unnest(keys, sums) u(key, n)
                where cardinality(sums) < p_k or u.n >= sums[p_k];
            return;
        end if;
    end if;
    -- Flat figures (the largest rows do not settle the ranking; listing more rows per round
    -- measured slower than this on the bench's dojos) or a negative figure: every key.
    return query
        select r.key, sum(r.n)::bigint from unnest(p_months, p_spans) t(month, span)
        cross join lateral (
            select r.key, r.n from report_rollup r
            where r.tenant_id = p_tenant and r.owner_id = {TENANT_WIDE}
              and r.span = t.span and r.metric = p_metric and r.month = t.month) r
        group by r.key having sum(r.n) <> 0
        order by 2 desc fetch first p_k rows with ties;
end $$;
"""


# The most active keys of a period, walking the keys by their figure ever (rows of metric
# || '_ever', one per key, the sum of max(fact, 0): never below the key's figure in any
# period) from the largest down, each summed exactly over the buckets, until the k-th exact
# figure is above the next key's figure ever (every key not walked has at most that).
# Figures that happen once per key (a dojo's participation, mostly in one month) settle it
# in the first batch, where the buckets' largest rows cannot (a dojo is large in one bucket
# and absent from the others, so the bound of report_top is the sum of every bucket's top).
# After four batches, report_top. Returns as report_top does.
_REPORT_TOP_EVER = f"""
create function report_top_ever(
    p_tenant uuid, p_metric text, p_months date[], p_spans smallint[], p_k integer)
    returns table (key text, n bigint)
    language plpgsql stable
    set plan_cache_mode = force_generic_plan
    as $$
#variable_conflict use_column
declare
    walk integer := 8 * p_k;  -- keys walked (from the largest) in this round
    got integer;
    below bigint;             -- the smallest figure ever of the keys walked
    keys text[];
    sums bigint[];
    kth bigint;
begin
    for round in 1..4 loop
        with ever as (
            select r.key, r.n from report_rollup r
            where r.tenant_id = p_tenant and r.owner_id = {TENANT_WIDE}
              and r.metric in {RANKED} and r.metric = p_metric || '_ever'
              and r.span = 1 and r.month = {EVER}
            order by r.n desc limit walk),
        exact as materialized (  -- (once per key, not once per use)
            select e.key, e.n as ever, (
                select coalesce(sum(x.n), 0) from unnest(p_months, p_spans) t(month, span)
                cross join lateral (
                    select r.n from report_rollup r
                    where r.tenant_id = p_tenant and r.owner_id = {TENANT_WIDE}
                      and r.span = t.span and r.metric = p_metric and r.month = t.month
                      and r.key = e.key
                    limit 1) x)::bigint as n
            from ever e)
        select coalesce(array_agg(e.key) filter (where e.n <> 0), '{{}}'),
               coalesce(array_agg(e.n) filter (where e.n <> 0), '{{}}'),
               count(*), min(e.ever)
        into keys, sums, got, below
        from exact e;
        select u.n into kth from unnest(sums) u(n) order by u.n desc offset p_k - 1 limit 1;
        if got < walk or kth > below then  -- every key walked, or none left can rank
            return query
                select u.key, u.n from unnest(keys, sums) u(key, n)
                where kth is null or u.n >= kth;
            return;
        end if;
        walk := walk * 4;
    end loop;
    return query select t.key, t.n from report_top(p_tenant, p_metric, p_months, p_spans, p_k) t;
end $$;
"""


def upgrade() -> None:
    op.execute(f"""
    create index report_rollup_rank
        on report_rollup (tenant_id, metric, span, month, n desc) include (key)
        where owner_id = {TENANT_WIDE} and metric in {RANKED};
    """)
    op.execute(_REPORT_TOP)
    op.execute(_REPORT_TOP_EVER)
    op.execute("""
    grant execute on function report_top(uuid, text, date[], smallint[], integer),
        report_top_ever(uuid, text, date[], smallint[], integer) to pocdojo_app;
    """)
    for table, facts in TABLES.items():
        op.execute(_trigger_function(table, facts))
    # Backfill the totals from the tenant-wide monthly rows of each dojo. FORCE row-level
    # security binds the owner role too: lifted inside this transaction (ACCESS EXCLUSIVE
    # until commit, nobody observes it), as in migration 0005.
    lifted = ("report_rollup", "report_versions", "dojo_participation")
    for table in lifted:
        op.execute(f"alter table {table} no force row level security")
    op.execute(f"""
    insert into report_rollup (tenant_id, owner_id, span, month, metric, key, n)
    select tenant_id, owner_id, 1, month, metric || '_total', '', sum(n)
    from report_rollup
    where owner_id = {TENANT_WIDE} and span = 1 and metric in ('chat', 'dojo_seconds')
    group by tenant_id, owner_id, month, metric
    having sum(n) <> 0
    union all
    select tenant_id, {TENANT_WIDE}, 1, {EVER}, 'dojo_seconds_ever', dojo_id::text,
           sum(greatest(report_seconds(joined_at, left_at), 0))
    from dojo_participation where left_at is not null
    group by tenant_id, dojo_id
    having sum(greatest(report_seconds(joined_at, left_at), 0)) <> 0
    order by 1, 2, 4, 5, 6
    """)
    for table in lifted:
        op.execute(f"alter table {table} force row level security")


def downgrade() -> None:
    for table, facts in _OLD_TABLES.items():
        op.execute(_trigger_function(table, facts))
    op.execute("alter table report_rollup no force row level security")
    op.execute(f"""
    delete from report_rollup
    where owner_id = {TENANT_WIDE}
      and metric in ('chat_total', 'dojo_seconds_total', 'dojo_seconds_ever')
    """)
    op.execute("alter table report_rollup force row level security")
    op.execute("""
    drop function if exists report_top_ever(uuid, text, date[], smallint[], integer);
    drop function if exists report_top(uuid, text, date[], smallint[], integer);
    drop index if exists report_rollup_rank;
    """)

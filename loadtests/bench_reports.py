"""``make bench-reports``: the dashboard from rollups (cache miss and hit) vs the same
figures by aggregate queries, writers with and without the cache's rollup version, and
export time / peak memory per format.

1. Builds its own data set in database ``pocdojo_bench_reports`` (``--pocs``, default
   1,000,000): one tenant of ``--large`` PoCs (default 100,000), one of ``--small`` (1,000),
   the rest in tenants of 10,000; 400 owners in the large tenant; 1-3 languages out of 40
   and 0-4 tags out of 2,000 per PoC (skewed), created over the last 36 months; 10% archived;
   3,000 dojos with participation and chat in the large tenant. Bulk load: rows are inserted
   set-based with every trigger off for the loading sessions only (two in parallel), then the
   rollups are built set-based (one statement per tenant from the triggers' own fact SQL of
   migrations 0005 and 0011) and verified against plain aggregates over the source tables.
   ``--skip-load`` reuses the data set (migrating it to the latest schema).
2. Starts ``loadtests.reports_service`` (one plain uvicorn worker: reports-api and the
   aggregate baseline behind the same auth) and checks both sides return the same figures.
3. Dashboards (all 36 months, the last 12; the small tenant), concurrency 1, sequential
   requests from an httpx client on the same 2 cores: p50/p95/p99, throughput and the
   server's CPU per request (uvicorn + its Postgres backends), for a cache miss (an untimed
   write moves a figure before every request), a cache hit, and the baseline.
4. Single-row write transactions of the large tenant (chat messages of different dojos, PoC
   inserts) from 1 and 8 connections, with the rollup-version triggers on and off.
5. Exports of the large tenant in each format, each in a fresh process (the runner the Ray
   task runs): wall time and peak RSS; baseline: a naive export that loads every row first.

Figures go to ``bench-results/reports.json`` (rows {case, metric, value, unit, side}).
"""

from __future__ import annotations

# A driver, not a service: its file and process calls happen outside the timed sections.
# ruff: noqa: ASYNC220, ASYNC230, ASYNC240
import argparse
import asyncio
import contextlib
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from loadtests.common import ROOT, machine
from pocdojo import admin
from pocdojo.api.identity import make_dev_issuer
from pocdojo.reports import jobs
from pocdojo.reports.jobs import ExportFormat
from pocdojo.reports.period import Period, add_months
from pocdojo.reports.summary import Scope
from pocdojo.settings import Settings
from pocdojo.storage import schema
from pocdojo.storage.db import Database
from pocdojo.types import Role, TenantId, UserId

HOST = "127.0.0.1"
SUMMARY, BASELINE = "/v1/reports/summary", "/baseline/summary"
SERVER_APP = "bench-reports-server"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CHUNK = 50_000
# Loading connections: the 2 cores of this machine.
LOADERS = 2
LANGS = 40
TAGS = 2_000


def log(message: str) -> None:
    print(f"[bench-reports {time.strftime('%H:%M:%S')}] {message}", flush=True)


def urls(database: str) -> dict[str, str]:
    return {
        "app": f"postgresql://pocdojo_app@127.0.0.1:5432/{database}",
        "owner": f"postgresql://pocdojo_owner@127.0.0.1:5432/{database}",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tenant_sizes(total: int, large: int, small: int) -> list[int]:
    sizes = [min(large, total)]
    rest = total - sizes[0]
    if rest >= small:
        sizes.append(small)
        rest -= small
    while rest > 0:
        sizes.append(min(10_000, rest))
        rest -= sizes[-1]
    return sizes


# Bulk load: the rollup triggers (and every other trigger) are off for the loading session
# only (session_replication_role = replica, a superuser setting), so concurrent sessions and
# a crashed run leave the database's triggers as they were; what the BEFORE trigger would
# set (archived_at) is written explicitly. The rollups are then built set-based, one
# statement per source table, from the very fact queries the triggers run (migration 0005),
# and verified against plain aggregates over the source tables.
_INSERT_POCS = f"""
insert into pocs (tenant_id, owner_id, name, languages, tags, status, created_at, archived_at)
select $1, owner_id, name, languages, tags, status, created_at,
       case when status = 'archived' then created_at end
from (
  select ($2::uuid[])[1 + floor(power(random(), 2) * cardinality($2::uuid[]))::int] as owner_id,
         'bench poc ' || g as name,
         (select array_agg(distinct 'lang-' || floor(power(random(), 3) * {LANGS})::int)
            from generate_series(0, g % 3)) as languages,
         coalesce((select array_agg(distinct 'tag-' || floor(power(random(), 2) * {TAGS})::int)
            from generate_series(1, g % 5) where g > 0), '{{}}') as tags,
         case when random() < 0.1 then 'archived' when random() < 0.2 then 'draft'
              else 'active' end as status,
         now() - random() * interval '1080 days' as created_at
  from generate_series($3::int, $4::int) g) x
"""


def _migration_0005() -> Any:
    """The rollup fact queries of migration 0005: the bulk build runs the triggers' SQL."""
    return importlib.import_module("migrations.versions.0005_reports")


def _migration_0011() -> Any:
    """The chat and participation facts as migration 0011 changed them (with the totals)."""
    return importlib.import_module("migrations.versions.0011_report_speed")


async def load(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh database with the data set; returns what the measurements need."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'drop database if exists "{args.database}" with (force)')
    finally:
        await conn.close()
    await schema.bootstrap(ADMIN_URL, args.database)
    await asyncio.to_thread(schema.migrate, urls(args.database)["owner"])
    sizes = tenant_sizes(args.pocs, args.large, args.small)
    log(f"loading {sum(sizes):,} PoCs over {len(sizes)} tenants (largest {sizes[0]:,})")
    started = time.perf_counter()
    tenants: list[dict[str, Any]] = []
    owners: list[list[uuid.UUID]] = []
    async with Database(urls(args.database)["owner"], max_size=2, command_timeout=3600) as db:
        for index, size in enumerate(sizes):
            slug = f"bench-{index:04d}"
            tenant_id = await admin.create_tenant(db, slug, f"Bench Company {index}")
            async with db.global_tx() as conn:
                owner_ids = [
                    r["id"]
                    for r in await conn.fetch(
                        """insert into users (email, display_name)
                           select $1 || '-' || g || '@bench.test', 'Developer ' || g
                           from generate_series(1, $2) g returning id""",
                        slug,
                        400 if index == 0 else 30,
                    )
                ]
            owners.append(owner_ids)
            tenants.append({"id": str(tenant_id), "size": size, "user": str(owner_ids[0])})
    conns = [
        await asyncpg.connect(schema.with_database(ADMIN_URL, args.database), command_timeout=3600)
        for _ in range(LOADERS)
    ]
    try:
        for conn in conns:
            await conn.execute("set session_replication_role = replica")
            await conn.execute("set work_mem = '256MB'")

        async def insert_rows(conn: asyncpg.Connection, index: int) -> None:
            tenant_id, size = uuid.UUID(tenants[index]["id"]), sizes[index]
            for first in range(1, size + 1, CHUNK):
                last = min(first + CHUNK - 1, size)
                await conn.execute(_INSERT_POCS, tenant_id, owners[index], first, last)
            if index < 2:
                await _dojos(conn, tenant_id, owners[index], 3000 if index == 0 else 30)

        await spread(conns, range(len(sizes)), insert_rows)
        rows_s = time.perf_counter() - started
        log(f"rows in {rows_s:,.0f} s ({sum(sizes) / rows_s:,.0f} PoCs/s); building the rollups")
        m0005 = _migration_0005()
        build_pocs = _BUILD_POC_ROLLUP.format(
            facts=m0005._POC_FACTS.format(rows="(select * from pocs where tenant_id = $1)", d="1")
        )

        async def build(conn: asyncpg.Connection, index: int) -> None:
            await conn.execute(build_pocs, uuid.UUID(tenants[index]["id"]))

        await spread(conns, range(len(sizes)), build)
        tables = {**m0005._TABLES, **_migration_0011().TABLES}
        for table in ("dojos", "dojo_chat", "dojo_participation"):
            facts = tables[table].format(rows=table, d="1")
            await conns[0].execute(m0005._ROLLUP_UPSERT.format(facts=facts))
        built_s = time.perf_counter() - started - rows_s
        log(f"rollups built in {built_s:,.0f} s ({sum(sizes) / built_s:,.0f} PoCs/s)")
        conn = conns[0]
        await conn.execute("reset session_replication_role")
        t0 = time.perf_counter()
        await verify_rollups(conn, [uuid.UUID(t["id"]) for t in tenants[:2]])
        verify_s = time.perf_counter() - t0
        log(f"rollups verified against aggregates in {verify_s:,.1f} s")
        await conn.execute("vacuum analyze")
        sizes_mib = {
            t: await conn.fetchval(f"select pg_total_relation_size('{t}') / 1048576.0")
            for t in ("pocs", "report_rollup")
        }
    finally:
        for conn in conns:
            await conn.close()
    elapsed = time.perf_counter() - started
    meta = {
        "tenants": tenants,
        "pocs": sum(sizes),
        "load_s": elapsed,
        "rows_s": rows_s,
        "rollup_build_s": built_s,
        "verify_s": verify_s,
        "pocs_mib": float(sizes_mib["pocs"]),
        "rollup_mib": float(sizes_mib["report_rollup"]),
    }
    Path(args.workdir, "meta.json").write_text(json.dumps(meta))
    log(f"loaded in {elapsed:,.0f} s ({meta['pocs'] / elapsed:,.0f} PoCs/s)")
    return meta


# One tenant's PoC rollup in one statement: the triggers' facts (migration 0005) grouped by
# month, then the multi-month buckets from the monthly rows (not from every fact).
_BUILD_POC_ROLLUP = """
    with f as materialized (
        select owner_id, month, metric, key, sum(d)::int as n from ({facts}) x
        group by 1, 2, 3, 4)
    insert into report_rollup (tenant_id, owner_id, span, month, metric, key, n)
    select $1, owner_id, 1, month, metric, key, n from f
    union all
    select $1, f.owner_id, b.span, b.month, f.metric, f.key, sum(f.n)
    from f cross join lateral report_buckets(
        f.month, f.owner_id = '00000000-0000-0000-0000-000000000000'::uuid, f.metric) b
    where b.span > 1
    group by 2, 3, 4, 5, 6
"""


async def spread(
    conns: list[asyncpg.Connection],
    items: range,
    work: Callable[[asyncpg.Connection, int], Awaitable[None]],
) -> None:
    """``work(conn, item)`` for every item, ``len(conns)`` at a time (one per connection)."""
    queue = list(items)

    async def worker(conn: asyncpg.Connection) -> None:
        while queue:
            await work(conn, queue.pop(0))

    await asyncio.gather(*(worker(conn) for conn in conns))


# Independent of the fact functions: every tenant-wide monthly figure by plain aggregates.
_EXPECTED_MONTHLY = """
    select tenant_id, report_month(created_at) as month, 'created' as metric, '' as key,
           count(*) as n from pocs group by 1, 2
    union all select tenant_id, report_month(created_at), 'status', status, count(*)
      from pocs group by 1, 2, 4
    union all select tenant_id, report_month(created_at), 'owner', owner_id::text, count(*)
      from pocs group by 1, 2, 4
    union all select p.tenant_id, report_month(p.created_at), 'language', l, count(distinct p.id)
      from pocs p, unnest(p.languages) l group by 1, 2, 4
    union all select p.tenant_id, report_month(p.created_at), 'tag', t, count(distinct p.id)
      from pocs p, unnest(p.tags) t group by 1, 2, 4
    union all select tenant_id, report_month(archived_at), 'archived', '', count(*)
      from pocs where archived_at is not null group by 1, 2
    union all select tenant_id, report_month(created_at), 'dojos', '', count(*)
      from dojos group by 1, 2
    union all select tenant_id, report_month(created_at), 'chat', dojo_id::text, count(*)
      from dojo_chat group by 1, 2, 4
    union all select tenant_id, report_month(joined_at), 'dojo_seconds', dojo_id::text,
           sum(floor(extract(epoch from left_at - joined_at)))
      from dojo_participation where left_at is not null group by 1, 2, 4
    union all select tenant_id, report_month(created_at), 'chat_total', '', count(*)
      from dojo_chat group by 1, 2
    union all select tenant_id, report_month(joined_at), 'dojo_seconds_total', '',
           sum(floor(extract(epoch from left_at - joined_at)))
      from dojo_participation where left_at is not null group by 1, 2
    union all select tenant_id, date '1970-01-01', 'dojo_seconds_ever', dojo_id::text,
           sum(greatest(floor(extract(epoch from left_at - joined_at)), 0))
      from dojo_participation where left_at is not null group by 1, 4
      having sum(greatest(floor(extract(epoch from left_at - joined_at)), 0)) <> 0
"""
_ROLLUP_CHECKS = {
    "tenant-wide monthly rows differ from aggregates over the source tables": f"""
        with pocs as (select * from pocs where tenant_id = any($1)),
        dojos as (select * from dojos where tenant_id = any($1)),
        dojo_chat as (select * from dojo_chat where tenant_id = any($1)),
        dojo_participation as (select * from dojo_participation where tenant_id = any($1)),
        expected as ({_EXPECTED_MONTHLY}),
        actual as (select tenant_id, month, metric, key, n::numeric from report_rollup
                   where owner_id = '00000000-0000-0000-0000-000000000000' and span = 1
                     and n <> 0 and tenant_id = any($1))
        select count(*) from ((select * from expected except select * from actual)
                              union all (select * from actual except select * from expected)) d
    """,
    "a multi-month bucket differs from the sum of its months": """
        select count(*) from (
            select tenant_id, metric, key, span, sum(n) from report_rollup
            where owner_id = '00000000-0000-0000-0000-000000000000' and tenant_id = any($1)
            group by 1, 2, 3, 4) s
        join (select tenant_id, metric, key, sum(n) as n from report_rollup
              where owner_id = '00000000-0000-0000-0000-000000000000' and span = 1
                and tenant_id = any($1)
              group by 1, 2, 3) m using (tenant_id, metric, key)
        where s.sum <> m.n
    """,
    "a user's created count differs from their PoCs": """
        select count(*) from (
            select tenant_id, owner_id, count(*) as n from pocs
            where tenant_id = any($1) group by 1, 2) p
        full join (select tenant_id, owner_id, sum(n) as n from report_rollup
                   where metric = 'created' and owner_id <> '00000000-0000-0000-0000-000000000000'
                     and tenant_id = any($1)
                   group by 1, 2 having sum(n) <> 0) r using (tenant_id, owner_id)
        where p.n is distinct from r.n
    """,
    "a tenant's created count differs from its PoCs (every tenant)": """
        select count(*) from (select tenant_id, count(*) as n from pocs group by 1) p
        full join (select tenant_id, sum(n) as n from report_rollup
                   where owner_id = '00000000-0000-0000-0000-000000000000' and span = 1
                     and metric = 'created' and $1::uuid[] is not null
                   group by 1) r using (tenant_id)
        where p.n is distinct from r.n
    """,
}


async def verify_rollups(conn: asyncpg.Connection, tenants: list[uuid.UUID]) -> None:
    """Every figure of ``tenants`` (the measured ones), and every tenant's total."""
    for problem, query in _ROLLUP_CHECKS.items():
        wrong = await conn.fetchval(query, tenants)
        if wrong:
            raise RuntimeError(f"{wrong} rows: {problem}")


async def _dojos(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, users: list[uuid.UUID], count: int
) -> None:
    await conn.execute(
        """insert into dojos (tenant_id, title, language, host_id, created_at, status)
           select $1, 'Kata ' || g, 'python', ($2::uuid[])[1 + g % cardinality($2::uuid[])],
                  now() - random() * interval '1080 days', 'ended'
           from generate_series(1, $3) g""",
        tenant_id,
        users,
        count,
    )
    await conn.execute(
        """insert into dojo_participation (tenant_id, dojo_id, user_id, joined_at, left_at)
           select d.tenant_id, d.id, ($2::uuid[])[1 + (g * 7 + length(d.title))
                    % cardinality($2::uuid[])],
                  d.created_at + g * interval '1 minute',
                  d.created_at + g * interval '1 minute' + random() * interval '2 hours'
           from dojos d, generate_series(1, 8) g where d.tenant_id = $1""",
        tenant_id,
        users,
    )
    await conn.execute(
        """insert into dojo_chat (tenant_id, dojo_id, author_id, body, created_at)
           select d.tenant_id, d.id, d.host_id, 'message ' || g,
                  d.created_at + g * interval '10 seconds'
           from dojos d, generate_series(1, 40) g where d.tenant_id = $1""",
        tenant_id,
    )


def bench_settings(args: argparse.Namespace, port: int) -> Settings:
    return Settings(
        env="development",
        database_url=urls(args.database)["app"],
        owner_database_url=urls(args.database)["owner"],
        blob_url=f"file://{Path(args.workdir, 'blobs')}",
        public_base_url=f"http://{HOST}:{port}",
        oidc_issuer=f"http://{HOST}:{port}/auth",
        oidc_jwks_url=f"http://{HOST}:{port}/auth/jwks.json",
        dev_issuer_key_path=str(Path(args.workdir, "issuer-key.pem")),
        log_level="WARNING",
    )


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"POCDOJO_{name.upper()}"] = str(value)
    return env


@contextlib.asynccontextmanager
async def service(settings: Settings, port: int, workdir: str) -> AsyncIterator[psutil.Process]:
    log_path = Path(workdir, "uvicorn.log")
    env = settings_env(settings)
    # Names the server's connections, for its share of Postgres CPU (ServerCpu).
    env["POCDOJO_DATABASE_URL"] = f"{settings.database_url}?application_name={SERVER_APP}"
    with log_path.open("w") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "loadtests.reports_service:create",
             "--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://{HOST}:{port}/auth/jwks.json")).is_success:
                        break
                if popen.poll() is not None:
                    raise RuntimeError(log_path.read_text()[-3000:])
                await asyncio.sleep(0.2)
        yield psutil.Process(popen.pid)
    finally:
        popen.terminate()
        popen.wait(timeout=15)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    token: str,
    count: int,
    *,
    before: Callable[[], Awaitable[None]] | None = None,
    cache: str | None = None,
    cpu: Callable[[], Awaitable[float]] | None = None,
) -> dict[str, float]:
    """Sequential requests; ``before`` runs (untimed) ahead of each one; ``cache``: the
    ``X-Report-Cache`` every timed response must carry (``hit`` or ``miss``)."""
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(min(5, count)):
        (await client.get(path, params=params, headers=headers)).raise_for_status()
    latencies = []
    timed = 0.0
    cpu_before = await cpu() if cpu else 0.0
    for _ in range(count):
        if before is not None:
            await before()
        t0 = time.perf_counter()
        response = await client.get(path, params=params, headers=headers)
        latencies.append((time.perf_counter() - t0) * 1000)
        timed += time.perf_counter() - t0
        response.raise_for_status()
        if cache is not None and response.headers.get("x-report-cache") != cache:
            raise RuntimeError(f"expected a cache {cache}, got {response.headers}")
    return {
        "p50": pct(latencies, 50),
        "p95": pct(latencies, 95),
        "p99": pct(latencies, 99),
        "mean": statistics.fmean(latencies),
        "throughput": count / timed,
        "cpu": ((await cpu()) - cpu_before) * 1000 / count if cpu else 0.0,
    }


class ServerCpu:
    """CPU seconds used so far by the dashboard server and its Postgres backends: a cost
    per request that, unlike latency, does not grow with the machine's load."""

    def __init__(self, server: psutil.Process, conn: asyncpg.Connection) -> None:
        self._server, self._conn = server, conn
        self._backends: dict[int, psutil.Process] = {}

    async def __call__(self) -> float:
        for pid in await self._conn.fetch(
            """select pid from pg_stat_activity where datname = current_database()
               and usename = 'pocdojo_app' and application_name = $1""",
            SERVER_APP,
        ):
            if pid["pid"] not in self._backends:
                with contextlib.suppress(psutil.Error):
                    self._backends[pid["pid"]] = psutil.Process(pid["pid"])
        total = 0.0
        for process in (self._server, *self._backends.values()):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total


class Invalidator:
    """A write that moves a figure of the tenant (one PoC gains or loses a tag), so the next
    dashboard read misses the cache, exactly as after a user's edit."""

    def __init__(self, db: Database, tenant_id: str) -> None:
        self._db, self._tenant = db, TenantId(uuid.UUID(tenant_id))
        self._poc: uuid.UUID | None = None

    async def __call__(self) -> None:
        async with self._db.tenant_tx(self._tenant) as conn:
            if self._poc is None:
                self._poc = await conn.fetchval("select id from pocs limit 1")
            await conn.execute(
                """update pocs set tags = case when 'bench-cold' = any(tags)
                       then array_remove(tags, 'bench-cold') else tags || '{bench-cold}' end
                   where id = $1""",
                self._poc,
            )


_WRITES = {
    # Each writer its own dojo: disjoint rollup rows, so only the version can make them wait.
    "chat message": """insert into dojo_chat (tenant_id, dojo_id, author_id, body)
                       values ($1, $2, $3, 'contention')""",
    # Every PoC of a month counts into the same tenant-wide rows already.
    "PoC insert": """insert into pocs (tenant_id, owner_id, name, languages)
                     values ($1, $2, 'contention', '{go}')""",
}
_VERSION_TRIGGERS = ("report_versions_ins", "report_versions_upd")
ROUNDS = 3


async def write_contention(
    settings: Settings, owner_url: str, tenant: dict[str, Any], seconds: float
) -> list[tuple[str, str, dict[str, float]]]:
    """Single-row write transactions of one tenant from 1 and 8 concurrent connections, with
    the rollup-version triggers on and off: what exact invalidation costs writers."""
    tenant_id = TenantId(uuid.UUID(tenant["id"]))
    user = uuid.UUID(tenant["user"])
    out: list[tuple[str, str, dict[str, float]]] = []
    owner = await asyncpg.connect(owner_url)
    try:
        async with Database(settings.database_url, max_size=8) as db:
            async with db.tenant_tx(tenant_id) as conn:
                dojos = [r["id"] for r in await conn.fetch("select id from dojos limit 8")]
            # Alternating on/off rounds: a burst of other load hits both sides alike.
            best: dict[tuple[str, str], dict[str, float]] = {}
            for _ in range(ROUNDS):
                for kind, statement in _WRITES.items():
                    for writers in (1, 8):
                        for versions in ("on", "off"):
                            action = "enable" if versions == "on" else "disable"
                            for trigger in _VERSION_TRIGGERS:
                                await owner.execute(
                                    f"alter table report_rollup {action} trigger {trigger}"
                                )
                            figures = await _writes(
                                db, tenant_id, statement, dojos, user, writers, seconds
                            )
                            case = f"{kind}, {writers} writers"
                            kept = best.get((case, versions))
                            if kept is None or figures["throughput"] > kept["throughput"]:
                                best[(case, versions)] = figures
            for (case, versions), figures in best.items():
                out.append((case, versions, figures))
                log(f"writes: {case}, versions {versions}: {figures['throughput']:,.0f} tx/s, "
                    f"p50 {figures['p50']:.1f} p99 {figures['p99']:.1f} ms (best of {ROUNDS}, "
                    f"load {os.getloadavg()[0]:.1f})")  # fmt: skip
    finally:
        for trigger in _VERSION_TRIGGERS:
            await owner.execute(f"alter table report_rollup enable trigger {trigger}")
        await owner.close()
    return out


async def _writes(
    db: Database,
    tenant_id: TenantId,
    statement: str,
    dojos: list[uuid.UUID],
    user: uuid.UUID,
    writers: int,
    seconds: float,
) -> dict[str, float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def writer(index: int) -> None:
        chat = "dojo_chat" in statement
        args = [tenant_id, dojos[index % len(dojos)], user] if chat else [tenant_id, user]
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            async with db.tenant_tx(tenant_id) as conn:
                await conn.execute(statement, *args)
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    return {
        "throughput": len(latencies) / (time.perf_counter() - started),
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
    }


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of a fresh ``bench_reports`` process."""
    started = time.perf_counter()
    popen = subprocess.Popen(
        [sys.executable, "-m", "loadtests.bench_reports", *argv],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    out = popen.stdout.read() if popen.stdout else ""
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    if popen.returncode != 0:
        raise RuntimeError(f"child {argv} exited {popen.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024, out.strip()


async def export_child(settings: Settings, job_id: str, tenant_id: str, lease: str) -> None:
    from pocdojo.reports.runner import run_export

    status = await run_export(
        settings, uuid.UUID(job_id), TenantId(uuid.UUID(tenant_id)), uuid.UUID(lease)
    )
    print(status)


async def naive_child(settings: Settings, fmt: str, tenant_id: str, first: str) -> None:
    from loadtests.reports_baseline import naive_export

    period = Period.parse(first, None)
    path = Path(tempfile.mkdtemp()) / f"x.{fmt}"
    async with (
        Database(settings.database_url, command_timeout=600) as db,
        db.tenant_tx(TenantId(uuid.UUID(tenant_id))) as conn,
    ):
        count = await naive_export(conn, fmt, period, path)
    print(count)


async def main(args: argparse.Namespace) -> None:
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    meta_path = Path(args.workdir, "meta.json")
    meta = json.loads(meta_path.read_text()) if args.skip_load else await load(args)
    if args.load_only:
        return
    if args.skip_load:  # a data set from before the latest migrations
        await asyncio.to_thread(schema.migrate, urls(args.database)["owner"])
    port = free_port()
    settings = bench_settings(args, port)
    issuer = make_dev_issuer(settings)
    large, small = meta["tenants"][0], meta["tenants"][1]
    tokens = {
        t["id"]: issuer.issue(
            user_id=UserId(uuid.UUID(t["user"])),
            tenant_id=TenantId(uuid.UUID(t["id"])),
            roles=[Role.ADMIN],
        ).access_token
        for t in (large, small)
    }
    this_month = time.strftime("%Y-%m")
    first = add_months(Period.parse(None, this_month).last, -35).strftime("%Y-%m")
    params = {"scope": "tenant", "from": first, "to": this_month}
    rows: list[dict[str, Any]] = []

    def row(case: str, metric: str, value: float, unit: str, side: str) -> None:
        rows.append({"case": case, "metric": metric, "value": round(value, 3), "unit": unit,
                     "side": side})  # fmt: skip

    row("load", "pocs", meta["pocs"], "count", "project")
    row("load", "total", meta["load_s"], "s", "project")
    row("load", "rows_bulk_insert", meta.get("rows_s", 0.0), "s", "project")
    row("load", "rollup_build", meta.get("rollup_build_s", 0.0), "s", "project")
    row("load", "rollup_verify", meta.get("verify_s", 0.0), "s", "project")
    row("storage", "pocs_table", meta["pocs_mib"], "MiB", "baseline")
    row("storage", "rollup_table", meta["rollup_mib"], "MiB", "project")

    async with (
        service(settings, port, args.workdir) as server,
        Database(settings.database_url) as db,
        httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=60) as client,
    ):
        probe = await asyncpg.connect(urls(args.database)["owner"])
        cpu = ServerCpu(server, probe)
        for tenant in (large, small):
            token = tokens[tenant["id"]]
            headers = {"Authorization": f"Bearer {token}"}
            project = await client.get("/v1/reports/summary", params=params, headers=headers)
            baseline = await client.get("/baseline/summary", params=params, headers=headers)
            if project.json() != baseline.json():
                raise RuntimeError(f"figures differ for tenant {tenant['id']}")
            created = project.json()["totals"]["pocs_created"]
            log(f"tenant of {tenant['size']:,}: both sides agree ({created:,} in the period)")
        last12 = {**params, "from": add_months(Period.parse(None, this_month).last, -11)
                  .strftime("%Y-%m")}  # fmt: skip
        for label, tenant, months, query in (
            ("largest", large, 36, params),
            ("largest", large, 12, last12),
            ("small", small, 36, params),
        ):
            case = f"dashboard {label} tenant ({tenant['size']:,} PoCs, {months} months)"
            invalidate = Invalidator(db, tenant["id"])
            for suffix, side, path, count, before, cache in (
                (" cache miss", "project", SUMMARY, args.requests, invalidate, "miss"),
                (" cache hit", "project", SUMMARY, args.requests, None, "hit"),
                (" cache miss", "baseline", BASELINE, args.baseline_requests, None, None),
            ):
                figures = await measure(
                    client, path, query, tokens[tenant["id"]], count,
                    before=before, cache=cache, cpu=cpu,
                )  # fmt: skip
                for metric in ("p50", "p95", "p99", "mean"):
                    row(case + suffix, metric, figures[metric], "ms", side)
                row(case + suffix, "server_cpu_per_request", figures["cpu"], "ms", side)
                row(case + suffix, "throughput_c1", figures["throughput"], "req/s", side)
                log(
                    f"{case}{suffix} {side}: p50 {figures['p50']:.1f} "
                    f"p95 {figures['p95']:.1f} p99 {figures['p99']:.1f} ms, "
                    f"{figures['throughput']:.1f} req/s, server CPU {figures['cpu']:.1f} ms/req "
                    f"(load {os.getloadavg()[0]:.1f})"
                )
        row("dashboard server", "rss", server.memory_info().rss / 2**20, "MiB", "project")
        await probe.close()

    if args.write_seconds > 0:
        contention = await write_contention(
            settings, urls(args.database)["owner"], large, args.write_seconds
        )
        for case, versions, figures in contention:
            side = "project" if versions == "on" else "baseline"
            row(f"writes {case} (baseline: versions off)", "throughput", figures["throughput"],
                "tx/s", side)  # fmt: skip
            for metric in ("p50", "p99"):
                row(f"writes {case} (baseline: versions off)", metric, figures[metric], "ms",
                    side)  # fmt: skip

    env = settings_env(settings)
    async with Database(settings.database_url) as db:
        for fmt in filter(None, args.formats.split(",")):
            async with db.tenant_tx(TenantId(uuid.UUID(large["id"]))) as conn:
                job = await jobs.insert_job(
                    conn, TenantId(uuid.UUID(large["id"])), UserId(uuid.UUID(large["user"])),
                    Scope.TENANT, ExportFormat(fmt), Period.parse(first, this_month),
                )  # fmt: skip
            wall, rss, out = await asyncio.to_thread(
                run_child, ["--export-child", str(job.id), large["id"], str(job.lease)], env
            )
            async with db.tenant_tx(TenantId(uuid.UUID(large["id"]))) as conn:
                done = await jobs.get_job(conn, job.id)
            if out != "done" or done.status != "done":
                raise RuntimeError(f"{fmt} export ended {out} / {done.status}")
            case = f"export {fmt} largest tenant"
            row(case, "wall", wall, "s", "project")
            row(case, "peak_rss", rss, "MiB", "project")
            row(case, "rows", done.row_count or 0, "count", "project")
            row(case, "size", (done.size_bytes or 0) / 2**20, "MiB", "project")
            log(f"{case}: {wall:.1f} s, peak RSS {rss:.0f} MiB, {done.row_count:,} rows, "
                f"{(done.size_bytes or 0) / 2**20:.1f} MiB")  # fmt: skip
            if fmt != "pdf" and not args.no_naive:
                wall, rss, out = await asyncio.to_thread(
                    run_child, ["--naive-child", fmt, large["id"], first], env
                )
                row(case, "wall", wall, "s", "baseline")
                row(case, "peak_rss", rss, "MiB", "baseline")
                log(f"{case} naive (all rows in memory): {wall:.1f} s, peak RSS {rss:.0f} MiB")

    result = Path(ROOT, "bench-results", "reports.json")
    result.parent.mkdir(exist_ok=True)
    result.write_text(json.dumps(rows, indent=1))
    print(json.dumps({"machine": machine(), "pocs": meta["pocs"]}, indent=1))
    print(f"{'case':58} {'metric':24} {'project':>12} {'baseline':>12} unit")
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        table.setdefault((r["case"], r["metric"]), {"unit": r["unit"]})[r["side"]] = r["value"]
    for (case, metric), v in table.items():
        print(f"{case:58} {metric:24} {v.get('project', ''):>12} {v.get('baseline', ''):>12} "
              f"{v['unit']}")  # fmt: skip
    log(f"wrote {result}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pocs", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--database", default="pocdojo_bench_reports")
    parser.add_argument("--workdir", default=str(Path(ROOT, "var", "bench-reports")))
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--load-only", action="store_true", help="build the data set and stop")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--baseline-requests", type=int, default=20)
    parser.add_argument("--formats", default="csv,xlsx,pdf")
    parser.add_argument(
        "--write-seconds", type=float, default=2.0, help="per write-contention case (0: skip)"
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive exports")
    parser.add_argument("--export-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--naive-child", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.export_child or arguments.naive_child:
        child_settings = Settings()  # from the POCDOJO_* the parent set
        if arguments.export_child:
            asyncio.run(export_child(child_settings, *arguments.export_child))
        else:
            asyncio.run(naive_child(child_settings, *arguments.naive_child))
    else:
        asyncio.run(main(arguments))

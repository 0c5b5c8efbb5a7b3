"""``make bench-reports``: the dashboard from rollups vs the same figures by aggregate
queries, and export time / peak memory per format.

1. Builds its own data set in database ``pocdojo_bench_reports`` (``--pocs``, default
   1,000,000): one tenant of ``--large`` PoCs (default 100,000), one of ``--small`` (1,000),
   the rest in tenants of 10,000; 400 owners in the large tenant; 1-3 languages out of 40
   and 0-4 tags out of 2,000 per PoC (skewed), created over the last 36 months; 10% archived;
   3,000 dojos with participation and chat in the large tenant. Rows go in through the
   normal tables, so the rollup triggers run (load rate printed). ``--skip-load`` reuses it.
2. Starts ``loadtests.reports_service`` (one plain uvicorn worker: reports-api and the
   aggregate baseline behind the same auth) and checks both sides return the same figures.
3. Dashboard, period = all 36 months (the heaviest), concurrency 1, sequential requests
   from an httpx client on the same 2 cores: p50/p95/p99 and throughput per side and tenant.
4. Exports of the large tenant in each format, each in a fresh process (the runner the Ray
   task runs): wall time and peak RSS; baseline: a naive export that loads every row first.

Figures go to ``bench-results/reports.json`` (rows {case, metric, value, unit, side}).
"""

from __future__ import annotations

# A driver, not a service: its file and process calls happen outside the timed sections.
# ruff: noqa: ASYNC220, ASYNC230, ASYNC240
import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
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
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CHUNK = 50_000
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


_INSERT_POCS = f"""
insert into pocs (tenant_id, owner_id, name, languages, tags, status, created_at)
select $1,
       ($2::uuid[])[1 + floor(power(random(), 2) * cardinality($2::uuid[]))::int],
       'bench poc ' || g,
       (select array_agg(distinct 'lang-' || floor(power(random(), 3) * {LANGS})::int)
          from generate_series(0, g % 3)),
       coalesce((select array_agg(distinct 'tag-' || floor(power(random(), 2) * {TAGS})::int)
          from generate_series(1, g % 5) where g > 0), '{{}}'),
       case when random() < 0.1 then 'archived' when random() < 0.2 then 'draft'
            else 'active' end,
       now() - random() * interval '1080 days'
from generate_series($3::int, $4::int) g
"""


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
    async with Database(urls(args.database)["owner"], max_size=2, command_timeout=3600) as db:
        for index, size in enumerate(sizes):
            slug = f"bench-{index:04d}"
            tenant_id = await admin.create_tenant(db, slug, f"Bench Company {index}")
            owners = 400 if index == 0 else 30
            async with db.global_tx() as conn:
                owner_ids = [
                    r["id"]
                    for r in await conn.fetch(
                        """insert into users (email, display_name)
                           select $1 || '-' || g || '@bench.test', 'Developer ' || g
                           from generate_series(1, $2) g returning id""",
                        slug,
                        owners,
                    )
                ]
            for first in range(1, size + 1, CHUNK):
                async with db.tenant_tx(tenant_id) as conn:
                    await conn.execute(
                        _INSERT_POCS, tenant_id, owner_ids, first, min(first + CHUNK - 1, size)
                    )
            if index < 2:
                await _dojos(db, tenant_id, owner_ids, 3000 if index == 0 else 30)
            tenants.append({"id": str(tenant_id), "size": size, "user": str(owner_ids[0])})
            if index % 10 == 0:
                done = sum(t["size"] for t in tenants)
                rate = done / (time.perf_counter() - started)
                log(f"  {done:,} PoCs ({rate:,.0f}/s with the rollup triggers)")
    elapsed = time.perf_counter() - started
    conn = await asyncpg.connect(urls(args.database)["owner"])
    try:
        await conn.execute("analyze")
        sizes_mib = {
            t: await conn.fetchval(f"select pg_total_relation_size('{t}') / 1048576.0")
            for t in ("pocs", "report_rollup")
        }
    finally:
        await conn.close()
    meta = {
        "tenants": tenants,
        "pocs": sum(sizes),
        "load_s": elapsed,
        "pocs_mib": float(sizes_mib["pocs"]),
        "rollup_mib": float(sizes_mib["report_rollup"]),
    }
    Path(args.workdir, "meta.json").write_text(json.dumps(meta))
    log(f"loaded in {elapsed:,.0f} s ({meta['pocs'] / elapsed:,.0f} PoCs/s)")
    return meta


async def _dojos(db: Database, tenant_id: TenantId, users: list[uuid.UUID], count: int) -> None:
    async with db.tenant_tx(tenant_id) as conn:
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
    with log_path.open("w") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "loadtests.reports_service:create",
             "--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=settings_env(settings), stdout=out, stderr=subprocess.STDOUT,
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
    client: httpx.AsyncClient, path: str, params: dict[str, str], token: str, count: int
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(min(5, count)):
        (await client.get(path, params=params, headers=headers)).raise_for_status()
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        response = await client.get(path, params=params, headers=headers)
        latencies.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    wall = time.perf_counter() - started
    return {
        "p50": pct(latencies, 50),
        "p95": pct(latencies, 95),
        "p99": pct(latencies, 99),
        "mean": statistics.fmean(latencies),
        "throughput": count / wall,
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
    row("load", "pocs_per_s_with_triggers", meta["pocs"] / meta["load_s"], "1/s", "project")
    row("storage", "pocs_table", meta["pocs_mib"], "MiB", "baseline")
    row("storage", "rollup_table", meta["rollup_mib"], "MiB", "project")

    async with service(settings, port, args.workdir) as server:
        base = f"http://{HOST}:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
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
                for side, path, count in (
                    ("project", "/v1/reports/summary", args.requests),
                    ("baseline", "/baseline/summary", args.baseline_requests),
                ):
                    figures = await measure(client, path, query, tokens[tenant["id"]], count)
                    for metric in ("p50", "p95", "p99", "mean"):
                        row(case, metric, figures[metric], "ms", side)
                    row(case, "throughput_c1", figures["throughput"], "req/s", side)
                    log(
                        f"{case} {side}: p50 {figures['p50']:.1f} p95 {figures['p95']:.1f} "
                        f"p99 {figures['p99']:.1f} ms, {figures['throughput']:.1f} req/s"
                    )
            row("dashboard server", "rss", server.memory_info().rss / 2**20, "MiB", "project")

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
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--baseline-requests", type=int, default=20)
    parser.add_argument("--formats", default="csv,xlsx,pdf")
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

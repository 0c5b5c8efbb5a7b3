"""make bench-search: the search service over 1M PoCs, against a naive ILIKE baseline.

    .venv/bin/python -m loadtests.bench_search [--docs 1000000] [--tenants 1000]
        [--duration 10] [--skip-load] [--seed 20261125] [--no-cache] [--sides both|project]

What it does, in one run (about 8 minutes at the default size on the 2-core machine, 6 with
``--skip-load``):

1. creates (idempotently) the database ``pocdojo_bench`` (or ``$BENCH_SEARCH_DB``) with the
   project's roles and extensions (``schema.bootstrap`` as ``postgres``) and migrates it, on
   the bench's own PostgreSQL cluster, 127.0.0.1:5433 (``$BENCH_PG_PORT``), which
   ``scripts/ensure-bench-postgres.sh`` (run by ``make bench-search``) creates and starts
   with production's memory settings (RDS db.r7g.large defaults: ``shared_buffers`` 4 GB);
   the machine's shared server (5432, Debian's 128 MB) and its databases are never touched
   (``BENCH_PG_PORT=5432`` measures on it anyway);
2. unless ``--skip-load``: generates a fixed, seeded data set (``generate_pocs``) of
   ``--docs`` PoCs over ``--tenants`` tenants with a skew: 3 tenants of 10% of the docs each
   (100,000 at the default size), the other tenants share the remaining 70% along a
   Zipf-like curve (weight 1/(rank+10): about 14,000 docs for the largest, 150 for the
   smallest). It loads them, tenant after tenant in batches of 50,000, into
   ``search.pocs`` through ``PostgresSearch.bulk_load`` (timed: the indexing throughput)
   and with COPY into the naive table ``bench_naive.pocs`` (primary key only), then runs
   ``VACUUM ANALYZE`` on both. The load's figures are kept in ``bench_naive.meta`` so that
   ``--skip-load`` reuses the database and reports them again;
   Before the runs, ``pg_prewarm`` reads both sides' tables and indexes into the buffers
   (a running server holds its working set; a restarted one would measure its warm-up);
3. picks the queries from the loaded data (deterministic: documents in id order, a seeded
   random generator), 400 per query type, half on the three large tenants and half on
   random small ones, one token per tenant (the dev issuer's key, ``./var``):

   =============  ===========================================================
   prefix         ``/v1/search?q=<first 3-5 letters of a word of a real name>``
   typo           ``/v1/search?q=<a name word with one letter doubled or dropped>``
   language       ``/v1/search?language=<a language of a real doc>`` (no q)
   two_tags       ``/v1/search?tag=<a>&tag=<b>`` (two tags of one real doc)
   text_filters   ``/v1/search?q=<a description word>&language=<l>&status=active``
   typeahead      ``/v1/search/suggest?q=<first 3 letters of a name>``
   =============  ===========================================================

4. starts two services, each one plain uvicorn worker on a free port of 127.0.0.1 with
   the factory ``loadtests.search_service:create``:

   * side ``project``: the production search-api app (``create_search_app``) with its
     default backend ``PostgresSearch`` (role ``pocdojo_search``, the indexes of
     migrations 0002-0012), mounted with poc-api and the dev issuer as ``create_local_app``
     does. Its answer cache (keyed by the tenant's index version) is on, as in production:
     wrk repeats the 400 queries of a type, so after the first round most answers are cache
     hits; ``--no-cache`` turns it off, and every request runs its statements (the cost of
     a miss);
   * side ``baseline``: the same search-api app (routing, auth, JSON) with
     ``loadtests.naive_search.NaiveSearch`` injected: ``ILIKE '%q%'`` on name and
     description, array operators, facets by ``unnest`` over every match, no index but the
     primary key;

   Both sides verify the same tokens (issuer ``http://127.0.0.1:<project port>/auth``, each
   side fetches the keys from its own ``/auth/jwks.json``). This is the service as the
   production code runs it, without Ray Serve: the Serve proxy adds about 3-5 ms per
   request and is measured by ``make bench-api``;
5. for each side and query type runs ``wrk -t1 -c1`` (the p99 goal) and ``wrk -t2 -c16``,
   then ``wrk -t2 -c16`` over the whole mix (the throughput goal), each after a short
   warm-up, with ``loadtests/wrk/search_mix.lua`` (a random line of a file of
   path + token per request); the server's, PostgreSQL's and other processes' CPU is
   sampled with psutil;
6. times 2,000 single ``PostgresSearch.upsert`` calls (new versions of existing docs: the
   per-event indexing path), and the write-to-searchable lag through the real pipeline:
   ``POST /v1/pocs`` on the project service (poc-api: the PoC and its outbox event in one
   transaction) -> ``pocdojo outbox relay`` -> Redis stream ``pocdojo-bench:events``
   (database 14) -> ``pocdojo search indexer`` -> ``search.pocs``, polling
   ``GET /v1/search?q=<unique word>`` every 5 ms from the 201 until the PoC is a hit;
7. prints the machine, the wrk version and the tables side by side, and writes
   ``bench-results/search.json``: rows ``{"case", "metric", "value", "unit", "side"}``.

Goals (the issue): every query type p99 under 10 ms at concurrency 1, and at least 500
queries/s at concurrency 16 (the mix), on the project side.

Load comes from wrk (C, epoll), not from Python: on 2 cores a Python load generator takes
the CPU from the server. wrk still shares the 2 cores with uvicorn and PostgreSQL: the
figures are for "everything on one 2-core machine". All traffic goes to 127.0.0.1; every
step has a timeout. Requirements: PostgreSQL on 127.0.0.1:$BENCH_PG_PORT (superuser ``postgres``
without password, as ``pocdojo migrate`` needs), Redis on 127.0.0.1:6379, ``wrk``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlencode

import asyncpg
import httpx
import psutil

from loadtests.common import machine
from loadtests.naive_search import COLUMNS, DDL, SCHEMA, copy_record
from pocdojo import admin
from pocdojo.api.identity import make_dev_issuer
from pocdojo.domain.seed_corpus import generate_pocs
from pocdojo.domain.text import terms
from pocdojo.settings import Settings
from pocdojo.storage import schema
from pocdojo.storage.db import Database
from pocdojo.storage.search import SearchDoc
from pocdojo.storage.search_postgres import PostgresSearch
from pocdojo.types import Role, TenantId, UserId

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "loadtests" / "wrk" / "search_mix.lua"
HOST = "127.0.0.1"
# BENCH_SEARCH_DB lets parallel branches (one machine, several engineers) keep their own copy:
# a branch whose migrations run ahead must not stamp the shared database with a revision the
# others' code does not know.
DB_NAME = os.environ.get("BENCH_SEARCH_DB", "pocdojo_bench")
# The bench's own PostgreSQL cluster, configured like production's memory (made and started by
# scripts/ensure-bench-postgres.sh, which `make bench-search` runs first); BENCH_PG_PORT=5432
# measures on the machine's shared server instead.
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5433"))
ADMIN_URL = f"postgresql://postgres@{HOST}:{PG_PORT}/postgres"
OWNER_URL = f"postgresql://pocdojo_owner@{HOST}:{PG_PORT}/{DB_NAME}"
APP_URL = f"postgresql://pocdojo_app@{HOST}:{PG_PORT}/{DB_NAME}"
RELAY_URL = f"postgresql://pocdojo_relay@{HOST}:{PG_PORT}/{DB_NAME}"
SEARCH_URL = f"postgresql://pocdojo_search@{HOST}:{PG_PORT}/{DB_NAME}"
BENCH_ADMIN_URL = f"postgresql://postgres@{HOST}:{PG_PORT}/{DB_NAME}"
REDIS_URL = f"redis://{HOST}:6379/14"
EVENTS_STREAM = "pocdojo-bench:events"
NAMESPACE = uuid.UUID("0f3c2a61-43a5-4f1e-9d4b-6b2f0d6c5e21")

QUERY_TYPES = ("prefix", "typo", "language", "two_tags", "text_filters", "typeahead")
BIG_TENANTS = 3
BIG_SHARE = 0.10  # of the docs, each
ZIPF_OFFSET = 10
BATCH = 50_000
LINES_PER_TYPE = 400
SAMPLE_PER_TENANT = 40
TOKEN_TTL_S = 6 * 3600
WRK_TIMEOUT = "5s"  # the services' database command timeout is 5 s too
GOAL_P99_MS = 10.0
GOAL_QPS = 500.0
OTHER_CPU_WARN = 30.0  # % of one core taken by processes that are neither server, db nor wrk
LAG_TIMEOUT_S = 10.0
LAG_POLL_S = 0.005

Side = Literal["project", "baseline"]
SIDES: tuple[Side, ...] = ("project", "baseline")
SIDE_LABEL: dict[Side, str] = {"project": "PostgresSearch", "baseline": "naive ILIKE"}


class BenchError(RuntimeError):
    """A precondition failed; the message says what to do."""


def log(message: str) -> None:
    print(f"[bench-search] {message}", flush=True)


# --------------------------------------------------------------------------- machine, wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is not installed: run `sudo apt-get install -y wrk`")
    return found


def wrk_version(wrk: str) -> str:
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def code_version() -> str:
    """Which search backend code ran: other work may change it between runs."""
    path = ROOT / "pocdojo" / "storage" / "search_postgres.py"
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    except OSError:
        return "unknown"
    return f"search_postgres.py sha256 {digest} (modified {stamp:%Y-%m-%d %H:%M} UTC)"


def busy_core_percent(before: Any, after: Any, wall_s: float) -> float:
    """Busy CPU between two ``psutil.cpu_times()`` readings, 100 = one core."""
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (
        before.idle + getattr(before, "iowait", 0.0)
    )
    busy = (sum(after) - sum(before)) - idle
    return 100.0 * busy / wall_s if wall_s > 0 else 0.0


def top_processes(seconds: float = 2.0) -> tuple[float, list[str]]:
    """Host busy (100 = one core) over ``seconds`` and the five busiest processes."""
    procs = list(psutil.process_iter(["pid", "name", "cpu_times"]))
    before, t0 = psutil.cpu_times(), time.monotonic()
    time.sleep(seconds)
    busy = busy_core_percent(before, psutil.cpu_times(), time.monotonic() - t0)
    used: list[tuple[float, str]] = []
    for proc in procs:
        start = proc.info.get("cpu_times")
        try:
            end = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if start is not None:
            delta = end.user + end.system - start.user - start.system
            used.append((delta, f"{proc.info['name']}({proc.info['pid']})"))
    names = [
        f"{name} {100 * d / seconds:.0f}%" for d, name in sorted(used, reverse=True)[:5] if d > 0
    ]
    return busy, names


CpuSnapshot = dict[tuple[int, float], tuple[str, float]]  # (pid, created) -> (kind, cpu s)
_BACKEND = re.compile(r"^postgres: [^:]+: \S+ (\S+) ")


def cpu_snapshot() -> CpuSnapshot:
    """CPU seconds per process: kind "postgres" (backends of the bench database and the
    server's own processes) or "other" (everything else, other databases' backends too)."""
    snapshot: CpuSnapshot = {}
    for proc in psutil.process_iter(["name", "cpu_times", "create_time", "cmdline"]):
        times, created = proc.info.get("cpu_times"), proc.info.get("create_time")
        if times is None or created is None:
            continue
        kind = "other"
        if (proc.info.get("name") or "").startswith("postgres"):
            backend = _BACKEND.match(" ".join(proc.info.get("cmdline") or []))
            kind = "postgres" if backend is None or backend.group(1) == DB_NAME else "other"
        snapshot[(proc.pid, created)] = (kind, times.user + times.system)
    return snapshot


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Cpu:
    """Where the CPU went during one run; 100 = one core (the machine has 200)."""

    server: float = 0.0
    postgres: float = 0.0
    wrk: float = 0.0
    other: float = 0.0
    host: float = 0.0

    def describe(self) -> str:
        return (
            f"CPU (100 = one core): server {self.server:.0f}, "
            f"postgres (bench db) {self.postgres:.0f}, wrk {self.wrk:.0f}, "
            f"other {self.other:.0f}; machine {self.host:.0f} of "
            f"{100 * len(os.sched_getaffinity(0))}"
        )


class CpuMeter:
    """CPU of the server process, PostgreSQL backends, wrk (reaped children) and the rest."""

    def __init__(self, server_pid: int) -> None:
        self._server_pid = server_pid
        self._t0 = self._epoch0 = 0.0
        self._host0: Any = None
        self._snap0: CpuSnapshot = {}
        self._children0 = 0.0
        self.result = Cpu()

    def __enter__(self) -> Self:
        self._snap0, self._children0 = cpu_snapshot(), children_cpu()
        self._host0, self._t0, self._epoch0 = psutil.cpu_times(), time.monotonic(), time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        snap1, children1 = cpu_snapshot(), children_cpu()
        host1, wall = psutil.cpu_times(), max(time.monotonic() - self._t0, 1e-6)
        used = {"server": 0.0, "postgres": 0.0}
        for key, (kind, seconds) in snap1.items():
            if key in self._snap0:
                delta = seconds - self._snap0[key][1]
            elif key[1] >= self._epoch0 - 1.0:
                delta = seconds
            else:
                continue
            if key[0] == self._server_pid:
                used["server"] += delta
            elif kind == "postgres":
                used["postgres"] += delta
        wrk = children1 - self._children0
        host = busy_core_percent(self._host0, host1, wall)
        server, pg, wrk_pct = (
            100 * used["server"] / wall,
            100 * used["postgres"] / wall,
            100 * wrk / wall,
        )
        self.result = Cpu(server, pg, wrk_pct, max(0.0, host - server - pg - wrk_pct), host)


# --------------------------------------------------------------------------- data set


def tenant_sizes(docs: int, tenants: int) -> list[int]:
    """3 tenants of 10% each, the rest along 1/(rank+10), every tenant at least one doc."""
    small = tenants - BIG_TENANTS
    big = int(docs * BIG_SHARE)
    rest = docs - BIG_TENANTS * big
    if small < 1 or rest < small:
        raise BenchError(f"--docs {docs} --tenants {tenants}: need > 3 tenants and enough docs")
    weights = [1.0 / (rank + ZIPF_OFFSET) for rank in range(1, small + 1)]
    total = sum(weights)
    sizes = [max(1, int(rest * w / total)) for w in weights]
    sizes[0] += rest - sum(sizes)
    return [big] * BIG_TENANTS + sizes


def tenant_ids(tenants: int, seed: int) -> list[TenantId]:
    return [TenantId(uuid.uuid5(NAMESPACE, f"tenant:{seed}:{k}")) for k in range(tenants)]


def generate_docs(
    sizes: list[int], tenants: list[TenantId], seed: int
) -> Iterator[tuple[TenantId, SearchDoc]]:
    """Every doc of every tenant, tenant after tenant (so a batch holds few tenants)."""
    rng = random.Random(seed ^ 0x5EED)
    pocs = generate_pocs(sum(sizes), seed=seed)
    i = 0
    for k, (tenant, size) in enumerate(zip(tenants, sizes, strict=True)):
        owners = [uuid.uuid5(NAMESPACE, f"user:{seed}:{k}:{j}") for j in range(1 + size // 500)]
        for _ in range(size):
            poc = next(pocs)
            created = dt.datetime.combine(poc.built_on, dt.time(), dt.UTC) + dt.timedelta(
                seconds=rng.randrange(30 * 86_400)
            )
            yield (
                tenant,
                SearchDoc(
                    id=uuid.uuid5(NAMESPACE, f"poc:{seed}:{i}"),
                    version=1,
                    name=poc.name,
                    description=poc.description,
                    languages=poc.languages,
                    tags=poc.tags,
                    owner_id=rng.choice(owners),
                    status=poc.status,
                    built_on=poc.built_on,
                    created_at=created,
                    updated_at=created,
                ),
            )
            i += 1


def batched(
    items: Iterable[tuple[TenantId, SearchDoc]], size: int
) -> Iterator[list[tuple[TenantId, SearchDoc]]]:
    batch: list[tuple[TenantId, SearchDoc]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class LoadStats:
    docs: int = 0
    generate_s: float = 0.0
    project_s: float = 0.0  # PostgresSearch.bulk_load
    baseline_s: float = 0.0  # COPY into bench_naive.pocs
    project_vacuum_s: float = 0.0
    baseline_vacuum_s: float = 0.0
    loaded_at: str = ""
    from_earlier_run: bool = False


async def prepare_database() -> None:
    log(f"database {DB_NAME}: bootstrap (roles, extensions) and migrate")
    try:
        await schema.bootstrap(ADMIN_URL, DB_NAME)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(
            f"cannot bootstrap {DB_NAME} as postgres on {HOST}:{PG_PORT}: {exc} "
            "(scripts/ensure-bench-postgres.sh starts the bench's cluster)"
        ) from exc
    await asyncio.to_thread(schema.migrate, OWNER_URL)
    conn = await asyncpg.connect(OWNER_URL, timeout=10)
    try:
        await conn.execute(DDL)
        await conn.execute(
            f"create table if not exists {SCHEMA}.meta (key text primary key, value jsonb)"
        )
    finally:
        await conn.close()


async def read_meta(args: argparse.Namespace) -> LoadStats:
    conn = await asyncpg.connect(OWNER_URL, timeout=10)
    try:
        raw = await conn.fetchval(f"select value::text from {SCHEMA}.meta where key = 'load'")
    finally:
        await conn.close()
    meta = json.loads(raw) if raw else {}
    wanted = {"docs": args.docs, "tenants": args.tenants, "seed": args.seed}
    if {k: meta.get(k) for k in wanted} != wanted:
        raise BenchError(
            f"--skip-load: {DB_NAME} holds { ({k: meta.get(k) for k in wanted}) }, not {wanted}; "
            "run once without --skip-load"
        )
    stats = LoadStats(**meta["stats"])
    stats.from_earlier_run = True
    return stats


async def load(args: argparse.Namespace, sizes: list[int], tenants: list[TenantId]) -> LoadStats:
    stats = LoadStats()
    owner = await asyncpg.connect(OWNER_URL, timeout=10)
    try:
        await owner.execute(f"delete from {SCHEMA}.meta where key = 'load'")
        await owner.execute(
            "truncate search.pocs, search.terms, search.name_words, search.text_words, "
            f"search.facets, {SCHEMA}.pocs",
            timeout=300,
        )
        async with Database(SEARCH_URL, max_size=1, command_timeout=60) as db:
            index = PostgresSearch(db)
            docs = generate_docs(sizes, tenants, args.seed)
            t_start = time.monotonic()
            while True:
                t0 = time.perf_counter()
                batch = next(batched(docs, BATCH), None)
                stats.generate_s += time.perf_counter() - t0
                if not batch:
                    break
                t0 = time.perf_counter()
                written = await index.bulk_load(batch)
                stats.project_s += time.perf_counter() - t0
                t0 = time.perf_counter()
                await owner.copy_records_to_table(
                    "pocs",
                    schema_name=SCHEMA,
                    columns=list(COLUMNS),
                    records=[copy_record(t, d) for t, d in batch],
                    timeout=900,
                )
                stats.baseline_s += time.perf_counter() - t0
                stats.docs += len(batch)
                if written != len(batch):
                    raise BenchError(f"bulk_load wrote {written} of {len(batch)} docs")
                log(
                    f"  loaded {stats.docs:,}/{args.docs:,} docs "
                    f"({time.monotonic() - t_start:.0f}s; bulk_load "
                    f"{stats.docs / stats.project_s:,.0f} docs/s, COPY naive "
                    f"{stats.docs / stats.baseline_s:,.0f} docs/s)"
                )
        for side, table in (("project", "search.pocs"), ("baseline", f"{SCHEMA}.pocs")):
            t0 = time.perf_counter()
            await owner.execute(f"vacuum analyze {table}", timeout=900)
            if side == "project":
                await owner.execute(
                    "vacuum analyze search.terms, search.name_words, search.text_words, "
                    "search.facets",
                    timeout=900,
                )
                stats.project_vacuum_s = time.perf_counter() - t0
            else:
                stats.baseline_vacuum_s = time.perf_counter() - t0
        stats.loaded_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        meta = {"docs": args.docs, "tenants": args.tenants, "seed": args.seed}
        meta["stats"] = {k: v for k, v in vars(stats).items() if k != "from_earlier_run"}
        await owner.execute(
            f"insert into {SCHEMA}.meta values ('load', $1::jsonb)", json.dumps(meta)
        )
    finally:
        await owner.close()
    return stats


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Sample:
    name: str
    description: str
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    status: str


def _alpha(words: Iterable[str], min_len: int) -> list[str]:
    return [w for w in words if w.isalpha() and len(w) >= min_len]


def make_path(kind: str, doc: Sample, rng: random.Random) -> str | None:
    """A query of this type that matches ``doc`` (None if the doc does not fit)."""
    params: list[tuple[str, str]]
    if kind == "prefix":
        words = _alpha(terms(doc.name), 4)
        if not words:
            return None
        word = rng.choice(words)
        params = [("q", word[: rng.randint(3, min(5, len(word)))])]
    elif kind == "typo":
        words = _alpha(terms(doc.name), 6)
        if not words:
            return None
        word = rng.choice(words)
        if rng.random() < 0.5:
            pos = rng.randrange(1, len(word) - 1)
            typo = word[:pos] + word[pos + 1 :]  # a letter dropped
        else:
            pos = rng.randrange(len(word))
            typo = word[: pos + 1] + word[pos:]  # a letter doubled
        params = [("q", typo)]
    elif kind == "language":
        params = [("language", rng.choice(doc.languages))]
    elif kind == "two_tags":
        if len(doc.tags) < 2:
            return None
        params = [("tag", t) for t in rng.sample(doc.tags, 2)]
    elif kind == "text_filters":
        words = _alpha(terms(doc.description), 5)
        if doc.status != "active" or not words:
            return None
        params = [
            ("q", rng.choice(words)),
            ("language", rng.choice(doc.languages)),
            ("status", "active"),
        ]
    elif kind == "typeahead":
        first = terms(doc.name)[:1]
        if not first or len(first[0]) < 3 or not first[0].isalpha():
            return None
        return "/v1/search/suggest?" + urlencode({"q": first[0][:3]})
    else:
        raise ValueError(kind)
    return "/v1/search?" + urlencode(params)


async def build_queries(
    tenants: list[TenantId], seed: int
) -> dict[str, list[tuple[TenantId, str]]]:
    """LINES_PER_TYPE (tenant, path) per type: half on the big tenants, half on small ones."""
    rng = random.Random(seed + 1)
    big, small = tenants[:BIG_TENANTS], tenants[BIG_TENANTS:]
    plan = {
        kind: [
            big[i // 2 % BIG_TENANTS] if i % 2 == 0 else rng.choice(small)
            for i in range(LINES_PER_TYPE)
        ]
        for kind in QUERY_TYPES
    }
    wanted = sorted({t for chosen in plan.values() for t in chosen} | set(small[:50]))
    conn = await asyncpg.connect(OWNER_URL, timeout=10)
    try:
        rows = await conn.fetch(
            """select t.tenant_id, p.name, p.description, p.languages, p.tags, p.status
               from unnest($1::uuid[]) as t(tenant_id)
               cross join lateral (
                   select name, description, languages, tags, status from search.pocs p
                   where p.tenant_id = t.tenant_id and not p.deleted
                   order by p.id limit $2) p""",
            wanted,
            SAMPLE_PER_TENANT,
            timeout=120,
        )
    finally:
        await conn.close()
    samples: dict[uuid.UUID, list[Sample]] = {}
    for r in rows:
        samples.setdefault(r["tenant_id"], []).append(
            Sample(
                r["name"], r["description"], tuple(r["languages"]), tuple(r["tags"]), r["status"]
            )
        )
    if not samples.get(big[0]):
        raise BenchError(f"search.pocs of {DB_NAME} is empty: run without --skip-load")
    queries: dict[str, list[tuple[TenantId, str]]] = {}
    for kind, chosen in plan.items():
        out: list[tuple[TenantId, str]] = []
        for tenant in chosen:
            path = None
            for _ in range(100):
                docs = samples.get(tenant) or []
                if docs:
                    path = make_path(kind, rng.choice(docs), rng)
                if path is not None:
                    break
                if tenant not in big:  # a tiny tenant without a fitting doc: another one
                    tenant = rng.choice([t for t in small if samples.get(t)])
            if path is None:
                raise BenchError(f"no document fits a {kind} query for tenant {tenant}")
            out.append((tenant, path))
        queries[kind] = out
    return queries


def write_request_files(
    workdir: Path, queries: dict[str, list[tuple[TenantId, str]]], tokens: dict[TenantId, str]
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    mix: list[str] = []
    for kind, items in queries.items():
        lines = [f"{kind}\t{path}\t{tokens[tenant]}" for tenant, path in items]
        files[kind] = workdir / f"{kind}.txt"
        files[kind].write_text("\n".join(lines) + "\n")
        mix.extend(lines)
    random.Random(7).shuffle(mix)
    files["mix"] = workdir / "mix.txt"
    files["mix"].write_text("\n".join(mix) + "\n")
    return files


# --------------------------------------------------------------------------- services


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def bench_env(issuer: str) -> dict[str, str]:
    """POCDOJO_* for everything this run starts: the bench database, Redis db 14."""
    return {
        **os.environ,
        "POCDOJO_ENV": "development",
        "POCDOJO_DATABASE_URL": APP_URL,
        "POCDOJO_OWNER_DATABASE_URL": OWNER_URL,
        "POCDOJO_RELAY_DATABASE_URL": RELAY_URL,
        "POCDOJO_SEARCH_DATABASE_URL": SEARCH_URL,
        "POCDOJO_ADMIN_DATABASE_URL": ADMIN_URL,
        "POCDOJO_SEARCH_BACKEND": "postgres",
        "POCDOJO_REDIS_URL": REDIS_URL,
        "POCDOJO_EVENTS_STREAM": EVENTS_STREAM,
        "POCDOJO_OIDC_ISSUER": issuer,
        "POCDOJO_LOG_LEVEL": "WARNING",
    }


def log_tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else ""


def spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A child in its own session, output to ``log_path``."""
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop_process(popen: subprocess.Popen[bytes], name: str) -> None:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {popen.pid}) ignored SIGTERM: SIGKILL")
            popen.kill()
            popen.wait(timeout=5)


async def wait_http(
    url: str, timeout_s: float, popen: subprocess.Popen[bytes], log_path: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise BenchError(
        f"{url} did not answer 200 within {timeout_s:.0f}s\n--- log ---\n{log_tail(log_path)}"
    )


@contextlib.asynccontextmanager
async def service(side: Side, port: int, issuer: str, workdir: Path) -> Any:
    """One uvicorn worker with ``loadtests.search_service:create`` on 127.0.0.1:port."""
    env = {
        **bench_env(issuer),
        "BENCH_SEARCH_SIDE": side,
        "BENCH_SEARCH_CACHE": os.environ.get("BENCH_SEARCH_CACHE", "1"),
        "POCDOJO_OIDC_JWKS_URL": f"http://{HOST}:{port}/auth/jwks.json",
    }
    log_path = workdir / f"{side}-uvicorn.log"
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "loadtests.search_service:create",
        "--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning",
        "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip
    popen = spawn(cmd, env, log_path)
    try:
        await wait_http(f"http://{HOST}:{port}/auth/jwks.json", 60, popen, log_path)
        log(f"{side} service (uvicorn pid {popen.pid}) on http://{HOST}:{port}")
        yield popen
    finally:
        stop_process(popen, f"{side} uvicorn")


@contextlib.contextmanager
def workers(issuer: str, workdir: Path) -> Iterator[None]:
    """``pocdojo outbox relay`` and ``pocdojo search indexer`` on the bench database."""
    exe = Path(sys.executable).parent / "pocdojo"
    pocdojo = str(exe) if exe.exists() else (shutil.which("pocdojo") or "pocdojo")
    env = bench_env(issuer)
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for name, cmd in (
            ("relay", [pocdojo, "outbox", "relay"]),
            ("indexer", [pocdojo, "search", "indexer", "--name", "bench-search"]),
        ):
            started.append((name, spawn(cmd, env, workdir / f"{name}.log")))
        log(f"relay (pid {started[0][1].pid}) and indexer (pid {started[1][1].pid}) started")
        yield
    finally:
        for name, popen in reversed(started):
            stop_process(popen, name)


async def check_side(
    base: str,
    side: Side,
    queries: dict[str, list[tuple[TenantId, str]]],
    tokens: dict[TenantId, str],
) -> None:
    """One request of every type must answer 200 before wrk runs."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for items in queries.values():
            tenant, path = items[0]
            response = await client.get(path, headers={"Authorization": f"Bearer {tokens[tenant]}"})
            if response.status_code != 200:
                raise BenchError(
                    f"{side} GET {path} answered {response.status_code}: {response.text[:500]}"
                )


async def wait_db_quiet(timeout_s: float = 20.0) -> None:
    """No query of the bench database still running (a baseline query may outlive wrk)."""
    conn = await asyncpg.connect(OWNER_URL, timeout=10)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            active = await conn.fetchval(
                """select count(*) from pg_stat_activity where datname = $1
                   and state = 'active' and pid <> pg_backend_pid()""",
                DB_NAME,
            )
            if not active:
                return
            await asyncio.sleep(0.2)
        log(f"WARNING: queries still active on {DB_NAME} after {timeout_s:.0f}s")
    finally:
        await conn.close()


# --------------------------------------------------------------------------- wrk runs


@dataclass
class Run:
    kind: str  # a query type or "mix"
    connections: int
    side: Side
    rps: float
    p50: float
    p95: float
    p99: float
    requests: int
    errors: int
    empty: int
    cpu: Cpu
    detail: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def case(self) -> str:
        return f"{self.kind}/c{self.connections}"

    @property
    def hit_percent(self) -> float:
        answered = self.requests - int(self.detail.get("non2xx", 0))
        return 100.0 * (answered - self.empty) / answered if answered > 0 else 0.0


async def run_wrk(
    wrk: str, base: str, file: Path, connections: int, seconds: int
) -> dict[str, Any]:
    threads = 1 if connections == 1 else 2
    cmd = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}",
        "--latency", "-s", str(LUA), base,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_SEARCH_FILE": str(file)}
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            cmd,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {seconds + 60}s: {' '.join(cmd)}") from exc
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return data
    out = (result.stdout + result.stderr)[-3000:]
    raise BenchError(f"wrk printed no BENCH_JSON line (exit {result.returncode}):\n{out}")


async def bench_run(
    wrk: str,
    side: Side,
    base: str,
    server_pid: int,
    kind: str,
    file: Path,
    connections: int,
    args: argparse.Namespace,
) -> Run:
    await wait_db_quiet()
    await run_wrk(wrk, base, file, connections, args.warmup)
    await wait_db_quiet()
    with CpuMeter(server_pid) as meter:
        data = await run_wrk(wrk, base, file, connections, args.duration)
    errors = sum(int(v) for k, v in data["errors"].items() if k != "status")
    run = Run(
        kind=kind,
        connections=connections,
        side=side,
        rps=float(data["rps"]),
        p50=float(data["p50_ms"]),
        p95=float(data["p95_ms"]),
        p99=float(data["p99_ms"]),
        requests=int(data["requests"]),
        errors=errors + int(data["non2xx"]),
        empty=int(data["empty"]),
        cpu=meter.result,
        detail=data,
    )
    log(
        f"  {side:<8} {run.case:<16} {run.rps:8,.0f} q/s  p50 {run.p50:8.2f}  "
        f"p99 {run.p99:8.2f} ms  errors {run.errors}  hits {run.hit_percent:.0f}%; "
        + run.cpu.describe()
    )
    return run


# --------------------------------------------------------------------------- upserts, lag


@dataclass
class UpsertStats:
    count: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


async def measure_upserts(count: int) -> UpsertStats:
    """``count`` single upserts (a new version of existing docs, one transaction each)."""
    owner = await asyncpg.connect(OWNER_URL, timeout=10)
    try:
        rows = await owner.fetch(
            "select * from search.pocs where not deleted order by id limit $1", count, timeout=120
        )
    finally:
        await owner.close()
    times: list[float] = []
    async with Database(SEARCH_URL, max_size=1) as db:
        index = PostgresSearch(db)
        t_all = time.perf_counter()
        for r in rows:
            doc = SearchDoc(
                id=r["id"],
                version=r["version"] + 1,
                name=r["name"],
                description=r["description"],
                languages=tuple(r["languages"]),
                tags=tuple(r["tags"]),
                owner_id=r["owner_id"],
                status=r["status"],
                built_on=r["built_on"],
                created_at=r["created_at"],
                updated_at=dt.datetime.now(dt.UTC),
            )
            t0 = time.perf_counter()
            if not await index.upsert(TenantId(r["tenant_id"]), doc):
                raise BenchError(f"upsert of a newer version of {doc.id} was not applied")
            times.append(time.perf_counter() - t0)
        total = time.perf_counter() - t_all
    ms = [t * 1000 for t in times]
    return UpsertStats(len(times), total, percentile(ms, 50), percentile(ms, 99))


@dataclass
class LagStats:
    lags_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    missing: int = 0


async def lag_identity() -> tuple[TenantId, UserId]:
    async with Database(OWNER_URL, max_size=2) as owner:
        tenant = await admin.tenant_by_slug(owner, "bench-lag")
        if tenant is None:
            tenant = await admin.create_tenant(owner, "bench-lag", "Bench write-to-search lag")
        user = await admin.add_user(
            owner,
            tenant,
            email="lag-probe@bench.test",
            display_name="Lag probe",
            role=Role.MEMBER,
            password=None,
        )
    return tenant, user


async def probe_once(
    client: httpx.AsyncClient, word: str, timeout_s: float
) -> tuple[float, float] | None:
    """POST a PoC named with ``word``; (ms until the 201, ms from the 201 to the first hit)."""
    body = {"name": f"Lag probe {word}", "languages": ["python"], "tags": ["bench"]}
    t0 = time.perf_counter()
    response = await client.post("/v1/pocs", json=body)
    t_ack = time.perf_counter()
    if response.status_code != 201:
        raise BenchError(f"POST /v1/pocs answered {response.status_code}: {response.text[:500]}")
    poc_id = response.json()["id"]
    while time.perf_counter() - t_ack < timeout_s:
        found = await client.get("/v1/search", params={"q": word})
        if found.status_code == 200 and any(h["id"] == poc_id for h in found.json()["hits"]):
            return (t_ack - t0) * 1000, (time.perf_counter() - t_ack) * 1000
        await asyncio.sleep(LAG_POLL_S)
    return None


async def measure_lag(base: str, token: str, writes: int, seed: int) -> LagStats:
    stats = LagStats()
    rng = random.Random(seed + 2)
    stamp = format(int(time.time()), "x")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        for i in range(3):  # warm-up: worker start-up, consumer group, connections
            if await probe_once(client, f"lagwarm{stamp}n{i}", 60.0) is None:
                raise BenchError("the lag probe's warm-up PoC never became searchable (60 s)")
        for i in range(writes):
            result = await probe_once(client, f"lagprobe{stamp}n{i}", LAG_TIMEOUT_S)
            if result is None:
                stats.missing += 1
            else:
                stats.post_ms.append(result[0])
                stats.lags_ms.append(result[1])
            await asyncio.sleep(rng.uniform(0.05, 0.15))
    return stats


# --------------------------------------------------------------------------- sizes


async def index_sizes() -> dict[str, float]:
    conn = await asyncpg.connect(OWNER_URL, timeout=10)
    try:
        out: dict[str, float] = {}
        for table in (
            "search.pocs",
            "search.terms",
            "search.facets",
            "search.name_words",
            "search.text_words",
            f"{SCHEMA}.pocs",
        ):
            row = await conn.fetchrow(
                "select pg_total_relation_size($1::regclass) as total, "
                "pg_indexes_size($1::regclass) as indexes",
                table,
            )
            out[f"{table} total"] = row["total"] / 2**20 if row else 0.0
            out[f"{table} indexes"] = row["indexes"] / 2**20 if row else 0.0
        for r in await conn.fetch(
            """select c.relname, pg_relation_size(i.indexrelid) as size from pg_index i
               join pg_class c on c.oid = i.indexrelid
               where i.indrelid = 'search.pocs'::regclass order by 2 desc"""
        ):
            out[f"index {r['relname']}"] = r["size"] / 2**20
        return out
    finally:
        await conn.close()


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    info: dict[str, str]
    wrk: str
    code: str
    sizes: list[int]
    load: LoadStats
    server: str = ""
    runs: list[Run] = field(default_factory=list)
    disk: dict[str, float] = field(default_factory=dict)
    upserts: UpsertStats | None = None
    lag: LagStats | None = None
    wall_s: float = 0.0


def rows(report: Report) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(case: str, metric: str, value: float, unit: str, side: Side) -> None:
        out.append({"case": case, "metric": metric, "value": value, "unit": unit, "side": side})

    for r in report.runs:
        for metric, value, unit in (
            ("throughput", round(r.rps, 1), "req/s"),
            ("latency_p50", r.p50, "ms"),
            ("latency_p95", r.p95, "ms"),
            ("latency_p99", r.p99, "ms"),
            ("requests", r.requests, "count"),
            ("errors", r.errors, "count"),
            ("hit_rate", round(r.hit_percent, 1), "% of answers with a hit"),
            ("server_cpu", round(r.cpu.server, 1), "% of one core"),
            ("postgres_cpu", round(r.cpu.postgres, 1), "% of one core"),
            ("loadgen_cpu", round(r.cpu.wrk, 1), "% of one core"),
            ("other_cpu", round(r.cpu.other, 1), "% of one core"),
        ):
            add(r.case, metric, value, unit, r.side)
    d = report.disk
    add("index_size", "search.pocs", round(d.get("search.pocs total", 0), 1), "MiB", "project")
    add(
        "index_size",
        "search.pocs_indexes",
        round(d.get("search.pocs indexes", 0), 1),
        "MiB",
        "project",
    )
    add("index_size", "search.terms", round(d.get("search.terms total", 0), 1), "MiB", "project")
    add("index_size", "search.facets", round(d.get("search.facets total", 0), 1), "MiB", "project")
    for words in ("search.name_words", "search.text_words"):
        add("index_size", words, round(d.get(f"{words} total", 0), 1), "MiB", "project")
    naive = f"{SCHEMA}.pocs"
    add("index_size", naive, round(d.get(f"{naive} total", 0), 1), "MiB", "baseline")
    add("index_size", f"{naive}_indexes", round(d.get(f"{naive} indexes", 0), 1), "MiB", "baseline")
    ld = report.load
    if ld.project_s > 0:
        add("indexing", "bulk_throughput", round(ld.docs / ld.project_s), "docs/s", "project")
        add("indexing", "bulk_seconds", round(ld.project_s, 1), "s", "project")
        add("indexing", "vacuum_analyze_seconds", round(ld.project_vacuum_s, 1), "s", "project")
    if ld.baseline_s > 0:
        add("indexing", "bulk_throughput", round(ld.docs / ld.baseline_s), "docs/s", "baseline")
        add("indexing", "bulk_seconds", round(ld.baseline_s, 1), "s", "baseline")
        add("indexing", "vacuum_analyze_seconds", round(ld.baseline_vacuum_s, 1), "s", "baseline")
    if report.upserts and report.upserts.count:
        u = report.upserts
        add("indexing", "upsert_throughput", round(u.count / u.seconds, 1), "docs/s", "project")
        add("indexing", "upsert_latency_p50", round(u.p50_ms, 2), "ms", "project")
        add("indexing", "upsert_latency_p99", round(u.p99_ms, 2), "ms", "project")
    if report.lag is not None:
        lag = report.lag
        case = "write_to_searchable"
        if lag.lags_ms:
            add(case, "lag_p50", round(percentile(lag.lags_ms, 50), 1), "ms", "project")
            add(case, "lag_p95", round(percentile(lag.lags_ms, 95), 1), "ms", "project")
            add(case, "lag_max", round(max(lag.lags_ms), 1), "ms", "project")
            add(case, "post_p50", round(percentile(lag.post_ms, 50), 1), "ms", "project")
        add(case, "probes", len(lag.lags_ms), "count", "project")
        add(case, "missing", lag.missing, "count", "project")
    return out


def fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def run_table(runs: list[Run]) -> str:
    by_key = {(r.case, r.side): r for r in runs}
    cases = list(dict.fromkeys(r.case for r in runs))
    cols = f"{'q/s':>7}{'p50':>8}{'p95':>8}{'p99':>8}{'err':>6}{'hit%':>6}"
    project = f"project ({SIDE_LABEL['project']})"
    head1 = f"{'':<19}| {project:<43}| baseline ({SIDE_LABEL['baseline']})"
    head2 = f"{'query type / conc':<19}| {cols} | {cols}  {'p99 x':>6}"
    lines = [head1, head2, "-" * len(head2)]
    for case in cases:
        cells = []
        for side in SIDES:
            r = by_key.get((case, side))
            if r is None:
                cells.append(f"{'-':>43}")
                continue
            cells.append(
                f"{r.rps:>7,.0f}{fmt_ms(r.p50):>8}{fmt_ms(r.p95):>8}{fmt_ms(r.p99):>8}"
                f"{r.errors:>6}{r.hit_percent:>6.0f}"
            )
        p, b = by_key.get((case, "project")), by_key.get((case, "baseline"))
        ratio = f"{'':>6}"
        if p and b and p.p99 > 0:
            x = b.p99 / p.p99
            ratio = f"{x:>6.1f}" if x < 10 else f"{x:>6.0f}"
        lines.append(f"{case:<19}| {cells[0]} | {cells[1]}  {ratio}")
    return "\n".join(lines)


def other_table(report: Report) -> str:
    d, ld = report.disk, report.load
    naive = f"{SCHEMA}.pocs"
    items: list[tuple[str, str, str]] = [
        (
            "size on disk, table + indexes (MiB)",
            f"{d.get('search.pocs total', 0):,.0f} (indexes {d.get('search.pocs indexes', 0):,.0f})"
            f" + terms {d.get('search.terms total', 0):,.1f}"
            f" + facets {d.get('search.facets total', 0):,.0f}"
            f" + name words {d.get('search.name_words total', 0):,.0f}"
            f" + text words {d.get('search.text_words total', 0):,.0f}",
            f"{d.get(f'{naive} total', 0):,.0f} (pkey {d.get(f'{naive} indexes', 0):,.0f})",
        ),
    ]
    if ld.project_s > 0 and ld.baseline_s > 0:
        suffix = f" (load of {ld.loaded_at})" if ld.from_earlier_run else ""
        items.append(
            (
                "bulk indexing (docs/s)" + suffix,
                f"{ld.docs / ld.project_s:,.0f} ({ld.project_s:,.0f} s, bulk_load)",
                f"{ld.docs / ld.baseline_s:,.0f} ({ld.baseline_s:,.0f} s, COPY)",
            )
        )
        items.append(
            (
                "VACUUM ANALYZE after the load (s)",
                f"{ld.project_vacuum_s:,.1f}",
                f"{ld.baseline_vacuum_s:,.1f}",
            )
        )
    if report.upserts and report.upserts.count:
        u = report.upserts
        items.append(
            (
                f"per-event upsert, {u.count:,} sequential",
                f"{u.count / u.seconds:,.0f} docs/s (p50 {u.p50_ms:.2f}, p99 {u.p99_ms:.2f} ms)",
                "n/a",
            )
        )
    if report.lag is not None:
        lag = report.lag
        if lag.lags_ms:
            value = (
                f"p50 {percentile(lag.lags_ms, 50):.0f}, p95 {percentile(lag.lags_ms, 95):.0f}, "
                f"max {max(lag.lags_ms):.0f} ms ({len(lag.lags_ms)} writes"
                + (f", {lag.missing} never found" if lag.missing else "")
                + ")"
            )
        else:
            value = f"no write found within {LAG_TIMEOUT_S:.0f} s ({lag.missing} writes)"
        items.append(("write-to-searchable lag", value, "n/a"))
    width = max(len(k) for k, _, _ in items) + 2
    vwidth = max(len(v) for _, v, _ in items) + 2
    lines = [f"{'':<{width}}{'project':<{vwidth}}baseline", "-" * (width + vwidth + 30)]
    lines += [f"{k:<{width}}{v:<{vwidth}}{b}" for k, v, b in items]
    return "\n".join(lines)


def goal_lines(report: Report) -> list[str]:
    c1 = [r for r in report.runs if r.side == "project" and r.connections == 1]
    lines: list[str] = []
    if c1:
        slow = [f"{r.kind} {r.p99:.2f} ms" for r in c1 if r.p99 >= GOAL_P99_MS]
        lines.append(
            f"goal every query type p99 < {GOAL_P99_MS:.0f} ms at concurrency 1: "
            + ("MET" if not slow else "NOT MET (" + ", ".join(slow) + ")")
        )
    mix = next((r for r in report.runs if r.side == "project" and r.kind == "mix"), None)
    if mix is not None:
        lines.append(
            f"goal >= {GOAL_QPS:.0f} queries/s at concurrency 16 (mix): {mix.rps:,.0f} q/s -> "
            + ("MET" if mix.rps >= GOAL_QPS else "NOT MET")
        )
    if report.lag is not None and report.lag.lags_ms:
        worst = max(report.lag.lags_ms)
        lines.append(
            f"goal write-to-searchable < 1 s: max {worst:.0f} ms -> "
            + ("MET" if worst < 1000 and not report.lag.missing else "NOT MET")
        )
    return lines


def print_report(report: Report, args: argparse.Namespace) -> None:
    info, sizes = report.info, report.sizes
    small = sorted(sizes[BIG_TENANTS:])
    print()
    print(
        f"bench-search: {sum(sizes):,} PoCs over {len(sizes):,} tenants "
        f"({BIG_TENANTS} x {sizes[0]:,}; the other {len(small):,}: "
        f"{small[-1]:,} max, {statistics.median(small):,.0f} median, {small[0]:,} min), "
        f"seed {args.seed}"
    )
    print(
        f"machine: nproc {info['nproc']} | {info['cpu']} | kernel {info['kernel']} | "
        f"{info['memory']} RAM | {report.wrk}"
    )
    print(f"project code: {report.code}")
    print(f"database server: {report.server}")
    cache = "off (--no-cache)" if args.no_cache else "on (repeated queries are cache hits)"
    print(f"project answer cache: {cache}")
    print(
        f"wrk on the same host: c1 = wrk -t1 -c1, c16 = wrk -t2 -c16; {args.warmup}s warm-up "
        f"then {args.duration}s per row; {LINES_PER_TYPE} queries per type, half on the "
        f"{BIG_TENANTS} large tenants; times in ms"
    )
    print()
    print(run_table(report.runs))
    print(
        "err = socket errors + timeouts (5 s) + non-2xx; hit% = answers with at least one "
        "hit (or suggestion); p99 x = baseline p99 / project p99"
    )
    print()
    print(other_table(report))
    print()
    for line in goal_lines(report):
        print(line)
    noisy = [r.cpu.other for r in report.runs if r.cpu.other > OTHER_CPU_WARN]
    if noisy:
        print(
            f"WARNING: processes other than the server, PostgreSQL (bench db) and wrk took more "
            f"than {OTHER_CPU_WARN:.0f}% of a core during {len(noisy)} of {len(report.runs)} "
            f"runs (up to {max(noisy):.0f}%): the machine was shared, figures are low "
            "(per-run CPU in the log above and in the JSON, metric other_cpu)"
        )
    print(
        "notes: both sides are one plain uvicorn worker (the production search-api app and "
        "settings, pool of 10, 5 s statement timeout); Ray Serve is not in the path (it adds "
        "about 3-5 ms per request, see make bench-api). The baseline side is the same app "
        "with NaiveSearch (ILIKE, no index but the primary key). Lag: from the 201 of "
        f"POST /v1/pocs to the first search hit, polled every {LAG_POLL_S * 1000:.0f} ms, "
        "through relay -> Redis stream -> indexer. Baseline p99 near 5,000 ms = the 5 s "
        "timeout (counted in err)."
    )
    print(f"run took {report.wall_s / 60:.1f} min")


async def prewarm() -> str:
    """Read both sides' tables and indexes into shared_buffers (pg_prewarm), as a running
    production server holds its working set, and describe the server: a restarted cluster
    starts empty, and the first minutes of a bench would measure its warm-up instead."""
    conn = await asyncpg.connect(BENCH_ADMIN_URL, timeout=10)
    try:
        await conn.execute("create extension if not exists pg_prewarm")
        t0 = time.perf_counter()
        blocks = await conn.fetchval(
            """select coalesce(sum(pg_prewarm(c.oid)), 0) from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               where n.nspname = any($1::text[]) and c.relkind in ('r', 'i', 'm')""",
            ["search", SCHEMA],
            timeout=900,
        )
        elapsed = time.perf_counter() - t0
        version = await conn.fetchval("show server_version")
        buffers = await conn.fetchval("show shared_buffers")
        cache = await conn.fetchval("show effective_cache_size")
    finally:
        await conn.close()
    log(f"pg_prewarm: {blocks * 8 / 1024:,.0f} MiB of search and {SCHEMA} read in {elapsed:.0f}s")
    return (
        f"PostgreSQL {version} on {HOST}:{PG_PORT}, shared_buffers {buffers}, "
        f"effective_cache_size {cache}; tables prewarmed ({blocks * 8 / 1024:,.0f} MiB)"
    )


# --------------------------------------------------------------------------- main


async def bench(args: argparse.Namespace) -> Report:
    t_start = time.monotonic()
    wrk = ensure_wrk()
    info = machine()
    version = wrk_version(wrk)
    log(
        f"machine: nproc {info['nproc']}, {info['cpu']}, kernel {info['kernel']}, "
        f"{info['memory']} RAM, Python {info['python']}; {version}"
    )
    busy, names = top_processes()
    if busy > 20:
        log(
            f"WARNING: the machine is busy before the run ({busy:.0f}% of one core: "
            f"{', '.join(names)}): figures will be low"
        )
    sizes = tenant_sizes(args.docs, args.tenants)
    tenants = tenant_ids(args.tenants, args.seed)
    await prepare_database()
    if args.skip_load:
        stats = await read_meta(args)
        log(f"--skip-load: reusing the load of {stats.loaded_at}")
    else:
        log(f"loading {args.docs:,} docs over {args.tenants:,} tenants (batches of {BATCH:,})")
        stats = await load(args, sizes, tenants)
        log(
            f"loaded in {stats.project_s + stats.baseline_s + stats.generate_s:,.0f}s "
            f"(generate {stats.generate_s:.0f}s, bulk_load {stats.project_s:.0f}s, COPY naive "
            f"{stats.baseline_s:.0f}s); vacuum analyze {stats.project_vacuum_s:.0f}s + "
            f"{stats.baseline_vacuum_s:.0f}s"
        )
    server = await prewarm()
    report = Report(
        info=info, wrk=version, code=code_version(), sizes=sizes, load=stats, server=server
    )
    queries = await build_queries(tenants, args.seed)
    ports: dict[Side, int] = {"project": free_port(), "baseline": free_port()}
    issuer = f"http://{HOST}:{ports['project']}/auth"
    settings = Settings(
        oidc_issuer=issuer, dev_issuer_key_path=str(ROOT / "var" / "dev-issuer-key.pem")
    )
    dev_issuer = make_dev_issuer(settings)
    used = {t for items in queries.values() for t, _ in items}
    tokens = {
        t: dev_issuer.issue(
            user_id=UserId(uuid.uuid5(NAMESPACE, f"reader:{t}")),
            tenant_id=TenantId(t),
            roles=[Role.MEMBER],
            ttl_s=TOKEN_TTL_S,
        ).access_token
        for t in used
    }
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        workdir = Path(tmp)
        files = write_request_files(workdir, queries, tokens)
        async with contextlib.AsyncExitStack() as stack:
            pids: dict[Side, int] = {}
            for side in SIDES:
                popen = await stack.enter_async_context(service(side, ports[side], issuer, workdir))
                pids[side] = popen.pid
                await check_side(f"http://{HOST}:{ports[side]}", side, queries, tokens)
            for side in SIDES if args.sides == "both" else ("project",):
                base = f"http://{HOST}:{ports[side]}"
                log(f"{side} ({SIDE_LABEL[side]}): {len(QUERY_TYPES)} types x c1 and c16, mix c16")
                for connections in (1, 16):
                    for kind in QUERY_TYPES:
                        report.runs.append(
                            await bench_run(
                                wrk, side, base, pids[side], kind, files[kind], connections, args
                            )
                        )
                report.runs.append(
                    await bench_run(wrk, side, base, pids[side], "mix", files["mix"], 16, args)
                )
            await wait_db_quiet()
            log(f"per-event path: {args.upserts:,} single PostgresSearch.upsert calls")
            report.upserts = await measure_upserts(args.upserts)
            log(f"  {report.upserts.count / max(report.upserts.seconds, 1e-9):,.0f} docs/s")
            if args.lag_writes > 0:
                log(f"write-to-searchable lag: {args.lag_writes} writes through the pipeline")
                tenant, user = await lag_identity()
                token = dev_issuer.issue(
                    user_id=user, tenant_id=tenant, roles=[Role.MEMBER], ttl_s=TOKEN_TTL_S
                ).access_token
                with workers(issuer, workdir):
                    report.lag = await measure_lag(
                        f"http://{HOST}:{ports['project']}", token, args.lag_writes, args.seed
                    )
        report.disk = await index_sizes()
    report.wall_s = time.monotonic() - t_start
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench-search", description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="PoCs (default 1000000)")
    parser.add_argument("--tenants", type=int, default=1000, help="tenants (default 1000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per case (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per case")
    parser.add_argument(
        "--skip-load", action="store_true", help=f"reuse the data already loaded in {DB_NAME}"
    )
    parser.add_argument("--seed", type=int, default=20261125, help="data and query seed")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="project side without its answer cache (every request runs its statements)",
    )
    parser.add_argument(
        "--sides",
        choices=("both", "project"),
        default="both",
        help="'project' skips the baseline's query runs (its service still answers a check)",
    )
    parser.add_argument("--upserts", type=int, default=2000, help="single upserts to time")
    parser.add_argument("--lag-writes", type=int, default=50, help="writes for the lag probe")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench-results" / "search.json", help="JSON rows"
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 1 or args.docs < 1000 or args.upserts < 1:
        parser.error("--duration and --warmup >= 1, --docs >= 1000, --upserts >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    os.environ["BENCH_SEARCH_CACHE"] = "0" if args.no_cache else "1"
    try:
        report = asyncio.run(bench(args))
    except BenchError as exc:
        print(f"bench-search: {exc}", file=sys.stderr)
        return 2
    print_report(report, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows(report), indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

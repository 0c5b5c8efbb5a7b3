"""The ``pocdojo`` command: up, down, migrate, seed, tenant, user, token, openapi."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pocdojo import admin, local_cluster
from pocdojo.errors import DomainError
from pocdojo.settings import Settings, get_settings
from pocdojo.storage import schema
from pocdojo.storage.db import Database
from pocdojo.types import Role

ROOT = Path(__file__).resolve().parents[1]


def _owner_db(settings: Settings) -> Database:
    return Database(settings.owner_database_url, max_size=2)


async def _with_owner_db(settings: Settings, action: Callable[[Database], Awaitable[Any]]) -> Any:
    async with _owner_db(settings) as db:
        return await action(db)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    if not args.no_bootstrap and not settings.is_production:
        asyncio.run(
            schema.bootstrap(
                settings.admin_database_url, schema.database_name(settings.owner_database_url)
            )
        )
    schema.migrate(settings.owner_database_url)
    print(f"migrated {schema.database_name(settings.owner_database_url)} to head")


def cmd_seed(settings: Settings, args: argparse.Namespace) -> None:
    report = asyncio.run(
        _with_owner_db(settings, lambda db: admin.seed_demo(db, args.pocs_per_tenant))
    )
    print(
        f"demo data: {report.tenants} tenants, {report.users} users, "
        f"{report.pocs_inserted} PoCs inserted (password for every demo user: "
        f"{admin.DEMO_PASSWORD})"
    )


def cmd_tenant_create(settings: Settings, args: argparse.Namespace) -> None:
    tenant_id = asyncio.run(
        _with_owner_db(settings, lambda db: admin.create_tenant(db, args.slug, args.name))
    )
    print(f"tenant {args.slug} created: {tenant_id}")


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> None:
    async def run(db: Database) -> Any:
        tenant_id = await admin.tenant_by_slug(db, args.tenant)
        if tenant_id is None:
            raise SystemExit(f"no tenant {args.tenant!r}")
        return await admin.add_user(
            db,
            tenant_id,
            email=args.email,
            display_name=args.name or args.email.split("@")[0],
            role=Role(args.role),
            password=args.password,
        )

    user_id = asyncio.run(_with_owner_db(settings, run))
    print(f"{args.email} is a {args.role} of {args.tenant} (user {user_id})")


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    print(dev_token(settings, args.email, args.tenant))


def dev_token(settings: Settings, email: str, tenant: str | None = None) -> str:
    from pocdojo.api.identity import make_dev_issuer

    identity = asyncio.run(
        _with_owner_db(settings, lambda db: admin.identity_for(db, email, tenant))
    )
    return (
        make_dev_issuer(settings)
        .issue(
            user_id=identity.user_id,
            tenant_id=identity.tenant_id,
            roles=[identity.role],
            email=email,
        )
        .access_token
    )


def _serve_config(settings: Settings) -> Path:
    path = Path(settings.serve_config_path)
    return path if path.is_absolute() else ROOT / path


def cmd_up(settings: Settings, args: argparse.Namespace) -> None:
    started = local_cluster.start_ray(settings)
    print("started a local Ray head" if started else f"using Ray at {settings.ray_address}")
    apps = local_cluster.deploy(settings, _serve_config(settings))
    local_cluster.wait_until_running(settings, apps)
    base = f"http://{settings.serve_host}:{settings.serve_port}"
    local_cluster.wait_for_http(f"{base}/healthz")
    print(f"PoC Dojo is up at {base}  (applications: {', '.join(apps)})")
    gateway = f"ws://{settings.dojo_gateway_host}:{settings.dojo_gateway_port}/v1/dojos"
    print(f"dojo websockets (y-websocket server URL): {gateway}")
    try:
        print(f"demo token (alice@acme.test, admin):\n{dev_token(settings, 'alice@acme.test')}")
    except (DomainError, SystemExit) as exc:
        print(f"(no demo token: {exc}; run `pocdojo seed demo`)")
    if args.detach:
        return
    print("Ctrl-C stops it.")
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stop:
        signal.pause()
    cmd_down(settings, args)


def cmd_down(settings: Settings, args: argparse.Namespace) -> None:
    local_cluster.shutdown_serve(settings)
    local_cluster.stop_ray(settings)
    print("PoC Dojo stopped")


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> None:
    from pocdojo.api import openapi

    text = openapi.render()
    if args.check:
        if openapi.REPO_COPY.read_text() != text:
            raise SystemExit(f"{openapi.REPO_COPY} is out of date: run `pocdojo openapi --write`")
        print("openapi.json is up to date")
    elif args.write:
        openapi.REPO_COPY.write_text(text)
        print(f"wrote {openapi.REPO_COPY}")
    else:
        sys.stdout.write(text)


def _run_until_signalled(worker: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await worker(stop)

    asyncio.run(main())


def cmd_relay(settings: Settings, args: argparse.Namespace) -> None:
    from pocdojo.workers.run import run_relay

    _run_until_signalled(lambda stop: run_relay(settings, stop))


def cmd_search_indexer(settings: Settings, args: argparse.Namespace) -> None:
    from pocdojo.workers.run import run_search_indexer

    _run_until_signalled(lambda stop: run_search_indexer(settings, stop, args.name))


def cmd_metrics_serve(settings: Settings, args: argparse.Namespace) -> None:
    from pocdojo.api import metrics  # noqa: F401  (switches to multiprocess values first)
    from pocdojo.observability import export

    if export.enable_from_env() is None:
        raise SystemExit("set POCDOJO_METRICS_DIR to the node's metrics directory")
    export.serve_node_metrics(args.host, args.port)


def cmd_search_reindex(settings: Settings, args: argparse.Namespace) -> None:
    from pocdojo.workers.run import reindex

    for slug, count in asyncio.run(reindex(settings, args.tenant)).items():
        print(f"{slug}: {count} PoCs indexed")


def cmd_video_render(settings: Settings, args: argparse.Namespace) -> None:
    from pocdojo.video import local

    local.main(
        settings,
        email=args.email,
        year=args.year,
        out=Path(args.out),
        tenant=args.tenant,
        film_format=args.format,
        workers=args.workers,
        ray_address=args.ray,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pocdojo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start local Ray (if needed) and deploy every service")
    up.add_argument("--detach", action="store_true", help="return once it is up")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop Serve and the local Ray head").set_defaults(func=cmd_down)

    migrate = sub.add_parser("migrate", help="create roles/database (dev) and migrate")
    migrate.add_argument("--no-bootstrap", action="store_true")
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="load demo data (idempotent)")
    seed.add_argument("dataset", choices=["demo"])
    seed.add_argument("--pocs-per-tenant", type=int, default=admin.DEMO_POCS_PER_TENANT)
    seed.set_defaults(func=cmd_seed)

    tenant = sub.add_parser("tenant", help="tenant administration")
    tenant_sub = tenant.add_subparsers(dest="action", required=True)
    create = tenant_sub.add_parser("create")
    create.add_argument("--slug", required=True)
    create.add_argument("--name", required=True)
    create.set_defaults(func=cmd_tenant_create)

    user = sub.add_parser("user", help="user administration")
    user_sub = user.add_subparsers(dest="action", required=True)
    add = user_sub.add_parser("add")
    add.add_argument("--tenant", required=True, help="tenant slug")
    add.add_argument("--email", required=True)
    add.add_argument("--name")
    add.add_argument("--role", choices=[r.value for r in Role], default="member")
    add.add_argument("--password", help="for the dev issuer's password grant")
    add.set_defaults(func=cmd_user_add)

    token = sub.add_parser("token", help="print a dev access token for a seeded user")
    token.add_argument("--email", required=True)
    token.add_argument("--tenant", help="tenant slug, if the user is in several")
    token.set_defaults(func=cmd_token)

    outbox = sub.add_parser("outbox", help="the transactional outbox")
    outbox_sub = outbox.add_subparsers(dest="action", required=True)
    outbox_sub.add_parser("relay", help="run the outbox -> Redis Streams relay").set_defaults(
        func=cmd_relay
    )

    metrics = sub.add_parser("metrics", help="Prometheus metrics of this node")
    metrics_sub = metrics.add_subparsers(dest="action", required=True)
    node = metrics_sub.add_parser("serve", help="serve POCDOJO_METRICS_DIR on /metrics")
    node.add_argument("--host", default="127.0.0.1")
    node.add_argument("--port", type=int, default=9464)
    node.set_defaults(func=cmd_metrics_serve)

    search = sub.add_parser("search", help="the search index")
    search_sub = search.add_subparsers(dest="action", required=True)
    indexer = search_sub.add_parser("indexer", help="run the search indexer (stream consumer)")
    indexer.add_argument("--name", help="consumer name (default: host-pid)")
    indexer.set_defaults(func=cmd_search_indexer)
    reindex = search_sub.add_parser("reindex", help="rebuild from the PoC tables, no downtime")
    reindex.add_argument("--tenant", help="only this tenant (slug)")
    reindex.set_defaults(func=cmd_search_reindex)

    video = sub.add_parser("video", help="yearly videos")
    video_sub = video.add_subparsers(dest="action", required=True)
    render = video_sub.add_parser("render", help="render one user's film of the year locally")
    render.add_argument("--email", required=True)
    render.add_argument("--year", type=int, required=True)
    render.add_argument("--out", required=True, help="the MP4 to write")
    render.add_argument("--tenant", help="tenant slug, if the user is in several")
    render.add_argument("--format", choices=["landscape", "portrait"], default="landscape")
    render.add_argument("--workers", type=int, default=2, help="segments rendered at once")
    render.add_argument("--ray", metavar="ADDRESS", help="render on this Ray cluster instead")
    render.set_defaults(func=cmd_video_render)

    spec = sub.add_parser("openapi", help="print, --write or --check openapi.json")
    spec.add_argument("--write", action="store_true")
    spec.add_argument("--check", action="store_true")
    spec.set_defaults(func=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(get_settings(), args)
    except DomainError as exc:
        raise SystemExit(f"pocdojo: {exc.detail}") from exc


if __name__ == "__main__":
    main()

"""Real services for the whole suite: Postgres (database pocdojo_test), Redis, and the
platform's ASGI app under a real uvicorn server on loopback. Each test gets fresh tenants."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import pytest_asyncio
import ray
import redis
import uvicorn

from pocdojo import admin, local_cluster
from pocdojo.actors.dojo_session import NAMESPACE
from pocdojo.api.identity import make_dev_issuer
from pocdojo.api.poc_app import create_local_app
from pocdojo.auth.dev_issuer import DevIssuer
from pocdojo.settings import Settings
from pocdojo.storage import schema
from pocdojo.storage.db import Database
from pocdojo.types import Role, TenantId, UserId

# Speed is measured by benchmarks, not asserted in tests: on a shared 2-core machine a draw
# can stall for seconds, which must not fail a property test.
hypothesis.settings.register_profile(
    "pocdojo",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("pocdojo")

# POCDOJO_TEST_DB lets parallel runs (several engineers, one machine) use their own database.
TEST_DB = os.environ.get("POCDOJO_TEST_DB", "pocdojo_test")
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var = tmp_path_factory.mktemp("var")
    return Settings(
        env="test",
        database_url=f"postgresql://pocdojo_app@127.0.0.1:5432/{TEST_DB}",
        owner_database_url=f"postgresql://pocdojo_owner@127.0.0.1:5432/{TEST_DB}",
        search_database_url=f"postgresql://pocdojo_search@127.0.0.1:5432/{TEST_DB}",
        relay_database_url=f"postgresql://pocdojo_relay@127.0.0.1:5432/{TEST_DB}",
        events_stream=f"pocdojo-test:{uuid.uuid4().hex[:8]}:events",
        redis_url="redis://127.0.0.1:6379/15",
        blob_url=f"file://{var / 'blobs'}",
        public_base_url=base,
        oidc_issuer=f"{base}/auth",
        dev_issuer_key_path=str(var / "dev-issuer-key.pem"),
        serve_port=port,
        # Video tests start their own runner (tests/video/conftest.py) and render tiny films.
        video_runner_enabled=False,
        video_scale=4,
        video_intro_s=0.5,
        video_poc_s=0.5,
        video_outro_s=0.5,
        video_poll_s=0.2,
        video_lease_s=5.0,
    )


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> None:
    asyncio.run(schema.bootstrap(settings.admin_database_url, TEST_DB))
    schema.migrate(settings.owner_database_url)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread
        pass


@contextlib.contextmanager
def uvicorn_thread(app: Any, port: int, what: str, within_s: float = 20.0) -> Iterator[None]:
    """``app`` served by uvicorn in a thread on ``127.0.0.1:port`` until the block ends."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = _Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + within_s
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def wait_serving(url: str, process: subprocess.Popen[bytes], what: str, within_s: float) -> None:
    """Until ``url`` answers 200; the process is killed if it dies or takes too long."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def server(settings: Settings, migrated: None) -> Iterator[str]:
    """The platform under plain uvicorn in a thread: real HTTP on loopback."""
    with uvicorn_thread(create_local_app(settings), settings.serve_port, "test server"):
        yield settings.public_base_url


@pytest.fixture(scope="session")
def issuer(settings: Settings) -> DevIssuer:
    return make_dev_issuer(settings)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def owner_db(settings: Settings, migrated: None) -> AsyncIterator[Database]:
    async with Database(settings.owner_database_url, max_size=4) as db:
        yield db


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=15) as c:
        yield c


@dataclass
class TenantUser:
    user_id: UserId
    email: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class TenantFixture:
    id: TenantId
    slug: str
    admin: TenantUser
    member: TenantUser
    other_member: TenantUser


@pytest_asyncio.fixture(loop_scope="session")
async def make_tenant(owner_db: Database, issuer: DevIssuer):  # type: ignore[no-untyped-def]
    """Factory: a fresh tenant with an admin and two members, each with a token."""

    async def make() -> TenantFixture:
        slug = f"t-{uuid.uuid4().hex[:12]}"
        tenant_id = await admin.create_tenant(owner_db, slug, f"Tenant {slug}")
        users = []
        for name, role in (("admin", Role.ADMIN), ("member", Role.MEMBER), ("other", Role.MEMBER)):
            email = f"{name}-{slug}@example.test"
            user_id = await admin.add_user(
                owner_db, tenant_id, email=email, display_name=name, role=role, password=PASSWORD
            )
            token = issuer.issue(
                user_id=user_id, tenant_id=tenant_id, roles=[role], email=email
            ).access_token
            users.append(TenantUser(user_id, email, role, token))
        return TenantFixture(tenant_id, slug, *users)

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(make_tenant) -> TenantFixture:  # type: ignore[no-untyped-def]
    result: TenantFixture = await make_tenant()
    return result


@pytest_asyncio.fixture(loop_scope="session")
async def other_tenant(make_tenant) -> TenantFixture:  # type: ignore[no-untyped-def]
    result: TenantFixture = await make_tenant()
    return result


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a subprocess exactly these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"POCDOJO_{name.upper()}"] = str(value)
    env.update(extra)
    return env


class Worker:
    """A `pocdojo ...` worker process (relay, indexer) that tests may kill and restart."""

    def __init__(self, settings: Settings, *args: str, name: str) -> None:
        self.args = args
        self.env = settings_env(settings, POCDOJO_CONSUMER_NAME=name)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "pocdojo"), *self.args], env=self.env
        )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _wait_for_consumer(settings: Settings, group: str, consumer: str) -> None:
    """Until the consumer has joined its group (its process is up and reading)."""
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                joined = client.xinfo_consumers(settings.events_stream, group)
                if any(c["name"] in (consumer, consumer.encode()) for c in joined):
                    return
            except redis.ResponseError:
                pass  # the stream or group does not exist yet
            time.sleep(0.1)
        raise RuntimeError(f"{consumer} did not join {group}")
    finally:
        client.close()


@pytest.fixture(scope="session")
def event_workers(settings: Settings, migrated: None) -> Iterator[dict[str, Worker]]:
    """The outbox relay and the search indexer as real processes, for the whole session."""
    workers = {
        "relay": Worker(settings, "outbox", "relay", name="relay-1"),
        "indexer": Worker(settings, "search", "indexer", name="indexer-1"),
    }
    for worker in workers.values():
        worker.start()
    _wait_for_consumer(settings, "search-indexer", "indexer-1")
    yield workers
    for worker in workers.values():
        worker.stop()


def isolated_cluster_settings(settings: Settings, *, offset: int) -> Settings:
    """Settings for a Ray cluster of the tests' own (shifted ports, own temp dir), so it
    runs beside a developer's `pocdojo up` without touching it."""
    port = free_port()
    return settings.model_copy(
        update={
            "serve_port": port,
            "public_base_url": f"http://127.0.0.1:{port}",
            "ray_address": f"127.0.0.1:{free_port()}",
            "ray_dashboard_port": free_port(),
            "ray_port_base": offset + os.getpid() % 100,
            "dojo_gateway_port": free_port(),
            "ray_temp_dir": tempfile.mkdtemp(prefix="ray-test-", dir="/tmp"),
        }
    )


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@dataclass
class GatewayThread:
    """A dojo gateway listener run on its own event loop in a thread."""

    url: str
    loop: asyncio.AbstractEventLoop
    gateway: Any  # pocdojo.gateway.server.Gateway

    def call(self, coro: Any) -> Any:
        """Await ``coro`` on the gateway's loop (its sessions live there) from another."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))


@contextlib.contextmanager
def gateway_thread(settings: Settings) -> Iterator[GatewayThread]:
    from pocdojo.gateway.server import run_gateway

    gateway_settings = settings.model_copy(update={"dojo_gateway_port": free_port()})
    loop = asyncio.new_event_loop()
    stop, started = asyncio.Event(), asyncio.Event()
    found: list[Any] = []

    def run() -> None:
        loop.run_until_complete(
            run_gateway(gateway_settings, stop, started=started, expose=found.append)
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not started.is_set():
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("dojo gateway did not start")
        time.sleep(0.05)
    yield GatewayThread(f"ws://127.0.0.1:{gateway_settings.dojo_gateway_port}", loop, found[0])
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def dojo_gateway_thread(
    settings: Settings, ray_cluster: Settings, migrated: None
) -> Iterator[GatewayThread]:
    """The dojo gateway's own websocket listener (what DojoGateway replicas run), hosting
    the sessions of the dojos it owns (the default ``dojo_session_host``)."""
    with gateway_thread(settings.model_copy(update={"dojo_session_host": "gateway"})) as gw:
        yield gw


@pytest.fixture(scope="session")
def dojo_gateway(dojo_gateway_thread: GatewayThread) -> str:
    """The ``ws://`` base URL of `dojo_gateway_thread`."""
    return dojo_gateway_thread.url


@pytest.fixture(scope="session")
def actor_dojo_gateway(settings: Settings, ray_cluster: Settings, migrated: None) -> Iterator[str]:
    """A gateway listener whose dojo sessions are Ray actors (``dojo_session_host =
    "actor"``), one per dojo; yields its ``ws://`` base URL."""
    with gateway_thread(settings.model_copy(update={"dojo_session_host": "actor"})) as gw:
        yield gw.url


@pytest.fixture(scope="session")
def ray_cluster(settings: Settings) -> Iterator[Settings]:
    """A `ray start` head of the tests' own (detached actors and tasks need one) and this
    process connected to it; shared by every test that needs Ray."""
    cluster = isolated_cluster_settings(settings, offset=300)
    local_cluster.start_ray(cluster)
    try:
        ray.init(address=cluster.ray_address, namespace=NAMESPACE, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        local_cluster.stop_ray(cluster)

"""The Postgres pool and the one way code gets a connection for tenant data."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self, cast

import asyncpg

from pocdojo.errors import Unavailable
from pocdojo.observability import db as observe
from pocdojo.types import TenantId

# Errors that mean "the database is not reachable right now", as opposed to a bad query.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pool ``reset`` that sends nothing: asyncpg still rolls back an open transaction
    and drops listeners first (``Connection._reset``), but skips the round trip of
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every release."""


class Database:
    """An asyncpg pool as an async context manager.

    The pool starts empty (``min_size=0``) so that a service starts, and answers 503
    instead of crashing, while Postgres is down; connections are made on first use and
    replaced when the server went away.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 0,
        max_size: int = 10,
        command_timeout: float = 5.0,
        server_settings: dict[str, str] | None = None,
        reset_sessions: bool = True,
    ) -> None:
        self._dsn = dsn
        self._server_settings = server_settings
        self._reset_sessions = reset_sessions
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            command_timeout=self._command_timeout,
            # Fail fast when the server is down instead of hanging the request.
            timeout=2.0,
            max_inactive_connection_lifetime=60.0,
            server_settings=self._server_settings,
            reset=None if self._reset_sessions else _keep_session,
        )
        observe.register_pool(self._pool)

    async def stop(self) -> None:
        if self._pool is not None:
            observe.forget_pool(self._pool)
            await self._pool.close()
            self._pool = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.start() was not called")
        return self._pool

    @contextlib.asynccontextmanager
    async def tenant_tx(self, tenant_id: TenantId) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside a transaction scoped to one tenant (``SET LOCAL``).

        The setting ends with the transaction, so a pooled connection never carries a
        tenant into the next request. Row-level security reads it in every policy.
        """
        async with self._translate_errors(), self._acquire() as conn, conn.transaction():
            await conn.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
            yield conn

    @contextlib.asynccontextmanager
    async def global_tx(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction with no tenant: only global tables (users) and ``auth_lookup``.

        Row-level security hides every tenant row from it.
        """
        async with self._translate_errors(), self._acquire() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection with no tenant and no transaction: for schemas without
        row-level security (the search projection, read by its own role), and for
        statements that set the tenant themselves (``dojo_append_updates``)."""
        async with self._translate_errors(), self._acquire() as conn:
            yield conn

    async def ping(self) -> None:
        async with self._translate_errors(), self._acquire() as conn:
            await conn.fetchval("select 1")

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        # Every connection goes through here: query spans and the pool gauges.
        pool = self.pool
        try:
            async with pool.acquire() as conn:
                observe.watch(conn)
                observe.update_pool_gauges()
                yield cast(asyncpg.Connection, conn)
        finally:
            observe.update_pool_gauges()

    @staticmethod
    @contextlib.asynccontextmanager
    async def _translate_errors() -> AsyncIterator[None]:
        try:
            yield
        except _UNREACHABLE as exc:
            raise Unavailable("the database is unreachable, retry shortly") from exc

"""The search role's pool skips asyncpg's per-release reset round trip
(``open_search_database``): what that reset would have cleaned must not leak anyway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pocdojo.storage.db import Database


@contextlib.asynccontextmanager
async def every_connection(db: Database) -> AsyncIterator[list[Any]]:
    """Every connection of the pool at once (the fixture's max_size), released on exit: one
    of them is the connection an earlier ``db.connection()`` used."""
    held = [await db.pool.acquire() for _ in range(db.pool.get_max_size())]
    try:
        yield held
    finally:
        for conn in held:
            await db.pool.release(conn)


async def test_a_connection_released_inside_a_transaction_comes_back_without_it(
    search_db: Database,
) -> None:
    async with every_connection(search_db) as held:
        await held[0].execute("begin")
        await held[0].execute("create temp table leftover (x int)")
        assert held[0].is_in_transaction()
    async with every_connection(search_db) as held:
        for conn in held:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("select to_regclass('pg_temp.leftover')") is None
            # The role's and the pool's settings are session defaults, not reset away.
            assert await conn.fetchval("show plan_cache_mode") == "force_custom_plan"


async def test_the_search_pool_does_not_send_the_reset_query(search_db: Database) -> None:
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    async with search_db.connection() as conn:
        conn.add_query_logger(log)
        await conn.fetchval("select 1")
    # Released: a reset would have run "... RESET ALL" through the same connection.
    assert sent == ["select 1"]
    async with every_connection(search_db) as held:
        for other in held:  # one of them wraps the logged connection: take the logger off
            other.remove_query_logger(log)

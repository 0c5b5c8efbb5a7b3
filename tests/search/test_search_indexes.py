"""The search schema's GIN indexes: pending lists kept short (migration 0014), the
tenant-keyed one on a function call (migration 0015).

Every scan of a GIN index reads its whole pending list, and the search projection is one
table for every tenant: with PostgreSQL's default (4 MB) a few thousand writes anywhere made
every keyed scan of every tenant read hundreds of pending pages (0.12 -> 1.6 ms for one
word on the 1,000,000-PoC bench). A GIN index added later without the bound fails here.
"""

from __future__ import annotations

from pocdojo.storage.db import Database
from pocdojo.storage.search_postgres import _DOC_KEYS

MAX_PENDING_LIST_KB = 256


async def test_every_search_gin_index_bounds_its_pending_list(search_db: Database) -> None:
    async with search_db.connection() as conn:
        rows = await conn.fetch(
            """select c.relname, coalesce(c.reloptions, '{}') as options
               from pg_class c
               join pg_am a on a.oid = c.relam
               where c.relnamespace = 'search'::regnamespace and a.amname = 'gin'"""
        )
    assert rows, "the search schema has GIN indexes"
    limits = {
        row["relname"]: next(
            (
                int(option.split("=", 1)[1])
                for option in row["options"]
                if option.startswith("gin_pending_list_limit=")
            ),
            None,
        )
        for row in rows
    }
    unbounded = {name: kb for name, kb in limits.items() if kb is None or kb > MAX_PENDING_LIST_KB}
    assert not unbounded, f"GIN indexes without a pending list of <= 256 kB: {unbounded}"


async def test_the_keyed_index_is_on_a_call_the_planner_does_not_inline(
    search_db: Database,
) -> None:
    """Migration 0015: the tenant-keyed index is on ``search.tenant_keys(...)``, a function
    with a SET clause (never inlined), and the service's keyed conditions match it."""
    async with search_db.connection() as conn:
        config = await conn.fetchval(
            """select proconfig from pg_proc where oid = 'search.tenant_keys(uuid, tsvector,
               tsvector, text[], text[], text, smallint, uuid, timestamptz)'::regprocedure"""
        )
        assert config, "search.tenant_keys needs its SET clause, or the planner inlines it"
        definition = await conn.fetchval(
            "select pg_get_indexdef('search.pocs_tenant_keys'::regclass)"
        )
    # what the service's keyed conditions write is the index's expression, so they match it
    assert _DOC_KEYS in definition
    assert "WHERE (NOT deleted)" in definition


async def test_the_vocabulary_lookup_is_planned_once_and_finds_typos_by_index(
    search_db: Database,
) -> None:
    """Migrations 0016, 0018: ``search.vocabulary`` keeps its generic-plan setting (the service
    plans every other statement for its values) and runs with the caller's rights; the
    typo lookup has its tenant-first trigram index."""
    async with search_db.connection() as conn:
        row = await conn.fetchrow(
            """select proconfig, prosecdef from pg_proc where oid =
               'search.vocabulary(uuid, text[], text, int, int, text[], text[], text[], text)'
               ::regprocedure"""
        )
        definition = await conn.fetchval(
            "select pg_get_indexdef('search.name_words_trgm'::regclass)"
        )
    assert row["proconfig"] == ["plan_cache_mode=force_generic_plan"]
    assert row["prosecdef"] is False
    assert "USING gin (tenant_id, word gin_trgm_ops)" in definition


async def test_the_typo_lookup_reads_the_trigram_index(search_db: Database) -> None:
    """Migration 0017: the typo lookup runs alone in ``search.near_words``, with plain index
    scans off (the planner preferred a scan of all of the tenant's words through the primary
    key, 2-3x slower), and ``search.vocabulary`` calls it; the search role may run it."""
    async with search_db.connection() as conn:
        config = await conn.fetchval(
            "select proconfig from pg_proc where oid = "
            "'search.near_words(uuid, text, text, int)'::regprocedure"
        )
        body = await conn.fetchval(
            "select prosrc from pg_proc where oid = "
            "'search.vocabulary(uuid, text[], text, int, int, text[], text[], text[], text)'"
            "::regprocedure"
        )
        allowed = await conn.fetchval(
            "select has_function_privilege('search.near_words(uuid, text, text, int)', 'execute')"
        )
    assert sorted(config) == [
        "enable_indexonlyscan=off",
        "enable_indexscan=off",
        "plan_cache_mode=force_generic_plan",
    ]
    assert "search.near_words(t, q.w, last_char, near_max)" in body
    assert allowed

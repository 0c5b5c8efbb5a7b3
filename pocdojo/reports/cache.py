"""Computed dashboards cached in Redis, invalidated exactly by the rollup version.

One key per (tenant, scope owner, period) holds the figures and the version of the scope's
figures they were computed at (``report_versions``, bumped by the same statements that change
the rollup, migration 0007). A read takes the entry from Redis, then in one statement reads
the current version and the names to show; equal versions: a hit. A write that moves a figure
changes the version, so the next read misses, recomputes and replaces the entry. The version
is read before the figures, so an entry is never older than its version says; a slow miss
that overwrites a newer entry only costs the next reader a miss. Only the numbers are cached;
names (contributors, dojo titles) are read fresh on every hit. Redis being down costs the
cache, never the dashboard.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pocdojo.reports.period import Period
from pocdojo.reports.summary import (
    Figures,
    Scope,
    Summary,
    build_summary,
    load_figures,
    scope_owner,
    version_and_names,
)
from pocdojo.types import TenantId, UserId

log = logging.getLogger(__name__)

TTL_S = 3600
"""How long an entry lives: only to reclaim memory, never for correctness."""


def cache_key(tenant_id: TenantId, owner: uuid.UUID, period: Period) -> str:
    return f"t:{tenant_id}:reports:summary:{owner}:{period.first:%Y-%m}:{period.last:%Y-%m}"


@dataclass(frozen=True, slots=True)
class Entry:
    """What one cache key holds: the figures and the version they were computed at."""

    version: int
    figures: Figures

    def encode(self) -> str:
        return f"{self.version}\n{self.figures.doc}"

    @classmethod
    def decode(cls, raw: bytes | str) -> Entry:
        text = raw.decode() if isinstance(raw, bytes) else raw
        version, _, doc = text.partition("\n")
        return cls(int(version), Figures(doc))


class SummaryCache:
    """``summary()``: the dashboard from Redis when its figures have not changed since it was
    computed, else computed from the rollup (and kept for the next reader)."""

    def __init__(self, redis: aioredis.Redis, *, ttl_s: int = TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def lookup(
        self, tenant_id: TenantId, scope: Scope, user_id: UserId, period: Period
    ) -> Entry | None:
        """The cached entry, if any, whatever its version: ``summary()`` checks it. Apart so
        that the caller can ask Redis before it opens the tenant transaction."""
        try:
            raw: bytes | str | None = await self._redis.get(
                cache_key(tenant_id, scope_owner(scope, user_id), period)
            )
        except (RedisError, OSError) as exc:
            log.warning("report cache unavailable: %s", exc)
            return None
        return Entry.decode(raw) if raw is not None else None

    async def summary(
        self,
        conn: asyncpg.Connection,
        tenant_id: TenantId,
        scope: Scope,
        user_id: UserId,
        period: Period,
        entry: Entry | None,
    ) -> tuple[Summary, bool]:
        """The dashboard and whether it came from the cache; ``conn`` from ``tenant_tx``,
        ``entry`` from ``lookup()``."""
        owner = scope_owner(scope, user_id)
        # The version is read before any figure: an entry is never older than its version.
        version, names = await version_and_names(
            conn, tenant_id, owner, entry.figures if entry else None, user_id
        )
        if entry is not None and entry.version == version:
            return build_summary(scope, user_id, period, entry.figures, names), True
        figures, names = await load_figures(conn, tenant_id, scope, user_id, period)
        try:
            await self._redis.set(
                cache_key(tenant_id, owner, period),
                Entry(version, figures).encode(),
                ex=self._ttl_s,
            )
        except (RedisError, OSError) as exc:
            log.warning("report cache unavailable: %s", exc)
        return build_summary(scope, user_id, period, figures, names), False

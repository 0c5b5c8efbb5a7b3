"""A bounded in-process cache of search answers, keyed by the tenant's index version.

The writers of the search projection bump a per-tenant version in the same transaction as
their change (``search.tenant_versions``); a reader asks for the version first and looks
the answer up under (tenant, version, request). An answer is therefore never served after
a later write to its tenant became visible: the first read after a commit sees the new
version and misses. Entries of old versions are never asked for again and age out of the
least-recently-used end.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

DEFAULT_CACHE_SIZE = 4096
"""Answers kept per process (a first page with facets is a few KiB)."""


class ResultCache(Generic[V]):
    """Least-recently-used map of at most ``size`` entries; ``size`` 0 keeps nothing."""

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        if size < 0:
            raise ValueError("cache size must be >= 0")
        self._size = size
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._size > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: Hashable, value: V) -> None:
        if not self._size:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

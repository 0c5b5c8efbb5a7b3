"""The search indexer: PoC events from the stream -> the SearchIndex (idempotent by version)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

from pocdojo.metrics import SEARCH_INDEXER_LAG
from pocdojo.storage.search import SearchDoc, SearchIndex
from pocdojo.types import TenantId
from pocdojo.workers.consumer import Event

GROUP = "search-indexer"


class SearchIndexer:
    def __init__(self, index: SearchIndex) -> None:
        self._index = index

    async def __call__(self, event: Event) -> None:
        if event.fields.get("topic") != "pocs":
            return
        tenant = TenantId(uuid.UUID(event.tenant_id))
        payload = json.loads(event.fields["payload"])
        if event.type in {"poc.created", "poc.updated"}:
            await self._index.upsert(tenant, SearchDoc.from_event(payload))
        elif event.type == "poc.deleted":
            await self._index.delete(tenant, uuid.UUID(payload["id"]), int(payload["version"]))
        created = event.fields.get("created_at")
        if created:
            # Commit of the change -> searchable: what SearchIndexerLagging watches.
            lag = time.time() - datetime.fromisoformat(created).timestamp()
            SEARCH_INDEXER_LAG.set(max(0.0, lag))

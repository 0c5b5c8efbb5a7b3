"""The search index behind one Protocol: Postgres (default) or OpenSearch.

Every call takes a tenant; the adapters add the tenant filter to every statement or query
themselves (the search projection is the one place where the tenant filter is enforced by
the adapter instead of by row-level security, see ARCHITECTURE.md).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pocdojo.domain.pocs import Poc
from pocdojo.errors import FieldError, ValidationFailed
from pocdojo.types import TenantId

Sort = Literal["relevance", "newest", "name"]
SuggestionKind = Literal["name", "tag", "language"]
MAX_LIMIT = 100
FACET_SIZE = 20


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """One PoC as the index sees it; ``version`` orders updates (older ones are ignored)."""

    id: uuid.UUID
    version: int
    name: str
    description: str
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    owner_id: uuid.UUID
    status: str
    built_on: dt.date
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_poc(cls, poc: Poc) -> SearchDoc:
        return cls(
            id=poc.id,
            version=poc.version,
            name=poc.name,
            description=poc.description,
            languages=tuple(poc.languages),
            tags=tuple(poc.tags),
            owner_id=poc.owner_id,
            status=str(poc.status),
            built_on=poc.built_on,
            created_at=poc.created_at,
            updated_at=poc.updated_at,
        )

    @classmethod
    def from_event(cls, payload: dict[str, Any]) -> SearchDoc:
        """From a ``poc.created``/``poc.updated`` outbox payload (``Poc.to_json``)."""
        return cls(
            id=uuid.UUID(payload["id"]),
            version=int(payload["version"]),
            name=payload["name"],
            description=payload.get("description", ""),
            languages=tuple(payload["languages"]),
            tags=tuple(payload.get("tags", ())),
            owner_id=uuid.UUID(payload["owner"]),
            status=payload["status"],
            built_on=dt.date.fromisoformat(payload["built_on"]),
            created_at=dt.datetime.fromisoformat(payload["created_at"]),
            updated_at=dt.datetime.fromisoformat(payload["updated_at"]),
        )


@dataclass(frozen=True, slots=True)
class SearchQuery:
    q: str = ""
    languages: tuple[str, ...] = ()
    """Any of these (OR)."""
    tags_all: tuple[str, ...] = ()
    """All of these (AND)."""
    tags_any: tuple[str, ...] = ()
    """Any of these (OR)."""
    owner: uuid.UUID | None = None
    status: str | None = None
    year: int | None = None
    """Year of ``built_on``."""
    sort: Sort = "relevance"
    cursor: str | None = None
    limit: int = 20


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: uuid.UUID
    name: str
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    owner_id: uuid.UUID
    status: str
    built_on: dt.date
    score: float
    highlights: dict[str, str] = field(default_factory=dict)
    """Field -> fragment with matches wrapped in ``<mark>``...``</mark>``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "languages": list(self.languages),
            "tags": list(self.tags),
            "owner": str(self.owner_id),
            "status": self.status,
            "built_on": self.built_on.isoformat(),
            "score": round(self.score, 4),
            "highlights": self.highlights,
        }


@dataclass(frozen=True, slots=True)
class FacetCount:
    value: str
    count: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[SearchHit]
    languages: list[FacetCount]
    tags: list[FacetCount]
    next_cursor: str | None
    facets_exact: bool = True
    """False when the matches were too many to count them all (see the backend)."""
    with_facets: bool = True
    """False on later pages (a cursor): facets come with the first page."""

    def to_json(self) -> dict[str, Any]:
        facets = {
            "languages": [{"value": f.value, "count": f.count} for f in self.languages],
            "tags": [{"value": f.value, "count": f.count} for f in self.tags],
            "exact": self.facets_exact,
        }
        return {
            "hits": [h.to_json() for h in self.hits],
            "facets": facets if self.with_facets else None,
            "next_cursor": self.next_cursor,
        }


@dataclass(frozen=True, slots=True)
class Suggestion:
    kind: SuggestionKind
    value: str
    id: uuid.UUID | None = None
    """The PoC, for name suggestions."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "id": str(self.id) if self.id else None}


class SearchIndex(Protocol):
    """What the search service and the indexer need; no method works without a tenant."""

    async def upsert(self, tenant_id: TenantId, doc: SearchDoc) -> bool:
        """Store ``doc`` unless the index already has this PoC at the same or a newer
        version (deletions included); True if it was applied."""
        ...

    async def delete(self, tenant_id: TenantId, poc_id: uuid.UUID, version: int) -> bool:
        """Remove the PoC, remembering ``version`` so an older upsert cannot revive it."""
        ...

    async def search(self, tenant_id: TenantId, query: SearchQuery) -> SearchResult: ...

    async def suggest(self, tenant_id: TenantId, prefix: str, limit: int = 10) -> list[Suggestion]:
        """Typeahead: up to ``limit`` names, tags and languages starting like ``prefix``."""
        ...

    async def replace_tenant(self, tenant_id: TenantId, docs: list[SearchDoc]) -> int:
        """Reindex: make the tenant's documents exactly ``docs`` (no downtime); the count."""
        ...


def encode_cursor(values: list[Any]) -> str:
    """An opaque cursor from the sort key of the last hit."""
    raw = json.dumps(values, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed([FieldError("query.cursor", "invalid cursor")]) from exc
    if not isinstance(values, list):
        raise ValidationFailed([FieldError("query.cursor", "invalid cursor")])
    return values

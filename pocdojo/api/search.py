"""search-api routes: typo-tolerant PoC search with facets, and typeahead."""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from pocdojo.api.context import authenticate
from pocdojo.api.params import json_response, parse_languages, parse_owner
from pocdojo.api.spec import ApiSpec, Param
from pocdojo.domain.pocs import slugify_tag
from pocdojo.errors import FieldError, ValidationFailed
from pocdojo.metrics import SEARCH_QUERY_DURATION
from pocdojo.storage.search import MAX_LIMIT, SearchIndex, SearchQuery
from pocdojo.types import PocStatus, Principal

spec = ApiSpec("search")
MAX_Q = 200


class FacetOut(BaseModel):
    value: str
    count: int


class FacetsOut(BaseModel):
    languages: list[FacetOut]
    tags: list[FacetOut]
    exact: bool


class HitOut(BaseModel):
    id: uuid.UUID
    name: str
    languages: list[str]
    tags: list[str]
    owner: uuid.UUID
    status: str
    built_on: str
    score: float
    highlights: dict[str, str]


class SearchOut(BaseModel):
    hits: list[HitOut]
    facets: FacetsOut | None = None
    # With the first page only (no cursor).
    next_cursor: str | None


class SuggestionOut(BaseModel):
    kind: str
    value: str
    id: uuid.UUID | None


class SuggestOut(BaseModel):
    items: list[SuggestionOut]


def _backend(index: SearchIndex) -> str:
    # Bounded label values for the query-latency metric.
    return "opensearch" if "OpenSearch" in type(index).__name__ else "postgres"


def search_index(request: Request) -> SearchIndex:
    index: SearchIndex = request.app.state.search_index
    return index


def parse_query(request: Request, principal: Principal) -> SearchQuery:
    q = request.query_params
    errors: list[FieldError] = []
    text = q.get("q", "")
    if len(text) > MAX_Q:
        errors.append(FieldError("query.q", f"at most {MAX_Q} characters"))
    languages = parse_languages(request, errors)
    owner = parse_owner(request, principal, errors)
    status = q.get("status")
    if status is not None and status not in PocStatus.__members__.values():
        errors.append(FieldError("query.status", "one of draft, active, archived"))
    year: int | None = None
    if raw_year := q.get("year"):
        if raw_year.isdigit() and 1970 <= int(raw_year) <= 2100:
            year = int(raw_year)
        else:
            errors.append(FieldError("query.year", "a year from 1970 to 2100"))
    sort = q.get("sort", "relevance")
    if sort not in {"relevance", "newest", "name"}:
        errors.append(FieldError("query.sort", "relevance, newest or name"))
    raw_limit = q.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        errors.append(FieldError("query.limit", f"an integer from 1 to {MAX_LIMIT}"))
    if errors:
        raise ValidationFailed(errors)

    def tags(name: str) -> tuple[str, ...]:
        return tuple(t for t in (slugify_tag(v) for v in q.getlist(name)) if t)

    return SearchQuery(
        q=text,
        languages=languages,
        tags_all=tags("tag"),
        tags_any=tags("tags_any"),
        owner=owner,
        status=status,
        year=year,
        sort=sort,  # type: ignore[arg-type]
        cursor=q.get("cursor"),
        limit=int(raw_limit),
    )


@spec.operation(
    "GET",
    "/v1/search",
    summary="Search your tenant's PoCs by name, description, language and tags",
    responses={200: ("Hits, facets (top 20, under the current filters) and a cursor", SearchOut)},
    params=(
        Param(
            "q", "query", "name prefix, typos of one or two letters, any word order; description"
        ),
        Param("language", "query", "any of these languages (OR)", array=True),
        Param("tag", "query", "all of these tags (AND)", array=True),
        Param("tags_any", "query", "any of these tags (OR)", array=True),
        Param("owner", "query", "a user id, or 'me'"),
        Param("status", "query", "draft, active or archived"),
        Param("year", "query", "year built", {"type": "integer"}),
        Param("sort", "query", "relevance (default), newest or name"),
        Param("cursor", "query", "next_cursor of the previous page"),
        Param("limit", "query", "1-100, default 20", {"type": "integer"}),
    ),
)
async def search_pocs(request: Request) -> Response:
    principal = await authenticate(request)
    query = parse_query(request, principal)
    index = search_index(request)
    start = time.perf_counter()
    result = await index.search(principal.tenant_id, query)
    SEARCH_QUERY_DURATION.labels("search", _backend(index)).observe(time.perf_counter() - start)
    return json_response(result.to_json())


@spec.operation(
    "GET",
    "/v1/search/suggest",
    summary="Typeahead: up to 10 names, tags and languages",
    responses={200: ("Suggestions", SuggestOut)},
    params=(Param("q", "query", "what the user typed so far", required=True),),
)
async def suggest(request: Request) -> Response:
    principal = await authenticate(request)
    prefix = request.query_params.get("q", "")
    if len(prefix) > MAX_Q:
        raise ValidationFailed([FieldError("query.q", f"at most {MAX_Q} characters")])
    index = search_index(request)
    start = time.perf_counter()
    items = await index.suggest(principal.tenant_id, prefix, 10)
    SEARCH_QUERY_DURATION.labels("suggest", _backend(index)).observe(time.perf_counter() - start)
    return json_response({"items": [s.to_json() for s in items]})

"""PoC registry routes: CRUD with ETags, idempotent create, cursor pagination."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pocdojo.api.context import authenticate, services
from pocdojo.api.params import (
    json_response,
    parse_languages,
    parse_limit,
    parse_owner,
    path_uuid,
)
from pocdojo.api.problems import parse_model, read_json
from pocdojo.api.schemas import PocOut, PocPage
from pocdojo.api.spec import ApiSpec, Param
from pocdojo.domain.pocs import Poc, PocCreate, PocFilter, PocPatch, slugify_tag
from pocdojo.errors import (
    FieldError,
    Forbidden,
    PreconditionFailed,
    PreconditionRequired,
    ValidationFailed,
)
from pocdojo.storage import idempotency, pocs
from pocdojo.storage.outbox import record_event
from pocdojo.storage.pagination import Cursor
from pocdojo.types import PocStatus, Principal

spec = ApiSpec("pocs")
STALE = "the PoC changed since you read it; fetch it again"


def can_edit(principal: Principal, poc: Poc) -> bool:
    return principal.is_admin or poc.owner_id == principal.user_id


def poc_response(poc: Poc, status: int = 200) -> Response:
    return json_response(poc.to_json(), status, headers={"ETag": poc.etag})


def _event_payload(poc: Poc) -> dict[str, Any]:
    return poc.to_json()


def _if_match_version(request: Request, poc_id: uuid.UUID) -> int:
    header = request.headers.get("if-match")
    if header is None:
        raise PreconditionRequired("send If-Match with the ETag you read")
    tag = header.strip().removeprefix("W/").strip('"')
    ident, _, version = tag.rpartition(".")
    if ident != str(poc_id) or not version.isdigit():
        return -1  # matches no version: answers 412
    return int(version)


@spec.operation(
    "POST",
    "/v1/pocs",
    summary="Register a PoC",
    body=PocCreate,
    responses={
        201: ("Created", PocOut),
        200: ("A retry with the same Idempotency-Key: the first result", PocOut),
        409: ("Idempotency-Key reused with another body", None),
    },
    params=(
        Param(
            "Idempotency-Key",
            "header",
            "makes a retried create return the first result",
        ),
    ),
)
async def create_poc(request: Request) -> Response:
    principal = await authenticate(request)
    raw = await read_json(request)
    data = parse_model(PocCreate, raw)
    key = request.headers.get("idempotency-key")
    db = services(request).db
    async with db.tenant_tx(principal.tenant_id) as conn:
        if key:
            fingerprint = idempotency.request_fingerprint(json.dumps(raw, sort_keys=True).encode())
            stored = await idempotency.claim_key(
                conn, principal.tenant_id, principal.user_id, key, fingerprint
            )
            if stored is not None:
                return json_response(
                    stored.body,
                    200,
                    headers={"ETag": f'"{stored.body["id"]}.{stored.body["version"]}"'},
                )
        poc = await pocs.insert_poc(conn, principal.tenant_id, principal.user_id, data)
        await record_event(
            conn,
            principal.tenant_id,
            topic="pocs",
            event_type="poc.created",
            aggregate_id=poc.id,
            payload=_event_payload(poc),
            traceparent=request.headers.get("traceparent"),
        )
        if key:
            await idempotency.store_response(
                conn,
                principal.tenant_id,
                principal.user_id,
                key,
                idempotency.StoredResponse(201, poc.to_json()),
            )
    response = poc_response(poc, 201)
    response.headers["Location"] = f"/v1/pocs/{poc.id}"
    return response


def _parse_filters(request: Request, principal: Principal) -> PocFilter:
    query = request.query_params
    errors: list[FieldError] = []
    owner = parse_owner(request, principal, errors)
    languages = parse_languages(request, errors)
    status: PocStatus | None = None
    if status_raw := query.get("status"):
        try:
            status = PocStatus(status_raw)
        except ValueError:
            errors.append(FieldError("query.status", "one of draft, active, archived"))
    if errors:
        raise ValidationFailed(errors)
    tags = tuple(t for t in (slugify_tag(v) for v in query.getlist("tag")) if t)
    return PocFilter(owner=owner, languages=languages, tags=tags, status=status)


@spec.operation(
    "GET",
    "/v1/pocs",
    summary="List PoCs of your tenant, newest first",
    responses={200: ("A page of PoCs", PocPage)},
    params=(
        Param("owner", "query", "a user id, or 'me'"),
        Param("language", "query", "any of these languages (OR)", array=True),
        Param("tag", "query", "all of these tags (AND)", array=True),
        Param("status", "query", "draft, active or archived"),
        Param("cursor", "query", "next_cursor of the previous page"),
        Param("limit", "query", "1-100, default 20", {"type": "integer"}),
    ),
)
async def list_pocs(request: Request) -> Response:
    principal = await authenticate(request)
    filters = _parse_filters(request, principal)
    limit = parse_limit(request)
    cursor_raw = request.query_params.get("cursor")
    cursor = Cursor.decode(cursor_raw) if cursor_raw else None
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        items, next_cursor = await pocs.list_pocs(conn, filters, cursor, limit)
    return json_response(
        {
            "items": [p.to_json() for p in items],
            "next_cursor": next_cursor.encode() if next_cursor else None,
        }
    )


@spec.operation(
    "GET",
    "/v1/pocs/{id}",
    summary="Get one PoC (with its ETag)",
    responses={200: ("The PoC", PocOut), 304: ("Not modified (If-None-Match)", None)},
)
async def get_poc(request: Request) -> Response:
    principal = await authenticate(request)
    poc_id = path_uuid(request)
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        poc = await pocs.get_poc(conn, poc_id)
    if request.headers.get("if-none-match") == poc.etag:
        return Response(status_code=304, headers={"ETag": poc.etag})
    return poc_response(poc)


@spec.operation(
    "PATCH",
    "/v1/pocs/{id}",
    summary="Change a PoC (If-Match required)",
    body=PocPatch,
    responses={
        200: ("The changed PoC", PocOut),
        403: ("Members may only edit their own PoCs", None),
        412: ("Stale If-Match", None),
        428: ("If-Match missing", None),
    },
    params=(Param("If-Match", "header", "the ETag you read", required=True),),
)
async def patch_poc(request: Request) -> Response:
    principal = await authenticate(request)
    poc_id = path_uuid(request)
    patch = parse_model(PocPatch, await read_json(request))
    changes = patch.changes()
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        current = await pocs.get_poc(conn, poc_id)
        if not can_edit(principal, current):
            raise Forbidden("members may only edit their own PoCs")
        expected = _if_match_version(request, poc_id)
        if expected != current.version:
            raise PreconditionFailed(STALE)
        if not changes:
            return poc_response(current)
        poc = await pocs.update_poc(conn, poc_id, expected, changes)
        await record_event(
            conn,
            principal.tenant_id,
            topic="pocs",
            event_type="poc.updated",
            aggregate_id=poc.id,
            payload={**_event_payload(poc), "changed": sorted(changes)},
            traceparent=request.headers.get("traceparent"),
        )
    return poc_response(poc)


@spec.operation(
    "DELETE",
    "/v1/pocs/{id}",
    summary="Delete a PoC (If-Match optional)",
    responses={
        204: ("Deleted", None),
        403: ("Members may only delete their own PoCs", None),
        412: ("Stale If-Match", None),
    },
    params=(Param("If-Match", "header", "the ETag you read"),),
)
async def delete_poc(request: Request) -> Response:
    principal = await authenticate(request)
    poc_id = path_uuid(request)
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        current = await pocs.get_poc(conn, poc_id, for_update=True)
        if not can_edit(principal, current):
            raise Forbidden("members may only delete their own PoCs")
        if_match = request.headers.get("if-match")
        if if_match is not None and _if_match_version(request, poc_id) != current.version:
            raise PreconditionFailed(STALE)
        await pocs.delete_poc(conn, poc_id)
        await record_event(
            conn,
            principal.tenant_id,
            topic="pocs",
            event_type="poc.deleted",
            aggregate_id=poc_id,
            # The next version: the index remembers it so an older update cannot revive it.
            payload={
                "id": str(poc_id),
                "owner": str(current.owner_id),
                "version": current.version + 1,
            },
            traceparent=request.headers.get("traceparent"),
        )
    return Response(status_code=204)

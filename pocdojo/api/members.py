"""Tenant membership administration (admins only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pocdojo.api.context import authenticate, services
from pocdojo.api.params import json_response, parse_limit, path_uuid
from pocdojo.api.problems import parse_model, read_json
from pocdojo.api.schemas import MemberCreate, MemberOut, MemberPage, MemberPatch
from pocdojo.api.spec import ApiSpec, Param
from pocdojo.errors import Forbidden
from pocdojo.storage import tenants
from pocdojo.storage.outbox import record_event
from pocdojo.types import Principal

spec = ApiSpec("tenant")
_ADMINS_ONLY = {403: ("Admins only", None)}


async def _admin(request: Request) -> Principal:
    principal = await authenticate(request)
    if not principal.is_admin:
        raise Forbidden("only tenant admins manage members")
    return principal


@spec.operation(
    "GET",
    "/v1/tenant/members",
    summary="List the tenant's members",
    responses={200: ("A page of members", MemberPage), **_ADMINS_ONLY},
    params=(
        Param("cursor", "query", "next_cursor of the previous page"),
        Param("limit", "query", "1-100, default 20", {"type": "integer"}),
    ),
)
async def list_members(request: Request) -> Response:
    principal = await _admin(request)
    limit = parse_limit(request)
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        members, next_cursor = await tenants.list_members(
            conn, request.query_params.get("cursor"), limit
        )
    return json_response({"items": [m.to_json() for m in members], "next_cursor": next_cursor})


@spec.operation(
    "POST",
    "/v1/tenant/members",
    summary="Add a member (creates the user if the email is new)",
    body=MemberCreate,
    responses={
        201: ("Added", MemberOut),
        409: ("Already a member", None),
        **_ADMINS_ONLY,
    },
)
async def add_member(request: Request) -> Response:
    principal = await _admin(request)
    body = parse_model(MemberCreate, await read_json(request))
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        user_id = await tenants.ensure_user(conn, body.email.lower(), body.display_name)
        member = await tenants.add_member(conn, principal.tenant_id, user_id, body.role)
        await record_event(
            conn,
            principal.tenant_id,
            topic="members",
            event_type="member.added",
            aggregate_id=user_id,
            payload={"user_id": str(user_id), "role": str(body.role)},
        )
    return json_response(member.to_json(), 201)


@spec.operation(
    "PATCH",
    "/v1/tenant/members/{user_id}",
    summary="Change a member's role",
    body=MemberPatch,
    responses={200: ("Changed", MemberOut), **_ADMINS_ONLY},
)
async def patch_member(request: Request) -> Response:
    principal = await _admin(request)
    user_id = path_uuid(request, "user_id")
    body = parse_model(MemberPatch, await read_json(request))
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        member = await tenants.set_member_role(conn, user_id, body.role)
        await record_event(
            conn,
            principal.tenant_id,
            topic="members",
            event_type="member.role_changed",
            aggregate_id=user_id,
            payload={"user_id": str(user_id), "role": str(body.role)},
        )
    return json_response(member.to_json())

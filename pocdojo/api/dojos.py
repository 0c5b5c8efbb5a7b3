"""dojo-api routes: dojos as a resource, chat history and replay (REST side)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from starlette.requests import Request
from starlette.responses import Response

from pocdojo.api.context import authenticate, services
from pocdojo.api.gateway import publish_event
from pocdojo.api.params import json_response, parse_limit, path_uuid
from pocdojo.api.problems import parse_model, read_json
from pocdojo.api.spec import ApiSpec, Param
from pocdojo.domain.languages import UnknownLanguage, catalogue
from pocdojo.engine.history import files_at
from pocdojo.engine.starter import starter_update
from pocdojo.errors import Conflict, FieldError, Forbidden, ValidationFailed
from pocdojo.storage import dojos, pocs
from pocdojo.storage.blobs import BlobKey
from pocdojo.storage.outbox import record_event
from pocdojo.storage.pagination import Cursor

spec = ApiSpec("dojos")
MAX_STARTER_FILES = 50
MAX_STARTER_BYTES = 1024 * 1024
_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class DojoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    language: str = Field(max_length=64)
    poc_id: uuid.UUID | None = None
    kata: str = Field(default="", max_length=20_000, description="a kata or PoC description")
    files: dict[str, str] = Field(default_factory=dict, description="starter files: path -> text")

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        try:
            return catalogue().normalise(value)
        except UnknownLanguage as exc:
            raise ValueError(
                f"unknown language; did you mean {', '.join(exc.suggestions)}?"
            ) from exc

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_STARTER_FILES:
            raise ValueError(f"at most {MAX_STARTER_FILES} starter files")
        if sum(len(p) + len(c.encode()) for p, c in value.items()) > MAX_STARTER_BYTES:
            raise ValueError("starter files larger than 1 MiB in all")
        for path in value:
            if len(path) > 200 or not _PATH.match(path) or ".." in path.split("/"):
                raise ValueError(f"invalid file path {path!r}")
        return value


class DojoOut(BaseModel):
    id: uuid.UUID
    title: str
    language: str
    poc_id: uuid.UUID | None
    kata: str
    host: uuid.UUID
    status: str
    created_at: dt.datetime
    ended_at: dt.datetime | None


class IceServerOut(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class DojoDetail(DojoOut):
    participants_online: list[uuid.UUID]
    ice_servers: list[IceServerOut]
    """STUN/TURN servers for the dojo's voice call (RTCIceServer shape)."""


class DojoPage(BaseModel):
    items: list[DojoOut]
    next_cursor: str | None


class ChatCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class ChatOut(BaseModel):
    id: int
    author: uuid.UUID
    body: str
    created_at: dt.datetime


class ChatPage(BaseModel):
    items: list[ChatOut]
    next_cursor: str | None


class HistoryOut(BaseModel):
    at: dt.datetime
    files: dict[str, str]


@spec.operation(
    "POST",
    "/v1/dojos",
    summary="Open a dojo (you are its host)",
    body=DojoCreate,
    responses={201: ("Created", DojoOut)},
)
async def create_dojo(request: Request) -> Response:
    principal = await authenticate(request)
    body = parse_model(DojoCreate, await read_json(request, max_bytes=MAX_STARTER_BYTES + 64_000))
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        if body.poc_id is not None:
            await pocs.get_poc(conn, body.poc_id)  # 404 unless it is this tenant's
        dojo = await dojos.insert_dojo(
            conn,
            principal.tenant_id,
            principal.user_id,
            title=body.title,
            language=body.language,
            poc_id=body.poc_id,
            kata=body.kata,
        )
        if body.files:
            await dojos.append_updates(
                conn, principal.tenant_id, dojo.id, [starter_update(body.files)]
            )
        await record_event(
            conn,
            principal.tenant_id,
            topic="dojos",
            event_type="dojo.created",
            aggregate_id=dojo.id,
            payload=dojo.to_json(),
        )
    response = json_response(dojo.to_json(), 201)
    response.headers["Location"] = f"/v1/dojos/{dojo.id}"
    return response


@spec.operation(
    "GET",
    "/v1/dojos",
    summary="Live and past dojos of your tenant, newest first",
    responses={200: ("A page of dojos", DojoPage)},
    params=(
        Param("status", "query", "live or ended"),
        Param("cursor", "query", "next_cursor of the previous page"),
        Param("limit", "query", "1-100, default 20", {"type": "integer"}),
    ),
)
async def list_dojos(request: Request) -> Response:
    principal = await authenticate(request)
    status = request.query_params.get("status")
    if status not in (None, "live", "ended"):
        raise ValidationFailed([FieldError("query.status", "live or ended")])
    limit = parse_limit(request)
    raw_cursor = request.query_params.get("cursor")
    cursor = Cursor.decode(raw_cursor) if raw_cursor else None
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        items, next_cursor = await dojos.list_dojos(conn, status, cursor, limit)
    return json_response(
        {
            "items": [d.to_json() for d in items],
            "next_cursor": next_cursor.encode() if next_cursor else None,
        }
    )


@spec.operation(
    "GET",
    "/v1/dojos/{id}",
    summary="A dojo, with who is online",
    responses={200: ("The dojo", DojoDetail)},
)
async def get_dojo(request: Request) -> Response:
    principal = await authenticate(request)
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        dojo = await dojos.get_dojo(conn, path_uuid(request))
        online = await conn.fetch(
            "select distinct user_id from dojo_participation "
            "where dojo_id = $1 and left_at is null",
            dojo.id,
        )
    ice = [s.model_dump(exclude_none=True) for s in services(request).settings.ice_servers]
    return json_response(
        {
            **dojo.to_json(),
            "participants_online": [str(r[0]) for r in online],
            "ice_servers": ice,
        }
    )


@spec.operation(
    "POST",
    "/v1/dojos/{id}/end",
    summary="End a dojo (its host or an admin)",
    responses={200: ("Ended", DojoOut), 403: ("Only the host or an admin", None)},
)
async def end_dojo(request: Request) -> Response:
    principal = await authenticate(request)
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        dojo = await dojos.get_dojo(conn, path_uuid(request))
        if dojo.host_id != principal.user_id and not principal.is_admin:
            raise Forbidden("only the host or an admin ends a dojo")
        dojo = await dojos.end_dojo(conn, dojo.id)
        await record_event(
            conn,
            principal.tenant_id,
            topic="dojos",
            event_type="dojo.ended",
            aggregate_id=dojo.id,
            payload=dojo.to_json(),
        )
    await publish_event(
        services(request).redis, principal.tenant_id, dojo.id, {"type": "dojo.ended"}
    )
    return json_response(dojo.to_json())


@spec.operation(
    "GET",
    "/v1/dojos/{id}/chat",
    summary="Chat history, newest first",
    responses={200: ("A page of messages", ChatPage)},
    params=(
        Param("cursor", "query", "next_cursor of the previous page"),
        Param("limit", "query", "1-100, default 20", {"type": "integer"}),
    ),
)
async def list_chat(request: Request) -> Response:
    principal = await authenticate(request)
    limit = parse_limit(request)
    raw_cursor = request.query_params.get("cursor")
    if raw_cursor is not None and not raw_cursor.isdigit():
        raise ValidationFailed([FieldError("query.cursor", "invalid cursor")])
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        dojo = await dojos.get_dojo(conn, path_uuid(request))
        items, before = await dojos.list_chat(
            conn, dojo.id, int(raw_cursor) if raw_cursor else None, limit
        )
    return json_response(
        {"items": [m.to_json() for m in items], "next_cursor": str(before) if before else None}
    )


@spec.operation(
    "POST",
    "/v1/dojos/{id}/chat",
    summary="Send a chat message (authored by you, from your token)",
    body=ChatCreate,
    responses={201: ("Sent", ChatOut), 409: ("The dojo has ended", None)},
)
async def post_chat(request: Request) -> Response:
    principal = await authenticate(request)
    body = parse_model(ChatCreate, await read_json(request))
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        dojo = await dojos.get_dojo(conn, path_uuid(request))
        if dojo.status != "live":
            raise Conflict("this dojo has ended")
        message = await dojos.add_chat(
            conn, principal.tenant_id, dojo.id, principal.user_id, body.body
        )
        await record_event(
            conn,
            principal.tenant_id,
            topic="dojos",
            event_type="dojo.chat",
            aggregate_id=dojo.id,
            payload={"dojo_id": str(dojo.id), **message.to_json()},
        )
    await publish_event(
        services(request).redis,
        principal.tenant_id,
        dojo.id,
        {"type": "chat.message", **message.to_json()},
    )
    return json_response(message.to_json(), 201)


@spec.operation(
    "GET",
    "/v1/dojos/{id}/history",
    summary="The dojo's files as they were at a moment, rebuilt from its log",
    responses={200: ("The files at that time", HistoryOut)},
    params=(Param("at", "query", "ISO 8601 timestamp (default: now)"),),
)
async def history(request: Request) -> Response:
    principal = await authenticate(request)
    raw_at = request.query_params.get("at")
    try:
        at = dt.datetime.fromisoformat(raw_at) if raw_at else dt.datetime.now(dt.UTC)
    except ValueError as exc:
        raise ValidationFailed([FieldError("query.at", "an ISO 8601 timestamp")]) from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    svc = services(request)
    async with svc.db.tenant_tx(principal.tenant_id) as conn:
        dojo = await dojos.get_dojo(conn, path_uuid(request))
        snapshot = await dojos.latest_snapshot(conn, dojo.id, at)
        after_seq = snapshot["upto_seq"] if snapshot else 0
        rows = await dojos.updates_since(conn, dojo.id, after_seq, at)
    base = None
    if snapshot is not None:
        base = await svc.blobs.get(BlobKey.parse(snapshot["blob_key"]))
    files = files_at(
        ((r["created_at"].timestamp(), bytes(r["payload"])) for r in rows),
        at.timestamp(),
        base=base,
    )
    return json_response({"at": at.isoformat(), "files": files})

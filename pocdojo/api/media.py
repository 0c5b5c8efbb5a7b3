"""PoC media: presigned uploads, listing with download URLs, and the file store's routes."""

from __future__ import annotations

import os
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from pocdojo.api.context import authenticate, services
from pocdojo.api.params import json_response, path_uuid
from pocdojo.api.pocs import can_edit
from pocdojo.api.problems import parse_model, read_json
from pocdojo.api.schemas import MediaCreate, MediaCreated, MediaOut, MediaPage
from pocdojo.api.spec import ApiSpec
from pocdojo.errors import (
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from pocdojo.storage import media as media_rows
from pocdojo.storage import pocs
from pocdojo.storage.blobs import BlobKey, FileBlobStore, UrlSigner
from pocdojo.storage.media import Media
from pocdojo.storage.outbox import record_event

spec = ApiSpec("media")
ALLOWED_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "video/mp4",
        "video/webm",
        "video/quicktime",
    }
)


async def _media_json(request: Request, item: Media) -> dict[str, object]:
    settings = services(request).settings
    url = (
        await services(request).blobs.download_url(item.key, ttl_s=settings.download_url_ttl_s)
        if item.status == "ready"
        else None
    )
    return {
        "id": str(item.id),
        "poc_id": str(item.poc_id),
        "filename": item.filename,
        "content_type": item.content_type,
        "size_bytes": item.size_bytes,
        "status": item.status,
        "download_url": url,
    }


@spec.operation(
    "POST",
    "/v1/pocs/{id}/media",
    summary="Announce a media upload and get a presigned upload URL",
    body=MediaCreate,
    responses={
        201: ("Upload URL issued", MediaCreated),
        403: ("Only the owner or an admin", None),
        413: ("Larger than the limit", None),
    },
)
async def create_media(request: Request) -> Response:
    principal = await authenticate(request)
    poc_id = path_uuid(request)
    body = parse_model(MediaCreate, await read_json(request))
    svc = services(request)
    content_type = body.content_type.lower()
    if content_type not in ALLOWED_TYPES:
        raise ValidationFailed(
            [FieldError("body.content_type", f"one of {', '.join(sorted(ALLOWED_TYPES))}")]
        )
    if body.size_bytes > svc.settings.max_media_bytes:
        raise PayloadTooLarge(f"media are limited to {svc.settings.max_media_bytes} bytes")
    async with svc.db.tenant_tx(principal.tenant_id) as conn:
        poc = await pocs.get_poc(conn, poc_id)
        if not can_edit(principal, poc):
            raise Forbidden("only the PoC's owner or an admin adds media")
        item = await media_rows.insert_media(
            conn,
            principal.tenant_id,
            poc_id,
            filename=body.filename,
            content_type=content_type,
            size_bytes=body.size_bytes,
            created_by=principal.user_id,
        )
    ticket = await svc.blobs.upload_url(
        item.key,
        content_type=content_type,
        max_bytes=body.size_bytes,
        ttl_s=svc.settings.upload_url_ttl_s,
    )
    return json_response(
        {"media": await _media_json(request, item), "upload": ticket.to_json()}, 201
    )


@spec.operation(
    "POST",
    "/v1/pocs/{id}/media/{media_id}/complete",
    summary="Confirm an upload: checks the blob exists and marks the media ready",
    responses={200: ("Ready", MediaOut), 409: ("Nothing uploaded yet", None)},
)
async def complete_media(request: Request) -> Response:
    principal = await authenticate(request)
    poc_id, media_id = path_uuid(request), path_uuid(request, "media_id")
    svc = services(request)
    async with svc.db.tenant_tx(principal.tenant_id) as conn:
        poc = await pocs.get_poc(conn, poc_id)
        item = await media_rows.get_media(conn, poc_id, media_id)
        if not can_edit(principal, poc):
            raise Forbidden("only the PoC's owner or an admin adds media")
        info = await svc.blobs.stat(item.key)
        if info is None:
            raise ValidationFailed([FieldError("upload", "nothing has been uploaded yet")])
        await media_rows.mark_ready(conn, media_id, info.size)
        await record_event(
            conn,
            principal.tenant_id,
            topic="pocs",
            event_type="poc.media_added",
            aggregate_id=poc_id,
            payload={
                "poc_id": str(poc_id),
                "media_id": str(media_id),
                "key": item.key.value,
            },
        )
        item = await media_rows.get_media(conn, poc_id, media_id)
    return json_response(await _media_json(request, item))


@spec.operation(
    "GET",
    "/v1/pocs/{id}/media",
    summary="List a PoC's media with expiring download URLs",
    responses={200: ("The media", MediaPage)},
)
async def list_media(request: Request) -> Response:
    principal = await authenticate(request)
    poc_id = path_uuid(request)
    async with services(request).db.tenant_tx(principal.tenant_id) as conn:
        await pocs.get_poc(conn, poc_id)
        items = await media_rows.list_media(conn, poc_id)
    return json_response({"items": [await _media_json(request, i) for i in items]})


def _file_store(request: Request) -> tuple[FileBlobStore, BlobKey]:
    store = services(request).blobs
    if not isinstance(store, FileBlobStore):
        raise NotFound("this deployment stores blobs in S3")
    try:
        key = BlobKey.parse(unquote(request.path_params["key"]))
    except ValueError as exc:
        raise NotFound("no such blob") from exc
    return store, key


def _signer(request: Request) -> UrlSigner:
    return UrlSigner(services(request).settings.blob_signing_key)


@spec.operation(
    "PUT",
    "/v1/blobs/{key:path}",
    summary="File store only: upload through a signed URL from POST /v1/pocs/{id}/media",
    responses={201: ("Stored", None), 403: ("Bad or expired signature", None)},
    public=True,
)
async def put_blob(request: Request) -> Response:
    store, key = _file_store(request)
    q = request.query_params
    content_type, max_raw = q.get("ct", ""), q.get("max", "0")
    max_bytes = int(max_raw) if max_raw.isdigit() else 0
    _signer(request).verify(
        "put", key.value, q.get("exp", ""), q.get("sig", ""), content_type, max_bytes
    )
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != content_type:
        raise Forbidden(f"this URL accepts Content-Type {content_type} only")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"at most {max_bytes} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > max_bytes:
            raise PayloadTooLarge(f"at most {max_bytes} bytes")
    await store.put(key, bytes(data), content_type)
    return Response(status_code=201)


@spec.operation(
    "GET",
    "/v1/blobs/{key:path}",
    summary="File store only: download through a signed URL",
    responses={200: ("The blob", None), 403: ("Bad or expired signature", None)},
    public=True,
)
async def get_blob(request: Request) -> Response:
    store, key = _file_store(request)
    q = request.query_params
    _signer(request).verify("get", key.value, q.get("exp", ""), q.get("sig", ""))
    info = await store.stat(key)
    if info is None:
        raise NotFound("no such blob")
    return FileResponse(
        os.fspath(store.path(key)),
        media_type=info.content_type or "application/octet-stream",
    )

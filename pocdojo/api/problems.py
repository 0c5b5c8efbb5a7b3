"""RFC 9457 problem+json: the one place where errors become HTTP responses."""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from pocdojo.errors import (
    DomainError,
    FieldError,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)

M = TypeVar("M", bound=BaseModel)
PROBLEM_TYPE_BASE = "https://pocdojo.dev/problems/"
MAX_JSON_BODY = 256 * 1024
log = logging.getLogger("pocdojo.api")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type_slug: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + type_slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _field_errors(errors: list[FieldError]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in errors:
        item: dict[str, Any] = {"loc": e.loc, "message": e.message}
        if e.suggestions:
            item["suggestions"] = e.suggestions
        out.append(item)
    return out


def validation_errors(exc: ValidationError, prefix: str = "body") -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = ".".join([prefix, *(str(p) for p in err["loc"])])
        suggestions = list((err.get("ctx") or {}).get("suggestions", []))
        errors.append(FieldError(loc, err["msg"], suggestions))
    return errors


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = dict(exc.extra)
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, ValidationFailed):
        extra["errors"] = _field_errors(exc.errors)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="pocdojo"'
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        type_slug=exc.type_slug,
        instance=request.url.path,
        headers=headers,
        **extra,
    )


async def _pydantic_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return await _domain_error(request, ValidationFailed(validation_errors(exc)))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    return problem(
        exc.status_code,
        str(exc.detail),
        str(exc.detail),
        type_slug=slug,
        instance=request.url.path,
        headers=dict(exc.headers or {}),
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(
        500,
        "Internal error",
        "something went wrong on our side; it has been logged",
        type_slug="internal",
        instance=request.url.path,
    )


EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    DomainError: _domain_error,
    ValidationError: _pydantic_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}


async def read_json(request: Request, max_bytes: int = MAX_JSON_BODY) -> Any:
    """The request body as JSON, bounded in size, or a 400/413/415 problem."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0]
    if content_type.strip().lower() not in {
        "application/json",
        "application/merge-patch+json",
    }:
        raise UnsupportedMediaType("send a JSON body (Content-Type: application/json)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body larger than {max_bytes} bytes")
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError(f"malformed JSON body: {exc}") from exc


def parse_model(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("body", "expected a JSON object")])
    return model.model_validate(data)

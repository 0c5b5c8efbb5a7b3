"""Request parsing and JSON responses shared by every service's routes."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pocdojo.domain.languages import UnknownLanguage, catalogue
from pocdojo.errors import FieldError, NotFound, ValidationFailed
from pocdojo.types import Principal

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def path_uuid(request: Request, name: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError as exc:
        # Not a UUID can never name a resource: the same answer as a missing one.
        raise NotFound(f"no such {name.removesuffix('_id') or 'resource'}") from exc


def parse_limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed([FieldError("query.limit", f"an integer from 1 to {MAX_LIMIT}")])
    return int(raw)


def parse_languages(request: Request, errors: list[FieldError]) -> tuple[str, ...]:
    """The ``language`` query values as canonical ids; unknown ones become field errors."""
    languages: list[str] = []
    for raw in request.query_params.getlist("language"):
        try:
            languages.append(catalogue().normalise(raw))
        except UnknownLanguage as exc:
            errors.append(
                FieldError("query.language", f"unknown language {raw!r}", exc.suggestions)
            )
    return tuple(languages)


def parse_owner(
    request: Request, principal: Principal, errors: list[FieldError]
) -> uuid.UUID | None:
    """The ``owner`` query value: a user id, or ``me``."""
    raw = request.query_params.get("owner")
    if not raw:
        return None
    try:
        return principal.user_id if raw == "me" else uuid.UUID(raw)
    except ValueError:
        errors.append(FieldError("query.owner", "a user id or 'me'"))
        return None

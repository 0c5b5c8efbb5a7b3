"""The few domain exceptions; the API layer maps them to RFC 9457 problems in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DomainError(Exception):
    """Base class: ``detail`` is safe to show to the caller."""

    status = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class Unauthorized(DomainError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"


class Forbidden(DomainError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(DomainError):
    """Also what another tenant's resource answers: indistinguishable from a missing one."""

    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(DomainError):
    status, title, type_slug = 409, "Conflict", "conflict"


class PreconditionFailed(DomainError):
    status, title, type_slug = 412, "Precondition failed", "precondition-failed"


class PreconditionRequired(DomainError):
    status, title, type_slug = 428, "Precondition required", "precondition-required"


class PayloadTooLarge(DomainError):
    status, title, type_slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(DomainError):
    status, title, type_slug = 415, "Unsupported media type", "unsupported-media-type"


class Unavailable(DomainError):
    """A dependency (database, Redis, blob store) cannot be reached right now."""

    status, title, type_slug = 503, "Service unavailable", "unavailable"

    def __init__(self, detail: str = "", retry_after_s: int = 2) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: where (a JSON pointer-ish path) and why."""

    loc: str
    message: str
    suggestions: list[str] = field(default_factory=list)


class ValidationFailed(DomainError):
    status, title, type_slug = 422, "Validation failed", "validation-failed"

    def __init__(self, errors: list[FieldError], detail: str = "") -> None:
        super().__init__(detail or "; ".join(f"{e.loc}: {e.message}" for e in errors))
        self.errors = errors

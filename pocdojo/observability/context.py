"""Who and what a log line or span is about: the request being served, in a context variable.

The ASGI middleware opens a `RequestInfo` per request; authentication fills in the tenant
and user (`bind_principal`). Because the object is mutable and shared by the request's
context, what a handler binds is visible to the access log line written after it returned.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from dataclasses import dataclass

from opentelemetry import trace

from pocdojo.types import Principal


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    service: str
    tenant_id: str | None = None
    user_id: str | None = None


log = logging.getLogger("pocdojo.auth")
CURRENT: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "pocdojo_request", default=None
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current() -> RequestInfo | None:
    return CURRENT.get()


def bind_principal(principal: Principal) -> None:
    """Record the verified caller on the current request (logs) and span (traces).

    Only ids: never the token, email or anything the caller sent.
    """
    info = CURRENT.get()
    if info is not None:
        info.tenant_id = str(principal.tenant_id)
        info.user_id = str(principal.user_id)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("pocdojo.tenant_id", str(principal.tenant_id))
        span.set_attribute("enduser.id", str(principal.user_id))
    log.debug("caller authenticated")

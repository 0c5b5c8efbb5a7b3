"""One logging configuration for every service: JSON lines on stdout.

Each line carries ``timestamp``, ``level``, ``service``, ``logger``, ``event`` (the
message), and when known ``request_id``, ``tenant_id``, ``user_id``, ``trace_id`` and
``span_id``. The level comes from ``POCDOJO_LOG_LEVEL`` (default ``INFO``). Bearer tokens,
JWTs, presigned-URL signatures and ``password=`` values are masked in every line as a last
line of defence; code must still never log them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from pocdojo.observability import context

_SECRETS = re.compile(
    r"(?P<bearer>[Bb]earer\s+)[^\s\"',]+"
    r"|eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"  # a JWT, wherever it appears
    r"|(?P<key>password|passwd|secret|token|signature|X-Amz-Signature|X-Amz-Credential"
    r"|access_token|refresh_token|sig)(?P<sep>[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,}]+",
)


def redact(text: str) -> str:
    """``text`` with bearer tokens, JWTs and secret-looking ``key=value`` values masked."""

    def mask(found: re.Match[str]) -> str:
        if found["bearer"]:
            return f"{found['bearer']}[redacted]"
        if found["key"]:
            return f"{found['key']}{found['sep']}[redacted]"
        return "[redacted-jwt]"

    return _SECRETS.sub(mask, text)


class ContextFilter(logging.Filter):
    """Adds the service, request, caller and trace to every record, and masks secrets."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        info = context.current()
        record.service = info.service if info is not None else self.service
        record.request_id = info.request_id if info is not None else None
        record.tenant_id = info.tenant_id if info is not None else None
        record.user_id = info.user_id if info is not None else None
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        else:
            record.trace_id = record.span_id = None
        # Render the message once here, masked, so no formatter sees the raw arguments.
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        return True


class _Formatter(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # Drop empty context fields: a line outside a request has no request id.
        return {k: v for k, v in log_data.items() if v is not None}


_FIELDS = [
    "asctime",
    "levelname",
    "service",
    "name",
    "message",
    "request_id",
    "tenant_id",
    "user_id",
    "trace_id",
    "span_id",
]
_RENAMES = {"asctime": "timestamp", "levelname": "level", "name": "logger", "message": "event"}
_configured: str | None = None


def make_handler(service: str, stream: Any = None) -> logging.Handler:
    """A handler writing this configuration's JSON lines to ``stream`` (stdout)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    formatter = _Formatter(_FIELDS, rename_fields=_RENAMES, json_ensure_ascii=False)
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03dZ"
    formatter.converter = __import__("time").gmtime
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter(service))
    return handler


def configure_logging(service: str, level: str | None = None) -> None:
    """Route the root logger to JSON lines on stdout (once per process; later calls only
    adjust the level). ``level`` defaults to ``POCDOJO_LOG_LEVEL`` or ``INFO``."""
    global _configured
    root = logging.getLogger()
    root.setLevel((level or os.environ.get("POCDOJO_LOG_LEVEL") or "INFO").upper())
    if _configured is not None:
        return
    _configured = service
    for old in [h for h in root.handlers if getattr(h, "_pocdojo", False)]:
        root.removeHandler(old)
    handler = make_handler(service)
    handler._pocdojo = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # uvicorn's own access log would duplicate ours (and log raw paths with query strings).
    logging.getLogger("uvicorn.access").disabled = True

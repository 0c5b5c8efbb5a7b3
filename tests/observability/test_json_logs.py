"""JSON logs of real requests: every line carries the request id and trace id; no token or
password appears anywhere, even when a client puts one where it should not."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pocdojo.observability.logs import make_handler, redact
from tests.conftest import PASSWORD, TenantFixture

DEV_PASSWORD = "dojo-demo-2026"  # the seeded demo users' password (README)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The platform's log configuration writing to a buffer, at DEBUG for our loggers."""
    buffer = io.StringIO()
    handler = make_handler("tests", buffer)
    root, ours = logging.getLogger(), logging.getLogger("pocdojo")
    previous = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        ours.setLevel(previous)


def parse(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The server's lines. This process is also the test client, whose httpx logs its own
    requests outside any server request: those lines are the client's, not the platform's
    (the server's own httpx calls, e.g. fetching the JWKS, do carry the request id)."""
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return [line for line in lines if not (line["logger"] == "httpx" and "request_id" not in line)]


async def test_request_logs_carry_ids_and_no_secrets(
    client: httpx.AsyncClient, tenant: TenantFixture, log_lines: io.StringIO
) -> None:
    refused = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": tenant.member.email, "password": DEV_PASSWORD},
    )
    assert refused.status_code == 400
    issued = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": tenant.member.email, "password": PASSWORD},
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    client_trace = "0af7651916cd43dd8448eb211c80319c"
    created = await client.post(
        "/v1/pocs",
        json={"name": "Logged PoC", "languages": ["go"]},
        headers={**bearer, "traceparent": f"00-{client_trace}-b7ad6b7169203331-01"},
    )
    assert created.status_code == 201, created.text
    # A client that puts its token in the query string: the access log has the route
    # template, never the raw path or query.
    listed = await client.get(f"/v1/pocs?token={token}&password={PASSWORD}", headers=bearer)
    assert listed.status_code == 200
    responses = [refused, issued, created, listed]

    lines = parse(log_lines)
    assert lines, "no log line captured"
    for line in lines:
        assert line.get("request_id"), line
        assert line.get("trace_id"), line
        assert {"timestamp", "level", "service", "logger", "event"} <= line.keys(), line
    by_request: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_request.setdefault(line["request_id"], []).append(line)
    for response in responses:
        request_lines = by_request[response.headers["x-request-id"]]
        trace_id = response.headers["traceparent"].split("-")[1]
        assert {line["trace_id"] for line in request_lines} == {trace_id}
        access = [line for line in request_lines if line["logger"] == "pocdojo.access"]
        assert len(access) == 1
        assert access[0]["http_status"] == response.status_code
        assert access[0]["duration_ms"] >= 0
    # The client's traceparent was continued, and the caller's ids were bound.
    created_lines = by_request[created.headers["x-request-id"]]
    assert created_lines[0]["trace_id"] == client_trace
    access = next(line for line in created_lines if line["logger"] == "pocdojo.access")
    assert access["http_route"] == "/v1/pocs"
    assert access["tenant_id"] == str(tenant.id)
    assert access["user_id"] == str(tenant.member.user_id)
    assert any(line["event"] == "caller authenticated" for line in created_lines)
    assert any("login refused" in line["event"] for line in lines)

    text = log_lines.getvalue()
    for secret in (token, tenant.member.token, PASSWORD, DEV_PASSWORD, token.split(".")[2]):
        assert secret not in text


async def test_request_id_from_the_load_balancer_is_kept(client: httpx.AsyncClient) -> None:
    kept = await client.get("/healthz", headers={"X-Request-Id": "alb-1234567890abcdef"})
    assert kept.headers["x-request-id"] == "alb-1234567890abcdef"
    hostile = await client.get("/healthz", headers={"X-Request-Id": "bad id <script>"})
    assert hostile.headers["x-request-id"] != "bad id <script>"
    assert len(hostile.headers["x-request-id"]) == 32


def test_redaction_masks_tokens_and_passwords() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"
    text = redact(
        f"Authorization: Bearer {jwt} url=/x?token=abc123&X-Amz-Signature=deadbeef "
        f'{{"password": "hunter2"}} raw {jwt}'
    )
    for secret in (jwt, "abc123", "deadbeef", "hunter2"):
        assert secret not in text
    assert redact("an ordinary line about 3 PoCs") == "an ordinary line about 3 PoCs"

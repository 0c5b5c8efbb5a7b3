"""One process of `make bench-tracing`'s CPU measurement: the poc-api app driven in-process.

    OTEL_... .venv/bin/python -m loadtests.tracing_cpu_worker TOKEN CASE REQUESTS

Calls the real Starlette app (middleware, token check, database, outbox) directly through
ASGI, 8 requests in flight, and prints the process CPU time per request (JSON). No HTTP
server and no load generator share the measured process, so on a busy machine this is a
steadier measure of what tracing adds than throughput.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from starlette.applications import Starlette

from pocdojo.api.context import make_verifier
from pocdojo.api.identity import make_dev_issuer
from pocdojo.api.poc_app import create_poc_app
from pocdojo.auth.jwks import StaticKeys
from pocdojo.settings import get_settings

IN_FLIGHT = 8


async def call(
    app: Starlette, method: str, path: str, token: str, body: bytes = b"", query: bytes = b""
) -> tuple[int, bytes]:
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"host", b"bench")]
    if body:
        headers.append((b"content-type", b"application/json"))
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def main(token: str, case: str, requests: int) -> dict[str, float]:
    settings = get_settings()
    app = create_poc_app(settings)
    async with app.router.lifespan_context(app):
        # The dev issuer's own keys: no HTTP fetch of the JWKS inside the measured process.
        app.state.verifier = make_verifier(settings, StaticKeys(make_dev_issuer(settings).jwks()))
        status, raw = await call(app, "GET", "/v1/pocs", token, query=b"limit=50")
        if status != 200:
            raise SystemExit(f"GET /v1/pocs answered {status}: {raw[:300]!r}")
        ids = [item["id"] for item in json.loads(raw)["items"]]
        counter = iter(range(10**9))

        async def one() -> None:
            n = next(counter)
            if case == "get":
                status, _ = await call(app, "GET", f"/v1/pocs/{ids[n % len(ids)]}", token)
            else:
                body = json.dumps({"name": f"cpu bench {time.time()} {n}", "languages": ["go"]})
                status, _ = await call(app, "POST", "/v1/pocs", token, body.encode())
            if status not in (200, 201):
                raise SystemExit(f"{case} answered {status}")

        async def loop(count: int) -> None:
            for _ in range(count):
                await one()

        await asyncio.gather(*(loop(max(requests // 10, 1)) for _ in range(IN_FLIGHT)))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(loop(requests // IN_FLIGHT) for _ in range(IN_FLIGHT)))
        done = (requests // IN_FLIGHT) * IN_FLIGHT
        return {
            "cpu_us_per_request": 1e6 * (time.process_time() - cpu) / done,
            "wall_rps": done / (time.perf_counter() - wall),
            "requests": done,
        }


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    print("CPU_JSON " + json.dumps(result))

"""The OpenAPI document in the repo, the served one and the app's routes agree."""

from __future__ import annotations

import json

import httpx
from starlette.routing import Mount, Route, WebSocketRoute

from pocdojo.api import openapi
from pocdojo.api.dojo_app import create_dojo_app
from pocdojo.api.poc_app import create_poc_app
from pocdojo.api.reports_app import create_reports_app
from pocdojo.api.search_app import create_search_app
from pocdojo.api.video_app import create_video_app
from pocdojo.settings import Settings
from tests.conftest import repo_root


def test_repo_copy_is_current() -> None:
    committed = (repo_root() / "openapi.json").read_text()
    assert committed == openapi.render(), "run `pocdojo openapi --write` and commit openapi.json"


def test_routes_and_document_match(settings: Settings) -> None:
    served: set[tuple[str, str]] = set()
    routes = [
        *create_poc_app(settings).routes,
        *create_search_app(settings).routes,
        *create_dojo_app(settings).routes,
        *create_reports_app(settings).routes,
        *create_video_app(settings).routes,
    ]
    for route in routes:
        if isinstance(route, WebSocketRoute):
            continue  # websockets (/sync, /events) are not OpenAPI operations
        assert not isinstance(route, Mount)
        assert isinstance(route, Route)
        path = route.path.replace(":path}", "}")
        served |= {(m, path) for m in (route.methods or set()) if m != "HEAD"}
    doc = json.loads((repo_root() / "openapi.json").read_text())
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert served == documented
    assert doc["openapi"].startswith("3.1")


async def test_served_document_is_the_repo_copy(client: httpx.AsyncClient) -> None:
    served = (await client.get("/v1/openapi.json")).json()
    assert served == json.loads((repo_root() / "openapi.json").read_text())

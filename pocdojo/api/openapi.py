"""The platform's OpenAPI 3.1 document, built from every service's operations."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pocdojo.api import dojos, health, media, members, pocs, reports, search, videos, voice
from pocdojo.api.spec import ApiSpec

REPO_COPY = Path(__file__).resolve().parents[2] / "openapi.json"
VERSION = "0.1.0"


def poc_api_specs() -> list[ApiSpec]:
    """The operations poc-api serves."""
    return [pocs.spec, media.spec, members.spec, health.spec]


def all_specs() -> list[ApiSpec]:
    """Every service's operations: the platform's one document."""
    return [*poc_api_specs(), search.spec, dojos.spec, voice.spec, reports.spec, videos.spec]


@functools.cache
def document() -> dict[str, Any]:
    return openapi_document_for(all_specs())


def openapi_document_for(specs: list[ApiSpec]) -> dict[str, Any]:
    from pocdojo.api.spec import openapi_document

    doc = openapi_document(specs, title="PoC Dojo API", version=VERSION)
    doc["paths"]["/v1/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["operations"],
            "responses": {"200": {"description": "OpenAPI 3.1 document"}},
        }
    }
    return doc


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"

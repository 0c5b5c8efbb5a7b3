"""One declaration per operation gives both the Starlette route and its OpenAPI entry."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
_STANDARD_ERRORS = {
    "400": "Malformed request",
    "401": "Missing or invalid bearer token",
    "404": "Not found (also: another tenant's resource)",
    "422": "Validation failed",
    "503": "A dependency is unavailable; retry after Retry-After seconds",
}


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    location: str  # "query" | "header"
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    array: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    body: type[BaseModel] | None
    responses: dict[int, tuple[str, type[BaseModel] | None]]
    params: tuple[Param, ...]
    public: bool
    tag: str

    @property
    def operation_id(self) -> str:
        return self.endpoint.__name__


class ApiSpec:
    """Collects operations; ``routes()`` for Starlette, ``openapi()`` for the document."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        responses: dict[int, tuple[str, type[BaseModel] | None]],
        body: type[BaseModel] | None = None,
        params: tuple[Param, ...] = (),
        public: bool = False,
    ) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            self.operations.append(
                Operation(
                    method.upper(),
                    path,
                    endpoint,
                    summary,
                    body,
                    responses,
                    params,
                    public,
                    self.tag,
                )
            )
            return endpoint

        return register

    def routes(self) -> list[Route]:
        return [Route(op.path, op.endpoint, methods=[op.method]) for op in self.operations]


def _path_params(path: str) -> list[dict[str, Any]]:
    params = []
    for name, kind in re.findall(r"{(\w+)(?::(\w+))?}", path):
        schema: dict[str, Any] = {"type": "string"}
        if name.endswith("id") and kind != "path":
            schema["format"] = "uuid"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def openapi_document(
    specs: list[ApiSpec], *, title: str, version: str, server_url: str = "/"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these operations; stable output for the repo copy."""
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        if model.__name__ not in schemas:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for spec in specs:
        for op in spec.operations:
            openapi_path = re.sub(r"{(\w+)(?::\w+)?}", r"{\1}", op.path)
            entry: dict[str, Any] = {
                "operationId": op.operation_id,
                "summary": op.summary,
                "tags": [op.tag],
                "parameters": _path_params(op.path)
                + [
                    {
                        "name": p.name,
                        "in": p.location,
                        "required": p.required,
                        "description": p.description,
                        "schema": {"type": "array", "items": p.schema} if p.array else p.schema,
                        **({"explode": True} if p.array else {}),
                    }
                    for p in op.params
                ],
                "responses": {},
            }
            if op.body is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref(op.body)}},
                }
            for status, (description, model) in sorted(op.responses.items()):
                response: dict[str, Any] = {"description": description}
                if model is not None:
                    response["content"] = {"application/json": {"schema": ref(model)}}
                entry["responses"][str(status)] = response
            for code, description in _STANDARD_ERRORS.items():
                if op.public and code == "401":
                    continue
                entry["responses"].setdefault(
                    code,
                    {
                        "description": description,
                        "content": {
                            "application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/Problem"}
                            }
                        },
                    },
                )
            if not op.public:
                entry["security"] = [{"bearer": []}]
            paths.setdefault(openapi_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": server_url}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }

"""Walk every operation of the OpenAPI document as another tenant: 404 (or 403), never data.

A new operation without an entry in PLAN fails this test, so each endpoint gets its
cross-tenant check when it is added.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import TenantFixture, repo_root


@dataclass(frozen=True)
class Probe:
    body: dict[str, Any] | None = None
    # Allowed answers for the other tenant's admin and member.
    admin: frozenset[int] = frozenset({404})
    member: frozenset[int] = frozenset({404})
    headers: dict[str, str] = field(default_factory=dict)
    # For collection routes that answer 200: ids of the victim that must not appear.
    collection: bool = False
    query: dict[str, str] = field(default_factory=dict)
    # Which victim id fills each path parameter when it is not the obvious one.
    path_ids: dict[str, str] = field(default_factory=dict)


PLAN: dict[str, Probe] = {
    "create_poc": Probe(
        body={"name": "mine", "languages": ["go"]}, admin=frozenset({201}), member=frozenset({201})
    ),
    "list_pocs": Probe(admin=frozenset({200}), member=frozenset({200}), collection=True),
    "get_poc": Probe(),
    "patch_poc": Probe(body={"name": "pwned"}, headers={"If-Match": "ETAG"}),
    "delete_poc": Probe(),
    "create_media": Probe(
        body={"filename": "x.png", "content_type": "image/png", "size_bytes": 10}
    ),
    "complete_media": Probe(),
    "list_media": Probe(),
    "list_members": Probe(admin=frozenset({200}), member=frozenset({403}), collection=True),
    "add_member": Probe(
        # A fresh email: adding the victim's email would make them a member of the attacker's
        # tenant too, which is legitimate and would then let patch_member succeed.
        body={"email": "NEW_EMAIL", "display_name": "x", "role": "admin"},
        admin=frozenset({201}),
        member=frozenset({403}),
    ),
    "patch_member": Probe(body={"role": "member"}, member=frozenset({403, 404})),
    "search_pocs": Probe(
        admin=frozenset({200}),
        member=frozenset({200}),
        collection=True,
        query={"q": "victim secret", "tag": "secret"},
    ),
    "suggest": Probe(
        admin=frozenset({200}), member=frozenset({200}), collection=True, query={"q": "victim"}
    ),
    "create_dojo": Probe(body={"title": "t", "language": "go", "poc_id": "VICTIM_POC"}),
    "list_dojos": Probe(admin=frozenset({200}), member=frozenset({200}), collection=True),
    "get_dojo": Probe(path_ids={"id": "dojo_id"}),
    "end_dojo": Probe(path_ids={"id": "dojo_id"}),
    "list_chat": Probe(path_ids={"id": "dojo_id"}),
    "post_chat": Probe(body={"body": "hello"}, path_ids={"id": "dojo_id"}),
    "history": Probe(path_ids={"id": "dojo_id"}),
    "report_summary": Probe(
        admin=frozenset({200}), member=frozenset({403}), collection=True, query={"scope": "tenant"}
    ),
    "create_export": Probe(
        body={"format": "csv", "scope": "me"}, admin=frozenset({202}), member=frozenset({202})
    ),
    "get_export": Probe(path_ids={"id": "export_id"}),
    "get_voice_call": Probe(path_ids={"id": "dojo_id"}),
    "join_voice": Probe(body={"type": "offer", "sdp": "v=0"}, path_ids={"id": "dojo_id"}),
    "leave_voice": Probe(path_ids={"id": "dojo_id"}),
    "mute_voice": Probe(path_ids={"id": "dojo_id"}),
    "unmute_voice": Probe(path_ids={"id": "dojo_id"}),
    "create_video": Probe(
        body={"year": 2026, "user_id": "VICTIM_USER"},
        admin=frozenset({404}),
        member=frozenset({403}),
    ),
    "get_video": Probe(path_ids={"id": "video_id"}),
    "list_videos": Probe(
        admin=frozenset({200}),
        member=frozenset({200}),
        collection=True,
        query={"user_id": "VICTIM_USER"},
    ),
    # Public operations, guarded by something other than the tenant (checked separately).
    "put_blob": Probe(admin=frozenset({403}), member=frozenset({403})),
    "get_blob": Probe(admin=frozenset({403}), member=frozenset({403})),
    "healthz": Probe(admin=frozenset({200}), member=frozenset({200})),
    "readyz": Probe(admin=frozenset({200}), member=frozenset({200})),
    "metrics": Probe(admin=frozenset({200}), member=frozenset({200})),
    "openapi": Probe(admin=frozenset({200}), member=frozenset({200})),
}


def _operations() -> list[tuple[str, str, str]]:
    doc = json.loads((repo_root() / "openapi.json").read_text())
    return [
        (method.upper(), path, op["operationId"])
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]


def test_every_operation_has_a_cross_tenant_probe() -> None:
    missing = {op_id for _, _, op_id in _operations()} - set(PLAN)
    assert not missing, f"add cross-tenant probes for: {sorted(missing)}"


async def _victim(client: httpx.AsyncClient, victim: TenantFixture) -> dict[str, str]:
    """The victim's PoC, media and member; the PoC is indexed before the walk starts."""
    poc = await client.post(
        "/v1/pocs",
        json={"name": "victim's secret", "languages": ["rust"], "tags": ["secret"]},
        headers=victim.member.headers,
    )
    assert poc.status_code == 201
    media = await client.post(
        f"/v1/pocs/{poc.json()['id']}/media",
        json={"filename": "shot.png", "content_type": "image/png", "size_bytes": 4},
        headers=victim.member.headers,
    )
    assert media.status_code == 201
    ticket = media.json()["upload"]
    uploaded = await client.put(ticket["url"], content=b"\x89PNG", headers=ticket["headers"])
    assert uploaded.status_code == 201
    dojo = await client.post(
        "/v1/dojos",
        json={"title": "victim's secret dojo", "language": "go", "files": {"a.go": "secret"}},
        headers=victim.member.headers,
    )
    assert dojo.status_code == 201, dojo.text
    chat = await client.post(
        f"/v1/dojos/{dojo.json()['id']}/chat",
        json={"body": "victim's secret plan"},
        headers=victim.member.headers,
    )
    assert chat.status_code == 201
    export = await client.post(
        "/v1/reports/exports", json={"format": "csv"}, headers=victim.member.headers
    )
    assert export.status_code == 202
    video = await client.post("/v1/videos", json={"year": 2026}, headers=victim.member.headers)
    assert video.status_code == 202, video.text
    for _ in range(500):
        hits = await client.get(
            "/v1/search", params={"q": "victim secret"}, headers=victim.member.headers
        )
        if hits.json()["hits"]:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the victim's PoC never became searchable")
    return {
        "id": poc.json()["id"],
        "dojo_id": dojo.json()["id"],
        "export_id": export.json()["id"],
        "video_id": video.json()["id"],
        "etag": poc.headers["etag"],
        "media_id": media.json()["media"]["id"],
        "user_id": str(victim.member.user_id),
        "key": ticket["url"].split("/v1/blobs/")[1].split("?")[0],
    }


@pytest.mark.parametrize("role", ["admin", "member"])
async def test_walk_every_route_as_another_tenant(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
    role: str,
    event_workers: object,
) -> None:
    victim = await _victim(client, tenant)
    attacker = other_tenant.admin if role == "admin" else other_tenant.member
    for method, path, op_id in _operations():
        probe = PLAN[op_id]
        url = path
        for name in ("id", "media_id", "user_id", "key"):
            url = url.replace("{" + name + "}", victim[probe.path_ids.get(name, name)])
        headers = {**attacker.headers}
        headers.update({k: victim["etag"] if v == "ETAG" else v for k, v in probe.headers.items()})
        body = (
            json.loads(
                json.dumps(probe.body)
                .replace("NEW_EMAIL", f"new-{uuid.uuid4().hex}@x.test")
                .replace("VICTIM_POC", victim["id"])
                .replace("VICTIM_USER", victim["user_id"])
            )
            if probe.body is not None
            else None
        )
        query = {k: v.replace("VICTIM_USER", victim["user_id"]) for k, v in probe.query.items()}
        response = await client.request(
            method, url, json=body, headers=headers, params=query or None
        )
        allowed = probe.admin if role == "admin" else probe.member
        assert response.status_code in allowed, (method, path, role, response.text)
        assert response.status_code != 500
        text = response.text
        if response.headers.get("content-type") == "application/problem+json":
            # "instance" echoes the caller's own request path; everything else must not leak.
            text = json.dumps({k: v for k, v in response.json().items() if k != "instance"})
        for secret in (
            victim["id"],
            victim["media_id"],
            victim["dojo_id"],
            victim["export_id"],
            victim["video_id"],
            "victim's secret",
        ):
            assert secret not in text, (method, path, "leaked", secret)

    # And nothing of the victim's changed.
    poc = await client.get(f"/v1/pocs/{victim['id']}", headers=tenant.member.headers)
    assert poc.status_code == 200
    assert poc.json()["name"] == "victim's secret"
    assert poc.headers["etag"] == victim["etag"]
    media = await client.get(f"/v1/pocs/{victim['id']}/media", headers=tenant.member.headers)
    assert [m["id"] for m in media.json()["items"]] == [victim["media_id"]]
    dojo = await client.get(f"/v1/dojos/{victim['dojo_id']}", headers=tenant.member.headers)
    assert dojo.json()["status"] == "live"
    chat = await client.get(f"/v1/dojos/{victim['dojo_id']}/chat", headers=tenant.member.headers)
    assert [m["body"] for m in chat.json()["items"]] == ["victim's secret plan"]
    members = await client.get("/v1/tenant/members", headers=tenant.admin.headers)
    roles = {m["user_id"]: m["role"] for m in members.json()["items"]}
    assert roles[victim["user_id"]] == "member"

"""Video jobs end to end: the API over real HTTP, the runner, segments as Ray tasks on the
tests' own cluster, the file store; isolation, dedup, a killed worker, a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from urllib.parse import quote, unquote

import httpx
import pytest
from ray.util.state import list_tasks

from pocdojo.settings import Settings
from pocdojo.storage import videos
from pocdojo.storage.blobs import open_blob_store
from pocdojo.storage.db import Database
from pocdojo.video.plan import RenderSpec, build_plan
from pocdojo.video.runner import VideoRunner
from tests.conftest import TenantFixture
from tests.video.conftest import make_year, upload, wait_for
from tests.video.filmprobe import probe

pytestmark = pytest.mark.ray


async def test_film_of_the_year_through_the_api(
    client: httpx.AsyncClient, tenant: TenantFixture, video_runner: VideoRunner
) -> None:
    user = tenant.member
    await make_year(client, user, 3)
    await make_year(client, user, 1, year=2025)  # another year: not in the film
    created = await client.post("/v1/videos", json={"year": 2026}, headers=user.headers)
    assert created.status_code == 202, created.text
    assert created.headers["location"] == f"/v1/videos/{created.json()['id']}"
    assert created.json()["segments_total"] == 5  # intro, 3 PoCs, outro
    done = await wait_for(client, created.json()["id"], user)
    assert done["status"] == "done", done
    assert done["progress"] == 100
    assert done["segments_done"] == 5
    assert done["notes"] == []
    film_bytes = (await client.get(done["download_url"])).content
    film = probe(film_bytes)
    assert (film.width, film.height) == (320, 180)
    assert film.frames == done["frames"] == 15 * 5
    assert film.video_codec == "h264"
    assert film.audio_codec == "aac"
    assert film.faststart
    thumbnail = await client.get(done["thumbnail_url"])
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.content[:2] == b"\xff\xd8"

    listed = await client.get("/v1/videos", headers=user.headers)
    assert [v["id"] for v in listed.json()["items"]] == [done["id"]]
    others = await client.get("/v1/videos", headers=tenant.other_member.headers)
    assert others.json()["items"] == []
    admin = await client.get(
        "/v1/videos", params={"user_id": str(user.user_id)}, headers=tenant.admin.headers
    )
    assert [v["id"] for v in admin.json()["items"]] == [done["id"]]

    again = await client.post("/v1/videos", json={"year": 2026}, headers=user.headers)
    assert again.status_code == 200
    assert again.json()["id"] == done["id"]
    assert again.json()["status"] == "done"


async def test_same_content_renders_once_under_concurrent_requests(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    user = tenant.member
    ids = await make_year(client, user, 2, images=0)
    answers = await asyncio.gather(
        *(client.post("/v1/videos", json={"year": 2026}, headers=user.headers) for _ in range(8))
    )
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    # The admin asking for the member's film of the same content gets the same job.
    by_admin = await client.post(
        "/v1/videos",
        json={"year": 2026, "user_id": str(user.user_id)},
        headers=tenant.admin.headers,
    )
    assert by_admin.json()["id"] == answers[0].json()["id"]
    # A changed PoC is new content: a new job.
    poc = await client.get(f"/v1/pocs/{ids[0]}", headers=user.headers)
    patched = await client.patch(
        f"/v1/pocs/{ids[0]}",
        json={"name": "renamed"},
        headers={**user.headers, "If-Match": poc.headers["etag"]},
    )
    assert patched.status_code == 200
    changed = await client.post("/v1/videos", json={"year": 2026}, headers=user.headers)
    assert changed.status_code == 202
    assert changed.json()["id"] != answers[0].json()["id"]
    portrait = await client.post(
        "/v1/videos", json={"year": 2026, "format": "portrait"}, headers=user.headers
    )
    assert portrait.status_code == 202
    assert (portrait.json()["width"], portrait.json()["height"]) == (180, 320)


async def test_permissions_and_bad_input(
    client: httpx.AsyncClient, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    member, other = tenant.member, tenant.other_member
    mine = await client.post("/v1/videos", json={"year": 2026}, headers=member.headers)
    assert mine.status_code == 202
    for_other = await client.post(
        "/v1/videos", json={"year": 2026, "user_id": str(other.user_id)}, headers=member.headers
    )
    assert for_other.status_code == 403
    assert for_other.headers["content-type"] == "application/problem+json"
    stranger = await client.post(
        "/v1/videos",
        json={"year": 2026, "user_id": str(other_tenant.member.user_id)},
        headers=tenant.admin.headers,
    )
    assert stranger.status_code == 404
    for body in ({"year": 1800}, {"year": "soon"}, {"year": 2026, "format": "square"}, {}, []):
        bad = await client.post("/v1/videos", json=body, headers=member.headers)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.headers["content-type"] == "application/problem+json"
    assert (
        await client.post("/v1/videos", content=b"{", headers=member.headers)
    ).status_code == 400
    # Members see their own films only; another tenant sees nothing at all.
    video = mine.json()["id"]
    assert (await client.get(f"/v1/videos/{video}", headers=other.headers)).status_code == 404
    assert (
        await client.get(f"/v1/videos/{video}", headers=tenant.admin.headers)
    ).status_code == 200
    for user in (other_tenant.admin, other_tenant.member):
        assert (await client.get(f"/v1/videos/{video}", headers=user.headers)).status_code == 404
        listed = await client.get("/v1/videos", headers=user.headers)
        assert video not in listed.text
    assert (await client.get("/v1/videos/not-a-uuid", headers=member.headers)).status_code == 404
    assert (await client.get("/v1/videos", headers={})).status_code == 401


async def test_download_url_never_opens_another_tenants_object(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    other_tenant: TenantFixture,
    video_runner: VideoRunner,
) -> None:
    films = []
    for t in (tenant, other_tenant):
        await make_year(client, t.member, 1, images=0)
        created = await client.post("/v1/videos", json={"year": 2026}, headers=t.member.headers)
        films.append(await wait_for(client, created.json()["id"], t.member))
    mine, theirs = films
    assert (
        f"tenants%2F{tenant.id}" in mine["download_url"] or str(tenant.id) in mine["download_url"]
    )
    # My signature on their key, or their signature on my key: refused.
    my_key = unquote(mine["download_url"].split("/v1/blobs/")[1].split("?")[0])
    their_key = my_key.replace(str(tenant.id), str(other_tenant.id)).replace(
        mine["id"], theirs["id"]
    )
    query = mine["download_url"].split("?")[1]
    forged = await client.get(f"/v1/blobs/{quote(their_key, safe='')}?{query}")
    assert forged.status_code == 403
    assert (await client.get(mine["download_url"])).status_code == 200


async def test_corrupt_media_finishes_with_a_note(
    client: httpx.AsyncClient, tenant: TenantFixture, video_runner: VideoRunner
) -> None:
    user = tenant.member
    [poc] = await make_year(client, user, 1, images=1)
    await upload(client, user, poc, "broken.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + b"0" * 64)
    await upload(client, user, poc, "readme.png", "image/png", b"just some text\n")
    created = await client.post("/v1/videos", json={"year": 2026}, headers=user.headers)
    done = await wait_for(client, created.json()["id"], user)
    assert done["status"] == "done", done
    assert len(done["notes"]) == 2, done["notes"]
    assert any("broken.jpg" in n for n in done["notes"])
    assert any("readme.png" in n for n in done["notes"])
    assert probe((await client.get(done["download_url"])).content).frames == done["frames"]


def _running_segment_pids(cluster: Settings) -> list[int]:
    tasks = list_tasks(
        address=f"http://127.0.0.1:{cluster.ray_dashboard_port}",  # the tests' own cluster
        filters=[("func_or_class_name", "=", "render_segment_task"), ("state", "=", "RUNNING")],
        raise_on_missing_output=False,
    )
    return [t.worker_pid for t in tasks if t.worker_pid]


async def test_a_killed_render_worker_is_retried(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    app_db: Database,
    ray_cluster: Settings,
    video_runner: VideoRunner,
) -> None:
    user = tenant.member
    await make_year(client, user, 3, images=2)
    # Segments of 2.5 s at 640x360, so that a worker can be caught in the middle of one:
    # the job row is made as POST /v1/videos makes it, with a larger spec.
    spec = RenderSpec.for_format("landscape", scale=2, intro_s=1.0, poc_s=2.5, outro_s=1.0)
    async with app_db.tenant_tx(tenant.id) as conn:
        inputs = await videos.film_inputs(conn, tenant.id, user.user_id, 2026, "landscape", None)
        job, created = await videos.insert_or_get(conn, build_plan(inputs, spec), user.user_id)
    assert created
    video_runner.wake()
    killed: list[int] = []
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline:
        for pid in (await asyncio.to_thread(_running_segment_pids, ray_cluster))[:1]:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        await asyncio.sleep(0.05)
    assert killed, "no render worker was ever caught running"
    done = await wait_for(client, str(job.id), user)
    assert done["status"] == "done", done
    film = probe((await client.get(done["download_url"])).content)
    assert (film.width, film.height) == (640, 360)
    assert film.frames == done["frames"] == 30 + 3 * 75 + 30
    steps = {b - a for a, b in zip(film.pts_s, film.pts_s[1:], strict=False)}
    assert len(steps) == 1


async def test_a_restarted_runner_resumes_the_job(
    client: httpx.AsyncClient,
    tenant: TenantFixture,
    settings: Settings,
    app_db: Database,
    ray_cluster: Settings,
) -> None:
    user = tenant.member
    await make_year(client, user, 4, images=1)
    created = await client.post("/v1/videos", json={"year": 2026}, headers=user.headers)
    video = created.json()["id"]
    store = open_blob_store(
        settings.blob_url,
        signing_key=settings.blob_signing_key,
        public_base_url=settings.public_base_url,
    )
    first = VideoRunner(app_db, store, settings)
    async with first:
        deadline = time.monotonic() + 60
        while True:
            body = (await client.get(f"/v1/videos/{video}", headers=user.headers)).json()
            if body["segments_done"] >= 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    # The first runner stopped mid-job (its lease given back); the row says where it was.
    stopped = (await client.get(f"/v1/videos/{video}", headers=user.headers)).json()
    assert stopped["status"] == "running"
    assert 1 <= stopped["segments_done"] < stopped["segments_total"]
    async with VideoRunner(app_db, store, settings):
        done = await wait_for(client, video, user)
    assert done["status"] == "done", done
    assert probe((await client.get(done["download_url"])).content).frames == done["frames"]

"""Video fixtures: a runner of the tests' own on the tests' Ray cluster, PoC years with
media uploaded through the API, and the S3 API server (moto) from tests/storage."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest_asyncio
from PIL import Image

from pocdojo.settings import Settings
from pocdojo.storage.blobs import open_blob_store
from pocdojo.storage.db import Database
from pocdojo.video.runner import VideoRunner
from tests.conftest import TenantUser
from tests.storage.conftest import s3_bucket, s3_endpoint

__all__ = ["s3_bucket", "s3_endpoint"]

# Ray workers inherit the environment of `ray start`: moto needs some credentials.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")


def jpeg(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """A smooth, photo-like test image (noise would make the encoder's life unreal)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = rng.uniform(0.005, 0.03, 3)
    rgb = np.stack(
        [
            127 + 120 * np.sin(x * a + seed),
            127 + 120 * np.sin(y * b + 2 * seed),
            127 + 120 * np.sin((x + y) * c),
        ],
        axis=-1,
    ).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=85)
    return out.getvalue()


async def upload(
    client: httpx.AsyncClient, user: TenantUser, poc_id: str, name: str, ctype: str, data: bytes
) -> str:
    created = await client.post(
        f"/v1/pocs/{poc_id}/media",
        json={"filename": name, "content_type": ctype, "size_bytes": len(data)},
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    ticket = created.json()["upload"]
    put = await client.put(ticket["url"], content=data, headers=ticket["headers"])
    assert put.status_code == 201, put.text
    media_id: str = created.json()["media"]["id"]
    done = await client.post(f"/v1/pocs/{poc_id}/media/{media_id}/complete", headers=user.headers)
    assert done.status_code == 200, done.text
    return media_id


async def make_year(
    client: httpx.AsyncClient,
    user: TenantUser,
    count: int,
    *,
    year: int = 2026,
    images: int = 1,
    name: str = "Integração Pix",
) -> list[str]:
    ids = []
    for i in range(count):
        poc = await client.post(
            "/v1/pocs",
            json={
                "name": f"{name} nº{i} — {user.email.split('@')[0]}",
                "languages": ["python", "ts"] if i % 2 else ["go"],
                "tags": ["payments", f"t{i}"],
                "description": "Um **protótipo** de pagamentos instantâneos com QR code.",
                "built_on": str(dt.date(year, 12 - i % 12, 1 + i)),
            },
            headers=user.headers,
        )
        assert poc.status_code == 201, poc.text
        ids.append(poc.json()["id"])
        for k in range(images):
            await upload(client, user, ids[-1], f"shot{k}.jpg", "image/jpeg", jpeg(i * 10 + k))
    return ids


async def wait_for(
    client: httpx.AsyncClient, video_id: str, user: TenantUser, timeout_s: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await client.get(f"/v1/videos/{video_id}", headers=user.headers)
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        if body["status"] in {"done", "failed"}:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"video not finished in {timeout_s}s: {body}")
        await asyncio.sleep(0.2)


@pytest_asyncio.fixture(loop_scope="session")
async def app_db(settings: Settings, migrated: None) -> AsyncIterator[Database]:
    async with Database(settings.database_url, max_size=4) as db:
        yield db


@pytest_asyncio.fixture(loop_scope="session")
async def video_runner(
    settings: Settings, app_db: Database, ray_cluster: Settings
) -> AsyncIterator[VideoRunner]:
    """A runner rendering on the tests' Ray cluster (this process is connected to it)."""
    store = open_blob_store(
        settings.blob_url,
        signing_key=settings.blob_signing_key,
        public_base_url=settings.public_base_url,
    )
    async with VideoRunner(app_db, store, settings) as runner:
        yield runner

"""The same cases against every BlobStore: the file store and S3 (moto server, boto3)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from pocdojo.errors import Forbidden, NotFound
from pocdojo.storage.blobs import BlobKey, FileBlobStore, S3BlobStore, UrlSigner
from pocdojo.types import TenantId


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FileBlobStore | S3BlobStore:
    if request.param == "file":
        return FileBlobStore(tmp_path, UrlSigner("k"), "http://127.0.0.1:1")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return S3BlobStore(bucket, "prefix", endpoint_url=endpoint, region="us-east-1")


def key() -> BlobKey:
    return BlobKey.for_tenant(TenantId(uuid.uuid4()), "pocs", "x", "clip.mp4")


async def test_put_get_stat_delete(store: FileBlobStore | S3BlobStore) -> None:
    k = key()
    assert await store.stat(k) is None
    await store.put(k, b"hello world", "video/mp4")
    assert await store.get(k) == b"hello world"
    info = await store.stat(k)
    assert info is not None
    assert info.size == 11
    assert info.content_type == "video/mp4"
    await store.delete(k)
    assert await store.stat(k) is None
    with pytest.raises(NotFound):
        await store.get(k)


async def test_presigned_upload_and_download(s3_endpoint: str, s3_bucket: str) -> None:
    # The file store's signed URLs are exercised end to end in tests/api/test_media.py.
    store = S3BlobStore(s3_bucket, "", endpoint_url=s3_endpoint, region="us-east-1")
    k = key()
    ticket = await store.upload_url(k, content_type="image/png", max_bytes=100, ttl_s=60)
    assert ticket.method == "POST"
    assert ticket.fields["Content-Type"] == "image/png"
    async with httpx.AsyncClient() as client:
        uploaded = await client.post(
            ticket.url, data=ticket.fields, files={"file": ("a.png", b"\x89PNG data", "image/png")}
        )
        assert uploaded.status_code in (200, 204), uploaded.text
        url = await store.download_url(k, ttl_s=60)
        downloaded = await client.get(url)
    assert downloaded.content == b"\x89PNG data"


def test_keys_are_always_tenant_scoped() -> None:
    tenant = TenantId(uuid.uuid4())
    assert BlobKey.for_tenant(tenant, "a", "b.png").value == f"tenants/{tenant}/a/b.png"
    for bad in ("..", "../x", "a/b", "", ".hidden", "x" * 300):
        with pytest.raises(ValueError, match="unsafe"):
            BlobKey.for_tenant(tenant, bad)
    with pytest.raises(ValueError, match="tenants/"):
        BlobKey.parse("other/prefix/file")
    assert BlobKey.parse(f"tenants/{tenant}/a/b.png").tenant_id == tenant


def test_signed_urls_reject_tampering_and_expiry() -> None:
    signer = UrlSigner("secret")
    exp = int(time.time()) + 60
    sig = signer.sign("get", "tenants/x/a", exp)
    signer.verify("get", "tenants/x/a", str(exp), sig)
    with pytest.raises(Forbidden):
        signer.verify("get", "tenants/y/a", str(exp), sig)  # another key
    with pytest.raises(Forbidden):
        signer.verify("put", "tenants/x/a", str(exp), sig)  # another operation
    with pytest.raises(Forbidden):
        signer.verify("get", "tenants/x/a", str(exp + 1), sig)  # extended expiry
    with pytest.raises(Forbidden):
        UrlSigner("other").verify("get", "tenants/x/a", str(exp), sig)
    old = int(time.time()) - 1
    with pytest.raises(Forbidden, match="expired"):
        signer.verify("get", "tenants/x/a", str(old), signer.sign("get", "tenants/x/a", old))

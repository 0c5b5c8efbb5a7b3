"""Blob stores behind one Protocol: a local directory (signed URLs) or S3 (presigned).

Keys always start with ``tenants/<tenant_id>/``: a :class:`BlobKey` can only be made for a
tenant, so no store call can forget it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlparse

from pocdojo.errors import Forbidden, NotFound
from pocdojo.types import TenantId

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True, slots=True)
class BlobKey:
    value: str

    @classmethod
    def for_tenant(cls, tenant_id: TenantId, *parts: str) -> BlobKey:
        for part in parts:
            if not _SAFE_PART.match(part) or ".." in part:
                raise ValueError(f"unsafe blob key part: {part!r}")
        return cls("/".join(("tenants", str(tenant_id), *parts)))

    @classmethod
    def parse(cls, value: str) -> BlobKey:
        parts = value.split("/")
        if len(parts) < 3 or parts[0] != "tenants":
            raise ValueError("blob keys start with tenants/<tenant_id>/")
        return cls.for_tenant(TenantId(uuid.UUID(parts[1])), *parts[2:])

    @property
    def tenant_id(self) -> TenantId:
        return TenantId(uuid.UUID(self.value.split("/")[1]))


@dataclass(frozen=True, slots=True)
class BlobInfo:
    size: int
    content_type: str | None


@dataclass(frozen=True, slots=True)
class UploadTicket:
    """How a client uploads: ``PUT url`` with ``headers``, or ``POST`` a form with ``fields``."""

    method: str
    url: str
    expires_at: dt.datetime
    headers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": self.headers,
            "fields": self.fields,
            "expires_at": self.expires_at.isoformat(),
        }


class BlobStore(Protocol):
    async def put(self, key: BlobKey, data: bytes, content_type: str) -> None: ...
    async def put_file(self, key: BlobKey, path: Path, content_type: str) -> None: ...
    async def get(self, key: BlobKey) -> bytes: ...
    async def stat(self, key: BlobKey) -> BlobInfo | None: ...
    async def delete(self, key: BlobKey) -> None: ...
    async def upload_url(
        self, key: BlobKey, *, content_type: str, max_bytes: int, ttl_s: int
    ) -> UploadTicket: ...
    async def download_url(self, key: BlobKey, *, ttl_s: int) -> str: ...


def _expiry(ttl_s: int) -> tuple[int, dt.datetime]:
    exp = int(time.time()) + ttl_s
    return exp, dt.datetime.fromtimestamp(exp, dt.UTC)


class UrlSigner:
    """HMAC-signed, expiring URLs for the file store's upload and download routes."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def sign(self, op: str, key: str, exp: int, content_type: str = "", max_bytes: int = 0) -> str:
        message = f"{op}\n{key}\n{exp}\n{content_type}\n{max_bytes}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(
        self,
        op: str,
        key: str,
        exp: str,
        sig: str,
        content_type: str = "",
        max_bytes: int = 0,
    ) -> None:
        """Raise :class:`Forbidden` unless the signature matches and has not expired."""
        try:
            expires = int(exp)
        except ValueError as exc:
            raise Forbidden("malformed signed URL") from exc
        expected = self.sign(op, key, expires, content_type, max_bytes)
        if not hmac.compare_digest(expected, sig):
            raise Forbidden("bad signature")
        if expires < time.time():
            raise Forbidden("this URL has expired")


class FileBlobStore:
    """Blobs as files under ``root``; clients upload and download through signed URLs."""

    def __init__(self, root: Path, signer: UrlSigner, public_base_url: str) -> None:
        self.root = root
        self._signer = signer
        self._base = public_base_url.rstrip("/")

    def path(self, key: BlobKey) -> Path:
        return self.root / key.value

    async def put(self, key: BlobKey, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, key, data, content_type)

    def _write(self, key: BlobKey, data: bytes, content_type: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        path.with_name(f".{path.name}.content-type").write_text(content_type)

    async def put_file(self, key: BlobKey, path: Path, content_type: str) -> None:
        """Store a local file by streaming it (constant memory, for large exports)."""
        await asyncio.to_thread(self._copy_file, key, path, content_type)

    def _copy_file(self, key: BlobKey, source: Path, content_type: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
        path.with_name(f".{path.name}.content-type").write_text(content_type)

    async def get(self, key: BlobKey) -> bytes:
        try:
            return await asyncio.to_thread(self.path(key).read_bytes)
        except FileNotFoundError as exc:
            raise NotFound("no such blob") from exc

    async def stat(self, key: BlobKey) -> BlobInfo | None:
        path = self.path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        type_file = path.with_name(f".{path.name}.content-type")
        content_type = type_file.read_text() if type_file.exists() else None
        return BlobInfo(size, content_type)

    async def delete(self, key: BlobKey) -> None:
        path = self.path(key)
        for candidate in (path, path.with_name(f".{path.name}.content-type")):
            candidate.unlink(missing_ok=True)

    async def upload_url(
        self, key: BlobKey, *, content_type: str, max_bytes: int, ttl_s: int
    ) -> UploadTicket:
        exp, expires_at = _expiry(ttl_s)
        sig = self._signer.sign("put", key.value, exp, content_type, max_bytes)
        query = urlencode({"exp": exp, "ct": content_type, "max": max_bytes, "sig": sig})
        return UploadTicket(
            method="PUT",
            url=f"{self._base}/v1/blobs/{quote(key.value)}?{query}",
            expires_at=expires_at,
            headers={"Content-Type": content_type},
        )

    async def download_url(self, key: BlobKey, *, ttl_s: int) -> str:
        exp, _ = _expiry(ttl_s)
        sig = self._signer.sign("get", key.value, exp)
        return f"{self._base}/v1/blobs/{quote(key.value)}?{urlencode({'exp': exp, 'sig': sig})}"


class S3BlobStore:
    """Blobs in an S3 bucket (SSE-KMS on AWS); boto3 calls run in a worker thread."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str,
    ) -> None:
        import boto3
        from botocore.config import Config

        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3),
        )

    def _key(self, key: BlobKey) -> str:
        return f"{self._prefix}/{key.value}" if self._prefix else key.value

    async def put(self, key: BlobKey, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self._bucket,
            Key=self._key(key),
            Body=data,
            ContentType=content_type,
        )

    async def put_file(self, key: BlobKey, path: Path, content_type: str) -> None:
        """Multipart upload from a local file in parts (constant memory)."""
        await asyncio.to_thread(
            self._client.upload_file,
            str(path),
            self._bucket,
            self._key(key),
            ExtraArgs={"ContentType": content_type},
        )

    async def get(self, key: BlobKey) -> bytes:
        try:
            response = await asyncio.to_thread(
                self._client.get_object, Bucket=self._bucket, Key=self._key(key)
            )
        except self._client.exceptions.NoSuchKey as exc:
            raise NotFound("no such blob") from exc
        body: bytes = await asyncio.to_thread(response["Body"].read)
        return body

    async def stat(self, key: BlobKey) -> BlobInfo | None:
        from botocore.exceptions import ClientError

        try:
            head = await asyncio.to_thread(
                self._client.head_object, Bucket=self._bucket, Key=self._key(key)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {
                "404",
                "NoSuchKey",
                "NotFound",
            }:
                return None
            raise
        return BlobInfo(int(head["ContentLength"]), head.get("ContentType"))

    async def delete(self, key: BlobKey) -> None:
        await asyncio.to_thread(self._client.delete_object, Bucket=self._bucket, Key=self._key(key))

    async def upload_url(
        self, key: BlobKey, *, content_type: str, max_bytes: int, ttl_s: int
    ) -> UploadTicket:
        # A presigned POST can bound the size (content-length-range); a presigned PUT cannot.
        post = await asyncio.to_thread(
            self._client.generate_presigned_post,
            Bucket=self._bucket,
            Key=self._key(key),
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
            ],
            ExpiresIn=ttl_s,
        )
        _, expires_at = _expiry(ttl_s)
        return UploadTicket(
            method="POST",
            url=post["url"],
            expires_at=expires_at,
            fields=dict(post["fields"]),
        )

    async def download_url(self, key: BlobKey, *, ttl_s: int) -> str:
        url: str = await asyncio.to_thread(
            self._client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self._bucket, "Key": self._key(key)},
            ExpiresIn=ttl_s,
        )
        return url


def open_blob_store(
    blob_url: str,
    *,
    signing_key: str,
    public_base_url: str,
    s3_endpoint_url: str | None = None,
    s3_region: str = "us-east-1",
) -> FileBlobStore | S3BlobStore:
    """The store named by ``POCDOJO_BLOB_URL`` (``file://path`` or ``s3://bucket/prefix``)."""
    parts = urlparse(blob_url)
    if parts.scheme == "file":
        root = Path(parts.netloc + parts.path).resolve() if parts.netloc else Path(parts.path)
        return FileBlobStore(root, UrlSigner(signing_key), public_base_url)
    if parts.scheme == "s3":
        return S3BlobStore(parts.netloc, parts.path, endpoint_url=s3_endpoint_url, region=s3_region)
    raise ValueError(f"unsupported blob store URL: {blob_url}")

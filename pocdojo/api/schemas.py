"""Response shapes, for the OpenAPI document (handlers build the same JSON)."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from pocdojo.types import PocStatus, Role


class PocOut(BaseModel):
    id: uuid.UUID
    owner: uuid.UUID
    name: str
    description: str
    languages: list[str]
    tags: list[str]
    repo_url: str | None
    demo_url: str | None
    status: PocStatus
    built_on: dt.date
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class PocPage(BaseModel):
    items: list[PocOut]
    next_cursor: str | None


class UploadTicketOut(BaseModel):
    method: str = Field(description="PUT (file store) or POST form (S3)")
    url: str
    headers: dict[str, str]
    fields: dict[str, str]
    expires_at: dt.datetime


class MediaOut(BaseModel):
    id: uuid.UUID
    poc_id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    status: str
    download_url: str | None


class MediaCreated(BaseModel):
    media: MediaOut
    upload: UploadTicketOut


class MediaPage(BaseModel):
    items: list[MediaOut]


class MediaCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field(min_length=3, max_length=100)
    size_bytes: int = Field(gt=0, description="declared size; the upload may not exceed it")


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    display_name: str
    role: Role


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    display_name: str = Field(min_length=1, max_length=120)
    role: Role = Role.MEMBER


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}

"""The PoC as a value: validation and normalisation of what clients send."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from pocdojo.domain.languages import UnknownLanguage, catalogue
from pocdojo.types import PocStatus

MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_LANGUAGES = 10
_NON_SLUG = re.compile(r"[^a-z0-9]+")


def slugify_tag(raw: str) -> str:
    """``"Machine Learning"`` -> ``machine-learning``; accents dropped, ``ç`` -> ``c``."""
    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    return _NON_SLUG.sub("-", ascii_text.lower()).strip("-")


def _normalise_tags(values: list[str]) -> list[str]:
    tags: list[str] = []
    for raw in values:
        tag = slugify_tag(raw)
        if not tag:
            raise PydanticCustomError(
                "tag_empty", "tag {value!r} has no letters or digits", {"value": raw}
            )
        if len(tag) > MAX_TAG_LENGTH:
            raise PydanticCustomError(
                "tag_too_long",
                "tag {value!r} is longer than 40 characters",
                {"value": raw},
            )
        if tag not in tags:
            tags.append(tag)
    return tags


def _normalise_languages(values: list[str]) -> list[str]:
    ids: list[str] = []
    for raw in values:
        try:
            language = catalogue().normalise(raw)
        except UnknownLanguage as exc:
            hint = f"; did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
            raise PydanticCustomError(
                "unknown_language",
                "unknown language {value!r}" + hint,
                {"value": raw, "suggestions": exc.suggestions},
            ) from None
        if language not in ids:
            ids.append(language)
    return ids


def _https_only(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"https://[^\s/$.?#][^\s]*", value):
        raise PydanticCustomError("https_only", "must be an https:// URL", {"value": value})
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Description = Annotated[str, StringConstraints(max_length=20_000)]
Languages = Annotated[
    list[Annotated[str, StringConstraints(max_length=64)]],
    Field(min_length=1, max_length=MAX_LANGUAGES),
    AfterValidator(_normalise_languages),
]
Tags = Annotated[
    list[Annotated[str, StringConstraints(max_length=200)]],
    Field(max_length=MAX_TAGS),
    AfterValidator(_normalise_tags),
]
HttpsUrl = Annotated[str | None, Field(max_length=2048), AfterValidator(_https_only)]


class PocCreate(BaseModel):
    """Body of ``POST /v1/pocs``."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    languages: Languages
    tags: Tags = []
    repo_url: HttpsUrl = None
    demo_url: HttpsUrl = None
    status: PocStatus = PocStatus.ACTIVE
    built_on: dt.date | None = None


class PocPatch(BaseModel):
    """Body of ``PATCH /v1/pocs/{id}``: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    languages: Languages | None = None
    tags: Tags | None = None
    repo_url: HttpsUrl = None
    demo_url: HttpsUrl = None
    status: PocStatus | None = None
    built_on: dt.date | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent (explicit nulls included, for the nullable URLs)."""
        sent = self.model_dump(exclude_unset=True)
        for required in (
            "name",
            "description",
            "languages",
            "tags",
            "status",
            "built_on",
        ):
            if required in sent and sent[required] is None:
                raise PydanticCustomError(
                    "not_nullable", "{field} cannot be null", {"field": required}
                )
        return sent


@dataclass(frozen=True, slots=True)
class Poc:
    id: uuid.UUID
    tenant_id: uuid.UUID
    owner_id: uuid.UUID
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

    @property
    def etag(self) -> str:
        return f'"{self.id}.{self.version}"'

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "owner": str(self.owner_id),
            "name": self.name,
            "description": self.description,
            "languages": self.languages,
            "tags": self.tags,
            "repo_url": self.repo_url,
            "demo_url": self.demo_url,
            "status": str(self.status),
            "built_on": self.built_on.isoformat(),
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class PocFilter:
    owner: uuid.UUID | None = None
    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    status: PocStatus | None = None

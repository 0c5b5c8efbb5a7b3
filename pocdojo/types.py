"""The shared vocabulary: small aliases and value types used across modules."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import NewType

TenantId = NewType("TenantId", uuid.UUID)
UserId = NewType("UserId", uuid.UUID)
PocId = NewType("PocId", uuid.UUID)
DojoId = NewType("DojoId", uuid.UUID)

Update = bytes
"""A Yjs update as it travels on the wire."""


class Role(enum.StrEnum):
    MEMBER = "member"
    ADMIN = "admin"


class PocStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: always built from a verified token, never from request data."""

    user_id: UserId
    tenant_id: TenantId
    roles: frozenset[Role]
    email: str | None = None

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

"""Opaque keyset cursors: ``(created_at, id)`` of the last row, base64url JSON."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass

from pocdojo.errors import FieldError, ValidationFailed


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: dt.datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), str(self.id)]).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created_at, ident = json.loads(raw)
            return cls(dt.datetime.fromisoformat(created_at), uuid.UUID(ident))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ValidationFailed([FieldError("query.cursor", "invalid cursor")]) from exc

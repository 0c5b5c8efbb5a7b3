"""What the host must do after `DojoSession.receive`: reply, broadcast, store, or close."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

MAX_CLOSE_REASON_BYTES = 123  # a close frame's payload is 125 bytes, 2 of them the code


class CloseCode(enum.IntEnum):
    """The websocket close codes (RFC 6455 section 7.4.1) the engine uses."""

    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    SERVICE_RESTART = 1012


@dataclass(frozen=True, slots=True)
class Close:
    """Close this one connection with ``code`` and ``reason`` (at most 123 UTF-8 bytes)."""

    code: int
    reason: str

    def __post_init__(self) -> None:
        if len(self.reason.encode("utf-8")) > MAX_CLOSE_REASON_BYTES:
            raise ValueError("a close reason must fit in 123 bytes")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one incoming message.

    ``replies`` go to the sending connection only, ``broadcast`` to every other connection
    of the session, ``stored`` are Yjs updates to append to the durable log (in order).
    When ``close`` is set the host closes the sending connection and nothing else applies:
    the other lists are empty and neither the document nor other clients were touched.
    """

    replies: list[bytes] = field(default_factory=list)
    broadcast: list[bytes] = field(default_factory=list)
    stored: list[bytes] = field(default_factory=list)
    close: Close | None = None

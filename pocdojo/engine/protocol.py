"""The Yjs websocket protocol, as y-protocols and y-websocket frame it.

A message is ``varUint messageType`` followed by its payload:

- 0 sync: ``varUint`` submessage, then ``varUint8Array``: 0 SyncStep1 (a state vector),
  1 SyncStep2 (an update answering a SyncStep1), 2 Update (an update).
- 1 awareness: ``varUint8Array`` awareness update (see `pocdojo.engine.awareness`).
- 2 auth: ``varUint`` 0 (permission denied) then ``varString`` reason.
- 3 query awareness: no payload.

``varUint`` is lib0's: 7 bits a byte, least significant group first, high bit = more.
`decode` is strict: it accepts exactly one well-formed message with canonical (shortest)
varints of at most 64 bits and nothing after it, and raises `ProtocolError` on anything
else, so ``encode(decode(data)) == data`` whenever `decode` succeeds. The encoders produce
the same bytes as pycrdt's ``create_sync_message``, ``create_update_message`` and
``create_awareness_message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MESSAGE_SYNC: Final = 0
MESSAGE_AWARENESS: Final = 1
MESSAGE_AUTH: Final = 2
MESSAGE_QUERY_AWARENESS: Final = 3

SYNC_STEP1: Final = 0
SYNC_STEP2: Final = 1
SYNC_UPDATE: Final = 2

AUTH_PERMISSION_DENIED: Final = 0

MAX_VAR_UINT: Final = (1 << 64) - 1
_MAX_SHIFT: Final = 63  # the tenth byte carries bits 63..69; 64 bits need no eleventh


class ProtocolError(ValueError):
    """A message that is not a well-formed Yjs websocket message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """A state vector: the sender asks for every change it is missing."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """The answer to a SyncStep1: every change the asker is missing, as one update."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """An incremental document update."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    """An encoded awareness update (presence, cursors): opaque at this layer."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """The sender asks for every awareness state the receiver knows."""


@dataclass(frozen=True, slots=True)
class AuthMessage:
    """y-websocket's permission-denied message (server to client)."""

    reason: str


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness | AuthMessage


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a canonical varUint of at most 64 bits at ``pos``; return it and the next position.

    Raises `ProtocolError` if it is truncated, longer than its shortest encoding, or too big.
    """
    end = len(data)
    if pos >= end:
        raise ProtocolError("truncated varint")
    byte = data[pos]
    pos += 1
    if byte < 0x80:
        return byte, pos
    value = byte & 0x7F
    shift = 7
    while True:
        if pos >= end:
            raise ProtocolError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0:
                raise ProtocolError("over-long varint")
            if value > MAX_VAR_UINT:
                raise ProtocolError("varint over 64 bits")
            return value, pos
        shift += 7
        if shift > _MAX_SHIFT:
            raise ProtocolError("varint over 64 bits")


def read_var_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read a varUint8Array (length-prefixed bytes) at ``pos``; return it and the next position."""
    length, pos = read_var_uint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError("declared length beyond the message")
    return data[pos:end], end


def write_var_uint(value: int) -> bytes:
    """Encode ``value`` (0 <= value < 2**64) as a shortest varUint."""
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0 or value > MAX_VAR_UINT:
        raise ValueError(f"varUint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    """Encode ``data`` as a varUint8Array."""
    return write_var_uint(len(data)) + data


_SMALL: Final = tuple(bytes((i,)) for i in range(0x80))


def decode(data: bytes) -> Message:
    """Decode exactly one message, or raise `ProtocolError` saying what is wrong with it."""
    kind, pos = read_var_uint(data, 0)
    message: Message
    if kind == MESSAGE_SYNC:
        sub, pos = read_var_uint(data, pos)
        if sub > SYNC_UPDATE:
            raise ProtocolError(f"unknown sync message type {sub}")
        payload, pos = read_var_bytes(data, pos)
        if sub == SYNC_UPDATE:
            message = SyncUpdate(payload)
        elif sub == SYNC_STEP2:
            message = SyncStep2(payload)
        else:
            message = SyncStep1(payload)
    elif kind == MESSAGE_AWARENESS:
        payload, pos = read_var_bytes(data, pos)
        message = AwarenessUpdate(payload)
    elif kind == MESSAGE_QUERY_AWARENESS:
        message = QueryAwareness()
    elif kind == MESSAGE_AUTH:
        sub, pos = read_var_uint(data, pos)
        if sub != AUTH_PERMISSION_DENIED:
            raise ProtocolError(f"unknown auth message type {sub}")
        raw, pos = read_var_bytes(data, pos)
        try:
            reason = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("auth reason is not UTF-8") from None
        message = AuthMessage(reason)
    else:
        raise ProtocolError(f"unknown message type {kind}")
    if pos != len(data):
        raise ProtocolError("trailing bytes after message")
    return message


_SYNC_STEP1_PREFIX: Final = bytes((MESSAGE_SYNC, SYNC_STEP1))
_SYNC_STEP2_PREFIX: Final = bytes((MESSAGE_SYNC, SYNC_STEP2))
_SYNC_UPDATE_PREFIX: Final = bytes((MESSAGE_SYNC, SYNC_UPDATE))
_AWARENESS_PREFIX: Final = bytes((MESSAGE_AWARENESS,))
_AUTH_PREFIX: Final = bytes((MESSAGE_AUTH, AUTH_PERMISSION_DENIED))
_QUERY_AWARENESS: Final = bytes((MESSAGE_QUERY_AWARENESS,))


def encode_sync_update(update: bytes) -> bytes:
    """The sync Update message carrying ``update`` (the hot path of a live dojo)."""
    return b"".join((_SYNC_UPDATE_PREFIX, write_var_uint(len(update)), update))


def encode_awareness(payload: bytes) -> bytes:
    """The awareness message carrying an encoded awareness update."""
    return b"".join((_AWARENESS_PREFIX, write_var_uint(len(payload)), payload))


def encode(message: Message) -> bytes:
    """Encode a message; `decode` of the result gives back an equal message."""
    if isinstance(message, SyncUpdate):
        return encode_sync_update(message.update)
    if isinstance(message, AwarenessUpdate):
        return encode_awareness(message.payload)
    if isinstance(message, SyncStep1):
        return b"".join((_SYNC_STEP1_PREFIX, write_var_bytes(message.state_vector)))
    if isinstance(message, SyncStep2):
        return b"".join((_SYNC_STEP2_PREFIX, write_var_bytes(message.update)))
    if isinstance(message, QueryAwareness):
        return _QUERY_AWARENESS
    return b"".join((_AUTH_PREFIX, write_var_bytes(message.reason.encode("utf-8"))))

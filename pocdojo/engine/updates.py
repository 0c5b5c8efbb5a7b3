"""The little the engine reads inside Yjs updates (v1 encoding) and state vectors itself.

An update is its structs (``varUint`` number of clients, then per client its new items)
followed by its delete set: ``varUint`` number of clients, then per client ``varUint``
client id, ``varUint`` number of ranges and per range ``varUint`` clock, ``varUint`` length.
pycrdt can strip from an update the structs a document already has (``get_update(update,
state)``) but keeps the whole delete set, so telling whether an update would change a
document needs the delete set read here.
"""

from __future__ import annotations

from bisect import bisect_right

from pocdojo.engine.protocol import ProtocolError, read_var_uint, write_var_uint

DeleteSet = dict[int, list[tuple[int, int]]]
"""client id -> sorted, merged, non-overlapping ``(start, end)`` clock ranges."""

EMPTY_UPDATE = b"\x00\x00"
"""An update with no structs and no deletions: what a client with nothing new sends."""


def deletions_only(update: bytes) -> DeleteSet | None:
    """The delete set of an update without structs; None if the update has structs.

    Raises `pocdojo.engine.protocol.ProtocolError` if the bytes read are malformed.
    """
    clients, pos = read_var_uint(update, 0)
    if clients:
        return None
    return _read_delete_set(update, pos)


def _read_delete_set(data: bytes, pos: int) -> DeleteSet:
    result: DeleteSet = {}
    clients, pos = read_var_uint(data, pos)
    for _ in range(clients):
        client, pos = read_var_uint(data, pos)
        count, pos = read_var_uint(data, pos)
        ranges = result.setdefault(client, [])
        for _ in range(count):
            clock, pos = read_var_uint(data, pos)
            length, pos = read_var_uint(data, pos)
            if length:
                ranges.append((clock, clock + length))
    return {client: _merged(ranges) for client, ranges in result.items() if ranges}


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ranges.sort()
    out = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = out[-1]
        if start <= last_end:
            out[-1] = (last_start, max(last_end, end))
        else:
            out.append((start, end))
    return out


def covers(outer: DeleteSet, inner: DeleteSet) -> bool:
    """Whether every range of ``inner`` lies inside a range of ``outer``."""
    for client, ranges in inner.items():
        have = outer.get(client)
        if have is None:
            return False
        starts = [start for start, _ in have]
        for start, end in ranges:
            i = bisect_right(starts, start) - 1
            if i < 0 or have[i][1] < end:
                return False
    return True


def read_state_vector(state_vector: bytes) -> dict[int, int]:
    """Decode a state vector (``varUint`` count, then ``varUint`` client and clock pairs):
    client id -> the next clock expected from that client.

    Raises `pocdojo.engine.protocol.ProtocolError` if malformed.
    """
    count, pos = read_var_uint(state_vector, 0)
    clocks: dict[int, int] = {}
    for _ in range(count):
        client, pos = read_var_uint(state_vector, pos)
        clocks[client], pos = read_var_uint(state_vector, pos)
    if pos != len(state_vector):
        raise ProtocolError("trailing bytes after state vector")
    return clocks


def write_state_vector(clocks: dict[int, int]) -> bytes:
    """Encode a state vector (the inverse of `read_state_vector`)."""
    parts = [write_var_uint(len(clocks))]
    for client, clock in clocks.items():
        parts += (write_var_uint(client), write_var_uint(clock))
    return b"".join(parts)

"""The origin tag every update applied to a dojo document carries.

Hocuspocus-style: the tag, set as the pycrdt transaction origin, decides what happens to the
update once applied, so the store/broadcast policy lives in one table instead of in flags.
"""

from __future__ import annotations

import enum


class Origin(enum.Enum):
    """Where an update applied to a session's document came from."""

    CLIENT = "client"
    """Sent by a connected client: stored in the durable log and broadcast to the others."""

    REPLAY = "replay"
    """Replayed from the durable log (snapshot + log) on start: neither stored nor broadcast."""

    PEER = "peer"
    """Forwarded by another replica of the session: broadcast locally, never stored here
    (the replica that accepted it stored it) and never sent back to its source."""

    SERVER = "server"
    """Made by the session itself (starter files): stored; the host sends it to clients."""

    @property
    def stored(self) -> bool:
        """Whether an update with this origin must be appended to the durable log."""
        return self in _STORED

    @property
    def broadcast(self) -> bool:
        """Whether an update with this origin must be sent to the session's connections."""
        return self in _BROADCAST


_STORED = frozenset({Origin.CLIENT, Origin.SERVER})
_BROADCAST = frozenset({Origin.CLIENT, Origin.PEER, Origin.SERVER})

BY_HASH: dict[int, Origin] = {hash(origin): origin for origin in Origin}
"""pycrdt hands observers the hash of a transaction's origin, not the origin itself."""

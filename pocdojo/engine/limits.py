"""What one dojo session allows: message and document size, and each connection's rate."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-session limits; a connection that breaks one is closed, nothing else is touched.

    ``updates_per_second`` and ``update_burst`` drive a token bucket per connection that
    every incoming message spends one token of (a SyncStep1 or QueryAwareness costs the
    server more than an edit, so they are not free). ``max_awareness_clients`` caps how many
    awareness client ids one connection may speak for.
    """

    max_message_bytes: int = 1 * MIB
    max_document_bytes: int = 20 * MIB
    updates_per_second: float = 50.0
    update_burst: int = 200
    max_awareness_clients: int = 8

    def __post_init__(self) -> None:
        if self.max_message_bytes <= 0 or self.max_document_bytes <= 0:
            raise ValueError("size limits must be positive")
        if self.updates_per_second <= 0 or self.update_burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        if self.max_awareness_clients < 1:
            raise ValueError("max_awareness_clients must be at least 1")


class TokenBucket:
    """A token bucket driven by the caller's monotonic clock (seconds); starts full."""

    __slots__ = ("_capacity", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self._rate = rate
        self._capacity = float(capacity)
        self._tokens = float(capacity)
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; False (spending nothing) if there is none."""
        elapsed = now - self._updated
        if elapsed > 0:  # a clock going backwards refills nothing
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

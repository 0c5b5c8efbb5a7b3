"""`SessionStore`: what the host of a `DojoSession` must provide to make it durable.

Shaped like Hocuspocus' hooks (load the document, store changes) with y-sweet's habit of
keeping storage off the edit path: the session never calls it. The host (the dojo actor)
loads the state before building the session, appends each `Outcome.stored` batch through
a throttled group-commit writer, and now and then compacts the log into a snapshot taken
from `DojoSession.state_update`.
"""

from __future__ import annotations

from typing import Protocol


class SessionStore(Protocol):
    """Durable storage for dojo documents: a snapshot plus an append-only log of updates."""

    async def load(self, dojo_id: str) -> bytes | None:
        """The dojo's whole state as one update (snapshot and later log entries merged),
        or None for a dojo never stored. The session replays it as ``initial_update``."""
        ...

    async def append(self, dojo_id: str, updates: list[bytes]) -> None:
        """Durably append ``updates`` to the dojo's log, in order, all or none. Returning
        means they survive a crash; the host acknowledges nothing to anyone before that."""
        ...

    async def snapshot(self, dojo_id: str, state: bytes, upto: int) -> None:
        """Store ``state`` (a whole-document update) as the dojo's snapshot, covering every
        log entry up to and including sequence number ``upto``, which may then be dropped.
        Entries appended after ``upto`` must be kept: the snapshot does not include them."""
        ...

"""Awareness (y-protocols): who is here and where their cursor is. Ephemeral, never stored.

An awareness update is ``varUint count`` then, per client, ``varUint clientID``,
``varUint clock`` and ``varString state`` (JSON; ``null`` means the client left). A state
replaces the known one when its clock is newer, or when it is a removal with the same clock
(y-protocols' rule). Client ids and clocks must fit in 53 bits: lib0 in the browser throws
on anything bigger, so relaying one would break every stock client in the room.

`AwarenessRegistry` also remembers which connection announced which client id, so that
closing a connection removes its clients for everyone (as y-websocket's server does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from pocdojo.engine.protocol import ProtocolError, read_var_bytes, read_var_uint, write_var_uint

MAX_SAFE_INTEGER: Final = (1 << 53) - 1
REMOVED: Final = "null"


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state as it travels: ``state_json`` is ``"null"`` when removed."""

    client_id: int
    clock: int
    state_json: str

    @property
    def removed(self) -> bool:
        return self.state_json == REMOVED


def decode_awareness(
    payload: bytes, *, max_entries: int | None = None
) -> list[tuple[AwarenessEntry, dict[str, Any] | None]]:
    """Decode an awareness update into its entries and their parsed states (None = removed).

    Raises `ProtocolError` for malformed bytes, more than ``max_entries`` entries, ids or
    clocks over 53 bits, and states that are not a JSON object or ``null``.
    """
    count, pos = read_var_uint(payload, 0)
    if count > len(payload):  # every entry takes at least three bytes
        raise ProtocolError("awareness count beyond the message")
    if max_entries is not None and count > max_entries:
        raise ProtocolError("too many awareness entries")
    entries: list[tuple[AwarenessEntry, dict[str, Any] | None]] = []
    for _ in range(count):
        client_id, pos = read_var_uint(payload, pos)
        clock, pos = read_var_uint(payload, pos)
        raw, pos = read_var_bytes(payload, pos)
        if client_id > MAX_SAFE_INTEGER or clock > MAX_SAFE_INTEGER:
            raise ProtocolError("awareness client id or clock over 53 bits")
        try:
            text = raw.decode("utf-8")
            state = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ProtocolError("awareness state is not JSON") from None
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("awareness state is not an object or null")
        entries.append(
            (AwarenessEntry(client_id, clock, REMOVED if state is None else text), state)
        )
    if pos != len(payload):
        raise ProtocolError("trailing bytes after awareness update")
    return entries


def encode_awareness_update(entries: Iterable[AwarenessEntry]) -> bytes:
    """Encode entries as one awareness update (the payload of an awareness message)."""
    items = list(entries)
    parts = [write_var_uint(len(items))]
    for entry in items:
        state = entry.state_json.encode("utf-8")
        parts += (
            write_var_uint(entry.client_id),
            write_var_uint(entry.clock),
            write_var_uint(len(state)),
            state,
        )
    return b"".join(parts)


class TooManyAwarenessClients(Exception):
    """A connection tried to announce more client ids than it may."""


@dataclass(slots=True)
class _Client:
    owner: str
    clock: int
    state_json: str
    state: dict[str, Any] | None


class AwarenessRegistry:
    """The awareness states of one session and the connection that announced each client."""

    def __init__(self, max_clients_per_connection: int) -> None:
        self._max = max_clients_per_connection
        self._clients: dict[int, _Client] = {}
        self._owned: dict[str, set[int]] = {}

    def apply(
        self, owner: str, entries: list[tuple[AwarenessEntry, dict[str, Any] | None]]
    ) -> list[AwarenessEntry]:
        """Apply decoded entries sent by connection ``owner``; return those that took effect.

        Raises `TooManyAwarenessClients` (changing nothing) if ``owner`` would then speak for
        more client ids than allowed.
        """
        owned = self._owned.setdefault(owner, set())
        new = {e.client_id for e, _ in entries if not e.removed and e.client_id not in owned}
        if len(owned) + len(new) > self._max:
            raise TooManyAwarenessClients
        changed: list[AwarenessEntry] = []
        for entry, state in entries:
            client = self._clients.get(entry.client_id)
            if client is None:
                # A removal of a client never seen changes nothing; not recording it keeps a
                # connection from growing this table with made-up ids. A first state with
                # clock 0 is ignored, as y-protocols does.
                if state is not None and entry.clock > 0:
                    self._clients[entry.client_id] = _Client(
                        owner, entry.clock, entry.state_json, state
                    )
                    owned.add(entry.client_id)
                    changed.append(entry)
                continue
            present = client.state is not None
            if not (
                client.clock < entry.clock
                or (client.clock == entry.clock and state is None and present)
            ):
                continue
            client.clock = entry.clock
            client.state_json = entry.state_json
            client.state = state
            if state is not None and client.owner != owner:
                self._owned[client.owner].discard(entry.client_id)
                client.owner = owner
                owned.add(entry.client_id)
            if state is not None or present:
                changed.append(entry)
        return changed

    def remove_owner(self, owner: str) -> list[AwarenessEntry]:
        """Forget every client ``owner`` announced; return the removals to broadcast."""
        removed: list[AwarenessEntry] = []
        for client_id in sorted(self._owned.pop(owner, ())):
            client = self._clients.pop(client_id)
            if client.state is not None:
                removed.append(AwarenessEntry(client_id, client.clock, REMOVED))
        return removed

    def entries(self) -> list[AwarenessEntry]:
        """Every present state, as entries (what a newcomer or a QueryAwareness gets)."""
        return [
            AwarenessEntry(client_id, client.clock, client.state_json)
            for client_id, client in self._clients.items()
            if client.state is not None
        ]

    def states(self) -> dict[int, dict[str, Any]]:
        """Every present state by client id."""
        return {
            client_id: client.state
            for client_id, client in self._clients.items()
            if client.state is not None
        }

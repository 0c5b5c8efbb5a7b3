"""Awareness updates: our codec against pycrdt's Awareness, and strict refusal of junk."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Awareness, Doc

from pocdojo.engine.awareness import (
    MAX_SAFE_INTEGER,
    AwarenessEntry,
    AwarenessRegistry,
    TooManyAwarenessClients,
    decode_awareness,
    encode_awareness_update,
)
from pocdojo.engine.protocol import ProtocolError, write_var_uint

json_states = st.none() | st.dictionaries(
    st.text(max_size=8), st.integers() | st.text(max_size=20) | st.booleans(), max_size=4
)


@settings(database=None)
@given(
    st.lists(
        st.tuples(st.integers(0, MAX_SAFE_INTEGER), st.integers(0, MAX_SAFE_INTEGER), json_states),
        max_size=5,
    )
)
def test_awareness_updates_round_trip(items: list[tuple[int, int, Any]]) -> None:
    entries = [AwarenessEntry(c, k, json.dumps(s)) for c, k, s in items]
    decoded = decode_awareness(encode_awareness_update(entries))
    assert [entry for entry, _ in decoded] == entries
    assert [state for _, state in decoded] == [s for _, _, s in items]


def test_pycrdt_awareness_reads_ours_and_we_read_its() -> None:
    theirs = Awareness(Doc())
    theirs.set_local_state({"user": "ada", "cursor": 3})
    decoded = decode_awareness(theirs.encode_awareness_update([theirs.client_id]))
    assert decoded[0][1] == {"user": "ada", "cursor": 3}

    listener = Awareness(Doc())
    ours = AwarenessEntry(12345, 4, '{"user":"bob"}')
    listener.apply_awareness_update(encode_awareness_update([ours]), "test")
    assert listener.states[12345] == {"user": "bob"}


def test_non_ascii_states_use_their_utf8_length() -> None:
    entry = AwarenessEntry(1, 1, '{"user":"Zoë 🐍"}')
    assert decode_awareness(encode_awareness_update([entry]))[0][0] == entry


def _raw(client: int, clock: int, state: bytes) -> bytes:
    return (
        b"\x01"
        + write_var_uint(client)
        + write_var_uint(clock)
        + write_var_uint(len(state))
        + state
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01",
        b"\x05\x01\x01\x04null",
        _raw(1, 1, b"{"),
        _raw(1, 1, b""),
        _raw(1, 1, b"[1,2]"),
        _raw(1, 1, b"3"),
        _raw(1, 1, b"\xff\xfe"),
        _raw(MAX_SAFE_INTEGER + 1, 1, b"{}"),
        _raw(1, MAX_SAFE_INTEGER + 1, b"{}"),
        _raw(1, 1, b"{}") + b"\x00",
        _raw(1, 1, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ],
)
def test_malformed_awareness_updates_are_refused(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_awareness(payload)


def _apply(registry: AwarenessRegistry, owner: str, *entries: AwarenessEntry) -> list[int]:
    decoded = decode_awareness(encode_awareness_update(entries))
    return [entry.clock for entry in registry.apply(owner, decoded)]


def test_registry_follows_the_y_protocols_clock_rule() -> None:
    registry = AwarenessRegistry(max_clients_per_connection=4)
    assert _apply(registry, "a", AwarenessEntry(7, 0, "{}")) == []  # first state at clock 0
    assert _apply(registry, "a", AwarenessEntry(7, 2, '{"x":1}')) == [2]
    assert _apply(registry, "a", AwarenessEntry(7, 1, '{"x":0}')) == []  # stale
    assert _apply(registry, "a", AwarenessEntry(7, 2, '{"x":5}')) == []  # same clock
    assert registry.states() == {7: {"x": 1}}
    assert _apply(registry, "a", AwarenessEntry(7, 2, "null")) == [2]  # removal, same clock
    assert registry.states() == {}
    assert _apply(registry, "a", AwarenessEntry(9, 3, "null")) == []  # unknown client


def test_a_client_that_reconnects_moves_to_its_new_connection() -> None:
    registry = AwarenessRegistry(max_clients_per_connection=4)
    _apply(registry, "old", AwarenessEntry(7, 1, "{}"))
    _apply(registry, "new", AwarenessEntry(7, 2, '{"back":true}'))
    assert registry.remove_owner("old") == []
    assert registry.states() == {7: {"back": True}}
    assert registry.remove_owner("new") == [AwarenessEntry(7, 2, "null")]


def test_a_connection_cannot_speak_for_too_many_clients() -> None:
    registry = AwarenessRegistry(max_clients_per_connection=2)
    _apply(registry, "a", AwarenessEntry(1, 1, "{}"), AwarenessEntry(2, 1, "{}"))
    with pytest.raises(TooManyAwarenessClients):
        _apply(registry, "a", AwarenessEntry(3, 1, "{}"))
    assert set(registry.states()) == {1, 2}

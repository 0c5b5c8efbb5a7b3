"""Presence through the session: announced states reach the others and leave with their
connection."""

from __future__ import annotations

from pocdojo.engine.awareness import AwarenessEntry, decode_awareness, encode_awareness_update
from pocdojo.engine.protocol import AwarenessUpdate, QueryAwareness, decode, encode
from pocdojo.engine.session import DojoSession
from tests.engine.yclient import Room, SimClient

ALICE = '{"user":"alice","cursor":{"file":"main.py","index":3}}'


def test_presence_reaches_the_others_and_late_joiners() -> None:
    room = Room(DojoSession("d"))
    alice, bob = room.join(SimClient("alice")), room.join(SimClient("bob"))
    room.pump()
    alice.set_presence(ALICE)
    room.pump()
    assert bob.awareness == {alice.doc.client_id: ALICE}
    assert alice.awareness == {}  # nobody echoes your own state back
    carol = room.join(SimClient("carol"))
    room.pump()
    assert set(carol.awareness) == {alice.doc.client_id}
    assert room.session.awareness_states() == {
        alice.doc.client_id: {"user": "alice", "cursor": {"file": "main.py", "index": 3}}
    }


def test_presence_is_removed_for_everyone_when_its_connection_goes() -> None:
    room = Room(DojoSession("d"))
    alice, bob = room.join(SimClient("alice")), room.join(SimClient("bob"))
    room.pump()
    alice.set_presence('{"user":"alice"}')
    bob.set_presence('{"user":"bob"}')
    room.pump()
    assert set(bob.awareness) == {alice.doc.client_id}
    room.leave("alice")
    room.pump()
    assert bob.awareness == {}
    assert set(room.session.awareness_states()) == {bob.doc.client_id}


def test_a_disconnect_without_presence_broadcasts_nothing() -> None:
    session = DojoSession("d")
    session.connect("c", can_write=True, now=0.0)
    assert session.disconnect("c") == []
    assert session.disconnect("never-connected") == []


def test_removal_messages_carry_the_last_clock_and_null() -> None:
    session = DojoSession("d")
    session.connect("c", can_write=False, now=0.0)
    entry = AwarenessEntry(42, 5, '{"user":"r"}')
    outcome = session.receive(
        "c", encode(AwarenessUpdate(encode_awareness_update([entry]))), now=0.0
    )
    assert outcome.close is None  # read-only connections may still be present
    (removal,) = session.disconnect("c")
    message = decode(removal)
    assert isinstance(message, AwarenessUpdate)
    assert decode_awareness(message.payload) == [(AwarenessEntry(42, 5, "null"), None)]


def test_query_awareness_is_answered_with_every_present_state() -> None:
    session = DojoSession("d")
    session.connect("a", can_write=True, now=0.0)
    session.connect("b", can_write=True, now=0.0)
    entry = AwarenessEntry(7, 1, '{"user":"a"}')
    session.receive("a", encode(AwarenessUpdate(encode_awareness_update([entry]))), now=0.0)
    (reply,) = session.receive("b", encode(QueryAwareness()), now=0.0).replies
    assert reply == encode(AwarenessUpdate(encode_awareness_update([entry])))


def test_stale_awareness_is_not_rebroadcast() -> None:
    session = DojoSession("d")
    session.connect("a", can_write=True, now=0.0)
    newer = encode(AwarenessUpdate(encode_awareness_update([AwarenessEntry(7, 3, "{}")])))
    older = encode(AwarenessUpdate(encode_awareness_update([AwarenessEntry(7, 2, "{}")])))
    assert session.receive("a", newer, now=0.0).broadcast == [newer]
    assert session.receive("a", older, now=0.0).broadcast == []

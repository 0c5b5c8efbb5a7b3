"""An update that builds on updates the session lacks is never kept half-applied: the session
asks its sender to resync instead, and nothing the client wrote is lost."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Map, Text, TransactionEvent

from pocdojo.engine.outcome import Close
from pocdojo.engine.protocol import SyncStep1, SyncStep2, SyncUpdate, decode, encode
from pocdojo.engine.session import MAX_RESYNCS, DojoSession, MissingDependencies
from tests.engine.yclient import Room, SimClient


def _author() -> tuple[Doc[Any], list[bytes]]:
    """A document making five updates: a file, three inserts, a second file."""
    doc: Doc[Any] = Doc(client_id=1)
    updates: list[bytes] = []

    def record(event: TransactionEvent) -> None:
        updates.append(event.update)

    doc.observe(record)
    files = doc.get("files", type=Map)
    files["main.py"] = Text("a")
    for _ in range(3):
        files["main.py"].insert(0, "b")
    files["README.md"] = Text("c")
    return doc, updates


def test_an_update_with_missing_dependencies_makes_the_sender_resync() -> None:
    session = DojoSession("d")
    session.connect("c", can_write=True, now=0.0)
    session.connect("other", can_write=True, now=0.0)
    doc, updates = _author()
    assert session.receive("c", encode(SyncUpdate(updates[0])), now=0.0).stored
    before = session.state_update()

    gap = session.receive("c", encode(SyncUpdate(updates[2])), now=0.0)
    (reply,) = gap.replies
    step1 = decode(reply)
    assert isinstance(step1, SyncStep1)
    assert gap.broadcast == gap.stored == []
    assert session.state_update() == before

    # what the client sent before answering is in its answer, so it is not applied twice
    assert session.receive("c", encode(SyncUpdate(updates[3])), now=0.0).stored == []
    answer = session.receive("c", encode(SyncStep2(doc.get_update(step1.state_vector))), now=0.0)
    assert len(answer.stored) == 1
    assert len(answer.broadcast) == 1
    assert session.receive("c", encode(SyncUpdate(updates[4])), now=0.0).stored == []
    assert session.files() == {"main.py": "bbba", "README.md": "c"}


def test_a_client_that_keeps_sending_out_of_order_is_closed() -> None:
    session = DojoSession("d")
    session.connect("c", can_write=True, now=0.0)
    _, updates = _author()
    for _ in range(MAX_RESYNCS):
        outcome = session.receive("c", encode(SyncUpdate(updates[3])), now=0.0)
        assert outcome.replies
        session.receive("c", encode(SyncStep2(b"\x00\x00")), now=0.0)
    outcome = session.receive("c", encode(SyncUpdate(updates[3])), now=0.0)
    assert outcome.close == Close(1008, "too many out-of-order updates")
    assert session.files() == {}


def test_a_peer_update_with_missing_dependencies_changes_nothing() -> None:
    session = DojoSession("d")
    _, updates = _author()
    with pytest.raises(MissingDependencies):
        session.apply_peer_update(updates[4])
    assert session.files() == {}
    assert session.state_update() == DojoSession("d").state_update()
    for update in updates:
        session.apply_peer_update(update)
    assert session.files() == {"main.py": "bbba", "README.md": "c"}


def test_edits_lost_in_a_crash_come_back_when_clients_resync() -> None:
    room = Room(DojoSession("d"))
    a, b = room.join(SimClient("a")), room.join(SimClient("b"))
    room.pump()
    a.root["main.py"] = Text("one\n")
    room.pump()
    flushed = list(room.stored)
    a.text("main.py").insert(4, "two\n")
    room.pump()
    b.text("main.py").insert(8, "three\n")  # builds on an update the crash will lose
    room.pump()
    assert len(room.stored) == 3

    room.restart(flushed)
    # b edits again before its answer to the new session's SyncStep1 gets through
    b.text("main.py").insert(0, "zero\n")
    room.to_server(b)  # its SyncStep1
    room.to_server(b)  # the edit, which builds on what the session lost
    assert any(isinstance(decode(m), SyncStep1) for m in b.inbox[-1:])
    room.pump()
    expected = {"main.py": "zero\none\ntwo\nthree\n"}
    assert room.session.files() == a.files() == b.files() == expected
    assert room.closed == {}


# Updates a JavaScript client (npm yjs 13) made, as it sent them: creating main.py with
# "# starter\n", then inserting "x" twice.
YJS_TYPING = [
    "0102e693d9f10e0027010566696c6573076d61696e2e7079020400e693d9f10e000a2320737461727465720a00",
    "0101e693d9f10e0bc4e693d9f10e05e693d9f10e06017800",
    "0101e693d9f10e0cc4e693d9f10e02e693d9f10e03017800",
]


def test_an_ordinary_edit_takes_effect_as_sent_and_skips_the_pending_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An edit that integrates whole takes effect as exactly the bytes sent, Yjs's encoding as
    well as pycrdt's, so `_left_pending` (a state vector and a diff per edit) is not needed;
    a gap (above) is still caught by it."""

    def not_needed(self: DojoSession, update: bytes) -> bool:
        raise AssertionError("an ordinary edit went through the pending check")

    session = DojoSession("d")
    session.connect("js", can_write=True, now=0.0)
    monkeypatch.setattr(DojoSession, "_left_pending", not_needed)
    for update in map(bytes.fromhex, YJS_TYPING):
        outcome = session.receive("js", encode(SyncUpdate(update)), now=0.0)
        assert outcome.stored == [update]
    assert session.files()["main.py"].count("x") == 2

    session = DojoSession("d")
    session.connect("py", can_write=True, now=0.0)
    _, updates = _author()
    for update in updates:
        assert session.receive("py", encode(SyncUpdate(update)), now=0.0).stored == [update]
    assert session.files() == {"main.py": "bbba", "README.md": "c"}

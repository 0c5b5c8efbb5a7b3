"""Clients sync through a DojoSession: handshake, edits, what is stored, restarts, peers."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map, Text, TransactionEvent, get_state, merge_updates

from pocdojo.engine.origin import Origin
from pocdojo.engine.protocol import (
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    encode,
)
from pocdojo.engine.session import DojoSession
from tests.engine.yclient import Room, SimClient


def test_connect_sends_the_sessions_state_vector_and_the_whole_document() -> None:
    session = DojoSession("d")
    session.set_starter_files({"main.py": "print(1)\n"})
    step1, step2 = (decode(m) for m in session.connect("c", can_write=True, now=0.0))
    assert step1 == SyncStep1(get_state(session.state_update()))
    assert isinstance(step2, SyncStep2)
    client: Doc[Any] = Doc()
    client.apply_update(step2.update)
    assert str(client.get("files", type=Map)["main.py"]) == "print(1)\n"
    assert session.connections() == ["c"]


def test_handshake_gives_a_new_client_the_document() -> None:
    session = DojoSession("d")
    session.set_starter_files({"main.py": "print(1)\n", "README.md": "# demo\n"})
    room = Room(session)
    alice = room.join(SimClient("alice"))
    room.pump()
    assert alice.files() == {"main.py": "print(1)\n", "README.md": "# demo\n"}
    assert room.stored == []  # the handshake changed nothing


def test_a_sync_step1_is_answered_with_what_the_client_misses() -> None:
    session = DojoSession("d")
    session.set_starter_files({"a.txt": "abc"})
    session.connect("c", can_write=True, now=0.0)
    elsewhere: Doc[Any] = Doc()
    elsewhere.get("files", type=Map)["b.txt"] = Text("new")
    session.apply_peer_update(elsewhere.get_update())
    client: Doc[Any] = Doc()
    outcome = session.receive("c", encode(SyncStep1(client.get_state())), now=0.0)
    (reply,) = outcome.replies
    message = decode(reply)
    assert isinstance(message, SyncStep2)
    # what connect() already sent is left out; what came since is in
    client.apply_update(message.update)
    assert set(client.get("files", type=Map).keys()) == {"b.txt"}
    assert outcome.broadcast == outcome.stored == []


def test_a_second_sync_step1_gets_only_what_is_new() -> None:
    room = Room(DojoSession("d"))
    room.session.set_starter_files({"a.txt": "x" * 5000})
    client = room.join(SimClient("c"))
    room.pump()
    client.hello()
    room.to_server(client)
    (answer,) = client.inbox
    assert len(answer) < 100


def test_edits_propagate_between_three_clients() -> None:
    room = Room(DojoSession("d"))
    a, b, c = (room.join(SimClient(name)) for name in "abc")
    room.pump()
    a.root["main.py"] = Text("def f():\n    pass\n")
    room.pump()
    b.text("main.py").insert(0, "# b\n")
    c.root["util.py"] = Text("X = 1\n")
    room.pump()
    del a.text("main.py")[0:2]
    room.pump()
    expected = {"main.py": "b\ndef f():\n    pass\n", "util.py": "X = 1\n"}
    assert a.files() == b.files() == c.files() == room.session.files() == expected


def test_stored_holds_exactly_the_client_updates_in_arrival_order() -> None:
    room = Room(DojoSession("d"))
    a, b = room.join(SimClient("a")), room.join(SimClient("b"))
    room.pump()
    sent: list[bytes] = []

    def record(event: TransactionEvent) -> None:
        if event.transaction.origin() is None:  # type: ignore[attr-defined]
            sent.append(event.update)

    a.doc.observe(record)
    b.doc.observe(record)
    a.root["x.py"] = Text("x")
    room.to_server(a)
    b.root["y.py"] = Text("y")
    room.to_server(b)
    a.text("x.py").insert(1, "yz")
    room.to_server(a)
    room.pump()
    assert room.stored == sent


def test_a_client_update_is_broadcast_as_a_sync_update_to_the_others_only() -> None:
    session = DojoSession("d")
    session.connect("a", can_write=True, now=0.0)
    session.connect("b", can_write=True, now=0.0)
    author: Doc[Any] = Doc()
    author.get("files", type=Map)["f"] = Text("hi")
    update = author.get_update()
    outcome = session.receive("a", encode(SyncUpdate(update)), now=0.0)
    assert outcome.replies == []
    assert outcome.broadcast == [encode(SyncUpdate(update))]
    assert outcome.stored == [update]
    again = session.receive("a", encode(SyncStep2(update)), now=0.0)
    assert again.broadcast == again.stored == []  # nothing new the second time


def test_a_restarted_session_rebuilds_the_files_from_the_stored_updates() -> None:
    room = Room(DojoSession("d"))
    starter = room.session.set_starter_files({"main.py": "print(0)\n"})
    a, b = room.join(SimClient("a")), room.join(SimClient("b"))
    room.pump()
    a.text("main.py").insert(0, "import os\n")
    b.root["notes.md"] = Text("todo")
    room.pump()
    del b.text("main.py")[0:7]
    room.pump()
    log = [starter, *room.stored]

    restarted = DojoSession("d", initial_update=merge_updates(*log))
    assert restarted.files() == room.session.files() == a.files()

    # a client that was connected before the restart resyncs and loses nothing
    again = Room(restarted)
    a2 = SimClient("a2")
    a2.doc.apply_update(a.doc.get_update())
    a2.root["late.txt"] = Text("written while the server was down")
    again.join(a2)
    again.pump()
    assert restarted.files()["late.txt"] == "written while the server was down"
    assert len(again.stored) == 1


def test_starter_files_come_back_as_one_stored_update() -> None:
    session = DojoSession("d")
    update = session.set_starter_files({"a": "1", "b": "2"})
    fresh = DojoSession("d", initial_update=update)
    assert fresh.files() == {"a": "1", "b": "2"}
    assert session.set_starter_files({}) == b"\x00\x00"


def test_state_update_and_document_bytes_describe_the_whole_document() -> None:
    session = DojoSession("d")
    session.set_starter_files({"big.txt": "x" * 10_000})
    state = session.state_update()
    assert session.document_bytes() == len(state)
    assert DojoSession("d", initial_update=state).files() == session.files()


def test_peer_updates_are_broadcast_but_never_stored() -> None:
    replica = DojoSession("d")
    replica.connect("local", can_write=True, now=0.0)
    elsewhere = DojoSession("d")
    update = elsewhere.set_starter_files({"shared.py": "1"})
    messages = replica.apply_peer_update(update)
    assert messages == [encode(SyncUpdate(update))]
    assert replica.files() == {"shared.py": "1"}
    assert replica.apply_peer_update(update) == []  # already there


def test_origin_tags_decide_storing_and_broadcasting() -> None:
    assert Origin.CLIENT.stored
    assert Origin.CLIENT.broadcast
    assert not Origin.REPLAY.stored
    assert not Origin.REPLAY.broadcast
    assert not Origin.PEER.stored
    assert Origin.PEER.broadcast


def test_read_only_clients_sync_even_after_deletions() -> None:
    room = Room(DojoSession("d"))
    writer = room.join(SimClient("w"))
    room.pump()
    writer.root["f"] = Text("hello world")
    room.pump()
    del writer.text("f")[0:6]
    room.pump()
    reader = room.join(SimClient("r", can_write=False))
    room.pump()
    assert reader.files() == {"f": "world"}
    # reconnecting with the deletions already known: its SyncStep2 carries its whole
    # delete set, which must not count as an edit
    room.leave("r")
    reader2 = SimClient("r2", can_write=False)
    reader2.doc.apply_update(reader.doc.get_update())
    room.join(reader2)
    room.pump()
    assert room.closed == {}
    writer.text("f").insert(5, "!")
    room.pump()
    assert reader2.files() == {"f": "world!"}


def test_auth_and_query_awareness_need_no_document_work() -> None:
    session = DojoSession("d")
    session.connect("c", can_write=True, now=0.0)
    assert session.receive("c", b"\x02\x00\x02no", now=0.0).close is None
    quiet = session.receive("c", encode(QueryAwareness()), now=0.0)
    assert quiet.replies == quiet.broadcast == quiet.stored == []


def test_a_writer_reconnecting_with_known_deletions_stores_nothing() -> None:
    room = Room(DojoSession("d"))
    writer = room.join(SimClient("w"))
    room.pump()
    writer.root["f"] = Text("hello world")
    room.pump()
    del writer.text("f")[0:6]
    room.pump()
    stored = len(room.stored)
    room.leave("w")
    again = SimClient("w2")
    again.doc.apply_update(writer.doc.get_update())
    again.outbox.clear()
    room.join(again)
    room.pump()
    assert len(room.stored) == stored
    assert room.session.files() == again.files() == {"f": "world"}

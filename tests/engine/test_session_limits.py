"""A connection that breaks a rule is closed alone; the document and the others carry on."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from pocdojo.engine.awareness import AwarenessEntry, encode_awareness_update
from pocdojo.engine.limits import Limits, TokenBucket
from pocdojo.engine.outcome import Close, CloseCode
from pocdojo.engine.protocol import AwarenessUpdate, SyncStep1, SyncUpdate, encode
from pocdojo.engine.session import DojoSession
from tests.engine.yclient import Room, SimClient


def _update(files: dict[str, str]) -> bytes:
    doc: Doc[Any] = Doc()
    root = doc.get("files", type=Map)
    for path, content in files.items():
        root[path] = Text(content)
    return doc.get_update()


def _session(limits: Limits = Limits(), *conns: str) -> DojoSession:
    session = DojoSession("d", limits)
    session.set_starter_files({"main.py": "print(1)\n"})
    for conn in conns:
        session.connect(conn, can_write=True, now=0.0)
    return session


def test_a_read_only_connection_that_edits_is_closed_and_nothing_changes() -> None:
    room = Room(_session())
    writer = room.join(SimClient("w"))
    reader = room.join(SimClient("r", can_write=False))
    room.pump()
    before = room.session.state_update()
    reader.text("main.py").insert(0, "evil()\n")
    room.pump()
    assert room.closed == {"r": Close(1008, "read-only connection cannot edit")}
    assert room.session.state_update() == before
    assert writer.files() == {"main.py": "print(1)\n"}
    assert room.stored == []
    writer.text("main.py").insert(0, "ok()\n")
    room.pump()
    assert room.session.files() == {"main.py": "ok()\nprint(1)\n"}


def test_a_read_only_connection_cannot_delete_either() -> None:
    room = Room(_session())
    reader = room.join(SimClient("r", can_write=False))
    room.pump()
    del reader.text("main.py")[0:5]
    room.pump()
    assert room.closed["r"].code == CloseCode.POLICY_VIOLATION
    assert room.session.files() == {"main.py": "print(1)\n"}


def test_an_oversized_message_is_refused_with_1009() -> None:
    session = _session(Limits(max_message_bytes=1000), "c")
    big = encode(SyncUpdate(_update({"big": "x" * 2000})))
    outcome = session.receive("c", big, now=0.0)
    assert outcome.close == Close(1009, "message too big")
    assert session.files() == {"main.py": "print(1)\n"}


@pytest.mark.parametrize(
    "data", [b"", b"\x07", b"\x00\x02\x09abc", b"\x00\x01\x00\x00", b"\x00\x02\x80\x00"]
)
def test_a_malformed_message_closes_only_its_connection(data: bytes) -> None:
    room = Room(_session())
    a, b = room.join(SimClient("a")), room.join(SimClient("b"))
    room.pump()
    a.outbox.append(data)
    room.pump()
    close = room.closed["a"]
    assert close.code == CloseCode.PROTOCOL_ERROR
    assert close.reason.startswith("malformed message: ")
    b.text("main.py").insert(0, "# still fine\n")
    room.pump()
    assert room.session.files() == {"main.py": "# still fine\nprint(1)\n"}
    assert "b" not in room.closed


def test_a_closed_connection_gets_the_same_close_again_until_it_disconnects() -> None:
    session = _session(Limits(), "c")
    first = session.receive("c", b"\x09", now=0.0)
    again = session.receive("c", encode(SyncUpdate(_update({"x": "1"}))), now=0.0)
    assert again.close == first.close
    assert "x" not in session.files()
    session.disconnect("c")
    assert session.connections() == []
    with pytest.raises(KeyError):
        session.receive("c", b"\x03", now=0.0)


def test_a_connection_that_floods_is_closed_for_rate() -> None:
    limits = Limits(updates_per_second=10.0, update_burst=5)
    session = _session(limits, "flood", "calm")
    query = b"\x03"
    for _ in range(5):
        assert session.receive("flood", query, now=0.0).close is None
    assert session.receive("flood", query, now=0.0).close == Close(1008, "rate limit exceeded")
    assert session.receive("calm", query, now=0.0).close is None


def test_the_bucket_refills_with_time() -> None:
    bucket = TokenBucket(rate=4.0, capacity=2, now=100.0)
    assert bucket.take(100.0)
    assert bucket.take(100.0)
    assert not bucket.take(100.0)
    assert bucket.take(100.25)
    assert not bucket.take(100.25)
    assert not bucket.take(50.0)  # a clock going backwards refills nothing
    assert bucket.take(101.0)
    assert bucket.take(101.0)
    assert not bucket.take(101.0)  # never more than the burst


def test_an_update_that_would_outgrow_the_document_is_refused_and_nothing_changes() -> None:
    limits = Limits(max_document_bytes=40_000, max_message_bytes=100_000)
    session = _session(limits, "c", "other")
    small = session.receive("c", encode(SyncUpdate(_update({"a": "a" * 20_000}))), now=0.0)
    assert small.close is None
    before = session.state_update()
    outcome = session.receive("c", encode(SyncUpdate(_update({"b": "b" * 30_000}))), now=0.0)
    assert outcome.close == Close(1008, "document size limit reached")
    assert session.state_update() == before
    assert session.document_bytes() <= limits.max_document_bytes
    assert session.receive("other", encode(SyncUpdate(_update({"c": "c" * 100}))), now=0.0).stored


def test_the_size_limit_is_exact_near_the_limit() -> None:
    limits = Limits(max_document_bytes=30_000, updates_per_second=1e9, update_burst=10**6)
    session = _session(limits, "c")
    writer: Doc[Any] = Doc()
    writer.apply_update(session.state_update())
    text = writer.get("files", type=Map)["main.py"]
    accepted = 0
    while True:
        before = writer.get_state()
        text.insert(len(text), "y" * 200)
        outcome = session.receive("c", encode(SyncUpdate(writer.get_update(before))), now=0.0)
        if outcome.close is not None:
            break
        accepted += 1
    assert outcome.close == Close(1008, "document size limit reached")
    # the refused edit would have crossed the limit; everything accepted stayed under it
    assert session.document_bytes() <= limits.max_document_bytes
    assert session.document_bytes() + 200 > limits.max_document_bytes
    assert accepted > 100


def test_an_update_pycrdt_cannot_decode_is_refused_with_1003() -> None:
    session = _session(Limits(), "c")
    outcome = session.receive("c", encode(SyncUpdate(b"\x01\x02\x03\x04")), now=0.0)
    assert outcome.close == Close(1003, "update cannot be decoded")
    assert session.files() == {"main.py": "print(1)\n"}


def _forgeable_document() -> bytes:
    """A document whose items an attacker's update can contradict (client id 7)."""
    doc: Doc[Any] = Doc(client_id=7)
    files = doc.get("files", type=Map)
    files["main.py"] = Text("hello world")
    text = files["main.py"]
    text.insert(5, "!")
    del text[0:3]
    files["b"] = Text("x" * 50)
    return doc.get_update()


# Forged updates reusing ids of the document above. pycrdt integrates part of the first
# (wiping both texts in a plain Doc) before raising RuntimeError; the second makes it panic.
FORGED = [
    "0107780027010566696c6573076d61696e2e7079020100070003840703026c6f8407050620776f726c64c4"
    "07050706012127010566696c65730162020400073a32" + "78" * 50 + "0107010103",
    "0101070cc40705075b00012100",
]


@pytest.mark.parametrize("forged", FORGED)
def test_an_update_pycrdt_fails_half_way_is_rolled_back(forged: str) -> None:
    initial = _forgeable_document()
    plain: Doc[Any] = Doc()
    plain.apply_update(initial)
    room = Room(DojoSession("d", initial_update=initial))
    a, b = room.join(SimClient("a")), room.join(SimClient("b"))
    room.pump()
    before = room.session.files()
    a.outbox.append(encode(SyncUpdate(bytes.fromhex(forged))))
    room.pump()
    assert room.closed == {"a": Close(1003, "update cannot be applied")}
    assert room.session.files() == before == b.files()
    assert room.stored == []
    b.text("main.py").insert(0, ">")
    room.pump()
    assert room.session.files()["main.py"] == ">lo! world"
    assert DojoSession("d", initial_update=room.session.state_update()).files() == b.files()


def test_an_invalid_state_vector_is_a_protocol_error() -> None:
    session = _session(Limits(), "c")
    outcome = session.receive("c", encode(SyncStep1(b"\xff\xff")), now=0.0)
    assert outcome.close == Close(1002, "invalid state vector")


def test_malformed_awareness_is_a_protocol_error() -> None:
    session = _session(Limits(), "c")
    outcome = session.receive("c", encode(AwarenessUpdate(b"\x01\x01\x01\x03[1]")), now=0.0)
    assert outcome.close is not None
    assert outcome.close.code == CloseCode.PROTOCOL_ERROR


def test_a_connection_cannot_announce_too_many_awareness_clients() -> None:
    session = _session(Limits(max_awareness_clients=2), "c")
    entries = [AwarenessEntry(i, 1, "{}") for i in (1, 2, 3)]
    outcome = session.receive(
        "c", encode(AwarenessUpdate(encode_awareness_update(entries))), now=0.0
    )
    assert outcome.close == Close(1008, "too many awareness clients")
    assert session.awareness_states() == {}


def test_an_awareness_message_with_too_many_entries_is_refused() -> None:
    session = _session(Limits(max_awareness_clients=2), "c")
    entries = [AwarenessEntry(i, 1, "null") for i in range(1, 10)]
    outcome = session.receive(
        "c", encode(AwarenessUpdate(encode_awareness_update(entries))), now=0.0
    )
    assert outcome.close == Close(1002, "malformed awareness: too many awareness entries")


def test_limits_must_make_sense() -> None:
    with pytest.raises(ValueError, match="positive"):
        Limits(max_message_bytes=0)
    with pytest.raises(ValueError, match="burst"):
        Limits(update_burst=0)


def test_close_reasons_fit_a_close_frame() -> None:
    with pytest.raises(ValueError, match="123 bytes"):
        Close(1008, "x" * 124)

"""The Yjs websocket wire format: round trips, pycrdt byte-compatibility, strict decoding."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import (
    Decoder,
    Doc,
    Map,
    Text,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)

from pocdojo.engine.protocol import (
    MAX_VAR_UINT,
    AuthMessage,
    AwarenessUpdate,
    Message,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    encode,
    read_var_uint,
    write_var_uint,
)

# lengths of 1, 2 and 3 varint bytes; long payloads are repetitive so they generate fast
payloads = st.binary(max_size=300) | st.integers(120, 70_000).map(lambda n: b"\xab" * n)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(SyncStep1, payloads),
    st.builds(SyncStep2, payloads),
    st.builds(SyncUpdate, payloads),
    st.builds(AwarenessUpdate, payloads),
    st.just(QueryAwareness()),
    st.builds(AuthMessage, st.text(max_size=100)),
)


@settings(database=None)
@given(messages)
def test_every_message_survives_a_round_trip(message: Message) -> None:
    data = encode(message)
    assert decode(data) == message
    assert encode(decode(data)) == data


@settings(database=None)
@given(st.integers(min_value=0, max_value=MAX_VAR_UINT))
def test_var_uints_round_trip_up_to_64_bits(value: int) -> None:
    data = write_var_uint(value)
    assert read_var_uint(data, 0) == (value, len(data))
    assert len(data) <= 10


def test_var_uint_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError, match="out of range"):
        write_var_uint(-1)
    with pytest.raises(ValueError, match="out of range"):
        write_var_uint(MAX_VAR_UINT + 1)


def _doc_with_text() -> Doc[Any]:
    doc: Doc[Any] = Doc()
    files = doc.get("files", type=Map)
    files["main.py"] = Text("print('hello')\n" * 20)
    return doc


def test_sync_step1_matches_pycrdt() -> None:
    doc = _doc_with_text()
    assert encode(SyncStep1(doc.get_state())) == create_sync_message(doc)


def test_sync_step2_matches_pycrdts_answer_to_a_sync_step1() -> None:
    server = _doc_with_text()
    client: Doc[Any] = Doc()
    step1 = create_sync_message(client)
    # handle_sync_message takes the message without its first (message type) byte
    answer = handle_sync_message(step1[1:], server)
    assert answer == encode(SyncStep2(server.get_update(client.get_state())))
    assert decode(step1) == SyncStep1(client.get_state())


@settings(database=None)
@given(payloads)
def test_update_and_awareness_messages_match_pycrdt(payload: bytes) -> None:
    assert encode(SyncUpdate(payload)) == create_update_message(payload)
    assert encode(AwarenessUpdate(payload)) == create_awareness_message(payload)


@settings(database=None)
@given(payloads)
def test_pycrdt_reads_what_we_write(payload: bytes) -> None:
    data = encode(SyncUpdate(payload))
    assert data[0] == YMessageType.SYNC
    assert data[1] == YSyncMessageType.SYNC_UPDATE
    assert read_message(data[2:]) == payload
    assert Decoder(encode(AwarenessUpdate(payload))[1:]).read_message() == payload


def test_a_real_update_decodes_as_pycrdt_sent_it() -> None:
    doc = _doc_with_text()
    update = doc.get_update()
    assert decode(create_update_message(update)) == SyncUpdate(update)
    assert decode(create_awareness_message(b"\x00")) == AwarenessUpdate(b"\x00")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated varint"),
        (b"\x80", "truncated varint"),
        (b"\x00", "truncated varint"),
        (b"\x00\x02", "truncated varint"),
        (b"\x00\x02\x85", "truncated varint"),
        (b"\x00\x02\x05ab", "declared length beyond the message"),
        (b"\x00\x02\xff\xff\xff\xff\x0f", "declared length beyond the message"),
        (b"\x01\x10abc", "declared length beyond the message"),
        (b"\x00\x03\x00", "unknown sync message type 3"),
        (b"\x04", "unknown message type 4"),
        (b"\xff\x7f", "unknown message type 16383"),
        (b"\x03\x00", "trailing bytes after message"),
        (b"\x00\x02\x01a\x00", "trailing bytes after message"),
        (b"\x01\x00\x00", "trailing bytes after message"),
        (b"\x00\x02\x80\x00", "over-long varint"),
        (b"\x80\x00", "over-long varint"),
        (b"\x00\x02" + b"\xff" * 10 + b"\x01", "varint over 64 bits"),
        (b"\x00\x02" + b"\xff" * 9 + b"\x02", "varint over 64 bits"),
        (b"\x02\x01\x00", "unknown auth message type 1"),
        (b"\x02\x00\x02\xff\xfe", "auth reason is not UTF-8"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        decode(data)
    assert raised.value.reason == reason


def test_the_largest_64_bit_varint_is_read_and_then_refused_as_a_length() -> None:
    largest = b"\xff" * 9 + b"\x01"
    assert read_var_uint(largest, 0) == (MAX_VAR_UINT, 10)
    with pytest.raises(ProtocolError, match="declared length beyond"):
        decode(b"\x00\x02" + largest)


def test_auth_permission_denied_decodes() -> None:
    assert decode(b"\x02\x00\x06denied") == AuthMessage("denied")


prefixes = st.sampled_from(
    [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x01", b"\x02\x00"]
)


@settings(database=None)
@given(st.binary(max_size=64) | st.builds(bytes.__add__, prefixes, st.binary(max_size=40)))
def test_decode_returns_a_message_or_raises_protocol_error_and_nothing_else(data: bytes) -> None:
    try:
        message = decode(data)
    except ProtocolError:
        return
    # whatever decodes is canonical: encoding it gives back the very same bytes
    assert encode(message) == data

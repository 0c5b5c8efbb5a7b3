"""A session that is over frees its document. pycrdt keeps a document's observers on the Rust
side, out of the collector's sight, and its observer wrapper holds the document, so a
document still observed is never freed: a gateway hosting dojo after dojo must close each
session it drops (`DojoSession.close`)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from pycrdt import Doc, Map, Text

from pocdojo.engine.outcome import Close
from pocdojo.engine.protocol import SyncStep1, SyncStep2, SyncUpdate, decode, encode
from pocdojo.engine.session import SESSION_CLOSED, DojoSession


def _live_docs() -> int:
    gc.collect()
    return sum(isinstance(o, Doc) for o in gc.get_objects())


def _updates() -> tuple[Doc[Any], list[bytes]]:
    """A client's document and its three updates (a file, two inserts), without observers."""
    doc: Doc[Any] = Doc(client_id=7)
    files = doc.get("files", type=Map)
    updates: list[bytes] = []
    for change in range(3):
        state = doc.get_state()
        if change == 0:
            files["main.py"] = Text("a")
        else:
            files["main.py"].insert(0, "b")
        updates.append(doc.get_update(state))
    return doc, updates


def test_a_closed_session_is_freed_with_its_documents() -> None:
    client, updates = _updates()
    before = _live_docs()
    session = DojoSession("d")
    session.connect("c", can_write=True, now=0.0)
    session.connect("other", can_write=True, now=0.0)
    assert session.receive("c", encode(SyncUpdate(updates[0])), now=0.0).stored
    # a gap: the session rolls back onto a rebuilt document and asks for a resync
    (reply,) = session.receive("c", encode(SyncUpdate(updates[2])), now=0.0).replies
    step1 = decode(reply)
    assert isinstance(step1, SyncStep1)
    answer = session.receive("c", encode(SyncStep2(client.get_update(step1.state_vector))), now=0)
    assert answer.stored
    assert session.files() == {"main.py": "bba"}
    assert _live_docs() > before

    freed = weakref.ref(session)
    session.close()
    del session
    gc.collect()
    assert freed() is None
    assert _live_docs() == before  # the rebuilt document and the one it replaced


def test_a_closed_session_answers_1012_and_can_still_be_read() -> None:
    _, updates = _updates()
    session = DojoSession("d")
    session.connect("c", can_write=True, now=0.0)
    assert session.receive("c", encode(SyncUpdate(updates[0])), now=0.0).stored
    state = session.state_update()
    session.close()
    session.close()  # idempotent

    stopped = Close(1012, SESSION_CLOSED)
    after = session.receive("c", encode(SyncUpdate(updates[1])), now=0.0)
    assert after.close == stopped
    assert after.stored == after.broadcast == after.replies == []
    session.connect("late", can_write=True, now=0.0)
    assert session.receive("late", encode(SyncUpdate(updates[1])), now=0.0).close == stopped
    assert session.files() == {"main.py": "a"}
    assert session.state_update() == state

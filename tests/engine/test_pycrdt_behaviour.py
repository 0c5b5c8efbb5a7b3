"""What pycrdt 0.14 does that the engine relies on or works around.

If one of these starts failing after a pycrdt upgrade, the workaround named in its
docstring may be unnecessary (or wrong) now: revisit it rather than patch the test.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from pycrdt import Doc, Map, Text, TransactionEvent, get_state


def _updates() -> list[bytes]:
    doc: Doc[Any] = Doc(client_id=1)
    updates: list[bytes] = []

    def record(event: TransactionEvent) -> None:
        updates.append(event.update)

    doc.observe(record)
    files = doc.get("files", type=Map)
    files["main.py"] = Text("a")
    for _ in range(3):
        files["main.py"].insert(0, "a")
    files["README.md"] = Text("a")
    return updates


def _files(doc: Doc[Any]) -> dict[str, str]:
    return {k: str(v) for k, v in doc.get("files", type=Map).items()}


def test_several_waiting_updates_lose_content() -> None:
    """Why `DojoSession` never leaves an update waiting for missing ones (it rolls back and
    asks the sender to resync) and why `connect` sends the whole document at once."""
    updates = _updates()
    doc: Doc[Any] = Doc()
    for i in (0, 1, 3, 4, 2):  # 3 and 4 arrive before 2, which they build on
        doc.apply_update(updates[i])
    assert _files(doc) != {"main.py": "aaaa", "README.md": "a"}


def test_an_update_after_a_gap_shows_up_before_the_gap_is_filled() -> None:
    """Why the session detects waiting updates by diffing against the state vector."""
    updates = _updates()
    doc: Doc[Any] = Doc()
    doc.apply_update(updates[4])  # README.md, built on four updates the doc lacks
    assert _files(doc) == {"README.md": "a"}
    assert get_state(updates[4]) == b"\x00"  # and the update's own state vector is empty


def test_a_forged_update_can_change_a_document_before_pycrdt_raises() -> None:
    """Why `DojoSession` rebuilds from its last checkpoint when applying fails."""
    doc: Doc[Any] = Doc(client_id=7)
    files = doc.get("files", type=Map)
    files["main.py"] = Text("hello world")
    files["main.py"].insert(5, "!")
    del files["main.py"][0:3]
    files["b"] = Text("x" * 50)
    forged = bytes.fromhex(
        "0107780027010566696c6573076d61696e2e7079020100070003840703026c6f8407050620776f726c64c4"
        "07050706012127010566696c65730162020400073a32" + "78" * 50 + "0107010103"
    )
    victim: Doc[Any] = Doc()
    victim.apply_update(doc.get_update())
    with pytest.raises(RuntimeError, match="Cannot apply update"):
        victim.apply_update(forged)
    assert _files(victim) != _files(doc)


def test_text_positions_are_utf8_byte_offsets() -> None:
    """Yjs counts UTF-16 units; anything turning a client's cursor into a pycrdt index must
    convert."""
    doc: Doc[Any] = Doc()
    doc["t"] = text = Text("é🐍x")
    assert len(text) == 7
    text.insert(6, "!")
    assert str(text) == "é🐍!x"


class _Tag(enum.Enum):
    A = "a"


def test_observers_see_the_hash_of_the_transaction_origin() -> None:
    """How `DojoSession` reads the origin tag of each update (pycrdt's stub omits it)."""
    source: Doc[Any] = Doc()
    source["t"] = Text("x")
    doc: Doc[Any] = Doc()
    seen: list[object] = []

    def record(event: TransactionEvent) -> None:
        seen.append(event.transaction.origin())  # type: ignore[attr-defined]

    doc.observe(record)
    with doc.transaction(origin=_Tag.A):
        doc.apply_update(source.get_update())
    assert seen == [hash(_Tag.A)]

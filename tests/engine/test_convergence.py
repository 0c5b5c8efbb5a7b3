"""Concurrent edits delivered in any interleaving converge: every client, the session, and
a session restarted from what was stored end with the same files, even across crashes
that lose the updates not yet flushed to the log (clients resync and send them again).

Each direction of each connection keeps its order, as a websocket does; the interleaving
across connections, the delays, and where crashes happen are random."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Text, merge_updates

from pocdojo.engine.session import DojoSession
from tests.engine.yclient import Room, SimClient

PATHS = ["main.py", "README.md", "lib/util.py"]
ALPHABET = "ab\n é🐍"

edits = st.lists(
    st.tuples(
        st.integers(0, 2),  # which client
        st.sampled_from(["insert", "delete", "create", "deliver", "deliver", "restart"]),
        st.sampled_from(PATHS),
        st.integers(0, 10_000),  # position, folded into the text's length
        st.text(ALPHABET, min_size=1, max_size=4),
        st.integers(1, 3),  # characters to delete / messages to deliver / log entries lost
    ),
    max_size=40,
)


def _offset(text: str, index: int) -> int:
    # pycrdt indexes a Text by UTF-8 byte offset, not by character (Yjs uses UTF-16 units)
    return len(text[:index].encode("utf-8"))


def _edit(client: SimClient, op: str, path: str, pos: int, text: str, n: int) -> None:
    if op == "create" or path not in client.root:
        client.root[path] = Text(text)
        return
    target = client.text(path)
    current = str(target)
    length = len(current)
    if op == "insert":
        target.insert(_offset(current, pos % (length + 1)), text)
    elif length:
        start = pos % length
        end = min(length, start + n)
        del target[_offset(current, start) : _offset(current, end)]


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    clients=st.integers(2, 3),
    script=edits,
    seed=st.integers(0, 2**32 - 1),
    starter=st.booleans(),
)
def test_random_concurrent_edits_converge(
    clients: int,
    script: list[tuple[int, str, str, int, str, int]],
    seed: int,
    starter: bool,
) -> None:
    rng = random.Random(seed)
    session = DojoSession("d")
    log = [session.set_starter_files({"main.py": "print('hi')\n"})] if starter else []
    room = Room(session)
    # client ids decide concurrent conflicts (two clients creating the same file): fixed
    # ones keep each example reproducible
    members = [room.join(SimClient(f"c{i}", client_id=rng.getrandbits(32))) for i in range(clients)]
    for who, op, path, pos, text, n in script:
        if op == "deliver":
            # let a few messages through; the rest wait, so edits race with them
            for _ in range(n):
                room.step(rng)
        elif op == "restart":
            # a crash loses the last n - 1 updates not yet flushed to the log
            log += room.stored[: max(0, len(room.stored) - (n - 1))]
            room.restart(log)
        else:
            _edit(members[who % clients], op, path, pos, text, n)
    room.pump(rng)

    assert room.closed == {}
    expected = room.session.files()
    for client in members:
        assert client.files() == expected
    log += room.stored
    if log:
        assert DojoSession("d", initial_update=merge_updates(*log)).files() == expected

"""files_at rebuilds the files as they were at any moment of the log."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map, Text, TransactionEvent

from pocdojo.engine.history import files_at


def _timeline() -> list[tuple[float, bytes]]:
    doc: Doc[Any] = Doc()
    files = doc.get("files", type=Map)
    log: list[tuple[float, bytes]] = []
    clock = [0.0]

    def record(event: TransactionEvent) -> None:
        log.append((clock[0], event.update))

    doc.observe(record)
    clock[0] = 10.0
    files["main.py"] = Text("print(1)\n")
    clock[0] = 20.0
    files["main.py"].insert(0, "import os\n")
    clock[0] = 30.0
    files["notes.md"] = Text("todo")
    clock[0] = 40.0
    del files["main.py"][0:10]
    clock[0] = 50.0
    del files["notes.md"]
    return log


def test_files_at_several_moments() -> None:
    log = _timeline()
    assert files_at(log, 5.0) == {}
    assert files_at(log, 10.0) == {"main.py": "print(1)\n"}
    assert files_at(log, 25.0) == {"main.py": "import os\nprint(1)\n"}
    assert files_at(log, 30.0) == {"main.py": "import os\nprint(1)\n", "notes.md": "todo"}
    assert files_at(log, 45.0) == {"main.py": "print(1)\n", "notes.md": "todo"}
    assert files_at(log, 1e9) == {"main.py": "print(1)\n"}


def test_files_at_does_not_care_about_log_order() -> None:
    log = _timeline()
    assert files_at(reversed(log), 45.0) == files_at(log, 45.0)


def test_files_at_starts_from_a_snapshot() -> None:
    log = _timeline()
    snapshot: Doc[Any] = Doc()
    for _, update in log[:2]:
        snapshot.apply_update(update)
    base = snapshot.get_update()
    rest = log[2:]
    assert files_at(rest, 20.0, base=base) == {"main.py": "import os\nprint(1)\n"}
    assert files_at(rest, 40.0, base=base) == files_at(log, 40.0)

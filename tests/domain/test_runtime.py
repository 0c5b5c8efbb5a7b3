"""The collector settings a dedicated service process takes (checked in a fresh process:
they are process-wide, and the test process hosts many things)."""

from __future__ import annotations

import subprocess
import sys

from pocdojo.runtime import GC_YOUNG_THRESHOLD


def test_quiet_gc_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    script = (
        "import gc, json; from pocdojo.runtime import quiet_gc; "
        "before = gc.get_freeze_count(); quiet_gc(); "
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()[0]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    before, frozen, young = (int(x) for x in out.stdout.strip()[1:-1].split(","))
    assert before == 0
    assert frozen > 1_000  # the interpreter's and pocdojo's start-up objects
    assert young == GC_YOUNG_THRESHOLD

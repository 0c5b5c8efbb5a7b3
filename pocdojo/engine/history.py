"""The files of a dojo as they were at a given time, rebuilt from its timestamped log."""

from __future__ import annotations

from collections.abc import Iterable

from pocdojo.engine.document import new_doc, read_files
from pocdojo.engine.origin import Origin


def files_at(
    updates: Iterable[tuple[float, bytes]], at: float, *, base: bytes | None = None
) -> dict[str, str]:
    """The files as they were at time ``at``: ``base`` (a snapshot update taken no later
    than ``at``, if any) plus every update whose timestamp is <= ``at``, in any order.

    pycrdt's exception propagates if an update cannot be applied.
    """
    doc = new_doc()
    with doc.transaction(origin=Origin.REPLAY):
        if base is not None:
            doc.apply_update(base)
        for timestamp, update in updates:
            if timestamp <= at:
                doc.apply_update(update)
    return read_files(doc)

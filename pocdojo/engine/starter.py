"""Starter files as the dojo's first Yjs update."""

from __future__ import annotations

from pycrdt import Text

from pocdojo.engine.document import files_map, new_doc
from pocdojo.engine.origin import Origin


def starter_update(files: dict[str, str]) -> bytes:
    """One update that creates each file with its content (the log's first entry)."""
    doc = new_doc()
    with doc.transaction(origin=Origin.CLIENT):
        texts = files_map(doc)
        for path, content in sorted(files.items()):
            texts[path] = Text(content)
    update: bytes = doc.get_update()
    return update

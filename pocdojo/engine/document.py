"""The layout of a dojo document: one root map ``files`` from file path to `pycrdt.Text`."""

from __future__ import annotations

from typing import Any, Final

from pycrdt import Doc, Map, Text

FILES: Final = "files"


def new_doc() -> Doc[Any]:
    """An empty document (random client id, so edits made here never reuse another's ids)."""
    return Doc()


def files_map(doc: Doc[Any]) -> Map[Any]:
    """The document's root ``files`` map (creating a root type writes nothing to the doc)."""
    files: Map[Any] = doc.get(FILES, type=Map)
    return files


def read_files(doc: Doc[Any]) -> dict[str, str]:
    """Every file of ``doc`` as path -> content; entries that are not texts are skipped."""
    with doc.transaction():
        return {
            path: str(value) for path, value in files_map(doc).items() if isinstance(value, Text)
        }

"""Folding and highlighting: the index stores ``fold(name)``, so fold must never change."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from pocdojo.domain.text import fold, highlight, terms


def _reference_fold(text: str) -> str:
    """The definition, one character at a time (what the search projection was built with)."""

    def one(char: str) -> str:
        if char.isascii():
            return char.lower()
        base = unicodedata.normalize("NFKD", char)[:1] or char
        folded = base.lower()
        return folded if len(folded) == 1 else char.lower()[:1] or char

    return "".join(one(c) for c in text)


@given(st.text(max_size=200))
def test_fold_is_the_character_by_character_definition(text: str) -> None:
    folded = fold(text)
    assert folded == _reference_fold(text)
    assert len(folded) == len(text)


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=200))
def test_fold_of_ascii_is_lower(text: str) -> None:
    assert fold(text) == text.lower() == _reference_fold(text)


def test_fold_examples() -> None:
    assert fold("Integração Contínua") == "integracao continua"
    assert fold("İSTANBUL Straße ﬁle") == "istanbul straße fle"  # one character for one
    assert terms("Integração -- ' OR 1=1") == ["integracao", "or", "1", "1"]


def test_highlight_marks_word_prefixes_in_the_original_text() -> None:
    assert highlight("Integração React", ["integ"]) == "<mark>Integ</mark>ração React"
    assert highlight("reactive react", ["react"], prefix=False) == "reactive <mark>react</mark>"
    assert highlight("no match here", ["zzz"]) == ""
    # repeated words in the query mark once
    assert highlight("react app", ["react", "react"]) == "<mark>react</mark> app"
    text = "x" * 300 + " needle " + "y" * 300
    fragment = highlight(text, ["needle"], width=100)
    assert fragment.startswith("…")
    assert fragment.endswith("…")
    assert "<mark>needle</mark>" in fragment

"""Accent- and case-insensitive text: folding, query terms and highlighting."""

from __future__ import annotations

import functools
import re
import unicodedata

_TERM = re.compile(r"[a-z0-9]+")


def _fold_char(char: str) -> str:
    base = unicodedata.normalize("NFKD", char)[:1] or char
    folded = base.lower()
    return folded if len(folded) == 1 else char.lower()[:1] or char


class _FoldTable(dict[int, str]):
    """Code point -> its folded character, for ``str.translate``, filled as characters come
    (bounded by the characters a process sees; the table stops growing at _FOLD_TABLE_MAX)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        folded = char.lower() if char.isascii() else _fold_char(char)
        if len(self) < _FOLD_TABLE_MAX:
            self[code] = folded
        return folded


_FOLD_TABLE_MAX = 65_536
_FOLD_TABLE = _FoldTable()


def fold(text: str) -> str:
    """Lowercase without accents, one character for one (``Integração`` -> ``integracao``).

    Keeping the length lets a match found in the folded text be highlighted in the original.
    ASCII text is ``str.lower`` (C speed); other text is translated character by character.
    """
    if text.isascii():
        return text.lower()
    return text.translate(_FOLD_TABLE)


def terms(text: str) -> list[str]:
    """The searchable words of a query: folded ASCII letters and digits, in order.

    Anything else (SQL or Lucene syntax, wildcards, quotes) is a separator, never syntax.
    """
    return _TERM.findall(fold(text))


@functools.lru_cache(maxsize=1024)
def _patterns(words: tuple[str, ...], prefix: bool) -> list[re.Pattern[str]]:
    """One compiled pattern per distinct word (a search highlights 2 fields of 20 hits)."""
    end = "" if prefix else r"\b"
    return [re.compile(rf"\b{re.escape(word)}{end}") for word in dict.fromkeys(words)]


def highlight(text: str, words: list[str], *, prefix: bool = True, width: int | None = None) -> str:
    """``text`` with the words (as prefixes of its words) wrapped in ``<mark>``.

    With ``width``, only a fragment of about that many characters around the first match.
    """
    folded = fold(text)
    spans: list[tuple[int, int]] = []
    for pattern in _patterns(tuple(words), prefix):
        spans += [(m.start(), m.end()) for m in pattern.finditer(folded)]
    if not spans:
        return ""
    spans.sort()
    start, end = 0, len(text)
    if width is not None and len(text) > width:
        start = max(0, spans[0][0] - width // 3)
        end = min(len(text), start + width)
    out: list[str] = ["…" if start > 0 else ""]
    cursor = start
    for s, e in spans:
        if s < cursor or e > end:
            continue
        out += [text[cursor:s], "<mark>", text[s:e], "</mark>"]
        cursor = e
    out += [text[cursor:end], "…" if end < len(text) else ""]
    return "".join(out)

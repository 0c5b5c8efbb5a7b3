"""Programming-language catalogue: canonical ids, aliases and lookup helpers.

The catalogue is bundled as ``pocdojo/data/languages.json`` (a JSON list of
``{"id", "name", "aliases"}`` objects) and loaded once per process through
:func:`catalogue`.

Lookup keys (canonical id, display name and every alias) are compared after
:func:`normalise_key`: surrounding whitespace stripped, internal whitespace
collapsed to single spaces, lower-cased.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "LANGUAGE_ID_RE",
    "Language",
    "LanguageCatalogue",
    "UnknownLanguage",
    "catalogue",
    "normalise_key",
]

#: Canonical ids are lowercase ASCII slugs: letters/digits separated by single hyphens.
LANGUAGE_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

_DATA_PACKAGE = "pocdojo.data"
_DATA_FILE = "languages.json"
_MAX_SUGGESTIONS = 3


def normalise_key(raw: str) -> str:
    """Return the lookup form of ``raw``: trimmed, whitespace-collapsed, lower-cased."""
    return " ".join(raw.split()).lower()


class UnknownLanguage(ValueError):
    """Raised when a string does not name any language in the catalogue."""

    value: str
    suggestions: list[str]

    def __init__(self, value: str, suggestions: list[str]) -> None:
        self.value = value
        self.suggestions = list(suggestions)
        message = f"unknown language {value!r}"
        if self.suggestions:
            message += f"; did you mean: {', '.join(self.suggestions)}?"
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Language:
    """One catalogue entry."""

    id: str
    name: str
    aliases: tuple[str, ...]


class LanguageCatalogue:
    """Immutable, validated index of :class:`Language` entries."""

    __slots__ = ("_by_id", "_by_key", "_keys", "_sorted")

    def __init__(self, languages: Iterable[Language]) -> None:
        by_id: dict[str, Language] = {}
        by_key: dict[str, str] = {}
        for lang in languages:
            if not LANGUAGE_ID_RE.fullmatch(lang.id):
                raise ValueError(f"invalid language id {lang.id!r}")
            if not lang.name.strip():
                raise ValueError(f"language {lang.id!r} has an empty name")
            if lang.id in by_id:
                raise ValueError(f"duplicate language id {lang.id!r}")
            by_id[lang.id] = lang
            for raw in (lang.id, lang.name, *lang.aliases):
                key = normalise_key(raw)
                if not key:
                    raise ValueError(f"language {lang.id!r} has an empty alias")
                owner = by_key.setdefault(key, lang.id)
                if owner != lang.id:
                    raise ValueError(f"key {key!r} maps to both {owner!r} and {lang.id!r}")
        self._by_id = by_id
        self._by_key = by_key
        # Keys sorted once, so prefix searches and suggestions are deterministic.
        self._keys = sorted(by_key)
        self._sorted = sorted(by_id.values(), key=lambda lg: (lg.name.casefold(), lg.id))

    # -- construction -----------------------------------------------------

    @classmethod
    def from_json(cls, text: str) -> LanguageCatalogue:
        """Build a catalogue from the JSON text of ``languages.json``."""
        raw = json.loads(text)
        if not isinstance(raw, list):
            raise TypeError("language catalogue must be a JSON list")
        langs: list[Language] = []
        for item in raw:
            if not isinstance(item, dict):
                raise TypeError(f"catalogue entry must be an object: {item!r}")
            lang_id = item.get("id")
            name = item.get("name")
            aliases = item.get("aliases", [])
            if not isinstance(lang_id, str) or not isinstance(name, str):
                raise TypeError(f"catalogue entry needs string id and name: {item!r}")
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise TypeError(f"aliases of {lang_id!r} must be a list of strings")
            langs.append(Language(id=lang_id, name=name, aliases=tuple(aliases)))
        return cls(langs)

    @classmethod
    def bundled(cls) -> LanguageCatalogue:
        """Load the catalogue shipped in ``pocdojo/data/languages.json``."""
        text = resources.files(_DATA_PACKAGE).joinpath(_DATA_FILE).read_text(encoding="utf-8")
        return cls.from_json(text)

    # -- queries ----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, raw: object) -> bool:
        """True if ``raw`` is a string that :meth:`normalise` would accept."""
        return isinstance(raw, str) and normalise_key(raw) in self._by_key

    def normalise(self, raw: str) -> str:
        """Map an id, display name or alias (any case/spacing) to its canonical id.

        Raises :class:`UnknownLanguage` with up to three close canonical ids.
        """
        key = normalise_key(raw)
        lang_id = self._by_key.get(key)
        if lang_id is None:
            raise UnknownLanguage(raw, self.suggest(raw))
        return lang_id

    def suggest(self, raw: str, limit: int = _MAX_SUGGESTIONS) -> list[str]:
        """Up to ``limit`` canonical ids whose id, name or alias is close to ``raw``."""
        key = normalise_key(raw)
        if not key or limit <= 0:
            return []
        matches = difflib.get_close_matches(key, self._keys, n=limit * 4, cutoff=0.6)
        out: list[str] = []
        for match in matches:
            lang_id = self._by_key[match]
            if lang_id not in out:
                out.append(lang_id)
                if len(out) == limit:
                    break
        return out

    def get(self, id: str) -> Language:
        """Return the language with canonical id ``id`` (exact match)."""
        try:
            return self._by_id[id]
        except KeyError:
            raise UnknownLanguage(id, self.suggest(id)) from None

    def all(self) -> list[Language]:
        """Every language, ordered by display name (case-insensitive)."""
        return list(self._sorted)

    def search_prefix(self, prefix: str, limit: int) -> list[Language]:
        """Languages whose id, name or an alias starts with ``prefix`` (for typeahead).

        Ranking: exact key match first, then id/name prefix matches, then alias
        prefix matches; ties broken by display name. An empty prefix returns the
        first ``limit`` languages by name.
        """
        if limit <= 0:
            return []
        key = normalise_key(prefix)
        if not key:
            return self._sorted[:limit]
        ranks: dict[str, int] = {}
        for lang in self._sorted:
            primary = (normalise_key(lang.id), normalise_key(lang.name))
            if key in primary:
                rank = 0
            elif any(p.startswith(key) for p in primary):
                rank = 1
            else:
                aliases = [normalise_key(a) for a in lang.aliases]
                if key in aliases:
                    rank = 0
                elif any(a.startswith(key) for a in aliases):
                    rank = 2
                else:
                    continue
            ranks[lang.id] = rank
        # self._sorted is already name-ordered and sorted() is stable.
        hits = sorted((lg for lg in self._sorted if lg.id in ranks), key=lambda lg: ranks[lg.id])
        return hits[:limit]


@functools.cache
def catalogue() -> LanguageCatalogue:
    """The process-wide bundled catalogue (loaded on first use)."""
    return LanguageCatalogue.bundled()

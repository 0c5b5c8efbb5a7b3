"""Tests for the bundled language catalogue."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from pocdojo.domain.languages import (
    Language,
    LanguageCatalogue,
    UnknownLanguage,
    catalogue,
    normalise_key,
)

SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def _raw_entries() -> list[dict[str, object]]:
    text = resources.files("pocdojo.data").joinpath("languages.json").read_text("utf-8")
    data = json.loads(text)
    assert isinstance(data, list)
    return data


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("py", "python"),
        ("Python", "python"),
        ("python3", "python"),
        (" PYTHON ", "python"),
        ("python", "python"),
        ("C#", "csharp"),
        ("c  sharp", "csharp"),
        ("cs", "csharp"),
        ("C++", "cpp"),
        ("cxx", "cpp"),
        ("golang", "go"),
        ("js", "javascript"),
        ("Node.js", "javascript"),
        ("ts", "typescript"),
        ("rb", "ruby"),
        ("rs", "rust"),
        ("kt", "kotlin"),
        ("sh", "bash"),
        ("shell", "bash"),
        ("Terraform", "hcl"),
        ("hcl", "hcl"),
        ("Objective-C", "objective-c"),
        ("F#", "fsharp"),
        ("\tCOBOL\n", "cobol"),
    ],
)
def test_normalise_known(raw: str, expected: str) -> None:
    assert catalogue().normalise(raw) == expected


def test_unknown_language_suggests_close_ids() -> None:
    with pytest.raises(UnknownLanguage) as excinfo:
        catalogue().normalise("pythn")
    err = excinfo.value
    assert err.value == "pythn"
    assert "python" in err.suggestions
    assert len(err.suggestions) <= 3
    assert len(set(err.suggestions)) == len(err.suggestions)
    assert all(catalogue().get(s).id == s for s in err.suggestions)


def test_unknown_language_without_suggestions() -> None:
    with pytest.raises(UnknownLanguage) as excinfo:
        catalogue().normalise("zzzzqqqqxxxx")
    assert excinfo.value.suggestions == []
    with pytest.raises(UnknownLanguage):
        catalogue().normalise("   ")


def test_unknown_language_is_value_error() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        catalogue().normalise("javscript")


def test_catalogue_size_and_required_entries() -> None:
    cat = catalogue()
    assert len(cat) >= 100
    for lang_id in (
        "python", "typescript", "javascript", "go", "java", "kotlin", "swift", "rust",
        "csharp", "cpp", "c", "sql", "bash", "html", "css", "solidity", "hcl",
        "dockerfile", "dart", "elixir", "cobol", "objective-c", "fsharp",
    ):  # fmt: skip
        assert cat.get(lang_id).id == lang_id


def test_get_unknown_raises() -> None:
    with pytest.raises(UnknownLanguage):
        catalogue().get("Python")  # get() takes canonical ids only


def test_every_id_is_a_valid_slug() -> None:
    for entry in _raw_entries():
        lang_id = entry["id"]
        assert isinstance(lang_id, str)
        assert SLUG_RE.fullmatch(lang_id), lang_id


def test_no_key_maps_to_two_ids() -> None:
    """Ids, display names and aliases (normalised) must be globally unambiguous."""
    owners: dict[str, str] = {}
    ids: set[str] = set()
    for entry in _raw_entries():
        lang_id, name, aliases = entry["id"], entry["name"], entry["aliases"]
        assert isinstance(lang_id, str)
        assert isinstance(name, str)
        assert isinstance(aliases, list)
        assert lang_id not in ids, f"duplicate id {lang_id}"
        ids.add(lang_id)
        for raw in (lang_id, name, *aliases):
            assert isinstance(raw, str)
            key = normalise_key(raw)
            assert key, f"empty key in {lang_id}"
            owner = owners.setdefault(key, lang_id)
            assert owner == lang_id, f"{key!r} maps to both {owner} and {lang_id}"


def test_every_key_normalises_back_to_its_id() -> None:
    cat = catalogue()
    for lang in cat.all():
        for raw in (lang.id, lang.name, *lang.aliases):
            assert cat.normalise(raw) == lang.id
            assert cat.normalise(f"  {raw.upper()}  ") == lang.id


def test_constructor_rejects_collisions_and_bad_ids() -> None:
    with pytest.raises(ValueError, match="maps to both"):
        LanguageCatalogue(
            [Language("a", "A", ("x",)), Language("b", "B", ("X",))],
        )
    with pytest.raises(ValueError, match="invalid language id"):
        LanguageCatalogue([Language("Bad Id", "Bad", ())])
    with pytest.raises(ValueError, match="duplicate language id"):
        LanguageCatalogue([Language("a", "A", ()), Language("a", "A2", ())])


def test_all_is_sorted_by_name_and_copied() -> None:
    cat = catalogue()
    langs = cat.all()
    assert [lg.name.casefold() for lg in langs] == sorted(lg.name.casefold() for lg in langs)
    langs.clear()
    assert cat.all()


def test_catalogue_is_cached() -> None:
    assert catalogue() is catalogue()


def test_search_prefix() -> None:
    cat = catalogue()
    ids = [lg.id for lg in cat.search_prefix("PY", 5)]
    assert ids[0] == "python"
    assert [lg.id for lg in cat.search_prefix("golang", 5)] == ["go"]
    assert cat.search_prefix("c", 1)[0].id == "c"
    assert len(cat.search_prefix("c", 3)) == 3
    ts = [lg.id for lg in cat.search_prefix("ts", 10)]
    assert ts[0] == "typescript"
    assert cat.search_prefix("zzzz", 10) == []
    assert cat.search_prefix("py", 0) == []
    assert len(cat.search_prefix("", 7)) == 7


def test_search_prefix_matches_aliases_case_insensitively() -> None:
    ids = [lg.id for lg in catalogue().search_prefix("Terra", 10)]
    assert "hcl" in ids

"""Tests for the deterministic seed-corpus generator."""

from __future__ import annotations

import datetime
import random
import re
from collections import Counter
from itertools import islice

import pytest

from pocdojo.domain.languages import catalogue
from pocdojo.domain.seed_corpus import SeedPoc, generate_pocs

SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
N = 5_000


@pytest.fixture(scope="module")
def sample() -> list[SeedPoc]:
    return list(generate_pocs(N, seed=1234))


def test_same_seed_same_records() -> None:
    assert list(generate_pocs(500, seed=7)) == list(generate_pocs(500, seed=7))


def test_different_seed_different_records() -> None:
    assert list(generate_pocs(50, seed=1)) != list(generate_pocs(50, seed=2))


def test_prefix_stability() -> None:
    """The first k records do not depend on how many were requested."""
    assert list(generate_pocs(100, seed=3)) == list(islice(generate_pocs(1000, seed=3), 100))


def test_does_not_touch_global_random() -> None:
    random.seed(99)
    expected = random.random()
    random.seed(99)
    list(generate_pocs(200, seed=5))
    assert random.random() == expected


def test_count(sample: list[SeedPoc]) -> None:
    assert len(sample) == N
    assert list(generate_pocs(0, seed=1)) == []


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="count"):
        generate_pocs(-1, seed=1)
    with pytest.raises(ValueError, match="year"):
        generate_pocs(1, seed=1, year_range=(2026, 2023))


def test_field_limits(sample: list[SeedPoc]) -> None:
    for poc in sample:
        assert 1 <= len(poc.name) <= 120
        assert poc.name == poc.name.strip()
        assert 1 <= len(poc.description) <= 2000
        assert 1 <= len(poc.languages) <= 3
        assert len(set(poc.languages)) == len(poc.languages)
        assert 0 <= len(poc.tags) <= 6
        assert len(set(poc.tags)) == len(poc.tags)
        assert poc.status in {"active", "draft", "archived"}
        assert datetime.date(2023, 1, 1) <= poc.built_on <= datetime.date(2026, 12, 31)
        if poc.repo_url is not None:
            assert poc.repo_url.startswith("https://git.example.test/")
            slug = poc.repo_url.removeprefix("https://git.example.test/")
            assert SLUG_RE.fullmatch(slug), poc.repo_url


def test_languages_are_canonical_catalogue_ids(sample: list[SeedPoc]) -> None:
    cat = catalogue()
    for poc in sample:
        for lang in poc.languages:
            assert cat.normalise(lang) == lang


def test_tags_are_valid_slugs(sample: list[SeedPoc]) -> None:
    for poc in sample:
        for tag in poc.tags:
            assert len(tag) <= 40
            assert SLUG_RE.fullmatch(tag), tag


def test_some_names_are_not_ascii(sample: list[SeedPoc]) -> None:
    non_ascii = [p.name for p in sample if not p.name.isascii()]
    assert non_ascii
    share = len(non_ascii) / len(sample)
    assert 0.05 <= share <= 0.25
    joined = "".join(non_ascii)
    for ch in "çãéó":
        assert ch in joined


def test_distributions_are_realistic(sample: list[SeedPoc]) -> None:
    statuses = Counter(p.status for p in sample)
    assert statuses["active"] > statuses["draft"] > 0
    assert statuses["archived"] > 0
    langs = Counter(lang for p in sample for lang in p.languages)
    top = {lang for lang, _ in langs.most_common(6)}
    assert {"python", "typescript"} <= top
    tags = Counter(tag for p in sample for tag in p.tags)
    ((_, most_n),) = tags.most_common(1)
    assert most_n > 5 * tags.most_common()[-1][1]
    assert any(p.repo_url is None for p in sample)
    assert any("\n- " in p.description for p in sample)
    assert len({p.name for p in sample}) > N // 2
    years = {p.built_on.year for p in sample}
    assert years == {2023, 2024, 2025, 2026}


def test_custom_year_range() -> None:
    for poc in generate_pocs(300, seed=11, year_range=(2020, 2020)):
        assert poc.built_on.year == 2020

"""The film plan as pure values: order, counts, excerpts, the content hash."""

from __future__ import annotations

import datetime as dt

from pocdojo.video.plan import MAX_POCS, FilmInputs, PocInput, RenderSpec, build_plan, excerpt


def _poc(i: int, **kw: object) -> PocInput:
    data: dict[str, object] = {
        "id": f"p{i}",
        "version": 1,
        "name": f"poc {i}",
        "description": "",
        "languages": ("go",) if i % 2 else ("python", "rust"),
        "tags": ("a", f"t{i % 3}"),
        "built_on": dt.date(2026, 12, 1) - dt.timedelta(days=i),
    }
    data.update(kw)
    return PocInput.model_validate(data)


def _inputs(pocs: list[PocInput], **kw: object) -> FilmInputs:
    data: dict[str, object] = {
        "tenant_id": "t",
        "user_id": "u",
        "user_name": "Ana",
        "tenant_name": "Acme",
        "year": 2026,
        "format": "landscape",
        "pocs": pocs,
    }
    data.update(kw)
    return FilmInputs.model_validate(data)


def test_segments_follow_built_on_and_add_up() -> None:
    spec = RenderSpec()
    plan = build_plan(_inputs([_poc(i) for i in range(5)]), spec)
    kinds = [s.kind for s in plan.segments]
    assert kinds == ["intro", "poc", "poc", "poc", "poc", "poc", "outro"]
    days = [s.poc.built_on for s in plan.segments if s.poc]
    assert days == sorted(days)
    assert [s.poc.number for s in plan.segments if s.poc] == [1, 2, 3, 4, 5]
    assert plan.total_frames == 90 + 5 * 120 + 150
    starts = [s.start_frame for s in plan.segments]
    assert starts == [sum(s.frames for s in plan.segments[:i]) for i in range(len(starts))]
    assert plan.duration_s == plan.total_frames / 30
    intro, outro = plan.segments[0].intro, plan.segments[-1].outro
    assert intro is not None
    assert outro is not None
    assert (intro.poc_count, intro.language_count, intro.tag_count) == (5, 3, 4)
    assert outro.top_languages[0] == ("python", 3)
    assert plan.thumbnail_segment == 0  # no images: the intro


def test_content_hash_names_the_content() -> None:
    spec = RenderSpec()
    base = build_plan(_inputs([_poc(1), _poc(2)]), spec).content_hash
    assert build_plan(_inputs([_poc(1), _poc(2)]), spec).content_hash == base
    assert build_plan(_inputs([_poc(1), _poc(2, version=2)]), spec).content_hash != base
    assert build_plan(_inputs([_poc(1)]), spec).content_hash != base
    assert build_plan(_inputs([_poc(1), _poc(2)], format="portrait"), spec).content_hash != base
    assert build_plan(_inputs([_poc(1), _poc(2)]), RenderSpec(crf=20)).content_hash != base


def test_a_huge_year_is_capped_with_a_note() -> None:
    plan = build_plan(_inputs([_poc(i) for i in range(MAX_POCS + 5)]), RenderSpec())
    assert sum(1 for s in plan.segments if s.kind == "poc") == MAX_POCS
    assert plan.notes
    outro = plan.segments[-1].outro
    assert outro is not None
    assert outro.poc_count == MAX_POCS + 5


def test_excerpt_strips_markdown_and_cuts_at_a_word() -> None:
    assert excerpt("# Título\n\nUm **protótipo** com [link](https://x.io) e `code`") == (
        "Título Um protótipo com link e code"
    )
    long = excerpt("palavra " * 100, limit=30)
    assert long.endswith("…")
    assert len(long) <= 31
    assert "palavr…" not in long


def test_sizes_are_even_and_match_the_format() -> None:
    assert (RenderSpec.for_format("portrait").width, RenderSpec.for_format("portrait").height) == (
        720,
        1280,
    )
    small = RenderSpec.for_format("landscape", scale=3)
    assert small.width % 2 == 0
    assert small.height % 2 == 0

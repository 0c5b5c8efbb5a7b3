"""Pure logic: report periods and their tiling into aligned rollup buckets."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pocdojo.errors import ValidationFailed
from pocdojo.reports.period import Period, add_months, buckets, month_index

months = st.integers(min_value=2000 * 12, max_value=2040 * 12).map(
    lambda i: dt.date(i // 12, i % 12 + 1, 1)
)


@given(months, st.integers(min_value=0, max_value=119))
def test_buckets_tile_the_period_exactly(first: dt.date, length: int) -> None:
    period = Period(first, add_months(first, length))
    tiles = buckets(period)
    covered = [month_index(start) + k for start, span in tiles for k in range(span)]
    assert covered == list(range(month_index(period.first), month_index(period.last) + 1))
    for start, span in tiles:
        assert month_index(start) % span == 0
    # Dyadic: never more than two buckets per span size.
    assert len(tiles) <= 2 * 6
    assert buckets(period, spans=(1,)) == [(m, 1) for m in period.months()]


def test_parse_defaults_and_limits() -> None:
    period = Period.parse(None, "2026-03")
    assert (period.first, period.last) == (dt.date(2025, 4, 1), dt.date(2026, 3, 1))
    assert period.start == dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    assert period.end == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    assert len(period.months()) == 12
    for bad in (("2026-13", None), ("2026-05", "2026-01"), ("2000-01", "2026-01"), ("x", None)):
        with pytest.raises(ValidationFailed):
            Period.parse(*bad)

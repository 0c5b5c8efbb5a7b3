"""A report period: whole calendar months (UTC), as the rollups count them."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pocdojo.errors import FieldError, ValidationFailed

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
MAX_MONTHS = 120
DEFAULT_MONTHS = 12


def _parse_month(raw: str, loc: str, errors: list[FieldError]) -> dt.date | None:
    match = _MONTH.match(raw.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        errors.append(FieldError(loc, "a month as YYYY-MM (e.g. 2026-01)"))
        return None
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, slots=True)
class Period:
    """``first`` .. ``last`` inclusive, both first days of a month."""

    first: dt.date
    last: dt.date

    @classmethod
    def parse(
        cls,
        raw_from: str | None,
        raw_to: str | None,
        *,
        today: dt.date | None = None,
        loc: str = "query",
    ) -> Period:
        """From ``YYYY-MM`` strings; missing ends default to the last 12 months."""
        errors: list[FieldError] = []
        current = (today or dt.datetime.now(dt.UTC).date()).replace(day=1)
        last = _parse_month(raw_to, f"{loc}.to", errors) if raw_to else current
        first = _parse_month(raw_from, f"{loc}.from", errors) if raw_from else None
        if errors or last is None:
            raise ValidationFailed(errors)
        first = first or add_months(last, -(DEFAULT_MONTHS - 1))
        if first > last:
            raise ValidationFailed([FieldError(f"{loc}.from", "must not be after 'to'")])
        if (last.year - first.year) * 12 + last.month - first.month >= MAX_MONTHS:
            raise ValidationFailed([FieldError(f"{loc}.from", f"at most {MAX_MONTHS} months")])
        return cls(first, last)

    @property
    def end(self) -> dt.datetime:
        """The exclusive upper bound as a UTC instant (the first day after the period)."""
        nxt = add_months(self.last, 1)
        return dt.datetime(nxt.year, nxt.month, 1, tzinfo=dt.UTC)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.first.year, self.first.month, 1, tzinfo=dt.UTC)

    def months(self) -> list[dt.date]:
        out, month = [], self.first
        while month <= self.last:
            out.append(month)
            month = add_months(month, 1)
        return out

    def to_json(self) -> dict[str, str]:
        return {"from": self.first.strftime("%Y-%m"), "to": self.last.strftime("%Y-%m")}


SPANS = (32, 16, 8, 4, 2, 1)
"""Bucket sizes of the tenant-wide rollup rows, in months (see migration 0005)."""


def month_index(month: dt.date) -> int:
    return month.year * 12 + month.month - 1


def from_index(index: int) -> dt.date:
    return dt.date(index // 12, index % 12 + 1, 1)


def buckets(period: Period, spans: tuple[int, ...] = SPANS) -> list[tuple[dt.date, int]]:
    """The fewest aligned buckets ``(first month, span)`` that tile the period exactly."""
    out: list[tuple[dt.date, int]] = []
    index, last = month_index(period.first), month_index(period.last)
    while index <= last:
        span = next(s for s in spans if index % s == 0 and index + s - 1 <= last)
        out.append((from_index(index), span))
        index += span
    return out

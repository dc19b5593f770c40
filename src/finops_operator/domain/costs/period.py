"""Periods of time, and monthly amounts prorated to them by calendar month."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from fractions import Fraction

from finops_operator.domain.money import QUANTUM, ZERO, money_context


@dataclass(frozen=True)
class Period:
    """A half-open interval [start, end) of time, in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must be timezone-aware datetimes")
        if self.end <= self.start:
            raise ValueError(f"period end {self.end} is not after its start {self.start}")

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        """The calendar month, e.g. Period.month(2026, 11) for 2026-11."""
        start = datetime(year, month, 1, tzinfo=UTC)
        days = calendar.monthrange(year, month)[1]
        return cls(start, start + timedelta(days=days))

    @property
    def hours(self) -> Decimal:
        return Decimal(int((self.end - self.start).total_seconds())) / 3600


def utc_timestamp(moment: datetime) -> str:
    """A moment as reports write it: RFC 3339 in UTC, to the second (2026-11-03T12:00:00Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prorated_monthly(amount: Decimal, period: Period) -> Decimal:
    """A monthly amount for `period`: each calendar month it overlaps contributes
    `amount x overlap / length of that month`. A whole calendar month is `amount`
    exactly; a 1-day period in a 30-day month is amount/30 (to QUANTUM, rounded down).
    """
    if amount == 0:
        return ZERO
    months = Fraction(0)
    cursor = period.start
    while cursor < period.end:
        month_start = cursor.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(month_start.year, month_start.month)[1]
        month_end = month_start + timedelta(days=days)
        overlap = min(month_end, period.end) - cursor
        months += Fraction(int(overlap.total_seconds()), days * 86400)
        cursor = min(month_end, period.end)
    exact = Fraction(amount) * months
    with localcontext(money_context()):
        value = Decimal(exact.numerator) / Decimal(exact.denominator)
        carried = value.quantize(QUANTUM, rounding=ROUND_DOWN)
        return value if value == carried else carried

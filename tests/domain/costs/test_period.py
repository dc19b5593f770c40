"""Periods, and the monthly platform cost prorated by calendar month."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from finops_operator.domain.costs.period import Period, prorated_monthly
from tests.domain.costs.prices import NOVEMBER, D


def test_the_monthly_platform_cost_is_prorated_by_calendar_month() -> None:
    day = datetime(2026, 11, 5, tzinfo=UTC)
    assert prorated_monthly(D(300), NOVEMBER) == D(300)
    assert prorated_monthly(D(300), Period(day, day.replace(day=6))) == D(10)
    # October has 31 days: 100/31 carried to 1e-12, rounded down.
    october = datetime(2026, 10, 5, tzinfo=UTC)
    assert prorated_monthly(D(100), Period(october, october.replace(day=6))) == D("3.225806451612")
    # Oct 31 and Nov 1: a 31st of October's amount plus a 30th of November's.
    across = Period(datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    assert prorated_monthly(D(3100), across) == D("203.333333333333")


def test_a_period_must_be_aware_and_not_empty() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Period(datetime(2026, 11, 1), datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="not after"):
        Period(NOVEMBER.end, NOVEMBER.start)
    assert Period.month(2024, 2).hours == D(29 * 24)

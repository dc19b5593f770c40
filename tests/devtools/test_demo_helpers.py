"""The demo's own figures: the simulated window, the months reported, the budget."""

from __future__ import annotations

import datetime

from finops_devtools.demo.reports_step import budget_for
from finops_devtools.demo.scenario import refreshed_periods, simulated_window


def test_the_simulated_window_ends_at_the_last_full_hour() -> None:
    start, end = simulated_window(
        10, datetime.datetime(2026, 11, 27, 13, 27, 5, tzinfo=datetime.UTC)
    )
    assert end == datetime.datetime(2026, 11, 27, 13, tzinfo=datetime.UTC)
    assert end - start == datetime.timedelta(days=10)


def test_refreshed_periods() -> None:
    end = datetime.datetime(2026, 11, 27, 13, tzinfo=datetime.UTC)
    assert refreshed_periods(end - datetime.timedelta(days=10), end) == ["2026-11"]
    assert refreshed_periods(end - datetime.timedelta(days=30), end) == ["2026-11", "2026-10"]
    january = datetime.datetime(2027, 1, 2, tzinfo=datetime.UTC)
    assert refreshed_periods(january - datetime.timedelta(days=3), january) == [
        "2027-01",
        "2026-12",
    ]


def test_budget_for_is_round_and_leaves_headroom() -> None:
    from decimal import Decimal

    assert budget_for(Decimal("11291.66")) == Decimal(14200)
    assert budget_for(Decimal("0")) == Decimal(100)
    assert Decimal("11291.66") / budget_for(Decimal("11291.66")) < Decimal("0.8")

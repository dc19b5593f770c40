"""Partial periods, the month-end forecast and unit costs (docs/report.md, docs/costreport.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from finops_operator.domain.costs.finance import (
    data_from,
    data_span,
    forecast,
    is_partial,
    month_of,
    unit_costs,
)
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import compute_costs
from finops_operator.domain.costs.usage import GpuUsage, TokenUsage
from tests.domain.costs.prices import H100, NOVEMBER, D, pricing

DAYS = [
    Period(NOVEMBER.start + timedelta(days=i), NOVEMBER.start + timedelta(days=i + 1))
    for i in range(30)
]


def test_the_data_starts_on_the_first_day_with_figures() -> None:
    measured = [False] * 9 + [True] * 21  # installed on the 10th
    assert data_from(NOVEMBER, DAYS, measured) == datetime(2026, 11, 10, tzinfo=UTC)
    assert data_from(NOVEMBER, DAYS, [True] * 30) == NOVEMBER.start
    assert data_from(NOVEMBER, (), ()) == NOVEMBER.start


def test_a_month_is_partial_when_its_data_starts_late_or_ends_early() -> None:
    assert is_partial(NOVEMBER, datetime(2026, 11, 10, tzinfo=UTC), NOVEMBER.end)
    assert is_partial(NOVEMBER, NOVEMBER.start, datetime(2026, 11, 20, tzinfo=UTC))
    assert not is_partial(NOVEMBER, NOVEMBER.start, NOVEMBER.end)
    span = data_span(NOVEMBER, "2026-11", NOVEMBER.end, DAYS, [False] + [True] * 29)
    assert span.partial and span.start == datetime(2026, 11, 2, tzinfo=UTC)
    assert span.forecast(D(100)) is None  # the month is over: its total is final


def test_the_forecast_extrapolates_the_run_rate_of_the_data_to_the_months_end() -> None:
    # 10 days of data (the 11th to the 21st) cost 300: 30 a day, 10 days to go.
    start, through = datetime(2026, 11, 11, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)
    assert forecast(D(300), NOVEMBER, start, through) == D(600)
    assert forecast(D(300), NOVEMBER, start, start) is None
    assert month_of("2026-11") == NOVEMBER and month_of("2026-11-01/2026-11-03") is None


def test_unit_costs_are_per_busy_gpu_hour_and_per_1k_tokens() -> None:
    costs = compute_costs(
        period=NOVEMBER,
        pricing=pricing(sharedMonthly="0"),
        gpu_usage=[GpuUsage("a", H100, D(10), D(8))],
        token_usage=[TokenUsage("a", "gpt-4o", D(2000))],
    )
    units = unit_costs(costs.row("a"))
    # 10 GPU hours at 4.00, 2 of them idle: 40.00 over 8 busy hours.
    assert units.busy_gpu_hours == 8 and units.cost_per_busy_gpu_hour == 5
    assert units.cost_per_1k_tokens == Decimal("0.01")
    assert unit_costs(costs.untagged).cost_per_busy_gpu_hour is None

"""CostReports with daily spend, built as the operator builds them, for the trend's tests.

Two months of a small cluster: October, and November through the 12th at noon,
with cost centers (the allocation), a platform cost, and one team whose GPU
hours jump by half from November 5th on: the week-over-week change to find.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Any, Final

from finops_operator.domain.config import Config, PricingConfig
from finops_operator.domain.costs.allocation import allocate
from finops_operator.domain.costs.cost_reports import ReportInput, desired_reports
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import compute_costs
from finops_operator.domain.costs.trend import DayUsage, daily_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.domain.money import money_context

UTC = datetime.UTC
THROUGH: Final = datetime.datetime(2026, 11, 12, 12, 0, tzinfo=UTC)
FIRST_DAY: Final = datetime.date(2026, 10, 1)
JUMP_DAY: Final = datetime.date(2026, 11, 5)
TEAMS: Final = {  # team -> (GPU model, cost center, GPU hours a day)
    "search": ("H100", "cc-1042", Decimal(40)),
    "recsys": ("A100", "cc-2001", Decimal(30)),
    "vision": ("H100", "cc-1042", Decimal("12.5")),
}


def pricing() -> PricingConfig:
    return Config().pricing.model_copy(update={"shared_monthly": Decimal("3100")})


def _day_usage(window: Period) -> DayUsage:
    """The cluster (4 H100 and 2 A100) exists from FIRST_DAY on."""
    day = window.start.date()
    if day < FIRST_DAY:
        return DayUsage(window)
    fraction = Decimal(int((window.end - window.start).total_seconds())) / 86400
    gpu = []
    for team, (model, center, hours) in TEAMS.items():
        if team == "search" and day >= JUMP_DAY:
            hours = hours * Decimal("1.5")
        gpu.append(GpuUsage(team, model, hours * fraction, cost_center=center))
    gpu.append(GpuUsage("__untagged__", "A100", Decimal(2) * fraction))
    tokens = [TokenUsage("search", "gpt-4o", Decimal("250000.4") * fraction)]
    hours = window.hours
    capacity = [CapacityUsage("H100", hours * 4), CapacityUsage("A100", hours * 2)]
    return DayUsage(window, gpu, tokens, capacity)


def _windows(period: Period) -> list[Period]:
    out, start = [], period.start
    while start < period.end:
        end = min(start + datetime.timedelta(days=1), period.end)
        out.append(Period(start, end))
        start = end
    return out


def month_reports(period: Period, label: str) -> list[dict[str, Any]]:
    """The CostReports of `period` (as read through its end), with their daily spend."""
    prices = pricing()
    days = [_day_usage(window) for window in _windows(period)]
    hours: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    tokens: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    offered: dict[str, Decimal] = defaultdict(Decimal)
    with localcontext(money_context()):
        for day in days:
            for capacity in day.capacity:
                offered[capacity.gpu_model] += capacity.gpu_hours
            for used in day.gpu:
                hours[(used.team, used.gpu_model, used.cost_center)] += used.gpu_hours
            for counted in day.tokens:
                tokens[(counted.team, counted.model)] += counted.tokens
    gpu = [
        GpuUsage(team, model, value, cost_center=center)
        for (team, model, center), value in sorted(hours.items())
    ]
    whole = [TokenUsage(t, m, v.to_integral_value()) for (t, m), v in sorted(tokens.items())]
    capacity = [CapacityUsage(model, hours) for model, hours in sorted(offered.items())]
    costs = compute_costs(
        period=period, pricing=prices, gpu_usage=gpu, token_usage=whole, capacity=capacity
    )
    data = ReportInput(
        period=label,
        currency=costs.currency,
        teams=costs.teams,
        untagged=costs.untagged,
        cluster=costs.cluster,
        jobs=[],
        data_through=period.end,
        budgets={},
        allocation=allocate(costs, gpu, whole, prices),
        daily=daily_costs(costs, whole, days, prices),
    )
    return [{**obj, "status": status} for obj, status in desired_reports(data, THROUGH)]


def two_months() -> list[dict[str, Any]]:
    october = Period.month(2026, 10)
    november = Period(datetime.datetime(2026, 11, 1, tzinfo=UTC), THROUGH)
    return [*month_reports(november, "2026-11"), *month_reports(october, "2026-10")]


def one_month(through: datetime.datetime) -> list[dict[str, Any]]:
    return month_reports(Period(datetime.datetime(2026, 11, 1, tzinfo=UTC), through), "2026-11")


def statuses(reports: Sequence[dict[str, Any]], scope: str) -> list[dict[str, Any]]:
    return [r["status"] for r in reports if r["spec"]["scope"] == scope]

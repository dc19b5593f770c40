"""Daily spend and week-over-week change: the days add up to the period, the change is
the last seven days against the seven before (docs/cost-model.md, "Daily spend")."""

from __future__ import annotations

import datetime
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import localcontext

import pytest

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.trend import (
    CLUSTER,
    Change,
    DayUsage,
    NotEnoughHistory,
    WeekOverWeek,
    contiguous_days,
    daily_costs,
    week_over_week,
)
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.domain.money import ZERO, money_context
from tests.domain.costs.prices import A100, H100, D, pricing

UTC = datetime.UTC
START = datetime.datetime(2026, 11, 1, tzinfo=UTC)


def total(values: Iterable[D]) -> D:
    """A sum as the cost model adds (exact: 60 digits)."""
    with localcontext(money_context()):
        return sum(values, ZERO)


def windows(count: int, last_hours: int = 24) -> list[Period]:
    days = [
        Period(START + datetime.timedelta(days=i), START + datetime.timedelta(days=i + 1))
        for i in range(count - 1)
    ]
    last = START + datetime.timedelta(days=count - 1)
    return [*days, Period(last, last + datetime.timedelta(hours=last_hours))]


def period_of(
    days: Sequence[DayUsage],
) -> tuple[Period, list[GpuUsage], list[TokenUsage], list[CapacityUsage]]:
    """The period's usage as usage_reader makes it: the days summed, whole tokens."""
    hours: dict[tuple[str, str], D] = defaultdict(D)
    tokens: dict[tuple[str, str, str], D] = defaultdict(D)
    offered: dict[str, D] = defaultdict(D)
    with localcontext(money_context()):
        for day in days:
            for used_gpu in day.gpu:
                hours[(used_gpu.team, used_gpu.gpu_model)] += used_gpu.gpu_hours
            for used in day.tokens:
                tokens[(used.team, used.model, used.direction)] += used.tokens
            for capacity in day.capacity:
                offered[capacity.gpu_model] += capacity.gpu_hours
    period = Period(days[0].window.start, days[-1].window.end)
    gpu = [GpuUsage(team, model, value) for (team, model), value in sorted(hours.items())]
    whole = [
        TokenUsage(team, model, value.to_integral_value(), "output" if way == "output" else "input")
        for (team, model, way), value in sorted(tokens.items())
    ]
    return period, gpu, whole, [CapacityUsage(m, v) for m, v in sorted(offered.items())]


def costs_of(
    days: Sequence[DayUsage], prices: PricingConfig
) -> tuple[CostReport, list[TokenUsage]]:
    period, gpu, tokens, capacity = period_of(days)
    report = compute_costs(
        period=period, pricing=prices, gpu_usage=gpu, token_usage=tokens, capacity=capacity
    )
    return report, tokens


def capacity(window: Period) -> list[CapacityUsage]:
    """8 H100 and 4 A100 all day."""
    return [CapacityUsage(H100, window.hours * 8), CapacityUsage(A100, window.hours * 4)]


def sample_days() -> list[DayUsage]:
    """Three days of 8 H100 and 4 A100: team a on H100 every day, b on A100 only on
    day 2, c tokens only, untagged GPU hours on day 3 (a partial day of 13 hours)."""
    spans = windows(3, last_hours=13)
    return [
        DayUsage(
            spans[0],
            [GpuUsage("a", H100, D("24"))],
            [TokenUsage("a", "gpt-4o", D("1000.4"))],
            capacity(spans[0]),
        ),
        DayUsage(
            spans[1],
            [GpuUsage("a", H100, D("12.5")), GpuUsage("b", A100, D("48"))],
            [TokenUsage("c", "llama", D("20000.3")), TokenUsage("a", "gpt-4o", D("999.9"))],
            capacity(spans[1]),
        ),
        DayUsage(
            spans[2],
            [GpuUsage("a", H100, D("6")), GpuUsage(conventions.UNTAGGED, H100, D("3"))],
            [TokenUsage("c", "llama", D("5000.6"))],
            capacity(spans[2]),
        ),
    ]


@pytest.mark.parametrize("split", ["proportional", "even"])
def test_each_rows_days_add_up_to_its_period_total_exactly(split: str) -> None:
    prices = pricing(sharedSplit=split)
    days = sample_days()
    costs, tokens = costs_of(days, prices)
    daily = daily_costs(costs, tokens, days, prices)
    assert daily.windows == tuple(day.window for day in days)
    for row in [*costs.teams, costs.untagged]:
        assert total(daily.of(row.team)) == row.total_cost, row.team
    assert total(daily.of(CLUSTER)) == costs.cluster.total_cost


def test_gpu_and_shared_cost_fall_on_the_days_they_accrued() -> None:
    prices = pricing()
    days = sample_days()
    costs, tokens = costs_of(days, prices)
    daily = daily_costs(costs, tokens, days, prices)
    b = costs.row("b")
    # b ran only on day 2: all its cost (GPU and its share of shared cost) is on day 2
    assert daily.of("b") == (ZERO, b.total_cost, ZERO)
    # untagged ran only on day 3
    assert daily.of(conventions.UNTAGGED)[:2] == (ZERO, ZERO)
    # the pool each day: 300 a month prorated to the day (30-day November) plus the
    # capacity nobody allocated (H100 at 4, A100 at 2 an hour)
    pools = [
        D(10) + (192 - D(24)) * 4 + 96 * 2,
        D(10) + (192 - D("12.5")) * 4 + (96 - D(48)) * 2,
        D(300) * 13 / 24 / 30 + (104 - D(9)) * 4 + 52 * 2,
    ]
    # the cluster: GPU and tokens as measured each day, the shared pool as it accrued
    direct = [D(96) + D("0.01"), D(50) + D(96) + D("0.04") + D("0.01"), D(36) + D("0.010002")]
    shared = [costs.cluster.shared_cost * pool / sum(pools) for pool in pools]
    for got, d, sh in zip(daily.of(CLUSTER), direct, shared, strict=True):
        assert abs(got - (d + sh)) < D("1e-9")
    # a: its GPU hours x 4 and its 1000 + 1000 whole gpt-4o tokens at 0.01 / 1k each day,
    # and its share of the period's pool placed by its share of each day's pool
    a = costs.row("a")
    gpu = [D(96), D(50), D(24)]
    accrued = [pools[0], pools[1] * 50 / (50 + 96), pools[2] * 24 / (24 + 12)]
    tokens_cost = [D("0.01"), D("0.01"), ZERO]
    for got, g, w, t in zip(daily.of("a"), gpu, accrued, tokens_cost, strict=True):
        assert abs(got - (g + t + a.shared_cost * w / sum(accrued))) < D("1e-9")


def test_tokens_are_split_in_whole_tokens_in_proportion_to_each_days_count() -> None:
    prices = pricing(sharedMonthly="0")
    days = sample_days()
    costs, tokens = costs_of(days, prices)
    daily = daily_costs(costs, tokens, days, prices)
    # c has tokens only (25001 whole llama tokens at the default 0.002 / 1k) and no GPU:
    # 20000.3 and 5000.6 measured become 20000 and 5001 whole tokens
    per_token = D("0.002") / 1000
    assert costs.row("c").tokens == D(25001)
    assert daily.of("c") == (ZERO, D(20000) * per_token, D(5001) * per_token)


def test_no_days_no_trend() -> None:
    days = sample_days()
    costs, tokens = costs_of(days, pricing())
    empty = daily_costs(costs, tokens, [], pricing())
    assert empty.windows == () and empty.of("a") == ()


def test_random_days_always_add_up() -> None:
    rng = random.Random(10)
    prices = pricing(sharedMonthly="1234.56")
    spans = windows(30, last_hours=7)
    days = []
    for span in spans:
        gpu = [
            GpuUsage(team, rng.choice([H100, A100]), D(rng.randint(0, 4000)) / 7)
            for team in ("a", "b", "c", conventions.UNTAGGED)
            if rng.random() < 0.7
        ]
        tokens = [
            TokenUsage(team, rng.choice(["gpt-4o", "llama"]), D(rng.randint(0, 10**6)) / 3)
            for team in ("a", "d")
            if rng.random() < 0.5
        ]
        days.append(DayUsage(span, gpu, tokens, capacity(span)))
    costs, tokens = costs_of(days, prices)
    daily = daily_costs(costs, tokens, days, prices)
    for row in [*costs.teams, costs.untagged]:
        assert total(daily.of(row.team)) == row.total_cost
    assert total(daily.of(CLUSTER)) == costs.cluster.total_cost


# ---------------------------------------------------------------- week over week


def dates(count: int) -> list[datetime.date]:
    return [datetime.date(2026, 11, 1) + datetime.timedelta(days=i) for i in range(count)]


def test_week_over_week_is_the_last_seven_complete_days_against_the_seven_before() -> None:
    days = dates(20)
    flat = {day: D(10) for day in days}
    jump = {day: D(10) if i < 12 else D("13.5") for i, day in enumerate(days)}
    new = {day: D(5) for day in days[-3:]}
    total = {day: flat[day] + jump[day] + new.get(day, ZERO) + D(1) for day in days}
    # the last day is still running: not complete
    result = week_over_week({"flat": flat, "jump": jump, "new": new}, total, days[:-1])
    assert isinstance(result, WeekOverWeek)
    assert result.last_week == (datetime.date(2026, 11, 13), datetime.date(2026, 11, 19))
    assert result.week_before == (datetime.date(2026, 11, 6), datetime.date(2026, 11, 12))
    assert result.teams["flat"] == Change(D(70), D(70))
    assert result.teams["flat"].amount == 0 and result.teams["flat"].percent == 0
    assert result.teams["jump"] == Change(D("94.5"), D(70))
    assert result.teams["jump"].percent == D(35)  # the "35 % last week" question
    assert result.teams["new"] == Change(D(10), ZERO)
    assert result.teams["new"].percent is None  # nothing the week before: no percentage
    assert result.total == Change(D(70 + 94.5 + 10 + 7), D(70 + 70 + 7))
    assert result.total.amount == result.total.last_week - result.total.week_before


def test_fewer_than_fourteen_complete_days_is_not_enough_history() -> None:
    days = dates(13)
    series = {day: D(1) for day in days}
    result = week_over_week({"a": series}, series, days)
    assert result == NotEnoughHistory(13, 14, datetime.date(2026, 11, 13))
    assert week_over_week({}, {}, []) == NotEnoughHistory(0)


def test_a_gap_in_the_days_counts_only_the_days_after_it() -> None:
    days = dates(20)
    complete = [day for day in days if day != datetime.date(2026, 11, 10)]
    assert contiguous_days(complete) == 10
    assert isinstance(week_over_week({}, {}, complete), NotEnoughHistory)
    assert contiguous_days(days) == 20


def test_a_day_without_any_series_is_no_figure_and_gets_nothing() -> None:
    """Before the operator was installed Prometheus has nothing: not a day of zero spend."""
    prices = pricing()  # 300 a month of platform cost
    spans = windows(4)
    days = [DayUsage(spans[0])] + [
        DayUsage(span, [GpuUsage("a", H100, D(24))], [], capacity(span)) for span in spans[1:]
    ]
    costs, tokens = costs_of(days, prices)
    assert costs.cluster.platform_cost == D(40)  # 4 days of a 30-day month
    daily = daily_costs(costs, tokens, days, prices)
    assert daily.measured == (False, True, True, True) and daily.measured_windows() == [1, 2, 3]
    for name in ("a", CLUSTER):
        assert daily.of(name)[0] == 0
        assert (
            total(daily.of(name)) == (costs.row("a") if name == "a" else costs.cluster).total_cost
        )
    # the platform cost of the day without figures is on the days with figures, evenly
    # (to the 1e-12 the split carries)
    first, *rest = daily.of(CLUSTER)[1:]
    assert all(abs(day - first) <= D("1e-12") for day in rest)


def test_input_and_output_tokens_are_priced_each_at_its_own_price_every_day() -> None:
    prices = pricing(
        sharedMonthly="0", tokensPer1k={"default": "0.002", "gpt-4o": {"input": "1", "output": "4"}}
    )
    spans = windows(2)
    days = [
        DayUsage(
            spans[0],
            [],
            [
                TokenUsage("a", "gpt-4o", D(1000), "input"),
                TokenUsage("a", "gpt-4o", D(0), "output"),
            ],
            capacity(spans[0]),
        ),
        DayUsage(spans[1], [], [TokenUsage("a", "gpt-4o", D(2000), "output")], capacity(spans[1])),
    ]
    costs, tokens = costs_of(days, prices)
    daily = daily_costs(costs, tokens, days, prices)
    # 1,000 input tokens at 1 per 1k on day 1, 2,000 output tokens at 4 per 1k on day 2
    assert costs.row("a").token_cost == D(9)
    assert daily.of("a") == (D(1), D(8))
    assert total(daily.of(CLUSTER)) == costs.cluster.total_cost

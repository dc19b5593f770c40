"""Daily spend and week-over-week change: the "why did spend jump 35 % last week" question.

The period's cost per team (`showback.compute_costs`) is cut into the days it was
measured in, so a trend chart can show when spend moved, and the days of a team
add up to its period total exactly (docs/cost-model.md, "Daily spend"):

- GPU cost is measured per day (the report's one-day query windows) and priced
  as for the period, so a team's days add up to its GPU cost exactly;
- tokens: the period's whole tokens of each team and LLM model are split over the
  days in proportion to the tokens measured each day (`money.split` with a quantum
  of 1: whole tokens), then priced;
- shared cost (the prorated platform cost and the capacity nobody allocated) is
  placed on the days it accrued: each day's pool is the platform cost prorated to
  that day plus that day's unallocated capacity priced. The cluster's shared cost
  is split over the days by that pool; a team's (its share of the period's pool)
  by its share of each day's pool (in proportion to its GPU cost that day, or in
  equal parts with `sharedSplit: even`), falling back to its GPU cost, its token
  cost, then the length of the day when those are all zero.

A window without any series (no GPU hours, tokens or capacity: a day before the
operator was installed) is no figure, not a day of zero spend: nothing is placed
on it, and the platform cost prorated to it goes to the days with figures, as it
goes to the teams in the period's split. So every row's days add up to its period
total exactly, and GPU and token cost are where they were measured. A team's days
need not add up to the cluster's day by day (the period's shared cost is split
over teams by the period's GPU cost, not each day's); over the period they do,
with the undistributed shared cost.

`week_over_week` compares the last seven complete days with the seven before,
per team and in total; with fewer than fourteen contiguous complete days it says
so (`NotEnoughHistory`) rather than compare part of a week.

Pure: usage records and Decimal money in, Decimal money out; no clock.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.period import Period, prorated_monthly
from finops_operator.domain.costs.showback import CostReport
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.domain.money import QUANTUM, ZERO, money_context, split

CLUSTER: Final = "__cluster__"  # no label value: one starts and ends alphanumeric
WEEK: Final = 7
WHOLE_TOKEN: Final = Decimal(1)


@dataclass(frozen=True)
class DayUsage:
    """What the cluster used in one window of the period (a day, or the rest of one).

    `tokens` are as measured (`increase()` extrapolates, so they may be fractional);
    the period's whole tokens are split over the days in their proportion.
    """

    window: Period
    gpu: Sequence[GpuUsage] = ()
    tokens: Sequence[TokenUsage] = ()
    capacity: Sequence[CapacityUsage] = ()


@dataclass(frozen=True)
class DailyCosts:
    """Total cost per day of every team, of `__untagged__` and of the cluster (`CLUSTER`).

    `rows[name][i]` is the cost in `windows[i]`; each row adds up to the period's
    total of that row exactly.
    """

    def measured_windows(self) -> list[int]:
        """The indexes of the windows Prometheus had figures for."""
        return [index for index, seen in enumerate(self.measured) if seen]

    windows: tuple[Period, ...] = ()
    rows: Mapping[str, tuple[Decimal, ...]] = field(default_factory=dict)
    # Whether Prometheus had any series in each window; a window without is no
    # figure at all (every row is 0 on it), not a day of zero spend.
    measured: tuple[bool, ...] = ()

    def of(self, name: str) -> tuple[Decimal, ...]:
        """The days of `name` (a team, `__untagged__` or `cluster`); zeros when it has none."""
        return self.rows.get(name, tuple(ZERO for _ in self.windows))


def _keys(count: int) -> list[str]:
    return [f"{i:06d}" for i in range(count)]


def _spread(amount: Decimal, weights: Sequence[Decimal], quantum: Decimal) -> list[Decimal]:
    """`amount` over the days in proportion to `weights` (negative weights count as 0)."""
    if amount == 0:
        return [ZERO] * len(weights)
    keys = _keys(len(weights))
    shares = split(amount, dict(zip(keys, (max(w, ZERO) for w in weights), strict=True)), quantum)
    return [shares[key] for key in keys]


def _first_positive(*candidates: Sequence[Decimal]) -> Sequence[Decimal]:
    for weights in candidates:
        if sum((max(w, ZERO) for w in weights), ZERO) > 0:
            return weights
    return candidates[-1]


def _pools(days: Sequence[DayUsage], pricing: PricingConfig) -> list[Decimal]:
    """The shared pool each day accrued: platform cost prorated to the day plus the
    capacity nobody allocated that day, priced (as `compute_costs` does for a period)."""
    pools = []
    for day in days:
        allocated: dict[str, Decimal] = defaultdict(Decimal)
        offered: dict[str, Decimal] = defaultdict(Decimal)
        for usage in day.gpu:
            allocated[usage.gpu_model] += usage.gpu_hours
        for capacity in day.capacity:
            offered[capacity.gpu_model] += capacity.gpu_hours
        spare = sum(
            (
                max(hours - allocated.get(model, ZERO), ZERO) * pricing.gpu_price(model)
                for model, hours in offered.items()
            ),
            ZERO,
        )
        pools.append(prorated_monthly(pricing.shared_monthly, day.window) + spare)
    return pools


def daily_costs(
    costs: CostReport,
    tokens: Iterable[TokenUsage],
    days: Sequence[DayUsage],
    pricing: PricingConfig,
) -> DailyCosts:
    """The period's cost per row (`costs`) cut into `days`.

    `tokens` are the period's whole tokens by team, model and direction (as `costs`
    priced them); `days` the usage of each window, together the period's usage. Without
    days (a period read before daily figures existed) the result is empty.
    """
    if not days:
        return DailyCosts()
    count = len(days)
    windows = tuple(day.window for day in days)
    seen = tuple(bool(day.gpu or day.tokens or day.capacity) for day in days)
    # A window without any series is a day Prometheus has no figures for (before the
    # operator was installed, say), not a day of zero spend: nothing is placed on it.
    hours = [w.hours if m or not any(seen) else ZERO for w, m in zip(windows, seen, strict=True)]
    with localcontext(money_context()):
        gpu: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * count)
        measured: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [ZERO] * count)
        for index, day in enumerate(days):
            for usage in day.gpu:
                gpu[usage.team][index] += usage.gpu_hours * pricing.gpu_price(usage.gpu_model)
            for used in day.tokens:
                measured[(used.team, used.model, used.direction)][index] += used.tokens
        token: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * count)
        for whole in tokens:
            weights = _first_positive(
                measured.get((whole.team, whole.model, whole.direction), [ZERO] * count), hours
            )
            price = pricing.token_price(whole.model, whole.direction)
            for index, share in enumerate(_spread(whole.tokens, weights, WHOLE_TOKEN)):
                token[whole.team][index] += share * price / 1000

        pools = [pool if m else ZERO for pool, m in zip(_pools(days, pricing), seen, strict=True)]
        rows_of_day = [*costs.teams, costs.untagged]
        day_gpu = [
            sum((gpu.get(r.team, [ZERO] * count)[i] for r in rows_of_day), ZERO)
            for i in range(count)
        ]
        users = [
            sum(
                1
                for r in rows_of_day
                if gpu.get(r.team, [ZERO] * count)[i] or token.get(r.team, [ZERO] * count)[i]
            )
            for i in range(count)
        ]

        rows: dict[str, tuple[Decimal, ...]] = {}
        direct = [ZERO] * count
        for row in rows_of_day:
            mine_gpu = gpu.get(row.team, [ZERO] * count)
            mine_token = token.get(row.team, [ZERO] * count)
            direct = [d + g + t for d, g, t in zip(direct, mine_gpu, mine_token, strict=True)]
            if pricing.shared_split == "even":
                accrued = [
                    pools[i] / users[i] if mine_gpu[i] or mine_token[i] else ZERO
                    for i in range(count)
                ]
            else:
                accrued = [
                    pools[i] * mine_gpu[i] / day_gpu[i] if day_gpu[i] > 0 else ZERO
                    for i in range(count)
                ]
            weights = _first_positive(accrued, mine_gpu, mine_token, hours)
            shared = _spread(row.shared_cost, weights, QUANTUM)
            totals = tuple(g + t + s for g, t, s in zip(mine_gpu, mine_token, shared, strict=True))
            if row.team != conventions.UNTAGGED or any(totals) or row.total_cost:
                rows[row.team] = totals
        cluster = costs.cluster
        shared = _spread(cluster.shared_cost, _first_positive(pools, hours), QUANTUM)
        rows[CLUSTER] = tuple(d + s for d, s in zip(direct, shared, strict=True))
    return DailyCosts(windows, rows, seen)


# ---------------------------------------------------------------- week over week


@dataclass(frozen=True)
class Change:
    """Spend in the last seven days against the seven before."""

    last_week: Decimal
    week_before: Decimal

    @property
    def amount(self) -> Decimal:
        with localcontext(money_context()):
            return self.last_week - self.week_before

    @property
    def percent(self) -> Decimal | None:
        """The change as a percentage of the week before; None when that week spent nothing."""
        if self.week_before == 0:
            return None
        with localcontext(money_context()):
            return (self.last_week - self.week_before) * 100 / self.week_before


@dataclass(frozen=True)
class WeekOverWeek:
    """The last seven complete days (`last_week`, first and last day) against the seven
    before (`week_before`), per team and for the whole cluster (`total`)."""

    last_week: tuple[datetime.date, datetime.date]
    week_before: tuple[datetime.date, datetime.date]
    teams: Mapping[str, Change]
    total: Change


@dataclass(frozen=True)
class NotEnoughHistory:
    """Fewer than `needed` contiguous complete days end at the last complete day."""

    complete_days: int
    needed: int = 2 * WEEK
    last_day: datetime.date | None = None


def _sum(series: Mapping[datetime.date, Decimal], dates: Iterable[datetime.date]) -> Decimal:
    with localcontext(money_context()):
        return sum((series.get(date, ZERO) for date in dates), ZERO)


def contiguous_days(complete: Collection[datetime.date]) -> int:
    """How many days in a row, ending at the latest, `complete` holds."""
    if not complete:
        return 0
    day, run = max(complete), 0
    while day in complete:
        run += 1
        day -= datetime.timedelta(days=1)
    return run


def week_over_week(
    teams: Mapping[str, Mapping[datetime.date, Decimal]],
    total: Mapping[datetime.date, Decimal],
    complete: Collection[datetime.date],
) -> WeekOverWeek | NotEnoughHistory:
    """Last seven complete days against the seven before, per team and in `total`.

    `complete` holds the days whose figures are whole (a day still running, or one
    no report covers, is not); a team without a figure on a complete day spent
    nothing that day. Needs fourteen contiguous complete days ending at the latest.
    """
    run = contiguous_days(complete)
    if run < 2 * WEEK:
        return NotEnoughHistory(run, last_day=max(complete) if complete else None)
    last = max(complete)
    days = [last - datetime.timedelta(days=offset) for offset in range(2 * WEEK)]
    recent, before = days[:WEEK], days[WEEK:]

    def change(series: Mapping[datetime.date, Decimal]) -> Change:
        return Change(_sum(series, recent), _sum(series, before))

    return WeekOverWeek(
        last_week=(recent[-1], recent[0]),
        week_before=(before[-1], before[0]),
        teams={name: change(series) for name, series in teams.items()},
        total=change(total),
    )

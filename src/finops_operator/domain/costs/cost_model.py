"""The cost model: from usage to money, per team, in Decimal.

Pure domain code (DESIGN.md, "Cost model"): plain usage records in, cost rows out.
It knows nothing of Prometheus or Kubernetes; the report code measures usage and
hands it here. The decisions (who receives shared cost, what the cluster row
holds, how division remainders are placed) are written up in docs/cost-model.md.

Money is never a float. Amounts are exact sums and products of the inputs; the
only divisions (prorating the monthly platform cost, splitting the shared pool)
are carried to `QUANTUM` (1e-12 of a currency unit) and their remainders placed
by the largest-remainder method, so the identity

    sum(team totals) + untagged total + undistributed = cluster total

holds exactly. Rounding to cents happens only in `display_money`.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, localcontext
from fractions import Fraction
from typing import Final, Literal

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig

# Internal precision of divided amounts, far below a cent.
QUANTUM: Final = Decimal("1e-12")
# Enough digits that sums and products of realistic inputs are exact.
_PRECISION: Final = 60

ZERO: Final = Decimal(0)

DIMENSIONS: Final = ("feature", "environment", "workload_type", "cost_center")

SharedSplit = Literal["proportional", "even"]


def _context() -> Context:
    return Context(prec=_PRECISION)


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class GpuUsage:
    """GPU usage of one combination of cost labels on one GPU model, over the period.

    `gpu_hours` is allocated GPU hours (fractional GPUs count as their fraction);
    `busy_gpu_hours` is the utilization-weighted part (allocated x utilization), or
    None when utilization is unknown (then nothing is counted as idle).
    """

    team: str
    gpu_model: str
    gpu_hours: Decimal
    busy_gpu_hours: Decimal | None = None
    feature: str = conventions.UNTAGGED
    environment: str = conventions.UNTAGGED
    workload_type: str = conventions.UNTAGGED
    cost_center: str = conventions.UNTAGGED

    @property
    def idle_gpu_hours(self) -> Decimal:
        """Allocated but unused: allocated x (1 - utilization), kept within [0, allocated]."""
        if self.busy_gpu_hours is None:
            return ZERO
        return min(max(self.gpu_hours - self.busy_gpu_hours, ZERO), max(self.gpu_hours, ZERO))

    def label(self, dimension: str) -> str:
        value: str = getattr(self, dimension)
        return value


@dataclass(frozen=True)
class TokenUsage:
    """Tokens a team sent through the LLM gateway to one model, over the period."""

    team: str
    model: str
    tokens: Decimal


@dataclass(frozen=True)
class CapacityUsage:
    """GPU hours the cluster offered on one GPU model over the period (capacity x time)."""

    gpu_model: str
    gpu_hours: Decimal


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


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Breakdown:
    """Dedicated GPU usage and cost of one value of one cost label within a team."""

    gpu_hours: Decimal = ZERO
    gpu_cost: Decimal = ZERO
    idle_gpu_hours: Decimal = ZERO
    idle_cost: Decimal = ZERO


@dataclass(frozen=True)
class CostRow:
    """One team's (or `__untagged__`'s, or the cluster's) figures for the period.

    `total_cost = gpu_cost + token_cost + shared_cost`; idle cost is part of GPU
    cost, shown and never added. `breakdowns[dimension][value]` splits the GPU
    figures by feature, environment, workload_type and cost_center.
    """

    team: str
    gpu_hours: Decimal
    gpu_cost: Decimal
    idle_gpu_hours: Decimal
    idle_cost: Decimal
    tokens: Decimal
    token_cost: Decimal
    shared_cost: Decimal
    total_cost: Decimal
    breakdowns: Mapping[str, Mapping[str, Breakdown]] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterRow(CostRow):
    """The whole cluster: the row fields summed, plus what only the cluster has.

    `shared_cost = platform_cost + unallocated_cost`; `total_cost` is what the
    cluster cost: capacity (allocated and not) + tokens + platform.
    """

    capacity_gpu_hours: Decimal = ZERO
    unallocated_gpu_hours: Decimal = ZERO
    unallocated_cost: Decimal = ZERO
    platform_cost: Decimal = ZERO
    undistributed_cost: Decimal = ZERO


@dataclass(frozen=True)
class CostReport:
    period: Period
    currency: str
    teams: Sequence[CostRow]
    untagged: CostRow
    cluster: ClusterRow

    def row(self, team: str) -> CostRow:
        if team == conventions.UNTAGGED:
            return self.untagged
        for row in self.teams:
            if row.team == team:
                return row
        raise KeyError(team)


# ---------------------------------------------------------------- arithmetic


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
    with localcontext(_context()):
        value = Decimal(exact.numerator) / Decimal(exact.denominator)
        carried = value.quantize(QUANTUM, rounding=ROUND_DOWN)
        return value if value == carried else carried


def split(amount: Decimal, weights: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """`amount` split in proportion to `weights` (all >= 0, not all zero).

    Shares are carried to QUANTUM; the units left over go one each to the largest
    remainders (ties broken by name), so the shares sum to `amount` exactly.
    Whatever is left below QUANTUM (when `amount` has more digits) goes to the
    largest remainder too.
    """
    total_weight = sum(weights.values(), ZERO)
    if total_weight <= 0:
        raise ValueError("cannot split by weights that are all zero")
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("weights must not be negative")
    with localcontext(_context()):
        exact = {name: amount * weight / total_weight for name, weight in weights.items()}
        shares = {
            name: value.quantize(QUANTUM, rounding=ROUND_DOWN) for name, value in exact.items()
        }
        left = int((amount - sum(shares.values(), ZERO)) / QUANTUM)
        by_remainder = sorted(exact, key=lambda name: (-(exact[name] - shares[name]), name))
        for name in by_remainder[:left]:
            shares[name] += QUANTUM
        leftover = amount - sum(shares.values(), ZERO)
        if leftover:
            shares[by_remainder[0]] += leftover
    return shares


def gpu_cost(gpu_hours: Decimal, gpu_model: str, pricing: PricingConfig) -> Decimal:
    """Dedicated cost: allocated GPU hours x the hourly price of that GPU model."""
    with localcontext(_context()):
        return gpu_hours * pricing.gpu_price(gpu_model)


def token_cost(tokens: Decimal, model: str, pricing: PricingConfig) -> Decimal:
    """Usage-driven cost: tokens / 1000 x the price per 1,000 tokens of that model."""
    with localcontext(_context()):
        return tokens * pricing.token_price(model) / 1000


@dataclass(frozen=True)
class JobUsage:
    """GPU hours of one Job (a training run), all its pods and retries together."""

    namespace: str
    job: str
    team: str
    gpu_model: str
    gpu_hours: Decimal


@dataclass(frozen=True)
class JobCost:
    namespace: str
    job: str
    team: str
    gpu_hours: Decimal
    cost: Decimal


def training_run_cost(gpu_hours: Decimal, gpu_model: str, pricing: PricingConfig) -> Decimal:
    """What one training run cost: its Job's GPU hours x the price of its GPU model."""
    return gpu_cost(gpu_hours, gpu_model, pricing)


def training_run_costs(jobs: Iterable[JobUsage], pricing: PricingConfig) -> list[JobCost]:
    """Cost per training run, one row per (namespace, job), most expensive first.

    A Job whose pods ran on several GPU models has its hours priced per model.
    """
    hours: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cost: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    team: dict[tuple[str, str], str] = {}
    with localcontext(_context()):
        for usage in jobs:
            key = (usage.namespace, usage.job)
            hours[key] += usage.gpu_hours
            cost[key] += training_run_cost(usage.gpu_hours, usage.gpu_model, pricing)
            team.setdefault(key, usage.team)
    rows = [
        JobCost(ns, job, team[(ns, job)], hours[(ns, job)], cost[(ns, job)]) for ns, job in hours
    ]
    return sorted(rows, key=lambda row: (-row.cost, row.namespace, row.job))


# ---------------------------------------------------------------- the report


@dataclass
class _Acc:
    gpu_hours: Decimal = ZERO
    gpu_cost: Decimal = ZERO
    idle_gpu_hours: Decimal = ZERO
    idle_cost: Decimal = ZERO
    tokens: Decimal = ZERO
    token_cost: Decimal = ZERO
    used: bool = False
    breakdowns: dict[str, dict[str, list[Decimal]]] = field(
        default_factory=lambda: {dimension: {} for dimension in DIMENSIONS}
    )


def compute_costs(
    *,
    period: Period,
    pricing: PricingConfig,
    gpu_usage: Iterable[GpuUsage] = (),
    token_usage: Iterable[TokenUsage] = (),
    capacity: Iterable[CapacityUsage] = (),
) -> CostReport:
    """Per-team rows, the `__untagged__` row and the cluster row for `period`.

    - GPU cost = allocated GPU hours x price of the GPU model; idle cost = idle GPU
      hours x that price (part of GPU cost, not added).
    - Token cost = tokens / 1000 x price of the LLM model.
    - Shared pool = `pricing.shared_monthly` prorated to the period + the cost of
      capacity nobody allocated (capacity - allocated, per GPU model, never below 0).
      It goes to every row with usage, `__untagged__` included, in proportion to GPU
      cost (`proportional`) or in equal parts (`even`). With no recipient (or no GPU
      cost at all under `proportional`) it stays in `cluster.undistributed_cost`.
    """
    with localcontext(_context()):
        rows: dict[str, _Acc] = defaultdict(_Acc)
        allocated_by_model: dict[str, Decimal] = defaultdict(Decimal)
        for usage in gpu_usage:
            acc = rows[usage.team]
            price = pricing.gpu_price(usage.gpu_model)
            cost = usage.gpu_hours * price
            idle = usage.idle_gpu_hours
            acc.gpu_hours += usage.gpu_hours
            acc.gpu_cost += cost
            acc.idle_gpu_hours += idle
            acc.idle_cost += idle * price
            acc.used = acc.used or usage.gpu_hours != 0
            allocated_by_model[usage.gpu_model] += usage.gpu_hours
            for dimension in DIMENSIONS:
                cell = acc.breakdowns[dimension].setdefault(usage.label(dimension), [ZERO] * 4)
                cell[0] += usage.gpu_hours
                cell[1] += cost
                cell[2] += idle
                cell[3] += idle * price
        for tokens in token_usage:
            acc = rows[tokens.team]
            acc.tokens += tokens.tokens
            acc.token_cost += tokens.tokens * pricing.token_price(tokens.model) / 1000
            acc.used = acc.used or tokens.tokens != 0

        capacity_by_model: dict[str, Decimal] = defaultdict(Decimal)
        for offered in capacity:
            capacity_by_model[offered.gpu_model] += offered.gpu_hours
        unallocated_hours = ZERO
        unallocated_cost = ZERO
        for model, offered_hours in capacity_by_model.items():
            spare = max(offered_hours - allocated_by_model.get(model, ZERO), ZERO)
            unallocated_hours += spare
            unallocated_cost += spare * pricing.gpu_price(model)

        platform = prorated_monthly(pricing.shared_monthly, period)
        pool = platform + unallocated_cost
        shares = _shares(pool, rows, pricing.shared_split)
        undistributed = pool - sum(shares.values(), ZERO)

        built = {name: _row(name, acc, shares.get(name, ZERO)) for name, acc in rows.items()}
        untagged = built.pop(conventions.UNTAGGED, None) or _row(conventions.UNTAGGED, _Acc(), ZERO)
        teams = [built[name] for name in sorted(built)]
        everyone = [*teams, untagged]

        def total(attr: str) -> Decimal:
            return sum((getattr(row, attr) for row in everyone), ZERO)

        cluster_gpu_cost = total("gpu_cost")
        cluster_token_cost = total("token_cost")
        cluster = ClusterRow(
            team="cluster",
            gpu_hours=total("gpu_hours"),
            gpu_cost=cluster_gpu_cost,
            idle_gpu_hours=total("idle_gpu_hours"),
            idle_cost=total("idle_cost"),
            tokens=total("tokens"),
            token_cost=cluster_token_cost,
            shared_cost=pool,
            total_cost=cluster_gpu_cost + cluster_token_cost + pool,
            breakdowns=_merge_breakdowns(everyone),
            capacity_gpu_hours=sum(capacity_by_model.values(), ZERO),
            unallocated_gpu_hours=unallocated_hours,
            unallocated_cost=unallocated_cost,
            platform_cost=platform,
            undistributed_cost=undistributed,
        )
    return CostReport(period, pricing.currency, teams, untagged, cluster)


def _shares(pool: Decimal, rows: Mapping[str, _Acc], how: str) -> dict[str, Decimal]:
    if pool == 0:
        return {}
    if how == "even":
        weights = {name: Decimal(1) for name, acc in rows.items() if acc.used}
    else:
        weights = {name: acc.gpu_cost for name, acc in rows.items() if acc.gpu_cost > 0}
    if not weights:
        return {}
    return split(pool, weights)


def _row(name: str, acc: _Acc, shared: Decimal) -> CostRow:
    breakdowns = {
        dimension: {
            value: Breakdown(*cells) for value, cells in sorted(acc.breakdowns[dimension].items())
        }
        for dimension in DIMENSIONS
    }
    return CostRow(
        team=name,
        gpu_hours=acc.gpu_hours,
        gpu_cost=acc.gpu_cost,
        idle_gpu_hours=acc.idle_gpu_hours,
        idle_cost=acc.idle_cost,
        tokens=acc.tokens,
        token_cost=acc.token_cost,
        shared_cost=shared,
        total_cost=acc.gpu_cost + acc.token_cost + shared,
        breakdowns=breakdowns,
    )


def _merge_breakdowns(rows: Iterable[CostRow]) -> dict[str, dict[str, Breakdown]]:
    merged: dict[str, dict[str, list[Decimal]]] = {dimension: {} for dimension in DIMENSIONS}
    for row in rows:
        for dimension, values in row.breakdowns.items():
            for value, cell in values.items():
                acc = merged[dimension].setdefault(value, [ZERO] * 4)
                acc[0] += cell.gpu_hours
                acc[1] += cell.gpu_cost
                acc[2] += cell.idle_gpu_hours
                acc[3] += cell.idle_cost
    return {
        dimension: {value: Breakdown(*cells) for value, cells in sorted(values.items())}
        for dimension, values in merged.items()
    }


# ---------------------------------------------------------------- display


def display_money(amount: Decimal, places: int = 2) -> str:
    """An amount for people and files: rounded half-even to `places` decimals."""
    return str(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def display_hours(hours: Decimal, places: int = 3) -> float:
    """Hours as a JSON number, rounded half-even to `places` decimals."""
    return float(hours.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def idle_percent(row: CostRow) -> Decimal:
    """Idle GPU hours as a percentage of allocated GPU hours (0 without GPU hours)."""
    if row.gpu_hours == 0:
        return ZERO
    with localcontext(_context()):
        return row.idle_gpu_hours * 100 / row.gpu_hours

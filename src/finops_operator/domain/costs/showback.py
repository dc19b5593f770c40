"""Showback: who owes what for a period, per team, in Decimal.

Pure domain code (DESIGN.md, "Cost model"): usage records in (`usage`), cost rows
out. It knows nothing of Prometheus or Kubernetes; the report code measures usage
and hands it here. The decisions (who receives shared cost, what the cluster row
holds, how division remainders are placed) are written up in docs/cost-model.md.

`compute_costs` prices the usage (`pricing`'s rules), prorates the platform cost
to the period (`period`) and splits the shared pool exactly (`money.split`), so
the identity

    sum(team totals) + untagged total + undistributed = cluster total

holds exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Literal

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.period import Period, prorated_monthly
from finops_operator.domain.costs.usage import DIMENSIONS, CapacityUsage, GpuUsage, TokenUsage
from finops_operator.domain.money import ZERO, money_context, split

SharedSplit = Literal["proportional", "even"]


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

    def team_rows(self, team: str | None = None) -> list[CostRow]:
        """The teams' rows, or only `team`'s (none when it has no row)."""
        return [row for row in self.teams if team is None or row.team == team]

    def row(self, team: str) -> CostRow:
        if team == conventions.UNTAGGED:
            return self.untagged
        for row in self.teams:
            if row.team == team:
                return row
        raise KeyError(team)


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
    platform_from: datetime | None = None,
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
    with localcontext(money_context()):
        rows: dict[str, _Acc] = defaultdict(_Acc)
        # By cluster and model: a spare GPU of one cluster cannot serve another's pod.
        allocated_by_model: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
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
            allocated_by_model[usage.cluster, usage.gpu_model] += usage.gpu_hours
            for dimension in DIMENSIONS:
                cell = acc.breakdowns[dimension].setdefault(usage.label(dimension), [ZERO] * 4)
                cell[0] += usage.gpu_hours
                cell[1] += cost
                cell[2] += idle
                cell[3] += idle * price
        for tokens in token_usage:
            acc = rows[tokens.team]
            acc.tokens += tokens.tokens
            price = pricing.token_price(tokens.model, tokens.direction)
            acc.token_cost += tokens.tokens * price / 1000
            acc.used = acc.used or tokens.tokens != 0

        capacity_by_model: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for offered in capacity:
            capacity_by_model[offered.cluster, offered.gpu_model] += offered.gpu_hours
        unallocated_hours = ZERO
        unallocated_cost = ZERO
        for (where, model), offered_hours in capacity_by_model.items():
            spare = max(offered_hours - allocated_by_model.get((where, model), ZERO), ZERO)
            unallocated_hours += spare
            unallocated_cost += spare * pricing.gpu_price(model)

        charged = period
        if platform_from is not None and period.start < platform_from < period.end:
            charged = Period(platform_from, period.end)
        platform = prorated_monthly(pricing.shared_monthly, charged)
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


def idle_percent(row: CostRow) -> Decimal:
    """Idle GPU hours as a percentage of allocated GPU hours (0 without GPU hours)."""
    if row.gpu_hours == 0:
        return ZERO
    with localcontext(money_context()):
        return row.idle_gpu_hours * 100 / row.gpu_hours

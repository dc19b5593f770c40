"""Allocation: every cost of a period placed on one combination of the five cost labels.

GPU usage is measured per combination of labels (team, feature, environment,
workload type, cost center), so its cost is placed where it was spent. Token and
shared cost are known per team only (the LLM gateway knows the team; the shared
pool is split over teams by `showback.compute_costs`); they are placed on the
team's combinations in proportion to the team's GPU cost in each:

- tokens as whole tokens (`money.split` with a quantum of 1), then priced, so a
  cost center's token cost is a number of tokens x the model's price;
- shared cost to `money.QUANTUM`;
- a team without GPU cost keeps them on its combination with the other four
  labels `__untagged__`.

So cost centers (and features, environments, workload types) carry all AI spend,
GPU, tokens and shared, with the same definitions as the teams. Grouped by any
labels (`Allocation.group`), the groups of a team add up to its row of
`compute_costs` exactly, and all groups plus `undistributed` to the cluster total.
The rule is written up in docs/cost-model.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig, TokenDirection
from finops_operator.domain.costs.pricing import gpu_cost, token_cost
from finops_operator.domain.costs.showback import CostReport
from finops_operator.domain.costs.usage import DIMENSIONS, GpuUsage, TokenUsage
from finops_operator.domain.money import QUANTUM, ZERO, money_context, split

# The five cost labels, by their names in usage records and metrics.
LABELS: Final = ("team", *DIMENSIONS)
# The label keys they stand for, in the same order (Tags in FOCUS use these).
LABEL_KEYS: Final = conventions.COST_LABELS

Labels = tuple[str, ...]  # one value per name of LABELS
WHOLE_TOKEN: Final = Decimal(1)


@dataclass(frozen=True)
class GpuCharge:
    labels: Labels
    gpu_model: str
    gpu_hours: Decimal
    gpu_cost: Decimal
    idle_gpu_hours: Decimal
    idle_cost: Decimal


@dataclass(frozen=True)
class TokenCharge:
    labels: Labels
    model: str
    tokens: Decimal
    cost: Decimal
    direction: TokenDirection = "input"


@dataclass(frozen=True)
class SharedCharge:
    labels: Labels
    cost: Decimal


@dataclass(frozen=True)
class Group:
    """The figures of one group of label combinations (`key`: the values of `by`)."""

    key: tuple[str, ...]
    gpu_hours: Decimal = ZERO
    gpu_cost: Decimal = ZERO
    idle_gpu_hours: Decimal = ZERO
    idle_cost: Decimal = ZERO
    tokens: Decimal = ZERO
    token_cost: Decimal = ZERO
    shared_cost: Decimal = ZERO

    @property
    def total_cost(self) -> Decimal:
        with localcontext(money_context()):
            return self.gpu_cost + self.token_cost + self.shared_cost


@dataclass(frozen=True)
class Allocation:
    gpu: Sequence[GpuCharge]
    tokens: Sequence[TokenCharge]
    shared: Sequence[SharedCharge]
    # Shared cost no team received (`ClusterRow.undistributed_cost`).
    undistributed: Decimal

    def group(self, by: Sequence[str]) -> list[Group]:
        """The charges summed by the labels `by` (names of LABELS), sorted by key."""
        unknown = [name for name in by if name not in LABELS]
        if unknown:
            raise ValueError(f"cannot group by {', '.join(unknown)}; choose from {LABELS}")
        index = [LABELS.index(name) for name in by]
        cells: dict[tuple[str, ...], list[Decimal]] = defaultdict(lambda: [ZERO] * 7)
        with localcontext(money_context()):
            for gpu in self.gpu:
                cell = cells[tuple(gpu.labels[i] for i in index)]
                cell[0] += gpu.gpu_hours
                cell[1] += gpu.gpu_cost
                cell[2] += gpu.idle_gpu_hours
                cell[3] += gpu.idle_cost
            for used in self.tokens:
                cell = cells[tuple(used.labels[i] for i in index)]
                cell[4] += used.tokens
                cell[5] += used.cost
            for shared in self.shared:
                cells[tuple(shared.labels[i] for i in index)][6] += shared.cost
        return [Group(key, *values) for key, values in sorted(cells.items())]


def _untagged_but_team(team: str) -> Labels:
    return (team, *(conventions.UNTAGGED for _ in DIMENSIONS))


def allocate(
    costs: CostReport,
    gpu_usage: Iterable[GpuUsage],
    token_usage: Iterable[TokenUsage],
    pricing: PricingConfig,
) -> Allocation:
    """Every cost of `costs` (what `compute_costs` made of this usage with `pricing`)
    on a combination of the five labels; see the module's docstring."""
    with localcontext(money_context()):
        gpu: dict[tuple[Labels, str], list[Decimal]] = defaultdict(lambda: [ZERO] * 4)
        for usage in gpu_usage:
            labels = (usage.team, *(usage.label(dimension) for dimension in DIMENSIONS))
            cell = gpu[(labels, usage.gpu_model)]
            cell[0] += usage.gpu_hours
            cell[1] += gpu_cost(usage.gpu_hours, usage.gpu_model, pricing)
            cell[2] += usage.idle_gpu_hours
            cell[3] += gpu_cost(usage.idle_gpu_hours, usage.gpu_model, pricing)
        weights: dict[str, dict[Labels, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for (labels, _), (_, cost, _, _) in gpu.items():
            if cost > 0:
                weights[labels[0]][labels] += cost

        def spread(team: str, amount: Decimal, quantum: Decimal) -> dict[Labels, Decimal]:
            if amount == 0:
                return {}
            if team not in weights:
                return {_untagged_but_team(team): amount}
            return {k: v for k, v in split(amount, weights[team], quantum).items() if v}

        tokens: dict[tuple[str, str, TokenDirection], Decimal] = defaultdict(Decimal)
        for used in token_usage:
            tokens[(used.team, used.model, used.direction)] += used.tokens
        token_charges = [
            TokenCharge(
                labels, model, count, token_cost(count, model, pricing, direction), direction
            )
            for (team, model, direction), total in sorted(tokens.items())
            for labels, count in sorted(spread(team, total, WHOLE_TOKEN).items())
        ]
        shared_charges = [
            SharedCharge(labels, amount)
            for row in [*costs.teams, costs.untagged]
            for labels, amount in sorted(spread(row.team, row.shared_cost, QUANTUM).items())
        ]
    return Allocation(
        gpu=[GpuCharge(labels, model, *cells) for (labels, model), cells in sorted(gpu.items())],
        tokens=token_charges,
        shared=shared_charges,
        undistributed=costs.cluster.undistributed_cost,
    )

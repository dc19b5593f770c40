"""Per-cluster figures of a report over many clusters: what each cluster cost.

One Thanos Query (or Mimir) answers for a fleet of clusters, and the usage records
carry their cluster (`GpuUsage.cluster`, the value of config `cluster.label`; ""
for series without it, as one Prometheus read directly gives them). The report's
teams are the fleet's (a team's spend in every cluster, summed); this module cuts
the same usage by cluster for `report --by cluster` and the JSON `clusters` list.

Each cluster's figures are the cost model's (`compute_costs`) over that cluster's
usage alone, with its own capacity: a spare GPU in one cluster is not offset by a
pod of another. The configured platform cost (`pricing.sharedMonthly`) belongs to
whoever runs the report and is not split between clusters; it stays beside them:

    sum(cluster total_cost) + platform = fleet total, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import ClusterRow, compute_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.domain.money import ZERO


@dataclass(frozen=True)
class ClusterCost:
    """One cluster's figures; `name` is its cluster label's value ("" for none)."""

    name: str
    costs: ClusterRow


def cluster_costs(
    *,
    period: Period,
    pricing: PricingConfig,
    gpu_usage: Sequence[GpuUsage] = (),
    token_usage: Sequence[TokenUsage] = (),
    capacity: Sequence[CapacityUsage] = (),
) -> tuple[ClusterCost, ...]:
    """Every cluster with usage or capacity, by name, its platform cost excluded."""
    every: Iterable[GpuUsage | TokenUsage | CapacityUsage] = (*gpu_usage, *token_usage, *capacity)
    without_platform = pricing.model_copy(update={"shared_monthly": ZERO})
    return tuple(
        ClusterCost(
            name,
            compute_costs(
                period=period,
                pricing=without_platform,
                gpu_usage=[usage for usage in gpu_usage if usage.cluster == name],
                token_usage=[usage for usage in token_usage if usage.cluster == name],
                capacity=[offered for offered in capacity if offered.cluster == name],
            ).cluster,
        )
        for name in sorted({record.cluster for record in every})
    )

"""Usage records: what the cluster used in a period, as the cost model takes it.

Plain records, measured elsewhere (the report code reads them from Prometheus):
GPU hours by cost labels and GPU model, tokens by team and LLM model, the GPU
capacity the nodes offered, and the GPU hours of each Job (training run).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import TokenDirection
from finops_operator.domain.money import ZERO

# The cost labels besides the team, by which GPU usage and cost are broken down.
DIMENSIONS: Final = ("feature", "environment", "workload_type", "cost_center")


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
    # The value of the cluster label ("" for series without one: a single Prometheus).
    cluster: str = ""

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
    """Tokens a team sent through the LLM gateway to one model, over the period.

    `direction` says which price applies: input (prompt) or output (completion)
    tokens (`pricing.tokensPer1k`); a flat price prices both alike.
    """

    team: str
    model: str
    tokens: Decimal
    direction: TokenDirection = "input"
    cluster: str = ""


@dataclass(frozen=True)
class CapacityUsage:
    """GPU hours the cluster offered on one GPU model over the period (capacity x time)."""

    gpu_model: str
    gpu_hours: Decimal
    cluster: str = ""


@dataclass(frozen=True)
class JobUsage:
    """GPU hours of one Job (a training run), all its pods and retries together."""

    namespace: str
    job: str
    team: str
    gpu_model: str
    gpu_hours: Decimal
    cluster: str = ""

"""Cost centers carry all AI spend: GPU, tokens and shared cost (docs/cost-model.md)."""

from __future__ import annotations

from decimal import Decimal

from finops_operator.domain import conventions
from finops_operator.domain.costs.allocation import Allocation, allocate
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from tests.domain.costs.prices import A100, H100, NOVEMBER, D, pricing

GPU = [
    GpuUsage("search", H100, D("10.5"), D(7), cost_center="cc-1", feature="rank"),
    GpuUsage("search", A100, D("3.3"), None, cost_center="cc-2", feature="rank"),
    GpuUsage("recsys", H100, D(2), D(2), cost_center="cc-2"),
    GpuUsage("recsys", A100, D("0.7"), D("0.1"), cost_center="cc-3"),
    GpuUsage(conventions.UNTAGGED, H100, D(1), None),
]
TOKENS = [
    TokenUsage("search", "gpt-4o", D(12_345)),
    TokenUsage("recsys", "other", D(777)),
    TokenUsage("tokens-only", "gpt-4o", D(1_001)),
]


def report(gpu: list[GpuUsage], tokens: list[TokenUsage]) -> tuple[CostReport, Allocation]:
    costs = compute_costs(
        period=NOVEMBER,
        pricing=pricing(),
        gpu_usage=gpu,
        token_usage=tokens,
        capacity=[CapacityUsage(H100, D(40)), CapacityUsage(A100, D(10))],
    )
    return costs, allocate(costs, gpu, tokens, pricing())


def test_cost_centers_add_up_to_the_cluster_total_exactly_column_by_column() -> None:
    costs, allocation = report(GPU, TOKENS)
    centers = allocation.group(("cost_center",))
    assert [group.key for group in centers] == [
        (conventions.UNTAGGED,), ("cc-1",), ("cc-2",), ("cc-3",),
    ]  # fmt: skip
    cluster = costs.cluster
    total = sum((group.total_cost for group in centers), Decimal(0))
    assert total + allocation.undistributed == cluster.total_cost
    assert sum(group.gpu_cost for group in centers) == cluster.gpu_cost
    assert sum(group.idle_cost for group in centers) == cluster.idle_cost
    assert sum(group.token_cost for group in centers) == cluster.token_cost
    shared = sum((group.shared_cost for group in centers), Decimal(0))
    assert shared + allocation.undistributed == cluster.shared_cost
    assert sum(group.gpu_hours for group in centers) == cluster.gpu_hours
    # Token and shared cost are on the cost centers, not only GPU cost.
    assert all(group.token_cost > 0 and group.shared_cost > 0 for group in centers)


def test_a_cost_centers_total_is_its_gpu_token_and_shared_cost() -> None:
    _, allocation = report(GPU, TOKENS)
    for group in allocation.group(("cost_center",)):
        assert group.total_cost == group.gpu_cost + group.token_cost + group.shared_cost


def test_a_teams_cost_centers_add_up_to_its_row() -> None:
    costs, allocation = report(GPU, TOKENS)
    for row in [*costs.teams, costs.untagged]:
        mine = [g for g in allocation.group(("team", "cost_center")) if g.key[0] == row.team]
        assert sum(g.total_cost for g in mine) == row.total_cost, row.team

"""FOCUS rows: one per team x cost component, re-priced per model, adding up exactly."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from finops_operator.domain import conventions
from finops_operator.domain.costs.focus import FOCUS_COLUMNS, focus_rows
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from tests.domain.costs.prices import A100, H100, NOVEMBER, D, pricing

GPU = [
    GpuUsage("a", H100, D(6), D(4), feature="chat"),
    GpuUsage("a", A100, D(1), D(1), feature="chat"),
    GpuUsage("b", A100, D(20), None, feature="ranking"),
    GpuUsage(conventions.UNTAGGED, H100, D(5), D(5)),
]
TOKENS = [TokenUsage("a", "gpt-4o", D(100_000)), TokenUsage("c", "llama-3-70b", D(50_000))]
CAPACITY = [CapacityUsage(H100, D(20)), CapacityUsage(A100, D(30))]


def costs(**usage: Any) -> CostReport:
    inputs: dict[str, Any] = {"gpu_usage": GPU, "token_usage": TOKENS, "capacity": CAPACITY}
    return compute_costs(period=NOVEMBER, pricing=pricing(), **(inputs | usage))


def rows(report: CostReport, team: str | None = None, **usage: Any) -> list[dict[str, str]]:
    gpu, tokens = usage.get("gpu_usage", GPU), usage.get("token_usage", TOKENS)
    return focus_rows(report, gpu, tokens, pricing(), team)


def test_one_row_per_team_and_component_with_the_gpu_and_token_figures_priced_per_model() -> None:
    found = {(r["x_Team"], r["x_CostComponent"], r["ResourceId"]): r for r in rows(costs())}
    assert list(found) == [
        ("a", "gpu", f"a/gpu/{A100}"),
        ("a", "gpu", f"a/gpu/{H100}"),
        ("a", "tokens", "a/llm/gpt-4o"),
        ("a", "shared", "a/shared"),
        ("b", "gpu", f"b/gpu/{A100}"),
        ("b", "shared", "b/shared"),
        ("c", "tokens", "c/llm/llama-3-70b"),  # no GPU cost: no share (proportional split)
        (conventions.UNTAGGED, "gpu", f"{conventions.UNTAGGED}/gpu/{H100}"),
        (conventions.UNTAGGED, "shared", f"{conventions.UNTAGGED}/shared"),
    ]
    h100 = found[("a", "gpu", f"a/gpu/{H100}")]
    assert (h100["BilledCost"], h100["ConsumedQuantity"], h100["x_IdleGpuHours"]) == (
        "24.000000",
        "6.000000",
        "2.000000",
    )
    assert h100["x_IdleCost"] == "8.000000" and h100["ConsumedUnit"] == "GPU-Hours"
    tokens = found[("a", "tokens", "a/llm/gpt-4o")]
    assert (tokens["BilledCost"], tokens["PricingQuantity"], tokens["PricingUnit"]) == (
        "1.000000",
        "100.000000",
        "1000 Tokens",
    )
    assert all(set(row) == set(FOCUS_COLUMNS) for row in found.values())
    assert {row["ChargePeriodStart"] for row in found.values()} == {"2026-11-01T00:00:00Z"}
    assert {row["Tags"] for row in found.values() if row["x_Team"] == "b"} == {'{"team": "b"}'}


def test_the_rows_add_up_to_the_cluster_total() -> None:
    report = costs()
    billed = sum(Decimal(row["BilledCost"]) for row in rows(report))
    assert abs(billed - report.cluster.total_cost) < Decimal("0.000001") * len(rows(report))
    by_team = sum(Decimal(r["BilledCost"]) for r in rows(report) if r["x_Team"] == "a")
    assert abs(by_team - report.row("a").total_cost) < Decimal("0.000004")


def test_a_team_filter_keeps_that_teams_rows_and_untagged_has_its_own() -> None:
    report = costs()
    assert {row["x_Team"] for row in rows(report, "b")} == {"b"}
    untagged = rows(report, conventions.UNTAGGED)
    assert {row["x_Team"] for row in untagged} == {conventions.UNTAGGED}
    assert rows(report, "nobody") == []


def test_shared_cost_nobody_received_is_one_undistributed_row() -> None:
    report = costs(gpu_usage=[])  # no GPU cost: the proportional split has no weights
    found = rows(report, gpu_usage=[])
    (undistributed,) = [row for row in found if row["x_CostComponent"] == "undistributed"]
    assert undistributed["x_Team"] == "" and undistributed["Tags"] == "{}"
    assert Decimal(undistributed["BilledCost"]) == report.cluster.undistributed_cost > 0
    assert not [row for row in rows(report, "a", gpu_usage=[]) if not row["x_Team"]]

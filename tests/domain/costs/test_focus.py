"""FOCUS 1.2 rows: every cost on its label combination, re-priced per model, adding up exactly.

The validator itself runs in test_focus_validator.py; these tests pin the meaning:
which rows exist, what their columns say, and that they add up.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from finops_operator.domain import conventions
from finops_operator.domain.costs.cents import report_cents
from finops_operator.domain.costs.focus import FOCUS_COLUMNS, FocusAccount, focus_rows
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from tests.domain.costs.prices import A100, H100, NOVEMBER, D, pricing

GPU = [
    GpuUsage("a", H100, D(6), D(4), feature="chat", cost_center="cc-1"),
    GpuUsage("a", A100, D(1), D(1), feature="chat", cost_center="cc-2"),
    GpuUsage("b", A100, D(20), None, feature="ranking", cost_center="cc-1"),
    GpuUsage(conventions.UNTAGGED, H100, D(5), D(5)),
]
TOKENS = [TokenUsage("a", "gpt-4o", D(100_001)), TokenUsage("c", "llama-3-70b", D(50_000))]
CAPACITY = [CapacityUsage(H100, D(20)), CapacityUsage(A100, D(30))]


def costs(**usage: Any) -> CostReport:
    inputs: dict[str, Any] = {"gpu_usage": GPU, "token_usage": TOKENS, "capacity": CAPACITY}
    return compute_costs(period=NOVEMBER, pricing=pricing(), **(inputs | usage))


def rows(report: CostReport, team: str | None = None, **usage: Any) -> list[dict[str, str]]:
    gpu, tokens = usage.get("gpu_usage", GPU), usage.get("token_usage", TOKENS)
    return focus_rows(report, gpu, tokens, pricing(), team)


def test_rows_per_label_combination_and_component_teams_first_untagged_last() -> None:
    found = [(r["x_Team"], r["x_CostCenter"], r["x_CostComponent"]) for r in rows(costs())]
    assert found == [
        ("a", "cc-1", "gpu"),
        ("a", "cc-2", "gpu"),
        ("a", "cc-1", "tokens"),  # a's tokens split by its GPU cost: 24 (cc-1) to 2 (cc-2)
        ("a", "cc-2", "tokens"),
        ("a", "cc-1", "shared"),
        ("a", "cc-2", "shared"),
        ("b", "cc-1", "gpu"),
        ("b", "cc-1", "shared"),
        ("c", conventions.UNTAGGED, "tokens"),  # no GPU cost: no share (proportional split)
        (conventions.UNTAGGED, conventions.UNTAGGED, "gpu"),
        (conventions.UNTAGGED, conventions.UNTAGGED, "shared"),
    ]
    assert all(set(row) == set(FOCUS_COLUMNS) for row in rows(costs()))


def test_gpu_rows_are_usage_in_gpu_hours_at_the_models_price_with_a_coherent_resource() -> None:
    h100 = rows(costs())[0]
    assert (h100["ChargeCategory"], h100["ChargeClass"], h100["ChargeFrequency"]) == (
        "Usage",
        "",
        "Usage-Based",
    )
    assert (h100["BilledCost"], h100["ConsumedQuantity"], h100["PricingQuantity"]) == (
        "24.0",
        "6.0",
        "6.0",
    )
    assert h100["ListUnitPrice"] == h100["ContractedUnitPrice"] == "4.0"
    assert h100["ListCost"] == h100["ContractedCost"] == h100["EffectiveCost"] == "24.0"
    assert (h100["x_IdleGpuHours"], h100["x_IdleCost"]) == ("2.0", "8.0")
    assert h100["ConsumedUnit"] == h100["PricingUnit"] == "GPU-Hours"
    # The resource is the pool of that GPU model, the same for every team.
    assert h100["ResourceId"] == f"gpu-cluster/gpu/{H100}"
    assert h100["ResourceName"] == f"{H100} GPUs" and h100["ResourceType"] == "GPU pool"
    assert h100["SkuId"] == f"gpu-hour/{H100}" and h100["SkuPriceId"] == f"gpu-hour/{H100}@4.0USD"
    assert (h100["ServiceCategory"], h100["ServiceSubcategory"]) == ("Compute", "Containers")


def test_tags_hold_every_cost_label_under_its_own_key_and_cost_center_is_a_column() -> None:
    gpu = GpuUsage("a", H100, D(1), None, "chat", "production", "inference", "cc-7")
    row = rows(costs(gpu_usage=[gpu]), gpu_usage=[gpu])[0]
    assert json.loads(row["Tags"]) == {
        "resilio.tech/team": "a",
        "resilio.tech/feature": "chat",
        "resilio.tech/environment": "production",
        "resilio.tech/workload-type": "inference",
        "resilio.tech/cost-center": "cc-7",
    }
    assert (row["x_CostCenter"], row["x_WorkloadType"], row["x_Environment"]) == (
        "cc-7",
        "inference",
        "production",
    )
    untagged = rows(costs())[-1]
    assert json.loads(untagged["Tags"]) == {}  # a label the workload lacked is no tag


def test_token_quantities_are_whole_tokens_and_their_cost_follows_from_them() -> None:
    token_rows = [r for r in rows(costs()) if r["x_CostComponent"] == "tokens"]
    a = [r for r in token_rows if r["x_Team"] == "a"]
    counts = [Decimal(r["ConsumedQuantity"]) for r in a]
    assert all(count == count.to_integral_value() for count in counts)
    assert sum(counts) == 100_001  # 24:2 split of 100,001 tokens, in whole tokens
    assert counts == [D(92_309), D(7_692)]
    for row in a:
        assert row["ConsumedUnit"] == "Tokens" and row["PricingUnit"] == "1000 Tokens"
        assert Decimal(row["PricingQuantity"]) * 1000 == Decimal(row["ConsumedQuantity"])
        # List and contracted cost are price x quantity; billed cost is that in cents.
        assert Decimal(row["ListCost"]) == Decimal(row["PricingQuantity"]) * D("0.01")
        assert abs(Decimal(row["BilledCost"]) - Decimal(row["ListCost"])) < D("0.01")
        assert row["ResourceId"] == "gpu-cluster/llm/gpt-4o"
        assert (row["ServiceCategory"], row["ServiceSubcategory"]) == (
            "AI and Machine Learning",
            "Generative AI",
        )


def test_shared_cost_rows_are_adjustments_without_quantity_or_resource() -> None:
    shared = [r for r in rows(costs()) if r["x_CostComponent"] == "shared"]
    assert shared
    for row in shared:
        assert (row["ChargeCategory"], row["ChargeClass"], row["ChargeFrequency"]) == (
            "Adjustment",
            "",
            "Recurring",
        )
        empty = ("ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit")
        assert all(row[column] == "" for column in empty)
        assert row["ResourceId"] == row["ResourceName"] == row["SkuId"] == ""
        assert row["BilledCost"] == row["EffectiveCost"]
        assert row["ListCost"] == row["ContractedCost"]


def test_the_rows_add_up_to_the_cluster_total_and_each_team_to_its_total() -> None:
    report = costs()
    cents = report_cents(report)
    billed = sum(Decimal(row["BilledCost"]) for row in rows(report))
    assert billed == cents.cluster.total_cost == report.cluster.total_cost.quantize(D("0.01"))
    assert sum(Decimal(row["ListCost"]) for row in rows(report)) == report.cluster.total_cost
    for team in ("a", "b", "c", conventions.UNTAGGED):
        mine = sum(Decimal(r["BilledCost"]) for r in rows(report) if r["x_Team"] == team)
        assert mine == cents.of(team).total_cost
        exact = sum(Decimal(r["ListCost"]) for r in rows(report) if r["x_Team"] == team)
        assert exact == report.row(team).total_cost


def test_undistributed_shared_cost_is_a_row_of_its_own_without_labels() -> None:
    report = costs(gpu_usage=[], capacity=[])
    found = rows(report, gpu_usage=[])
    last = found[-1]
    assert last["x_CostComponent"] == "undistributed" and last["x_Team"] == ""
    assert Decimal(last["ListCost"]) == report.cluster.undistributed_cost > 0
    assert Decimal(last["BilledCost"]) == report.cluster.undistributed_cost.quantize(D("0.01"))
    assert last["Tags"] == "{}" and last["ChargeCategory"] == "Adjustment"
    assert sum(Decimal(r["ListCost"]) for r in found) == report.cluster.total_cost
    billed = sum(Decimal(r["BilledCost"]) for r in found)
    assert billed == report.cluster.total_cost.quantize(D("0.01"))


def test_billing_period_and_charge_period_and_account() -> None:
    through = Period(NOVEMBER.start, NOVEMBER.start.replace(day=3))
    report = compute_costs(period=through, pricing=pricing(), gpu_usage=GPU)
    account = FocusAccount("prod-eu", "Production EU", "ML platform")
    row = focus_rows(report, GPU, [], pricing(), billing_period=NOVEMBER, account=account)[0]
    assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == (
        "2026-11-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
    )
    assert (row["ChargePeriodStart"], row["ChargePeriodEnd"]) == (
        "2026-11-01T00:00:00Z",
        "2026-11-03T00:00:00Z",
    )
    assert (row["BillingAccountId"], row["BillingAccountName"]) == ("prod-eu", "Production EU")
    assert row["ProviderName"] == row["PublisherName"] == row["InvoiceIssuerName"] == "ML platform"
    assert row["InvoiceId"] == "prod-eu-2026-11" and row["BillingCurrency"] == "USD"


def test_a_team_filter_keeps_that_teams_rows_and_untagged_has_its_own() -> None:
    report = costs()
    assert {row["x_Team"] for row in rows(report, "b")} == {"b"}
    untagged = rows(report, conventions.UNTAGGED)
    assert {row["x_Team"] for row in untagged} == {conventions.UNTAGGED}
    assert rows(report, "nobody") == []

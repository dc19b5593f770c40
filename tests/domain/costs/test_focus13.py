"""FOCUS 1.3 rows: daily charge periods, split-allocation columns, cents that tie out.

The validator runs in test_focus_validator.py; these tests pin the meaning
(docs/report.md, "FOCUS 1.3").
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from finops_operator.domain import conventions
from finops_operator.domain.costs.cents import report_cents
from finops_operator.domain.costs.focus13 import FOCUS_1_3_COLUMNS, focus13_rows
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.trend import DayUsage
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from tests.domain.costs.prices import A100, H100, D, pricing

START = Period.month(2026, 11).start
PERIOD = Period(START, START + timedelta(days=3))
WINDOWS = [Period(START + timedelta(days=i), START + timedelta(days=i + 1)) for i in range(3)]
# Day by day: "a" on H100 two days (two cost centers), "b" on A100 on day 2, untagged on day 3.
DAYS = [
    DayUsage(
        WINDOWS[0],
        gpu=[GpuUsage("a", H100, D(10), D(6), cost_center="cc-1", feature="chat")],
        tokens=[TokenUsage("a", "gpt-4o", D("1000.4"))],
        capacity=[CapacityUsage(H100, D(24)), CapacityUsage(A100, D(24))],
    ),
    DayUsage(
        WINDOWS[1],
        gpu=[
            GpuUsage("a", H100, D(5), None, cost_center="cc-2"),
            GpuUsage("b", A100, D("7.5"), D(7)),
        ],
        tokens=[TokenUsage("a", "gpt-4o", D("2000.6")), TokenUsage("c", "other", D(333))],
        capacity=[CapacityUsage(H100, D(24)), CapacityUsage(A100, D(24))],
    ),
    DayUsage(
        WINDOWS[2],
        gpu=[GpuUsage(conventions.UNTAGGED, H100, D(1))],
        capacity=[CapacityUsage(H100, D(24)), CapacityUsage(A100, D(24))],
    ),
]
GPU = [usage for day in DAYS for usage in day.gpu]
TOKENS = [TokenUsage("a", "gpt-4o", D(3001)), TokenUsage("c", "other", D(333))]
CAPACITY = [CapacityUsage(H100, D(72)), CapacityUsage(A100, D(72))]


def costs(**extra: str) -> CostReport:
    return compute_costs(
        period=PERIOD,
        pricing=pricing(**extra),
        gpu_usage=GPU,
        token_usage=TOKENS,
        capacity=CAPACITY,
    )


def rows(report: CostReport, **extra: str) -> list[dict[str, str]]:
    return focus13_rows(report, GPU, TOKENS, pricing(**extra), days=DAYS, capacity=CAPACITY)


def test_the_columns_are_focus_1_3_then_ours() -> None:
    found = rows(costs())
    assert all(list(row) == list(FOCUS_1_3_COLUMNS) for row in found)
    names = list(FOCUS_1_3_COLUMNS)
    for column in (
        "AllocatedMethodId",
        "AllocatedMethodDetails",
        "AllocatedResourceId",
        "AllocatedResourceName",
        "AllocatedTags",
        "ServiceProviderName",
        "HostProviderName",
        "SubAccountId",
    ):
        assert column in names
    first_ours = min(i for i, name in enumerate(names) if name.startswith("x_"))
    assert all(name.startswith("x_") for name in names[first_ours:])


def test_every_row_is_one_day_of_the_period() -> None:
    found = rows(costs())
    periods = {(row["ChargePeriodStart"], row["ChargePeriodEnd"]) for row in found}
    assert periods == {
        (f"2026-11-0{i + 1}T00:00:00Z", f"2026-11-0{i + 2}T00:00:00Z") for i in range(3)
    }
    assert {row["BillingPeriodStart"] for row in found} == {"2026-11-01T00:00:00Z"}
    # GPU hours land on the day they were measured.
    b = [r for r in found if r["x_Team"] == "b" and r["x_CostComponent"] == "gpu"]
    assert [(r["ChargePeriodStart"], r["ConsumedQuantity"]) for r in b] == [
        ("2026-11-02T00:00:00Z", "7.5")
    ]


def test_billed_cost_adds_up_to_the_reports_cents_and_list_cost_to_the_exact_total() -> None:
    report = costs()
    cents = report_cents(report)
    found = rows(report)
    assert sum(D(r["BilledCost"]) for r in found) == cents.cluster.total_cost
    assert sum(D(r["ListCost"]) for r in found) == report.cluster.total_cost
    by_team: dict[str, Decimal] = defaultdict(Decimal)
    for row in found:
        by_team[row["SubAccountId"]] += D(row["BilledCost"])
    for row in [*report.teams, report.untagged]:
        assert by_team[row.team] == cents.of(row.team).total_cost, row.team


def test_subaccount_is_the_team() -> None:
    for row in rows(costs()):
        assert row["SubAccountId"] == row["SubAccountName"] == row["x_Team"]
        assert row["SubAccountType"] == ("Team" if row["x_Team"] else "")


def test_tokens_carry_only_the_team_the_gateway_reported_and_are_split_over_days() -> None:
    tokens = [r for r in rows(costs()) if r["x_CostComponent"] == "tokens"]
    assert {r["Tags"] for r in tokens} == {'{"resilio.tech/team":"a"}', '{"resilio.tech/team":"c"}'}
    per_day: dict[str, Decimal] = defaultdict(Decimal)
    for row in tokens:
        if row["x_Team"] == "a":
            per_day[row["ChargePeriodStart"]] += D(row["ConsumedQuantity"])
    # Whole tokens, in the days' measured proportion (1000.4 : 2000.6 of 3001).
    assert list(per_day.values()) == [D(1000), D(2001)]


def test_tokens_are_split_over_the_teams_label_combinations_by_gpu_cost() -> None:
    tokens = [r for r in rows(costs()) if r["x_CostComponent"] == "tokens"]
    a = [
        r for r in tokens if r["x_Team"] == "a" and r["ChargePeriodStart"].endswith("01T00:00:00Z")
    ]
    # a's GPU cost: 40.00 on (chat, cc-1), 20.00 on cc-2: the day's 1000 tokens go 2:1.
    assert sorted(D(r["ConsumedQuantity"]) for r in a) == [D(333), D(667)]
    for row in a:
        assert row["AllocatedMethodId"] == "tokens-by-gpu-cost"
        assert row["AllocatedResourceId"].startswith("labels/a/")
        tags = json.loads(row["AllocatedTags"])
        assert "resilio.tech/team" not in tags  # already in Tags
        assert tags.get("resilio.tech/cost-center") == row["x_CostCenter"]
        assert D(row["ListCost"]) == D(row["PricingQuantity"]) * D(row["ListUnitPrice"])
    ratios = [json.loads(r["AllocatedMethodDetails"])["Elements"][0]["AllocatedRatio"] for r in a]
    assert abs(sum(ratios) - 1) < 1e-9
    # c has no GPU cost: its tokens are not split, and say so with null allocation columns.
    c = [r for r in tokens if r["x_Team"] == "c"]
    assert c and all(r["AllocatedMethodId"] == r["AllocatedTags"] == "" for r in c)
    gpu = [r for r in rows(costs()) if r["x_CostComponent"] == "gpu"]
    assert all(r["AllocatedMethodId"] == "" for r in gpu)  # measured, not split


def test_shared_cost_is_usage_split_with_the_allocation_columns_never_an_adjustment() -> None:
    found = rows(costs())
    assert all(row["ChargeCategory"] == "Usage" for row in found)
    shared = [r for r in found if r["x_CostComponent"] == "shared"]
    assert {r["SkuMeter"] for r in shared} == {"Platform Hours", "Unallocated GPU Hours"}
    origins: dict[tuple[str, str, str], float] = defaultdict(float)
    for row in shared:
        assert row["AllocatedMethodId"] == "shared-by-gpu-cost"
        assert row["Tags"] == "{}"  # the origin charge (the platform) has no tags
        assert row["AllocatedResourceId"].startswith("labels/" + row["x_Team"] + "/")
        tags = json.loads(row["AllocatedTags"])
        assert tags.get("resilio.tech/team", conventions.UNTAGGED) == row["x_Team"]
        details = json.loads(row["AllocatedMethodDetails"])
        key = (row["ChargePeriodStart"], row["SkuId"], row["ResourceId"])
        origins[key] += details["Elements"][0]["AllocatedRatio"]
    # The allocated ratios of one origin charge add up to 1.
    assert all(abs(total - 1) < 1e-9 for total in origins.values())


def test_shared_cost_nobody_received_is_the_unallocated_portion() -> None:
    report = compute_costs(period=PERIOD, pricing=pricing(), token_usage=TOKENS)
    days = [DayUsage(w) for w in WINDOWS]
    found = focus13_rows(report, [], TOKENS, pricing(), days=days, capacity=[])
    rest = [r for r in found if r["x_CostComponent"] == "undistributed"]
    assert rest and all(r["AllocatedResourceId"] == "" and r["SubAccountId"] == "" for r in rest)
    assert all(r["AllocatedMethodId"] for r in rest)
    total = sum(D(r["BilledCost"]) for r in rest)
    assert total == report_cents(report).undistributed.shared_cost > 0
    assert sum(D(r["BilledCost"]) for r in found) == report_cents(report).cluster.total_cost


def test_even_split_names_its_method_and_a_team_filter_keeps_that_team() -> None:
    found = rows(costs(sharedSplit="even"), sharedSplit="even")
    assert {r["AllocatedMethodId"] for r in found if r["x_CostComponent"] == "shared"} == {
        "shared-evenly"
    }
    only = focus13_rows(costs(), GPU, TOKENS, pricing(), "b", days=DAYS, capacity=CAPACITY)
    assert only and {r["x_Team"] for r in only} == {"b"}

"""Every cent once: one rounding rule, the same cents in every format (docs/cost-model.md).

The property tests draw random months (any month, a running one cut short, random
teams, labels, GPU and LLM models, usage, prices, platform fee, split rule) and
check what a finance reader checks: a row's parts add up to its total, the rows to
the cluster, a team's `--by` rows to its unsplit row, and the table, JSON, CSV,
CostReports (the HTML page's figures) and FOCUS all show the same cents.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.allocation import allocate
from finops_operator.domain.costs.cents import CENT, cluster_cents, report_cents, within
from finops_operator.domain.costs.focus import focus_rows
from finops_operator.domain.costs.focus13 import focus13_rows
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.views.report_formats import to_csv, to_json, to_table
from tests.domain.costs.prices import A100, H100, NOVEMBER, D, pricing
from tests.views.costreports import operator_reports

MONEY = ("gpuCost", "idleCost", "tokenCost", "sharedCost", "totalCost")
PARTS = ("gpuCost", "tokenCost", "sharedCost")
CSV_MONEY = {
    "gpuCost": "GPU cost (USD)",
    "idleCost": "Idle GPU cost (USD, included in GPU cost)",
    "tokenCost": "Token cost (USD)",
    "sharedCost": "Shared cost (USD)",
    "totalCost": "Total cost (USD)",
}
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)

hours = st.decimals(min_value=0, max_value=500, places=4, allow_nan=False)
prices = st.decimals(min_value="0.001", max_value=50, places=4, allow_nan=False)


@dataclass(frozen=True)
class Month:
    costs: CostReport
    gpu: list[GpuUsage]
    tokens: list[TokenUsage]
    pricing: PricingConfig
    capacity: list[CapacityUsage]


@st.composite
def months(draw: st.DrawFn) -> Month:
    year, month = draw(st.integers(2024, 2027)), draw(st.integers(1, 12))
    period = Period.month(year, month)
    if draw(st.booleans()):  # a month still running, cut at some hour
        cut = draw(st.integers(1, 24 * 27))
        period = Period(period.start, period.start + datetime.timedelta(hours=cut))
    teams = draw(
        st.lists(
            st.sampled_from(["a", "b", "c", "d", "e", conventions.UNTAGGED]),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    labels = st.sampled_from(["x", "y", conventions.UNTAGGED])
    gpu = [
        GpuUsage(
            team,
            draw(st.sampled_from([H100, A100, "L4"])),
            allocated,
            allocated * draw(st.decimals(0, 1, places=3)) if draw(st.booleans()) else None,
            feature=draw(labels),
            cost_center=draw(labels),
            environment=draw(labels),
        )
        for team in teams
        for allocated in draw(st.lists(hours, max_size=4))
    ]
    tokens = [
        TokenUsage(
            team,
            draw(st.sampled_from(["gpt-4o", "other"])),
            D(draw(st.integers(0, 5_000_000))),
            draw(st.sampled_from(["input", "output"])),
        )
        for team in teams
        if draw(st.booleans())
    ]
    config = pricing(
        gpuHourly={"default": str(draw(prices)), H100: str(draw(prices))},
        sharedMonthly=str(draw(st.decimals(0, 20_000, places=2))),
        sharedSplit=draw(st.sampled_from(["proportional", "even"])),
    )
    capacity = [CapacityUsage(H100, draw(hours) * 3), CapacityUsage(A100, draw(hours))]
    costs = compute_costs(
        period=period, pricing=config, gpu_usage=gpu, token_usage=tokens, capacity=capacity
    )
    return Month(costs, gpu, tokens, config, capacity)


def _json_rows(document: dict[str, Any]) -> dict[str, dict[str, Decimal]]:
    rows = [*document["teams"], document["untagged"], document["cluster"]]
    return {row["team"]: {name: D(row[name]) for name in MONEY} for row in rows}


def _csv_rows(text: str, by: int = 0) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    return [
        {"kind": line["Row type"], "team": line["Team"]}
        | {name: D(line[header]) for name, header in CSV_MONEY.items()}
        for line in reader
    ]


def _table_rows(text: str) -> dict[str, dict[str, Decimal]]:
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == 9 and re.fullmatch(r"-?\d+\.\d\d", cells[-1]):
            values = [D(cells[i]) for i in (2, 5, 6, 7, 8)]
            rows[cells[0]] = dict(zip(MONEY, values, strict=True))
    return rows


def _costreport_rows(costs: CostReport) -> dict[str, dict[str, Decimal]]:
    rows = {}
    for report in operator_reports(costs, NOW):
        name = report["spec"].get("team", "cluster")
        rows[name] = {column: D(report["status"][column]) for column in MONEY}
    return rows


def _adds_up(row: dict[str, Decimal]) -> bool:
    return row["gpuCost"] + row["tokenCost"] + row["sharedCost"] == row["totalCost"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(months())
def test_every_format_shows_the_same_cents_and_every_row_adds_up(
    month: Month,
) -> None:
    costs, gpu, tokens, config = month.costs, month.gpu, month.tokens, month.pricing
    shown = _json_rows(json.loads(to_json(costs, "p")))
    for name, row in shown.items():
        assert _adds_up(row), (name, row)
    # The rows (and the shared cost nobody received) add up to the cluster.
    undistributed = D(json.loads(to_json(costs, "p"))["cluster"]["sharedCost"]) - sum(
        (row["sharedCost"] for name, row in shown.items() if name != "cluster"), D(0)
    )
    for column in MONEY:
        rows = sum((row[column] for name, row in shown.items() if name != "cluster"), D(0))
        extra = undistributed if column in ("sharedCost", "totalCost") else 0
        assert rows + extra == shown["cluster"][column], column
    # The cluster's total is its own nearest cent; no figure is off by a cent or more.
    assert shown["cluster"]["totalCost"] == costs.cluster.total_cost.quantize(CENT)
    for row in [*costs.teams, costs.untagged]:
        for column, attr in zip(PARTS, ("gpu_cost", "token_cost", "shared_cost"), strict=True):
            assert abs(shown[row.team][column] - getattr(row, attr)) < CENT
    # The CSV, the table and the CostReports (the HTML page's figures) say the same.
    csv_rows = _csv_rows(to_csv(costs, "p"))
    as_csv = {("cluster" if r["kind"] == "cluster total" else r["team"]): r for r in csv_rows}
    for name, row in shown.items():
        assert {c: as_csv[name][c] for c in MONEY} == row, name
    assert _table_rows(to_table(costs, "p")) == shown
    assert _costreport_rows(costs) == shown
    # `--by`: a team's split rows add up to its unsplit row, each adding up itself.
    allocation = allocate(costs, gpu, tokens, config)
    split = _csv_rows(to_csv(costs, "p", allocation=allocation, by=("cost_center", "feature")))
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(MONEY, D(0)))
    for line in split:
        if line["kind"] in ("team", "untagged"):
            assert _adds_up(line), line
            for column in MONEY:
                sums[line["team"]][column] += line[column]
    for name, row in shown.items():
        if name != "cluster" and any(row.values()):
            assert sums[name] == row, name
    # FOCUS: a team's BilledCost, by component, is its row; all of it is the cluster's.
    billed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in focus_rows(costs, gpu, tokens, config):
        billed[(line["x_Team"] or "", line["x_CostComponent"])] += D(line["BilledCost"])
    component = {"gpu": "gpuCost", "tokens": "tokenCost", "shared": "sharedCost"}
    for (name, kind), amount in billed.items():
        if kind != "undistributed":
            assert amount == shown[name][component[kind]], (name, kind)
    assert sum(billed.values(), D(0)) == shown["cluster"]["totalCost"]
    # FOCUS 1.3 (one window here): each team's BilledCost is its total, all of it the cluster's.
    by_team: dict[str, Decimal] = defaultdict(Decimal)
    for line in focus13_rows(costs, gpu, tokens, config, capacity=month.capacity):
        by_team[line["SubAccountId"]] += D(line["BilledCost"])
    for name, row in shown.items():
        if name != "cluster":
            assert by_team[name] == row["totalCost"], name
    assert sum(by_team.values(), D(0)) == shown["cluster"]["totalCost"]


def test_the_worked_example_of_the_docs() -> None:
    """docs/cost-model.md, "Every cent once": three teams share 100.00 of platform fee."""
    config = pricing(gpuHourly={"default": "1"}, sharedMonthly="100")
    gpu = [GpuUsage(team, H100, D(1)) for team in ("a", "b", "c")]
    costs = compute_costs(period=NOVEMBER, pricing=config, gpu_usage=gpu)
    # Exactly: each team 1.00 GPU + 33.333333333333(4) shared = 34.33...; cluster 103.00.
    rounded = report_cents(costs)
    assert [rounded.of(t).shared_cost for t in "abc"] == [D("33.34"), D("33.33"), D("33.33")]
    assert [rounded.of(t).total_cost for t in "abc"] == [D("34.34"), D("34.33"), D("34.33")]
    assert rounded.cluster.total_cost == D("103.00")


def test_cluster_parts_are_rounded_within_its_total_and_idle_within_gpu() -> None:
    config = pricing(gpuHourly={"default": "0.005"}, sharedMonthly="0")
    gpu = [GpuUsage("a", H100, D(1), D(0)), GpuUsage("a", A100, D(1), D(0))]
    tokens = [TokenUsage("a", "gpt-4o", D("0.5"))]
    costs = compute_costs(period=NOVEMBER, pricing=config, gpu_usage=gpu, token_usage=tokens)
    # GPU 0.010 exactly, tokens 0.000005: the total 0.010005 is 0.01, and so are its parts.
    cents = cluster_cents(costs.cluster)
    assert (cents.gpu_cost, cents.token_cost, cents.total_cost) == (D("0.01"), 0, D("0.01"))
    assert cents.idle_cost == D("0.01")  # all of it idle, never more than the GPU cost
    assert within([], cents) == []

"""The report's formats from the cost model's rows: JSON, CSV, FOCUS CSV and the table."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.allocation import Allocation, allocate
from finops_operator.domain.costs.finance import DataSpan
from finops_operator.domain.costs.focus import FOCUS_COLUMNS, focus_rows
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.pricing import JobCost
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.views.report_formats import (
    FORMATS,
    CsvContext,
    to_csv,
    to_focus,
    to_json,
    to_table,
)

D = Decimal
H100 = "NVIDIA-H100-80GB-HBM3"
PRICING = PricingConfig.model_validate(
    {"gpuHourly": {"default": "2", H100: "4"}, "tokensPer1k": {"default": "0.002"}}
    | {"sharedMonthly": "300"}
)
GPU = [
    GpuUsage("search", H100, D("10.5"), D(7)),
    GpuUsage("recsys", H100, D(2), D(2)),
    GpuUsage(conventions.UNTAGGED, H100, D(1), None),
]
TOKENS = [TokenUsage("search", "gpt-4o", D(12_345))]


def costs() -> CostReport:
    return compute_costs(
        period=Period.month(2026, 11),
        pricing=PRICING,
        gpu_usage=GPU,
        token_usage=TOKENS,
        capacity=[CapacityUsage(H100, D(20))],
    )


def test_the_formats_are_the_five_of_the_command() -> None:
    assert FORMATS == ("table", "json", "csv", "focus", "html")


def test_json_is_the_contract_with_money_as_strings_and_hours_as_numbers() -> None:
    document = json.loads(to_json(costs(), "2026-11"))
    assert list(document) == [
        "period",
        "currency",
        "teams",
        "untagged",
        "cluster",
        "selfHostedModels",
    ]
    assert document["period"] == "2026-11" and document["currency"] == "USD"
    assert [row["team"] for row in document["teams"]] == ["recsys", "search"]
    search = document["teams"][1]
    assert search["gpuHours"] == 10.5 and search["gpuCost"] == "42.00"
    assert search["idleGpuHours"] == 3.5 and search["idleCost"] == "14.00"
    assert search["tokenCost"] == "0.02"  # 12,345 tokens x 0.002 / 1000, to cents
    assert document["untagged"]["team"] == conventions.UNTAGGED
    assert document["cluster"]["team"] == "cluster"
    only = json.loads(to_json(costs(), "2026-11", "recsys"))
    assert [row["team"] for row in only["teams"]] == ["recsys"]


MONEY_HEADERS = (
    "GPU cost (USD)",
    "Idle GPU cost (USD, included in GPU cost)",
    "Token cost (USD)",
    "Shared cost (USD)",
    "Total cost (USD)",
)
SUMMED = ("GPU hours", "Idle GPU hours (included in GPU hours)", "LLM tokens", *MONEY_HEADERS)


def many_costs() -> tuple[CostReport, list[GpuUsage], list[TokenUsage]]:
    """Thirds of a cent everywhere, so that rounding each row to cents would not add up."""
    gpu = [
        GpuUsage(f"team-{i}", H100, D(1) / 3 + i, D(i) / 7, f"f{i % 2}", cost_center=f"cc-{i % 3}")
        for i in range(9)
    ] + [GpuUsage(conventions.UNTAGGED, "other", D(10) / 3, None)]
    tokens = [TokenUsage(f"team-{i}", "gpt-4o", D(1_001 + i)) for i in range(0, 9, 2)]
    tokens.append(TokenUsage("tokens-only", "gpt-4o", D(3_333_333)))
    report = compute_costs(
        period=Period.month(2026, 11),
        pricing=PRICING.model_copy(update={"shared_monthly": D("100.01")}),
        gpu_usage=gpu,
        token_usage=tokens,
        capacity=[CapacityUsage(H100, D(100))],
    )
    return report, gpu, tokens


def _check_sums(lines: list[dict[str, str]]) -> None:
    """Summing any figure over team + untagged + undistributed rows is the cluster total."""
    kinds = {line["Row type"] for line in lines}
    assert kinds <= {"team", "untagged", "undistributed", "cluster total"}
    total = [line for line in lines if line["Row type"] == "cluster total"]
    assert len(total) == 1
    for column in SUMMED:
        by_type: dict[str, Decimal] = {}
        for line in lines:
            by_type[line["Row type"]] = by_type.get(line["Row type"], D(0)) + D(line[column])
        parts = by_type.get("team", D(0)) + by_type.get("untagged", D(0))
        parts += by_type.get("undistributed", D(0))
        if column in MONEY_HEADERS:
            assert parts == by_type["cluster total"], column  # to the cent
        else:
            assert abs(parts - by_type["cluster total"]) <= D("0.0005") * len(lines), column


def test_csv_headers_are_words_with_units_and_currency_and_rows_have_a_type() -> None:
    context = CsvContext(datetime(2026, 11, 20, 6, tzinfo=UTC), partial_period=True)
    lines = list(csv.DictReader(io.StringIO(to_csv(costs(), "2026-11", context=context))))
    assert list(lines[0]) == [
        "Row type", "Period", "Period start (UTC)", "Period end (UTC)", "Data from (UTC)",
        "Data through (UTC)",
        "Partial period", "Incomplete data", "Team", *SUMMED,
    ]  # fmt: skip
    assert [(line["Row type"], line["Team"]) for line in lines] == [
        ("team", "recsys"),
        ("team", "search"),
        ("untagged", conventions.UNTAGGED),
        ("undistributed", ""),
        ("cluster total", ""),
    ]
    assert {line["Data through (UTC)"] for line in lines} == {"2026-11-20T06:00:00Z"}
    assert {line["Data from (UTC)"] for line in lines} == {"2026-11-01T00:00:00Z"}
    assert {line["Partial period"] for line in lines} == {"yes"}
    assert {line["Incomplete data"] for line in lines} == {"no"}
    search = lines[1]
    assert search["GPU cost (USD)"] == "42.00" and search["LLM tokens"] == "12345"
    assert search["Idle GPU cost (USD, included in GPU cost)"] == "14.00"
    _check_sums(lines)


def test_every_money_column_summed_by_row_type_is_the_cluster_total_to_the_cent() -> None:
    report = many_costs()[0]
    assert report.cluster.undistributed_cost == 0
    lines = list(csv.DictReader(io.StringIO(to_csv(report, "2026-11"))))
    _check_sums(lines)
    # ... and with undistributed shared cost (no GPU cost to spread it over).
    alone = compute_costs(
        period=Period.month(2026, 11),
        pricing=PRICING,
        token_usage=[TokenUsage("chat", "gpt-4o", D(10))],
    )
    lines = list(csv.DictReader(io.StringIO(to_csv(alone, "2026-11"))))
    undistributed = next(line for line in lines if line["Row type"] == "undistributed")
    assert undistributed["Shared cost (USD)"] == "300.00"
    _check_sums(lines)


def test_rows_by_team_cost_center_and_feature_carry_all_spend_and_add_up() -> None:
    report, gpu, tokens = many_costs()
    allocation = allocate(report, gpu, tokens, PRICING)
    text = to_csv(report, "2026-11", allocation=allocation, by=("cost_center", "feature"))
    lines = list(csv.DictReader(io.StringIO(text)))
    assert list(lines[0])[8:11] == ["Team", "Cost center", "Feature"]
    _check_sums(lines)
    team_rows = [line for line in lines if line["Row type"] == "team"]
    assert len({(r["Team"], r["Cost center"], r["Feature"]) for r in team_rows}) == len(team_rows)
    # A team without GPU cost keeps its tokens on its untagged cost center.
    only = next(line for line in team_rows if line["Team"] == "tokens-only")
    assert only["Cost center"] == conventions.UNTAGGED and D(only["Token cost (USD)"]) > 0
    # Per team, the split rows add up to the team's own row (to the cent, +-1 per row).
    plain = {r["Team"]: r for r in csv.DictReader(io.StringIO(to_csv(report, "2026-11")))}
    for name in {line["Team"] for line in team_rows}:
        mine = [line for line in team_rows if line["Team"] == name]
        for column in MONEY_HEADERS:
            split = sum(D(line[column]) for line in mine)
            assert abs(split - D(plain[name][column])) <= D("0.01") * len(mine), (name, column)


def test_a_team_filter_keeps_the_team_and_the_rows_that_are_not_teams() -> None:
    lines = list(csv.DictReader(io.StringIO(to_csv(costs(), "2026-11", "search"))))
    assert [line["Row type"] for line in lines] == [
        "team", "untagged", "undistributed", "cluster total",
    ]  # fmt: skip


def test_focus_csv_has_the_focus_columns_and_one_line_per_row() -> None:
    rows = focus_rows(costs(), GPU, TOKENS, PRICING)
    lines = list(csv.DictReader(io.StringIO(to_focus(rows))))
    assert tuple(lines[0]) == FOCUS_COLUMNS
    assert lines == rows


def test_the_table_names_every_row_and_says_when_the_data_ends() -> None:
    table = to_table(costs(), "2026-11")
    lines = table.splitlines()
    assert lines[0] == "GPU cost report 2026-11 (USD)"
    assert lines[2].split()[:3] == ["TEAM", "GPU", "HOURS"]
    assert [line.split()[0] for line in lines[3:8]] == [
        "recsys", "search", "-" * len("__untagged__"), conventions.UNTAGGED, "cluster",
    ]  # fmt: skip
    assert "33.3%" in lines[4]  # search: 3.5 idle hours of 10.5
    assert "Most expensive" not in table
    through = datetime(2026, 11, 20, 13, tzinfo=UTC)
    jobs = [JobCost("ml", f"train-{i}", "search", D(i), D(4 * i)) for i in range(7, 0, -1)]
    running = to_table(costs(), "2026-11", through=through, jobs=jobs).splitlines()
    assert running[0] == "GPU cost report 2026-11 (USD, through 2026-11-20T13:00:00Z)"
    assert running[-6:] == [
        "Most expensive training runs (Jobs):",
        *(f"  ml/train-{i} (search): {i}.0 GPU hours, {4 * i}.00" for i in range(7, 2, -1)),
    ]


def _json_cost_centers(report: CostReport, allocation: Allocation) -> dict[str, object]:
    document = json.loads(to_json(report, "2026-11", allocation=allocation))
    assert list(document) == [
        "period", "currency", "teams", "untagged", "cluster", "costCenters", "selfHostedModels",
    ]  # fmt: skip
    assert document["selfHostedModels"] == []
    centers: dict[str, object] = document["costCenters"]
    return centers | {"cluster": document["cluster"]}


def test_json_cost_centers_carry_all_spend_and_add_up_to_the_cluster_total() -> None:
    alone = compute_costs(  # no GPU cost: all shared cost is undistributed
        period=Period.month(2026, 11),
        pricing=PRICING,
        token_usage=[TokenUsage("chat", "gpt-4o", D(10))],
    )
    cases = [(*many_costs(),), (alone, [], [TokenUsage("chat", "gpt-4o", D(10))])]
    for report, gpu, tokens in cases:
        centers = _json_cost_centers(report, allocate(report, gpu, tokens, PRICING))
        rows = centers["rows"]
        cluster = centers["cluster"]
        assert isinstance(rows, list) and isinstance(cluster, dict)
        rest = D(str(centers["undistributedCost"]))
        for key in ("gpuCost", "idleCost", "tokenCost"):
            assert sum(D(row[key]) for row in rows) == D(cluster[key]), key
        for key in ("sharedCost", "totalCost"):
            assert sum(D(row[key]) for row in rows) + rest == D(cluster[key]), key
        for row in rows:  # a cost center's total is its GPU + token + shared cost
            parts = D(row["gpuCost"]) + D(row["tokenCost"]) + D(row["sharedCost"])
            assert abs(D(row["totalCost"]) - parts) <= D("0.02"), row
    report, gpu, tokens = many_costs()
    rows = _json_cost_centers(report, allocate(report, gpu, tokens, PRICING))["rows"]
    assert isinstance(rows, list)
    assert [row["costCenter"] for row in rows] == ["cc-0", "cc-1", "cc-2", conventions.UNTAGGED]
    assert all(D(row["sharedCost"]) > 0 for row in rows)
    assert D(rows[-1]["tokenCost"]) > D(6)  # the tokens of a team without GPU cost
    assert "costCenters" not in json.loads(to_json(report, "2026-11"))


def test_the_table_ends_with_the_cost_centers_adding_up_to_the_cluster_line() -> None:
    report, gpu, tokens = many_costs()
    plain = to_table(report, "2026-11")
    text = to_table(report, "2026-11", allocation=allocate(report, gpu, tokens, PRICING))
    assert text.startswith(plain)  # the lines before are unchanged
    section = text[len(plain) :].splitlines()
    assert section[1].startswith("By cost center, whole cluster (USD")
    header = section[3].split()
    assert header[:2] == ["COST", "CENTER"] and header[-1] == "TOTAL"
    rows = [line.split() for line in section[4:] if line and not line.startswith("-")]
    *centers, cluster = rows
    assert [row[0] for row in centers] == ["cc-0", "cc-1", "cc-2", conventions.UNTAGGED]
    assert cluster[0] == "cluster"
    for column in range(2, 7):  # GPU, idle, token, shared and total cost
        total = sum(D(row[column].replace(",", "")) for row in centers)
        assert total == D(cluster[column].replace(",", "")), column


def test_json_and_table_mark_a_partial_month_and_forecast_its_end() -> None:
    start, through = datetime(2026, 11, 7, tzinfo=UTC), datetime(2026, 11, 20, 6, tzinfo=UTC)
    span = DataSpan(start, through, partial=True, month=Period.month(2026, 11))
    report = costs()
    document = json.loads(to_json(report, "2026-11", span=span))
    assert document["dataFrom"] == "2026-11-07T00:00:00Z" and document["partialPeriod"] is True
    assert document["dataThrough"] == "2026-11-20T06:00:00Z"
    total = Decimal(document["cluster"]["totalCost"])
    # 13.25 days of data, 10.75 to go.
    expected = (total * Decimal("24") / Decimal("13.25")).quantize(Decimal("0.01"))
    assert Decimal(document["cluster"]["forecastTotalCost"]) == expected
    assert all("forecastTotalCost" in row for row in document["teams"])
    table = to_table(report, "2026-11", span=span)
    assert "partial period: data from 2026-11-07T00:00:00Z through 2026-11-20T06:00:00Z" in table
    header = next(line for line in table.splitlines() if line.startswith("TEAM"))
    assert header.split()[-1] == "FORECAST"
    cluster = next(line for line in table.splitlines() if line.startswith("cluster"))
    assert cluster.split()[-1] == str(expected)
    assert "forecastTotalCost" not in to_json(report, "2026-11")  # no span, no forecast

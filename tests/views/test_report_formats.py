"""The report's formats from the cost model's rows: JSON, CSV, FOCUS CSV and the table."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.focus import FOCUS_COLUMNS, focus_rows
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.pricing import JobCost
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, TokenUsage
from finops_operator.views.report_formats import FORMATS, to_csv, to_focus, to_json, to_table

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


def test_the_formats_are_the_four_of_the_command() -> None:
    assert FORMATS == ("table", "json", "csv", "focus")


def test_json_is_the_contract_with_money_as_strings_and_hours_as_numbers() -> None:
    document = json.loads(to_json(costs(), "2026-11"))
    assert list(document) == ["period", "currency", "teams", "untagged", "cluster"]
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


def test_csv_has_the_json_fields_one_line_per_row() -> None:
    lines = list(csv.reader(io.StringIO(to_csv(costs(), "2026-11"))))
    assert lines[0] == [
        "period", "currency", "team", "gpuHours", "gpuCost", "idleGpuHours", "idleCost",
        "tokenCost", "sharedCost", "totalCost",
    ]  # fmt: skip
    assert [line[2] for line in lines[1:]] == ["recsys", "search", conventions.UNTAGGED, "cluster"]
    assert {line[0] for line in lines[1:]} == {"2026-11"}
    document = json.loads(to_json(costs(), "2026-11"))
    assert lines[-1][3:] == [str(value) for value in list(document["cluster"].values())[1:]]


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

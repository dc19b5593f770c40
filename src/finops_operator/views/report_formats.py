"""A period's report as people and tools read it: a table, JSON, CSV, FOCUS CSV.

Formats (docs/report.md):

- `json`: the contract of DESIGN.md, money as strings, hours as numbers;
- `csv`: the same rows (teams, `__untagged__`, `cluster`), one per line;
- `focus`: FinOps Foundation FOCUS columns, one row per team x cost component
  (the rows come from `domain.costs.focus`);
- `table`: for people.

Rendering only: every figure was computed, in Decimal, by the cost model; money
is rounded here, for display, and nowhere else.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from finops_operator.domain.costs.focus import FOCUS_COLUMNS
from finops_operator.domain.costs.money import display_hours, display_money
from finops_operator.domain.costs.period import utc_timestamp
from finops_operator.domain.costs.pricing import JobCost
from finops_operator.domain.costs.showback import ClusterRow, CostReport, CostRow, idle_percent

FORMATS: Final = ("table", "json", "csv", "focus")
ROW_FIELDS: Final = (
    "team",
    "gpuHours",
    "gpuCost",
    "idleGpuHours",
    "idleCost",
    "tokenCost",
    "sharedCost",
    "totalCost",
)


def _row(row: CostRow) -> dict[str, Any]:
    return {
        "team": row.team,
        "gpuHours": display_hours(row.gpu_hours),
        "gpuCost": display_money(row.gpu_cost),
        "idleGpuHours": display_hours(row.idle_gpu_hours),
        "idleCost": display_money(row.idle_cost),
        "tokenCost": display_money(row.token_cost),
        "sharedCost": display_money(row.shared_cost),
        "totalCost": display_money(row.total_cost),
    }


def to_json(costs: CostReport, label: str, team: str | None = None) -> str:
    """DESIGN.md's contract: period, currency, teams, untagged, cluster."""
    document = {
        "period": label,
        "currency": costs.currency,
        "teams": [_row(row) for row in costs.team_rows(team)],
        "untagged": _row(costs.untagged),
        "cluster": _row(costs.cluster),
    }
    return json.dumps(document, indent=2)


def to_csv(costs: CostReport, label: str, team: str | None = None) -> str:
    """One line per team, then `__untagged__` and `cluster`, with the JSON's fields."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "currency", *ROW_FIELDS])
    rows = [*costs.team_rows(team), costs.untagged, costs.cluster]
    for row in rows:
        values = _row(row)
        writer.writerow([label, costs.currency, *(values[name] for name in ROW_FIELDS)])
    return out.getvalue()


def to_focus(rows: Iterable[Mapping[str, str]]) -> str:
    """FOCUS rows (`domain.costs.focus.focus_rows`) as CSV, with a header line."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FOCUS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _table_lines(rows: Iterable[CostRow]) -> list[list[str]]:
    return [
        [
            row.team,
            f"{display_hours(row.gpu_hours):,.1f}",
            display_money(row.gpu_cost),
            f"{display_hours(row.idle_gpu_hours):,.1f}",
            f"{idle_percent(row):.1f}%",
            display_money(row.idle_cost),
            display_money(row.token_cost),
            display_money(row.shared_cost),
            display_money(row.total_cost),
        ]
        for row in rows
    ]


def to_table(
    costs: CostReport,
    label: str,
    team: str | None = None,
    *,
    through: datetime | None = None,
    jobs: Sequence[JobCost] = (),
) -> str:
    """For people: a line per team, then `__untagged__` and the cluster, the cluster's
    capacity and shared cost, and the costliest training runs (`jobs`). `through`:
    the end of the data, for a period still running."""
    cluster: ClusterRow = costs.cluster
    header = [
        "TEAM", "GPU HOURS", "GPU COST", "IDLE HOURS", "IDLE", "IDLE COST",
        "TOKEN COST", "SHARED", "TOTAL",
    ]  # fmt: skip
    body = _table_lines(costs.team_rows(team))
    tail = _table_lines([costs.untagged, cluster])
    widths = [max(len(line[i]) for line in [header, *body, *tail]) for i in range(len(header))]

    def aligned(line: Sequence[str]) -> str:
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    until = f", through {utc_timestamp(through)}" if through is not None else ""
    lines = [
        f"GPU cost report {label} ({costs.currency}{until})",
        "",
        aligned(header),
        *(aligned(line) for line in body),
        rule,
        *(aligned(line) for line in tail),
        "",
        f"Capacity {display_hours(cluster.capacity_gpu_hours):,.1f} GPU hours, "
        f"unallocated {display_hours(cluster.unallocated_gpu_hours):,.1f} "
        f"({display_money(cluster.unallocated_cost)} {costs.currency}); platform "
        f"{display_money(cluster.platform_cost)}; shared cost not distributed "
        f"{display_money(cluster.undistributed_cost)}.",
        "Idle cost is part of GPU cost; total = GPU cost + token cost + shared.",
    ]
    if jobs:
        lines += ["", "Most expensive training runs (Jobs):"]
        for job in list(jobs)[:5]:
            lines.append(
                f"  {job.namespace}/{job.job} ({job.team}): "
                f"{display_hours(job.gpu_hours):,.1f} GPU hours, {display_money(job.cost)}"
            )
    return "\n".join(lines) + "\n"

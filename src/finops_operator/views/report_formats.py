"""A period's report as people and tools read it: a table, JSON, CSV, FOCUS CSV.

Formats (docs/report.md):

- `json`: the contract of DESIGN.md, money as strings, hours as numbers;
- `csv`: for spreadsheets: headers in words with units and currency, a row type
  (`team`, `untagged`, `undistributed`, `cluster total`) so that a column summed
  by row type never counts twice, the end of the data and a partial-period flag;
  optionally one row per team x cost center x feature (`--by`);
- `focus`: FinOps Foundation FOCUS columns, one row per team x cost component
  (the rows come from `domain.costs.focus`);
- `table`: for people.

Rendering only: every figure was computed, in Decimal, by the cost model; money
is shown in the cents of `domain.costs.cents` (one rounding rule for every
format), hours rounded for display here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.costs.allocation import Allocation, Group
from finops_operator.domain.costs.cents import (
    Cents,
    ReportCents,
    less_undistributed,
    report_cents,
    within,
)
from finops_operator.domain.costs.finance import DataSpan
from finops_operator.domain.costs.fleet import ClusterCost
from finops_operator.domain.costs.focus import FOCUS_COLUMNS
from finops_operator.domain.costs.period import utc_timestamp
from finops_operator.domain.costs.pricing import JobCost
from finops_operator.domain.costs.showback import ClusterRow, CostReport, CostRow, idle_percent
from finops_operator.domain.money import display_hours, display_money, round_to

FORMATS: Final = ("table", "json", "csv", "focus", "html")
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


def _row(row: CostRow, cents: Cents, span: DataSpan | None = None) -> dict[str, Any]:
    projected = span.forecast(cents.total_cost) if span is not None else None
    forecast = {"forecastTotalCost": display_money(projected)} if projected is not None else {}
    return forecast | {
        "team": row.team,
        "gpuHours": display_hours(row.gpu_hours),
        "gpuCost": str(cents.gpu_cost),
        "idleGpuHours": display_hours(row.idle_gpu_hours),
        "idleCost": str(cents.idle_cost),
        "tokenCost": str(cents.token_cost),
        "sharedCost": str(cents.shared_cost),
        "totalCost": str(cents.total_cost),
    }


def _span(span: DataSpan | None) -> dict[str, Any]:
    if span is None:
        return {}
    return {
        "dataFrom": utc_timestamp(span.start),
        "dataThrough": utc_timestamp(span.through),
        "partialPeriod": span.partial,
    }


def cost_center_lines(
    costs: CostReport, allocation: Allocation, rounded: ReportCents | None = None
) -> tuple[list[tuple[str, Group, dict[str, Decimal]]], Decimal]:
    """The cost centers of the whole cluster (`__untagged__` last), each with its
    money in cents (`cents.within` the cluster less the shared cost nobody received,
    the second value), so that they add up to the cluster row, to the cent."""
    rounded = rounded or report_cents(costs)
    groups = sorted(
        allocation.group(("cost_center",)),
        key=lambda group: (group.key[0] == conventions.UNTAGGED, group.key),
    )
    whole = less_undistributed(rounded.cluster, rounded.undistributed)
    money = within(groups, whole)
    lines = [
        (group.key[0], group, cents.as_dict()) for group, cents in zip(groups, money, strict=True)
    ]
    return lines, rounded.undistributed.shared_cost


def _cost_centers(costs: CostReport, allocation: Allocation) -> dict[str, Any]:
    lines, undistributed = cost_center_lines(costs, allocation)
    rows = [
        {
            "costCenter": name,
            "gpuHours": display_hours(group.gpu_hours),
            "gpuCost": str(money["gpu_cost"]),
            "idleGpuHours": display_hours(group.idle_gpu_hours),
            "idleCost": str(money["idle_cost"]),
            "tokenCost": str(money["token_cost"]),
            "sharedCost": str(money["shared_cost"]),
            "totalCost": str(money["total_cost"]),
        }
        for name, group, money in lines
    ]
    return {"rows": rows, "undistributedCost": str(undistributed)}


def to_json(
    costs: CostReport,
    label: str,
    team: str | None = None,
    *,
    allocation: Allocation | None = None,
    clusters: Sequence[ClusterCost] | None = None,
    self_hosted: Sequence[Mapping[str, Any]] = (),
    span: DataSpan | None = None,
) -> str:
    """DESIGN.md's contract: period, currency, teams, untagged, cluster,
    `selfHostedModels` (views.self_hosted_models, whatever `team`); with
    `allocation`, `costCenters` too: every cost center of the cluster (whatever
    `team`) with its GPU, token and shared cost, whose `totalCost`s plus
    `undistributedCost` are the cluster's `totalCost` to the cent. With `span`:
    `dataFrom`, `dataThrough`, `partialPeriod`, and each row's month-end
    `forecastTotalCost` in a running month. With `clusters`, `clusters` too
    (`cluster_lines`)."""
    rounded = report_cents(costs)
    document: dict[str, Any] = {
        "period": label,
        "currency": costs.currency,
        "teams": [_row(row, rounded.of(row.team), span) for row in costs.team_rows(team)],
        "untagged": _row(costs.untagged, rounded.of(conventions.UNTAGGED), span),
        "cluster": _row(costs.cluster, rounded.cluster, span),
        **_span(span),
    }
    if allocation is not None:
        document["costCenters"] = _cost_centers(costs, allocation)
    if clusters is not None:
        document["clusters"] = cluster_lines(costs, clusters)
    document["selfHostedModels"] = list(self_hosted)
    return json.dumps(document, indent=2)


def cluster_lines(costs: CostReport, clusters: Sequence[ClusterCost]) -> list[dict[str, Any]]:
    """One entry per cluster of the fleet (`fleet.cluster_costs`), `name` "" for series
    without a cluster label. The `totalCost`s plus the cluster row's `platformCost` are
    the fleet's `totalCost`, to the cent (rounded together, largest remainders)."""
    exact = [cluster.costs.total_cost for cluster in clusters]
    fleet = Decimal(display_money(costs.cluster.total_cost))
    *totals, _platform = round_to([*exact, costs.cluster.platform_cost], fleet)
    return [
        {
            "name": cluster.name,
            "gpuHours": display_hours(cluster.costs.gpu_hours),
            "gpuCost": display_money(cluster.costs.gpu_cost),
            "idleCost": display_money(cluster.costs.idle_cost),
            "tokenCost": display_money(cluster.costs.token_cost),
            "capacityGpuHours": display_hours(cluster.costs.capacity_gpu_hours),
            "unallocatedCost": display_money(cluster.costs.unallocated_cost),
            "totalCost": str(total),
        }
        for cluster, total in zip(clusters, totals, strict=True)
    ]


def cluster_table(costs: CostReport, clusters: Sequence[ClusterCost], label: str) -> str:
    """For people (`report --by cluster`): a line per cluster, then the platform cost
    and the fleet total they add up to."""
    lines = cluster_lines(costs, clusters)
    header = ["CLUSTER", "GPU HOURS", "GPU COST", "TOKEN COST", "UNALLOCATED", "TOTAL"]
    body = [
        [
            line["name"] or "(no cluster label)",
            f"{line['gpuHours']:,.1f}",
            line["gpuCost"],
            line["tokenCost"],
            line["unallocatedCost"],
            line["totalCost"],
        ]
        for line in lines
    ]
    fleet = costs.cluster
    tail = [
        ["platform", "", "", "", "", display_money(fleet.platform_cost)],
        ["fleet", f"{display_hours(fleet.gpu_hours):,.1f}", display_money(fleet.gpu_cost),
         display_money(fleet.token_cost), display_money(fleet.unallocated_cost),
         display_money(fleet.total_cost)],
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in [header, *body, *tail]) for i in range(len(header))]

    def aligned(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    return (
        "\n".join(
            [
                f"GPU cost report {label} by cluster ({costs.currency})",
                "",
                aligned(header),
                *(aligned(row) for row in body),
                "  ".join("-" * width for width in widths),
                *(aligned(row) for row in tail),
            ]
        )
        + "\n"
    )


# Row types of the CSV: summing a column over `team`, `untagged` and `undistributed`
# rows gives the `cluster total` row, exactly, to the cent.
ROW_TYPES: Final = ("team", "untagged", "undistributed", "cluster total")
# `--by` choices: the labels besides the team that CSV rows can be split by.
BY_CHOICES: Final = {
    "cost-center": "cost_center",
    "feature": "feature",
    "environment": "environment",
    "workload-type": "workload_type",
}
_LABEL_HEADERS: Final = {
    "cost_center": "Cost center",
    "feature": "Feature",
    "environment": "Environment",
    "workload_type": "Workload type",
}


@dataclass(frozen=True)
class CsvContext:
    """What the CSV says about the data besides the figures."""

    data_through: datetime
    # The data covers less than the period: it starts after the period does (the first
    # month with data) or ends before (a running month).
    partial_period: bool
    incomplete: bool = False  # Prometheus answered only in part (--allow-partial)
    data_from: datetime | None = None  # the start of the data (default: the period's)


def csv_header(currency: str, by: Sequence[str] = ()) -> list[str]:
    return [
        "Row type",
        "Period",
        "Period start (UTC)",
        "Period end (UTC)",
        "Data from (UTC)",
        "Data through (UTC)",
        "Partial period",
        "Incomplete data",
        "Team",
        *(_LABEL_HEADERS[name] for name in by),
        "GPU hours",
        "Idle GPU hours (included in GPU hours)",
        "LLM tokens",
        f"GPU cost ({currency})",
        f"Idle GPU cost ({currency}, included in GPU cost)",
        f"Token cost ({currency})",
        f"Shared cost ({currency})",
        f"Total cost ({currency})",
    ]


_MONEY: Final = ("gpu_cost", "idle_cost", "token_cost", "shared_cost", "total_cost")


def to_csv(
    costs: CostReport,
    label: str,
    team: str | None = None,
    *,
    context: CsvContext | None = None,
    allocation: Allocation | None = None,
    by: Sequence[str] = (),
) -> str:
    """For spreadsheets: a header in words (units, currency), then one line per team
    (or per team x the labels `by`, from `allocation`), `untagged`, `undistributed`
    and the `cluster total`. Money is rounded to cents so that each money column,
    summed over the team, untagged and undistributed rows, is the cluster total row
    (largest remainder); with `team`, only that team's rows are kept."""
    if by and allocation is None:
        raise ValueError("rows by label need the allocation")
    context = context or CsvContext(costs.period.end, partial_period=False)
    rounded = report_cents(costs)
    lines: list[tuple[str, tuple[str, ...], dict[str, Decimal], Cents]] = []
    if allocation is not None and by:
        lines = _split_lines(allocation.group(("team", *by)), rounded)
    else:
        for row in [*costs.teams, costs.untagged]:
            kind = "untagged" if row is costs.untagged else "team"
            lines.append((kind, (row.team,), _figures(row), rounded.of(row.team)))
    undistributed = dict.fromkeys(_FIGURES, Decimal(0))
    blank = ("",) * (1 + len(by))
    lines.append(("undistributed", blank, undistributed, rounded.undistributed))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_header(costs.currency, by))
    start, end = utc_timestamp(costs.period.start), utc_timestamp(costs.period.end)
    since = utc_timestamp(context.data_from or costs.period.start)
    through = utc_timestamp(context.data_through)
    common = [
        label,
        start,
        end,
        since,
        through,
        _yes(context.partial_period),
        _yes(context.incomplete),
    ]

    def write(
        kind: str, key: tuple[str, ...], figures: Mapping[str, Decimal], money: list[str]
    ) -> None:
        writer.writerow(
            [
                kind,
                *common,
                *key,
                _hours(figures["gpu_hours"]),
                _hours(figures["idle_gpu_hours"]),
                f"{figures['tokens']:.0f}",
                *money,
            ]
        )

    for kind, key, figures, cents in lines:
        if team is not None and kind == "team" and key[0] != team:
            continue
        write(kind, key, figures, _cents(cents))
    write("cluster total", blank, _figures(costs.cluster), _cents(rounded.cluster))
    return out.getvalue()


def _cents(cents: Cents) -> list[str]:
    return [str(cents.as_dict()[name]) for name in _MONEY]


def _split_lines(
    groups: Sequence[Group], rounded: ReportCents
) -> list[tuple[str, tuple[str, ...], dict[str, Decimal], Cents]]:
    """A team's groups (keyed team first), each in cents within its team's row, so
    that a team's split rows add up to its unsplit row, to the cent."""
    by_team: dict[str, list[Group]] = {}
    for group in groups:
        by_team.setdefault(group.key[0], []).append(group)
    lines = []
    for name, mine in by_team.items():
        kind = "untagged" if name == conventions.UNTAGGED else "team"
        for group, cents in zip(mine, within(mine, rounded.of(name)), strict=True):
            lines.append((kind, group.key, _figures(group), cents))
    lines.sort(key=lambda line: line[0] == "untagged")
    return lines


_FIGURES: Final = ("gpu_hours", "idle_gpu_hours", "tokens", *_MONEY)


def _figures(row: CostRow | Group) -> dict[str, Decimal]:
    return {name: getattr(row, name) for name in _FIGURES}


def _hours(hours: Decimal) -> str:
    return display_money(hours, 3)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def to_focus(rows: Iterable[Mapping[str, str]], columns: Sequence[str] = FOCUS_COLUMNS) -> str:
    """FOCUS rows (`domain.costs.focus.focus_rows`, 1.2, or `focus13.focus13_rows`, with
    `columns` = `FOCUS_1_3_COLUMNS`) as CSV, with a header line."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _table_lines(
    rows: Iterable[tuple[CostRow, Cents]], span: DataSpan | None = None
) -> list[list[str]]:
    lines = []
    for row, cents in rows:
        line = [
            row.team,
            f"{display_hours(row.gpu_hours):,.1f}",
            str(cents.gpu_cost),
            f"{display_hours(row.idle_gpu_hours):,.1f}",
            f"{idle_percent(row):.1f}%",
            str(cents.idle_cost),
            str(cents.token_cost),
            str(cents.shared_cost),
            str(cents.total_cost),
        ]
        projected = span.forecast(cents.total_cost) if span is not None else None
        if projected is not None:
            line.append(display_money(projected))
        lines.append(line)
    return lines


def to_table(
    costs: CostReport,
    label: str,
    team: str | None = None,
    *,
    through: datetime | None = None,
    jobs: Sequence[JobCost] = (),
    allocation: Allocation | None = None,
    span: DataSpan | None = None,
) -> str:
    """For people: a line per team, then `__untagged__` and the cluster, the cluster's
    capacity and shared cost, the costliest training runs (`jobs`) and, with
    `allocation`, a line per cost center with all its spend. `through`: the end of
    the data, for a period still running; `span`: when the data starts (a partial
    period says so) and, in a running month, a month-end FORECAST column."""
    cluster: ClusterRow = costs.cluster
    rounded = report_cents(costs)
    header = [
        "TEAM",
        "GPU HOURS",
        "GPU COST",
        "IDLE HOURS",
        "IDLE",
        "IDLE COST",
        "TOKEN COST",
        "SHARED",
        "TOTAL",
    ]
    body = _table_lines(((row, rounded.of(row.team)) for row in costs.team_rows(team)), span)
    tail = _table_lines(
        [(costs.untagged, rounded.of(conventions.UNTAGGED)), (cluster, rounded.cluster)], span
    )
    if len(tail[-1]) > len(header):
        header.append("FORECAST")
    widths = [max(len(line[i]) for line in [header, *body, *tail]) for i in range(len(header))]

    def aligned(line: Sequence[str]) -> str:
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    until = f", through {utc_timestamp(through)}" if through is not None else ""
    if span is not None and span.partial:
        until = (
            f", partial period: data from {utc_timestamp(span.start)} "
            f"through {utc_timestamp(span.through)}"
        )
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
        f"{rounded.undistributed.shared_cost}.",
        "Idle cost is part of GPU cost; total = GPU cost + token cost + shared.",
    ]
    if len(header) > 9:
        lines.append("Forecast: the month's total at the run rate of its data so far.")
    if jobs:
        lines += ["", "Most expensive training runs (Jobs):"]
        for job in list(jobs)[:5]:
            lines.append(
                f"  {job.namespace}/{job.job} ({job.team}): "
                f"{display_hours(job.gpu_hours):,.1f} GPU hours, {display_money(job.cost)}"
            )
    if allocation is not None:
        lines += ["", *_cost_center_table(costs, allocation, rounded)]
    return "\n".join(lines) + "\n"


def _cost_center_table(
    costs: CostReport, allocation: Allocation, rounded: ReportCents
) -> list[str]:
    """The cost centers of the whole cluster, GPU + token + shared cost, adding up to
    the cluster line to the cent."""
    centers, undistributed = cost_center_lines(costs, allocation, rounded)
    header = [
        "COST CENTER",
        "GPU HOURS",
        "GPU COST",
        "IDLE COST",
        "TOKEN COST",
        "SHARED",
        "TOTAL",
    ]

    def line(name: str, hours: Decimal, money: Mapping[str, Decimal]) -> list[str]:
        return [
            name,
            f"{display_hours(hours):,.1f}",
            *(display_money(money[key]) for key in ("gpu_cost", "idle_cost", "token_cost")),
            display_money(money["shared_cost"]),
            display_money(money["total_cost"]),
        ]

    body = [line(name, group.gpu_hours, money) for name, group, money in centers]
    if undistributed:
        rest = dict.fromkeys(("gpu_cost", "idle_cost", "token_cost"), Decimal(0))
        rest |= {"shared_cost": undistributed, "total_cost": undistributed}
        body.append(line("(shared, not distributed)", Decimal(0), rest))
    cluster = costs.cluster
    tail = [line("cluster", cluster.gpu_hours, rounded.cluster.as_dict())]
    widths = [max(len(row[i]) for row in [header, *body, *tail]) for i in range(len(header))]

    def aligned(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    return [
        f"By cost center, whole cluster ({costs.currency}; token and shared cost placed "
        "in proportion to GPU cost):",
        "",
        aligned(header),
        *(aligned(row) for row in body),
        "  ".join("-" * width for width in widths),
        *(aligned(row) for row in tail),
    ]

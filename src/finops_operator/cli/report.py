"""`finops-operator report`: showback for a period from Prometheus.

    finops-operator report --config PATH --period 2026-11 [--team T]
                           [--format table|json|csv|focus] [--prometheus-url URL]

Reads usage with `usage_reader.report_period` (a fixed handful of aggregated
queries), prices it with the cost model and prints it. Formats (docs/report.md):

- `json`: the contract of DESIGN.md, money as strings, hours as numbers;
- `csv`: the same rows (teams, `__untagged__`, `cluster`), one per line;
- `focus`: FinOps Foundation FOCUS columns, one row per team x cost component;
- `table`: for people.

Exit 0 with the report; 2 when the configuration, the period or Prometheus cannot
be used, with a message naming the URL and the cause (never a report of zeros).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from finops_operator.adapters.config_file import load_config
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.usage_reader import PeriodReport, report_period
from finops_operator.domain import conventions
from finops_operator.domain.config import PrometheusConfig
from finops_operator.domain.costs.money import ZERO, display_hours, display_money
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.pricing import gpu_cost, token_cost
from finops_operator.domain.costs.showback import ClusterRow, CostRow, idle_percent
from finops_operator.errors import ConfigError, PrometheusError

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
# Money in FOCUS rows keeps 6 decimals, so that a team's rows add up to its total.
FOCUS_PLACES: Final = 6
FOCUS_COLUMNS: Final = (
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeDescription",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ResourceId",
    "ResourceName",
    "ServiceName",
    "ServiceCategory",
    "Tags",
    "x_Team",
    "x_CostComponent",
    "x_IdleGpuHours",
    "x_IdleCost",
    "x_Period",
)


# ---------------------------------------------------------------- arguments


def _month(text: str) -> Period:
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month; write it as YYYY-MM")
    return Period.month(int(match.group(1)), int(match.group(2)))


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; write it as 2026-11-03 or 2026-11-03T12:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="configuration file (default: $FINOPS_CONFIG or built in)")
    parser.add_argument(
        "--period", type=_month, metavar="YYYY-MM", help="calendar month (UTC) to report"
    )
    parser.add_argument(
        "--start", type=_moment, help="start of an arbitrary period (UTC), instead of --period"
    )
    parser.add_argument("--end", type=_moment, help="end of that period (excluded)")
    parser.add_argument("--team", help="print only this team (plus untagged and cluster rows)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument(
        "--prometheus-url", help="Prometheus base URL, instead of prometheus.url of the config"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for each query"
    )


def _period(args: argparse.Namespace) -> tuple[Period, str]:
    if args.period is not None:
        if args.start is not None or args.end is not None:
            raise ValueError("give either --period or --start/--end, not both")
        period: Period = args.period
        return period, f"{period.start:%Y-%m}"
    if args.start is None or args.end is None:
        raise ValueError("give --period YYYY-MM, or both --start and --end")
    if args.end <= args.start:
        raise ValueError("--end must be after --start")
    period = Period(args.start, args.end)
    return period, f"{_iso(period.start)}/{_iso(period.end)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- formats


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


def _teams(report: PeriodReport, team: str | None) -> list[CostRow]:
    return [row for row in report.costs.teams if team is None or row.team == team]


def to_json(report: PeriodReport, label: str, team: str | None = None) -> str:
    """DESIGN.md's contract: period, currency, teams, untagged, cluster."""
    document = {
        "period": label,
        "currency": report.costs.currency,
        "teams": [_row(row) for row in _teams(report, team)],
        "untagged": _row(report.costs.untagged),
        "cluster": _row(report.costs.cluster),
    }
    return json.dumps(document, indent=2)


def to_csv(report: PeriodReport, label: str, team: str | None = None) -> str:
    """One line per team, then `__untagged__` and `cluster`, with the JSON's fields."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "currency", *ROW_FIELDS])
    rows = [*_teams(report, team), report.costs.untagged, report.costs.cluster]
    for row in rows:
        values = _row(row)
        writer.writerow([label, report.costs.currency, *(values[name] for name in ROW_FIELDS)])
    return out.getvalue()


def _focus_money(amount: Decimal) -> str:
    return display_money(amount, FOCUS_PLACES)


def _focus_number(amount: Decimal) -> str:
    return display_money(amount, FOCUS_PLACES)


def focus_rows(report: PeriodReport, team: str | None = None) -> list[dict[str, str]]:
    """FOCUS rows: per team (and `__untagged__`), GPU usage per GPU model, tokens per
    LLM model, and its shared cost; plus the shared cost nobody received. Unrounded,
    the rows add up to the cluster total exactly."""
    costs = report.costs
    pricing_rows: list[dict[str, str]] = []
    start, end = _iso(costs.period.start), _iso(costs.period.end)
    period_label = f"{start}/{end}"
    gpu: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO] * 4)
    pricing = _PricingView(report)
    for usage in report.usage.gpu:
        cell = gpu[(usage.team, usage.gpu_model)]
        price_cost = pricing.gpu(usage.gpu_hours, usage.gpu_model)
        cell[0] += usage.gpu_hours
        cell[1] += price_cost
        cell[2] += usage.idle_gpu_hours
        cell[3] += pricing.gpu(usage.idle_gpu_hours, usage.gpu_model)
    tokens: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO] * 2)
    for used in report.usage.tokens:
        cell = tokens[(used.team, used.model)]
        cell[0] += used.tokens
        cell[1] += pricing.tokens(used.tokens, used.model)

    def base(owner: str, cost: Decimal) -> dict[str, str]:
        return {
            "BilledCost": _focus_money(cost),
            "EffectiveCost": _focus_money(cost),
            "BillingCurrency": costs.currency,
            "ChargePeriodStart": start,
            "ChargePeriodEnd": end,
            "ChargeCategory": "Usage",
            "Tags": json.dumps({"team": owner}, sort_keys=True) if owner else "{}",
            "x_Team": owner,
            "x_IdleGpuHours": "",
            "x_IdleCost": "",
            "x_Period": period_label,
        }

    owners = [row.team for row in _teams(report, team)]
    if team is None or team == conventions.UNTAGGED:
        owners.append(conventions.UNTAGGED)
    shared = {row.team: row.shared_cost for row in [*costs.teams, costs.untagged]}
    for owner in owners:
        for (who, model), (hours, cost, idle, idle_cost) in sorted(gpu.items()):
            if who != owner:
                continue
            pricing_rows.append(
                base(owner, cost)
                | {
                    "ChargeDescription": f"{hours:.3f} GPU hours of {model} allocated to {owner}",
                    "ConsumedQuantity": _focus_number(hours),
                    "ConsumedUnit": "GPU-Hours",
                    "PricingQuantity": _focus_number(hours),
                    "PricingUnit": "GPU-Hours",
                    "ResourceId": f"{owner}/gpu/{model}",
                    "ResourceName": model,
                    "ServiceName": "GPU compute",
                    "ServiceCategory": "Compute",
                    "x_CostComponent": "gpu",
                    "x_IdleGpuHours": _focus_number(idle),
                    "x_IdleCost": _focus_money(idle_cost),
                }
            )
        for (who, model), (count, cost) in sorted(tokens.items()):
            if who != owner:
                continue
            pricing_rows.append(
                base(owner, cost)
                | {
                    "ChargeDescription": f"{count:.0f} LLM tokens of {model} sent by {owner}",
                    "ConsumedQuantity": _focus_number(count),
                    "ConsumedUnit": "Tokens",
                    "PricingQuantity": _focus_number(count / 1000),
                    "PricingUnit": "1000 Tokens",
                    "ResourceId": f"{owner}/llm/{model}",
                    "ResourceName": model,
                    "ServiceName": "LLM gateway",
                    "ServiceCategory": "AI and Machine Learning",
                    "x_CostComponent": "tokens",
                }
            )
        if shared.get(owner, ZERO):
            pricing_rows.append(
                base(owner, shared[owner])
                | {
                    "ChargeDescription": f"share of platform cost and unallocated GPU capacity "
                    f"for {owner}",
                    "ConsumedQuantity": "",
                    "ConsumedUnit": "",
                    "PricingQuantity": "",
                    "PricingUnit": "",
                    "ResourceId": f"{owner}/shared",
                    "ResourceName": "shared platform",
                    "ServiceName": "Shared platform",
                    "ServiceCategory": "Other",
                    "x_CostComponent": "shared",
                }
            )
    undistributed = costs.cluster.undistributed_cost
    if team is None and undistributed:
        pricing_rows.append(
            base("", undistributed)
            | {
                "ChargeDescription": "shared cost no team received (no usage to spread it over)",
                "ConsumedQuantity": "",
                "ConsumedUnit": "",
                "PricingQuantity": "",
                "PricingUnit": "",
                "ResourceId": "cluster/undistributed",
                "ResourceName": "undistributed shared cost",
                "ServiceName": "Shared platform",
                "ServiceCategory": "Other",
                "x_CostComponent": "undistributed",
            }
        )
    return pricing_rows


class _PricingView:
    """Prices the per-model rows with the cost model's own functions."""

    def __init__(self, report: PeriodReport) -> None:
        self.pricing = report.pricing

    def gpu(self, hours: Decimal, model: str) -> Decimal:
        return gpu_cost(hours, model, self.pricing)

    def tokens(self, count: Decimal, model: str) -> Decimal:
        return token_cost(count, model, self.pricing)


def to_focus(report: PeriodReport, team: str | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FOCUS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(focus_rows(report, team))
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


def to_table(report: PeriodReport, label: str, team: str | None = None) -> str:
    costs = report.costs
    cluster: ClusterRow = costs.cluster
    header = [
        "TEAM", "GPU HOURS", "GPU COST", "IDLE HOURS", "IDLE", "IDLE COST",
        "TOKEN COST", "SHARED", "TOTAL",
    ]  # fmt: skip
    body = _table_lines(_teams(report, team))
    tail = _table_lines([costs.untagged, cluster])
    widths = [max(len(line[i]) for line in [header, *body, *tail]) for i in range(len(header))]

    def render(line: Sequence[str]) -> str:
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    through = ""
    if report.data_through < report.period.end:
        through = f", through {_iso(report.data_through)}"
    lines = [
        f"GPU cost report {label} ({costs.currency}{through})",
        "",
        render(header),
        *(render(line) for line in body),
        rule,
        *(render(line) for line in tail),
        "",
        f"Capacity {display_hours(cluster.capacity_gpu_hours):,.1f} GPU hours, "
        f"unallocated {display_hours(cluster.unallocated_gpu_hours):,.1f} "
        f"({display_money(cluster.unallocated_cost)} {costs.currency}); platform "
        f"{display_money(cluster.platform_cost)}; shared cost not distributed "
        f"{display_money(cluster.undistributed_cost)}.",
        "Idle cost is part of GPU cost; total = GPU cost + token cost + shared.",
    ]
    if report.jobs:
        lines += ["", "Most expensive training runs (Jobs):"]
        for job in list(report.jobs)[:5]:
            lines.append(
                f"  {job.namespace}/{job.job} ({job.team}): "
                f"{display_hours(job.gpu_hours):,.1f} GPU hours, {display_money(job.cost)}"
            )
    return "\n".join(lines) + "\n"


def render(report: PeriodReport, fmt: str, label: str, team: str | None = None) -> str:
    if fmt == "json":
        return to_json(report, label, team) + "\n"
    if fmt == "csv":
        return to_csv(report, label, team)
    if fmt == "focus":
        return to_focus(report, team)
    return to_table(report, label, team)


# ---------------------------------------------------------------- the command


def _prometheus(config: PrometheusConfig, url: str | None) -> PrometheusConfig:
    if url is None:
        return config
    return PrometheusConfig.model_validate({**config.model_dump(by_alias=True), "url": url})


def run(args: argparse.Namespace) -> int:
    try:
        period, label = _period(args)
        config = load_config(args.config)
        prometheus = _prometheus(config.prometheus, args.prometheus_url)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    client = PrometheusClient(prometheus, timeout=args.timeout)
    try:
        report = report_period(client, config.pricing, period)
    except PrometheusError as err:
        print(f"error: no report for {label}: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    known = {row.team for row in report.costs.teams} | {conventions.UNTAGGED}
    if args.team is not None and args.team not in known:
        print(f"note: team {args.team!r} has no usage in {label}", file=sys.stderr)
    sys.stdout.write(render(report, args.format, label, args.team))
    return 0

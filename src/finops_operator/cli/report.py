"""`finops-operator report`: showback for a period from Prometheus.

    finops-operator report --config PATH --period 2026-11 [--team T]
                           [--format table|json|csv|focus] [--prometheus-url URL]
                           [--by team,cost-center,feature]
                           [--allow-partial]

Parses the arguments, reads usage with `usage_reader.report_period` (a fixed
handful of aggregated queries, priced by the cost model) and prints it in the
chosen format: `views.report_formats` renders the table, JSON, CSV and FOCUS CSV;
`domain.costs.focus` builds the FOCUS rows (docs/report.md).

Exit 0 with the report; 2 when the configuration, the period or Prometheus cannot
be used, with a message naming the URL and the cause (never a report of zeros).
A partial answer (Prometheus' `warnings`, as Thanos or Mimir give when a store is
missing) is exit 2 too, naming the warnings: its figures may be too low. With
`--allow-partial` the report is printed all the same, exit 0, with the warnings on
stderr and, in the table, a PARTIAL line above the figures.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime

from finops_operator.adapters.config_file import load_config
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.usage_reader import PeriodReport, report_period
from finops_operator.domain import conventions
from finops_operator.domain.config import PrometheusConfig
from finops_operator.domain.costs.allocation import Allocation, allocate
from finops_operator.domain.costs.cost_queries import QueryNames
from finops_operator.domain.costs.focus import focus_rows
from finops_operator.domain.costs.period import Period, utc_timestamp
from finops_operator.errors import ConfigError, PrometheusError
from finops_operator.views.report_formats import (
    BY_CHOICES,
    FORMATS,
    CsvContext,
    to_csv,
    to_focus,
    to_json,
    to_table,
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


def _by(text: str) -> tuple[str, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name != "team" and name not in BY_CHOICES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"cannot split rows by {', '.join(unknown)}; choose from team, " + ", ".join(BY_CHOICES)
        )
    return tuple(dict.fromkeys(BY_CHOICES[name] for name in names if name != "team"))


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
        "--by",
        type=_by,
        default=(),
        metavar="team,cost-center,feature",
        help="CSV only: one row per team x these labels (any of cost-center, feature, "
        "environment, workload-type), for pivot tables; the team is always there",
    )
    parser.add_argument(
        "--prometheus-url", help="Prometheus base URL, instead of prometheus.url of the config"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for each query"
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="print the report even when Prometheus answered only in part (its figures "
        "may be too low; they are marked PARTIAL)",
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
    return period, f"{utc_timestamp(period.start)}/{utc_timestamp(period.end)}"


# ---------------------------------------------------------------- formats


def render(
    report: PeriodReport,
    fmt: str,
    label: str,
    team: str | None = None,
    by: tuple[str, ...] = (),
) -> str:
    """The report in format `fmt` (one of `FORMATS`), only `team`'s row when given;
    `by`: CSV rows per team x these labels."""
    costs = report.costs
    if fmt == "json":
        return to_json(costs, label, team, allocation=_allocation(report)) + "\n"
    if fmt == "csv":
        context = CsvContext(
            data_through=report.data_through,
            partial_period=report.data_through < report.period.end,
            incomplete=report.partial,
        )
        usage = report.usage
        allocation = allocate(costs, usage.gpu, usage.tokens, report.pricing) if by else None
        return to_csv(costs, label, team, context=context, allocation=allocation, by=by)
    if fmt == "focus":
        usage = report.usage
        rows = focus_rows(
            costs, usage.gpu, usage.tokens, report.pricing, team, billing_period=report.period
        )
        return to_focus(rows)
    through = report.data_through if report.data_through < report.period.end else None
    centers = _allocation(report)
    return to_table(costs, label, team, through=through, jobs=report.jobs, allocation=centers)


def _allocation(report: PeriodReport) -> Allocation:
    """All spend on the five labels: the cost centers of the JSON and the table."""
    return allocate(report.costs, report.usage.gpu, report.usage.tokens, report.pricing)


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
        if args.by and args.format != "csv":
            raise ValueError("--by splits CSV rows; use it with --format csv")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    client = PrometheusClient(prometheus, timeout=args.timeout)
    try:
        report = report_period(client, config.pricing, period, names=QueryNames.from_config(config))
    except PrometheusError as err:
        print(f"error: no report for {label}: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if report.partial:
        warnings = "; ".join(report.warnings)
        partial = f"Prometheus at {prometheus.url} answered only in part: {warnings}"
        if not args.allow_partial:
            print(
                f"error: no report for {label}: {partial}; its figures may be too low. "
                "Run it again when Prometheus answers in full, or pass --allow-partial "
                "to print them marked as partial",
                file=sys.stderr,
            )
            return 2
        print(f"warning: PARTIAL report for {label}: {partial}", file=sys.stderr)
        if args.format == "table":
            sys.stdout.write(f"PARTIAL: figures may be too low ({partial})\n\n")
    known = {row.team for row in report.costs.teams} | {conventions.UNTAGGED}
    if args.team is not None and args.team not in known:
        print(f"note: team {args.team!r} has no usage in {label}", file=sys.stderr)
    sys.stdout.write(render(report, args.format, label, args.team, args.by))
    return 0

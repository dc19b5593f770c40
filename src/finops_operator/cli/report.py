"""`finops-operator report`: showback for a period from Prometheus.

    finops-operator report --config PATH --period 2026-11 [--team T]
                           [--format table|json|csv|focus|html] [--prometheus-url URL]
                           [--by team,cost-center,feature | --by cluster]
                           [--cluster NAME] [--allow-partial]

Parses the arguments, reads usage with `usage_reader.report_period` (a fixed
handful of aggregated queries, priced by the cost model) and prints it in the
chosen format: `views.report_formats` renders the table, JSON, CSV and FOCUS CSV;
`domain.costs.focus` builds the FOCUS rows (docs/report.md). `html` is the showback
page the operator's CostReports give (`views.showback_html`), built from the same
figures without a cluster: with `--period`, the month before is read too (when
Prometheus has it), so that the daily trend and week-over-week change can span the
turn of the month, as they do over the operator's two months of CostReports.

Clusters (docs/multi-cluster.md): against a Thanos Query or Mimir over many
clusters the report is the fleet's, every cluster summed, unless `--cluster NAME`
keeps one; `--by cluster` prints a line per cluster (table), and the JSON always
holds a `clusters` list, whose totals plus the platform cost are the fleet total.
The FOCUS export of one named cluster bills it as its account (BillingAccountId).

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
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from finops_operator.adapters.config_file import load_config
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.serving_reader import Chargeback, read_serving, self_hosted
from finops_operator.controllers.usage_reader import PeriodReport, report_period
from finops_operator.domain import conventions
from finops_operator.domain.config import Config, PrometheusConfig
from finops_operator.domain.costs.allocation import Allocation, allocate
from finops_operator.domain.costs.cost_queries import QueryNames
from finops_operator.domain.costs.cost_reports import ReportInput, desired_reports
from finops_operator.domain.costs.finance import data_span
from finops_operator.domain.costs.focus import FocusAccount, focus_rows
from finops_operator.domain.costs.focus13 import FOCUS_1_3_COLUMNS, FOCUS_VERSIONS, focus13_rows
from finops_operator.domain.costs.period import Period, utc_timestamp
from finops_operator.domain.costs.self_hosted import SelfHostedModel
from finops_operator.domain.costs.serving_queries import ServingNames
from finops_operator.domain.names import is_label_value
from finops_operator.errors import ConfigError, NoUsageDataError, PrometheusError
from finops_operator.views.report_formats import (
    BY_CHOICES,
    FORMATS,
    CsvContext,
    cluster_table,
    to_csv,
    to_focus,
    to_json,
    to_table,
)
from finops_operator.views.self_hosted_models import html_section, table_lines, to_json_rows
from finops_operator.views.showback_html import render_showback

# ---------------------------------------------------------------- arguments

CLUSTER = "cluster"


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
    unknown = [name for name in names if name not in ("team", CLUSTER) and name not in BY_CHOICES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"cannot split rows by {', '.join(unknown)}; choose from team, "
            + ", ".join(BY_CHOICES)
            + f", or {CLUSTER} alone"
        )
    if CLUSTER in names and set(names) != {CLUSTER}:
        raise argparse.ArgumentTypeError(f"--by {CLUSTER} goes alone, not with other labels")
    if CLUSTER in names:
        return (CLUSTER,)
    return tuple(dict.fromkeys(BY_CHOICES[name] for name in names if name != "team"))


def _cluster(text: str) -> str:
    if not (0 < len(text) <= 63 and is_label_value(text)):
        raise argparse.ArgumentTypeError(f"{text[:70]!r} is not a cluster name (a label value)")
    return text


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
        "environment, workload-type), for pivot tables; the team is always there. "
        "Or `cluster` (table or JSON): a line per cluster of the fleet",
    )
    parser.add_argument(
        "--cluster",
        type=_cluster,
        metavar="NAME",
        help="only this cluster's series (its cluster label, config cluster.label; series "
        "without the label count as any cluster's); default: every cluster",
    )
    parser.add_argument(
        "--focus-version",
        choices=FOCUS_VERSIONS,
        default=FOCUS_VERSIONS[0],
        help="FOCUS version of --format focus: 1.3 (daily rows, split-allocation columns; "
        "the default) or 1.2",
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
    previous: tuple[PeriodReport, str] | None = None,
    self_hosted: Sequence[SelfHostedModel] = (),
    focus_version: str = "1.3",
) -> str:
    """The report in format `fmt` (one of `FORMATS`), only `team`'s row when given;
    `by`: CSV rows per team x these labels; `previous`: the month before and its
    label, for the trend of the HTML; `self_hosted`: the served models (JSON, table,
    HTML)."""
    costs = report.costs
    span = data_span(
        report.period, label, report.data_through, report.daily.windows, report.daily.measured
    )
    if fmt == "json":
        rows = to_json_rows(self_hosted)
        document = to_json(
            costs,
            label,
            team,
            allocation=_allocation(report),
            span=span,
            self_hosted=rows,
            clusters=report.clusters,
        )
        return document + "\n"
    if by == (CLUSTER,):
        return cluster_table(costs, report.clusters, label)
    if fmt == "csv":
        context = CsvContext(
            data_through=report.data_through,
            partial_period=span.partial,
            incomplete=report.partial,
            data_from=span.start,
        )
        usage = report.usage
        allocation = allocate(costs, usage.gpu, usage.tokens, report.pricing) if by else None
        return to_csv(costs, label, team, context=context, allocation=allocation, by=by)
    if fmt == "focus":
        return _focus(report, team, focus_version)
    if fmt == "html":
        return showback_page(report, label, team, previous, self_hosted)
    through = report.data_through if report.data_through < report.period.end else None
    centers = _allocation(report)
    table = to_table(
        costs, label, team, through=through, jobs=report.jobs, allocation=centers, span=span
    )
    lines = table_lines(self_hosted, costs.currency)
    return table + ("\n" + "\n".join(lines) + "\n" if lines else "")


def _focus(report: PeriodReport, team: str | None, version: str) -> str:
    usage, costs = report.usage, report.costs
    if version == "1.2":
        rows = focus_rows(
            costs,
            usage.gpu,
            usage.tokens,
            report.pricing,
            team,
            billing_period=report.period,
            account=_focus_account(report),
        )
        return to_focus(rows)
    rows = focus13_rows(
        costs,
        usage.gpu,
        usage.tokens,
        report.pricing,
        team,
        days=usage.days,
        capacity=usage.capacity,
        billing_period=report.period,
        account=_focus_account(report),
    )
    return to_focus(rows, FOCUS_1_3_COLUMNS)


def costreports_of(report: PeriodReport, label: str) -> list[dict[str, Any]]:
    """The CostReport objects the operator would write for `report` (no budgets: those
    come from CostPolicies in a cluster), with their status."""
    costs = report.costs
    data = ReportInput(
        period=label,
        currency=costs.currency,
        teams=costs.teams,
        untagged=costs.untagged,
        cluster=costs.cluster,
        jobs=report.jobs,
        data_through=report.data_through,
        budgets={},
        allocation=_allocation(report),
        daily=report.daily,
    )
    return [{**obj, "status": status} for obj, status in desired_reports(data, report.data_through)]


def showback_page(
    report: PeriodReport,
    label: str,
    team: str | None = None,
    previous: tuple[PeriodReport, str] | None = None,
    self_hosted: Sequence[SelfHostedModel] = (),
) -> str:
    """The showback HTML of `report` (and of `previous`, the month before, for the trend);
    with `team`, only that team's reports besides untagged and the cluster; then the
    self-hosted models."""
    reports = costreports_of(report, label)
    if previous is not None:
        reports += costreports_of(*previous)
    if team is not None:
        reports = [
            r for r in reports if r["spec"]["scope"] != "team" or r["spec"].get("team") == team
        ]
    return render_showback(
        reports,
        report.data_through,
        note=f"From Prometheus by `finops-operator report --format html` ({label}).",
        extra=[html_section(self_hosted, report.costs.currency)],
    )


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
        if args.by == (CLUSTER,) and args.format not in ("table", "json"):
            raise ValueError(f"--by {CLUSTER} works with --format table or json")
        if args.by and args.by != (CLUSTER,) and args.format != "csv":
            raise ValueError("--by splits CSV rows; use it with --format csv")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    client = PrometheusClient(prometheus, timeout=args.timeout)
    names = QueryNames.from_config(config).only_cluster(args.cluster)
    chargeback = Chargeback.of(client, config, names)
    try:
        report = report_period(client, config.pricing, period, names=names, adjust=chargeback)
        read = len(client.log)
        served = served_models(client, config, names, report, chargeback)
        report = _with_warnings(report, tuple(w for r in client.log[read:] for w in r.warnings))
    except PrometheusError as err:
        print(f"error: no report for {label}: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    previous = None
    if args.format == "html" and args.period is not None:
        before = _month_before(period)
        try:
            earlier = report_period(client, config.pricing, before, names=names)
        except NoUsageDataError:
            earlier = None  # no figures before this month: the trend starts with it
        except PrometheusError as err:
            print(f"error: no report for {label}: {err}", file=sys.stderr)
            return 2
        if earlier is not None:
            previous = (earlier, f"{before.start:%Y-%m}")
            report = _with_warnings(report, earlier.warnings)
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
    sys.stdout.write(
        render(
            report,
            args.format,
            label,
            args.team,
            args.by,
            previous,
            self_hosted=served,
            focus_version=args.focus_version,
        )
    )
    return 0


def _focus_account(report: PeriodReport) -> FocusAccount | None:
    """The FOCUS billing account of a report of one named cluster: that cluster (its
    BillingAccountId, InvoiceId and ResourceIds carry the name; docs/multi-cluster.md).
    A fleet, or one unnamed cluster, keeps the default account."""
    names = {cluster.name for cluster in report.clusters}
    if len(names) != 1 or "" in names:
        return None
    (name,) = names
    return FocusAccount(account_id=name, account_name=f"GPU cluster {name}")


def served_models(
    client: PrometheusClient,
    config: Config,
    names: QueryNames,
    report: PeriodReport,
    chargeback: Chargeback | None,
) -> list[SelfHostedModel]:
    """The self-hosted models of the report's period (what the chargeback read, if on)."""
    serving = config.self_hosted_models
    if not serving.enabled:
        return []
    usage = chargeback.serving if chargeback is not None else None
    if usage is None:
        measured = Period(report.period.start, report.data_through)
        usage = read_serving(
            client, measured, names=names, serving=ServingNames.from_config(serving)
        )
    return self_hosted(usage, config.pricing, config)


def _month_before(period: Period) -> Period:
    last_day = period.start - timedelta(days=1)
    return Period.month(last_day.year, last_day.month)


def _with_warnings(report: PeriodReport, warnings: tuple[str, ...]) -> PeriodReport:
    """`report` carrying `warnings` too (those of the month before, read for the trend)."""
    merged = tuple(dict.fromkeys((*report.warnings, *warnings)))
    return replace(report, warnings=merged)

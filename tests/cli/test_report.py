"""`finops-operator report` against a real Prometheus backfilled from the simulator.

The report must reproduce the simulator's ground truth team by team (within 0.5 %),
with two operator replicas, at scrape intervals from 15 s to 5 min, across a
gateway restart and at period bounds that cut through running pods; and its rows
must add up to the cluster total exactly.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

import pytest

from finops_devtools.simulator.generation import NodePool, ScenarioParams, generate_scenario
from finops_devtools.simulator.ground_truth import GroundTruth, ground_truth
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import A100, H100, RESOURCE_MIG_1G, Scenario, to_unix
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.usage_reader import PeriodReport, report_period
from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig, PrometheusConfig
from finops_operator.domain.costs.period import Period, utc_timestamp
from finops_operator.domain.costs.showback import CostReport
from finops_operator.domain.money import money_context
from finops_operator.errors import NoUsageDataError, PrometheusError
from tests.support.prometheus_server import (
    PrometheusServer,
    backfilled_prometheus,
    free_port,
    needs_prometheus,
    recent_days,
)

pytestmark = needs_prometheus

TOLERANCE = 0.005
FIELDS = (
    "gpu_hours",
    "gpu_cost",
    "idle_gpu_hours",
    "idle_cost",
    "tokens",
    "token_cost",
    "shared_cost",
    "total_cost",
)
DAYS_START, DAYS_END = recent_days(2)
MARGIN = timedelta(hours=6)


@dataclass
class Cluster:
    scenario: Scenario
    prometheus: PrometheusServer

    def client(self) -> PrometheusClient:
        return PrometheusClient(PrometheusConfig(url=self.prometheus.url))

    def report(self, start: datetime, end: datetime) -> PeriodReport:
        return report_period(self.client(), self.scenario.pricing, Period(start, end))


def _cluster(
    factory: pytest.TempPathFactory, params: ScenarioParams, options: ExportOptions
) -> Iterator[Cluster]:
    scenario = generate_scenario(params)
    with backfilled_prometheus(factory.mktemp("prom"), scenario, options) as server:
        yield Cluster(scenario, server)


@pytest.fixture(scope="module")
def minute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two days (and margins) at a 1-minute scrape, two operator replicas."""
    params = ScenarioParams(start=DAYS_START - MARGIN, end=DAYS_END + MARGIN, seed=5, teams=5)
    options = ExportOptions(scrape_interval=60, operator_replicas=2)
    yield from _cluster(tmp_path_factory, params, options)


@pytest.fixture(scope="module")
def fifteen_seconds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One day at a 15-second scrape, two operator replicas, a smaller cluster."""
    start, end = recent_days(1, ago=2)
    params = ScenarioParams(
        start=start - timedelta(hours=2),
        end=end + timedelta(hours=2),
        seed=9,
        teams=3,
        node_pools=(
            NodePool(H100, count=1),
            NodePool(A100, RESOURCE_MIG_1G, count=1, gpus=1, units_per_gpu=7),
        ),
    )
    options = ExportOptions(scrape_interval=15, operator_replicas=2)
    yield from _cluster(tmp_path_factory, params, options)


@pytest.fixture(scope="module")
def five_minutes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Four days at a 5-minute scrape, one operator replica."""
    start, end = recent_days(4)
    params = ScenarioParams(start=start - MARGIN, end=end + MARGIN, seed=4, teams=3)
    options = ExportOptions(scrape_interval=300, operator_replicas=1)
    yield from _cluster(tmp_path_factory, params, options)


def relative_errors(report: CostReport, truth: GroundTruth) -> dict[tuple[str, str], float]:
    """(team, field) -> |report - truth| / truth, for every row with usage in the truth."""
    errors = {}
    rows = {row.team: row for row in [*report.teams, report.untagged]}
    assert set(truth.teams) <= set(rows), "every team of the truth has a row"
    for team, expected in truth.teams.items():
        for name in FIELDS:
            want, got = getattr(expected, name), getattr(rows[team], name)
            errors[(team, name)] = abs(float((got - want) / want)) if want else abs(float(got))
    for name in FIELDS:
        want, got = getattr(truth.cluster, name), getattr(report.cluster, name)
        errors[("cluster", name)] = abs(float((got - want) / want)) if want else abs(float(got))
    return errors


def assert_matches_truth(
    report: CostReport, truth: GroundTruth, tolerance: float = TOLERANCE
) -> None:
    errors = relative_errors(report, truth)
    worst = {key: error for key, error in errors.items() if error > tolerance}
    assert not worst, f"off by more than {tolerance:.1%}: {worst}"


def assert_adds_up(report: CostReport) -> None:
    rows = [*report.teams, report.untagged]
    total = sum((row.total_cost for row in rows), Decimal(0)) + report.cluster.undistributed_cost
    assert total == report.cluster.total_cost
    assert report.cluster.total_cost == (
        report.cluster.gpu_cost
        + report.cluster.token_cost
        + report.cluster.unallocated_cost
        + report.cluster.platform_cost
    )


# ---------------------------------------------------------------- accuracy


def test_the_report_reproduces_the_ground_truth_team_by_team_with_two_replicas(
    minute: Cluster,
) -> None:
    report = minute.report(DAYS_START, DAYS_END)
    truth = ground_truth(minute.scenario, DAYS_START, DAYS_END)
    assert len(truth.teams) >= 5 and conventions.UNTAGGED in truth.teams
    assert_matches_truth(report.costs, truth)
    assert report.costs.cluster.capacity_gpu_hours == pytest.approx(
        float(truth.capacity_gpu_hours), rel=1e-9
    )


def test_teams_untagged_and_undistributed_add_up_to_the_cluster_total_exactly(
    minute: Cluster,
) -> None:
    report = minute.report(DAYS_START, DAYS_END)
    assert report.costs.cluster.platform_cost > 0 and report.costs.cluster.unallocated_cost > 0
    assert_adds_up(report.costs)


def test_the_report_is_right_at_a_15_second_scrape(fifteen_seconds: Cluster) -> None:
    start, end = recent_days(1, ago=2)
    report = fifteen_seconds.report(start, end)
    assert_matches_truth(report.costs, ground_truth(fifteen_seconds.scenario, start, end))
    assert_adds_up(report.costs)


def test_the_report_is_right_at_a_5_minute_scrape(five_minutes: Cluster) -> None:
    start, end = recent_days(4)
    report = five_minutes.report(start, end)
    truth = ground_truth(five_minutes.scenario, start, end)
    # At 5 minutes a pod's start and end are seen to within a scrape interval; the
    # shared pool (capacity - allocation, a difference) magnifies that sampling
    # noise, so it gets 1 %. Every other figure stays within 0.5 %.
    errors = relative_errors(report.costs, truth)
    too_far = {
        key: error
        for key, error in errors.items()
        if error > (0.01 if key[1] == "shared_cost" else TOLERANCE)
    }
    assert not too_far, too_far
    assert_adds_up(report.costs)


def test_a_period_cut_through_running_pods_counts_only_their_part_inside(
    minute: Cluster,
) -> None:
    start = DAYS_START + timedelta(hours=7)
    end = DAYS_END - timedelta(hours=5, minutes=30)
    a, b = to_unix(start), to_unix(end)
    crossing = [
        pod for pod in minute.scenario.pods if pod.start < a < pod.end or pod.start < b < pod.end
    ]
    assert len(crossing) > 10
    report = minute.report(start, end)
    assert report.queries == 10  # whole days in one range query each, the rest in one instant
    assert_matches_truth(report.costs, ground_truth(minute.scenario, start, end))
    assert_adds_up(report.costs)


def test_adjacent_periods_add_up_to_the_period_that_spans_them(minute: Cluster) -> None:
    middle = DAYS_START + timedelta(hours=29)
    first = minute.report(DAYS_START, middle).costs.cluster
    second = minute.report(middle, DAYS_END).costs.cluster
    both = minute.report(DAYS_START, DAYS_END).costs.cluster
    assert float(first.gpu_hours + second.gpu_hours) == pytest.approx(float(both.gpu_hours), 1e-9)
    assert float(first.tokens + second.tokens) == pytest.approx(float(both.tokens), rel=1e-4)


def test_a_gateway_restart_inside_the_period_loses_no_tokens(minute: Cluster) -> None:
    scenario = minute.scenario
    (restart,) = scenario.gateway_restarts
    assert to_unix(DAYS_START) < restart < to_unix(DAYS_END)
    report = minute.report(DAYS_START, DAYS_END)
    truth = ground_truth(scenario, DAYS_START, DAYS_END)
    assert float(report.costs.cluster.tokens) == pytest.approx(
        float(truth.cluster.tokens), rel=1e-3
    )
    # Reading the counters naively (last - first) would lose everything before the reset.
    at = DAYS_END - timedelta(milliseconds=1)
    naive = minute.prometheus.query_value(
        "sum(last_over_time(litellm_total_tokens_metric_total[2d]))"
        " - sum(litellm_total_tokens_metric_total offset 2d)",
        at,
    )
    assert naive < 0.9 * float(truth.cluster.tokens)


def test_cost_per_training_run_matches_the_truth(minute: Cluster) -> None:
    report = minute.report(DAYS_START, DAYS_END)
    truth = ground_truth(minute.scenario, DAYS_START, DAYS_END)
    assert {(job.namespace, job.job) for job in report.jobs} == set(truth.jobs)
    for job in report.jobs:
        expected = truth.jobs[(job.namespace, job.job)]
        assert job.team == expected.team
        assert float(job.gpu_hours) == pytest.approx(float(expected.gpu_hours), rel=1e-6)
        assert float(job.cost) == pytest.approx(float(expected.cost), rel=1e-6)
    costs = [job.cost for job in report.jobs]
    assert costs == sorted(costs, reverse=True)


def test_the_number_of_queries_depends_neither_on_teams_nor_on_days(
    minute: Cluster, five_minutes: Cluster
) -> None:
    one_day = minute.report(DAYS_START, DAYS_START + timedelta(days=1))
    two_days = minute.report(DAYS_START, DAYS_END)
    start, end = recent_days(4)
    four_days = five_minutes.report(start, end)
    assert one_day.queries == two_days.queries == four_days.queries == 5


# ---------------------------------------------------------------- the command line


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops_operator.cli", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def config_file(tmp_path: Path, scenario: Scenario, url: str) -> Path:
    pricing = scenario.pricing
    document = {
        "prometheus": {"url": url},
        "pricing": {
            "currency": pricing.currency,
            "gpuHourly": {model: str(price) for model, price in pricing.gpu_hourly.items()},
            "tokensPer1k": {
                model: {"input": str(price.input), "output": str(price.output)}
                for model, price in pricing.tokens_per_1k.items()
            },
            "sharedMonthly": str(pricing.shared_monthly),
            "sharedSplit": pricing.shared_split,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(document))
    return path


def period_args() -> list[str]:
    return ["--start", DAYS_START.isoformat(), "--end", DAYS_END.isoformat()]


def test_json_output_follows_the_contract_and_matches_the_truth(
    minute: Cluster, tmp_path: Path
) -> None:
    config = config_file(tmp_path, minute.scenario, minute.prometheus.url)
    result = cli("--config", str(config), *period_args(), "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == [
        "period", "currency", "teams", "untagged", "cluster",
        "dataFrom", "dataThrough", "partialPeriod", "costCenters", "clusters", "selfHostedModels",
    ]  # fmt: skip
    # Two whole days with data from their start: not partial.
    assert document["dataFrom"] == utc_timestamp(DAYS_START)
    assert document["dataThrough"] == utc_timestamp(DAYS_END)
    assert document["partialPeriod"] is False
    # One Prometheus, no cluster label: one unnamed cluster, all but the platform cost
    # (the report's, not the cluster's: docs/multi-cluster.md).
    [only] = document["clusters"]
    platform = minute.report(DAYS_START, DAYS_END).costs.cluster.platform_cost
    assert only["name"] == "" and platform > 0
    total = Decimal(document["cluster"]["totalCost"])
    assert abs(Decimal(only["totalCost"]) + platform - total) <= Decimal("0.01")
    assert document["currency"] == "USD"
    # Cost centers carry all spend: with the undistributed shared cost, the cluster total.
    centers = document["costCenters"]
    total = sum(Decimal(row["totalCost"]) for row in centers["rows"])
    assert total + Decimal(centers["undistributedCost"]) == Decimal(
        document["cluster"]["totalCost"]
    )
    fields = [
        "team", "gpuHours", "gpuCost", "idleGpuHours", "idleCost",
        "tokenCost", "sharedCost", "totalCost",
    ]  # fmt: skip
    truth = ground_truth(minute.scenario, DAYS_START, DAYS_END)
    rows = [*document["teams"], document["untagged"], document["cluster"]]
    for row in rows:
        assert list(row) == fields
        assert isinstance(row["gpuHours"], float) and isinstance(row["idleGpuHours"], float)
        for money in ("gpuCost", "idleCost", "tokenCost", "sharedCost", "totalCost"):
            assert isinstance(row[money], str) and Decimal(row[money]).as_tuple().exponent == -2
        expected = truth.cluster if row["team"] == "cluster" else truth.teams[row["team"]]
        assert row["gpuHours"] == pytest.approx(float(expected.gpu_hours), rel=TOLERANCE)
        assert float(row["totalCost"]) == pytest.approx(float(expected.total_cost), rel=TOLERANCE)
    assert [row["team"] for row in document["teams"]] == sorted(
        team for team in truth.teams if team != conventions.UNTAGGED
    )


def test_team_filter_keeps_that_team_and_the_untagged_and_cluster_rows(
    minute: Cluster,
) -> None:
    url = minute.prometheus.url
    result = cli("--prometheus-url", url, *period_args(), "--format", "json", "--team", "recsys")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [row["team"] for row in document["teams"]] == ["recsys"]
    assert document["untagged"]["team"] == conventions.UNTAGGED
    assert document["cluster"]["team"] == "cluster"


def test_csv_output_has_row_types_that_add_up_and_splits_by_cost_center_and_feature(
    minute: Cluster,
) -> None:
    result = cli("--prometheus-url", minute.prometheus.url, *period_args(), "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(lines[0])[:9] == [
        "Row type", "Period", "Period start (UTC)", "Period end (UTC)", "Data from (UTC)",
        "Data through (UTC)",
        "Partial period", "Incomplete data", "Team",
    ]  # fmt: skip
    assert [line["Row type"] for line in lines[-3:]] == [
        "untagged",
        "undistributed",
        "cluster total",
    ]
    assert {line["Partial period"] for line in lines} == {"no"}
    for by in ((), ("--by", "team,cost-center,feature")):
        result = cli(
            "--prometheus-url", minute.prometheus.url, *period_args(), "--format", "csv", *by
        )
        assert result.returncode == 0, result.stderr
        lines = list(csv.DictReader(io.StringIO(result.stdout)))
        total = next(line for line in lines if line["Row type"] == "cluster total")
        for column in [name for name in lines[0] if "(USD" in name]:
            parts = sum(
                Decimal(line[column]) for line in lines if line["Row type"] != "cluster total"
            )
            assert parts == Decimal(total[column]), column
    assert "Cost center" in lines[0] and "Feature" in lines[0]
    refused = cli("--prometheus-url", minute.prometheus.url, *period_args(), "--by", "feature")
    assert refused.returncode == 2 and "--format csv" in refused.stderr
    unknown = cli(*period_args(), "--format", "csv", "--by", "team,colour")
    assert unknown.returncode == 2 and "colour" in unknown.stderr


def test_focus_output_has_the_focus_columns_and_adds_up_to_the_cluster_total(
    minute: Cluster, tmp_path: Path
) -> None:
    config = config_file(tmp_path, minute.scenario, minute.prometheus.url)
    result = cli("--config", str(config), *period_args(), "--format", "focus")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    for column in (
        "BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart",
        "ChargePeriodEnd", "ChargeCategory", "ConsumedQuantity", "ConsumedUnit",
        "PricingUnit", "ResourceId", "ResourceName", "ServiceName", "ServiceCategory", "Tags",
    ):  # fmt: skip
        assert column in rows[0]
    assert all(name.startswith("x_") for name in rows[0] if name[0].islower())
    assert {row["x_CostComponent"] for row in rows} == {"gpu", "tokens", "shared"}
    # FOCUS 1.3 by default: one charge period per day of the period.
    days = {(row["ChargePeriodStart"], row["ChargePeriodEnd"]) for row in rows}
    day = timedelta(days=1)
    spans = int((DAYS_END - DAYS_START) / day)
    assert days == {
        (utc_timestamp(DAYS_START + i * day), utc_timestamp(DAYS_START + (i + 1) * day))
        for i in range(spans)
    }
    billed = sum(Decimal(row["BilledCost"]) for row in rows)
    report = minute.report(DAYS_START, DAYS_END)
    # BilledCost adds up to the report's total to the cent (the same figure as --format json).
    summary = cli("--config", str(config), *period_args(), "--format", "json")
    assert billed == Decimal(json.loads(summary.stdout)["cluster"]["totalCost"])
    assert abs(billed - report.costs.cluster.total_cost) <= Decimal("0.005")
    for row in rows:
        tags = json.loads(row["Tags"]) | json.loads(row["AllocatedTags"] or "{}")
        assert tags.get("resilio.tech/team", "__untagged__") == row["x_Team"]
        assert row["SubAccountId"] == row["x_Team"]
        assert row["BillingPeriodStart"] == utc_timestamp(DAYS_START)
        if row["x_CostComponent"] == "tokens":
            assert Decimal(row["ConsumedQuantity"]) == int(Decimal(row["ConsumedQuantity"]))
            # Tags: only what the gateway reported; the rest is the allocation's.
            assert set(json.loads(row["Tags"])) == {"resilio.tech/team"}
        if row["x_CostComponent"] == "gpu":
            assert tags.get("resilio.tech/cost-center", "__untagged__") == row["x_CostCenter"]
            assert row["ConsumedUnit"] == "GPU-Hours" and row["ServiceCategory"] == "Compute"
        assert row["ChargeCategory"] == "Usage"
    # 1.2 stays available: one row per charge over the whole period.
    old = cli(
        "--config", str(config), *period_args(), "--format", "focus", "--focus-version", "1.2"
    )
    assert old.returncode == 0, old.stderr
    old_rows = list(csv.DictReader(io.StringIO(old.stdout)))
    assert {row["ChargePeriodStart"] for row in old_rows} == {utc_timestamp(DAYS_START)}
    assert sum(Decimal(row["BilledCost"]) for row in old_rows) == billed
    recsys_gpu = sum(
        Decimal(row["BilledCost"])
        for row in rows
        if row["x_Team"] == "recsys" and row["x_CostComponent"] == "gpu"
    )
    assert abs(recsys_gpu - report.costs.row("recsys").gpu_cost) < Decimal("0.01")


def test_table_output_names_every_team_and_the_totals(minute: Cluster, tmp_path: Path) -> None:
    config = config_file(tmp_path, minute.scenario, "http://127.0.0.1:9")
    result = cli("--config", str(config), "--prometheus-url", minute.prometheus.url, *period_args())
    assert result.returncode == 0, result.stderr
    report = minute.report(DAYS_START, DAYS_END)
    for row in report.costs.teams:
        assert row.team in result.stdout
    assert conventions.UNTAGGED in result.stdout
    total = report.costs.cluster.total_cost.quantize(Decimal("0.01"))
    assert "cluster " in result.stdout and str(total) in result.stdout
    assert "TEAM" in result.stdout.splitlines()[2]


def test_an_unreachable_prometheus_is_exit_2_with_its_url_and_no_figures(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("--prometheus-url", url, "--period", "2025-01", "--format", "json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert url in result.stderr and "cannot reach Prometheus" in result.stderr


def test_a_prometheus_without_the_operators_series_is_exit_2_not_zeros(
    tmp_path: Path,
) -> None:
    with PrometheusServer(tmp_path / "empty") as server:
        server.start()
        result = cli("--prometheus-url", server.url, "--period", "2025-01")
        with pytest.raises(NoUsageDataError):
            report_period(
                PrometheusClient(PrometheusConfig(url=server.url)),
                PricingConfig(),
                Period.month(2025, 1),
            )
    assert result.returncode == 2 and result.stdout == ""
    assert server.url in result.stderr and "no finops_pod_gpu_allocation" in result.stderr


def test_a_period_in_the_future_is_refused_with_exit_2() -> None:
    result = cli("--prometheus-url", "http://127.0.0.1:9", "--period", "2999-01")
    assert result.returncode == 2 and "has not begun" in result.stderr


def test_period_arguments_are_checked(tmp_path: Path) -> None:
    assert cli("--period", "2026-13").returncode == 2
    both = cli("--period", "2026-01", "--start", "2026-01-01")
    assert both.returncode == 2 and "either --period or --start/--end" in both.stderr
    assert cli("--start", "2026-01-02", "--end", "2026-01-01").returncode == 2


def test_prometheus_errors_are_prometheus_errors_never_zeros(minute: Cluster) -> None:
    client = minute.client()
    with pytest.raises(PrometheusError, match="refused the instant query"):
        client.evaluate("sum(", DAYS_START)


# ---------------------------------------------------------------- daily spend


def test_each_day_of_a_report_reproduces_that_days_ground_truth(minute: Cluster) -> None:
    """The one-day windows of the range queries land on their own day (no extra query)."""
    report = minute.report(DAYS_START, DAYS_END)
    assert [day.window for day in report.usage.days] == [
        Period(DAYS_START, DAYS_START + timedelta(days=1)),
        Period(DAYS_START + timedelta(days=1), DAYS_END),
    ]
    for day in report.usage.days:
        truth = ground_truth(minute.scenario, day.window.start, day.window.end)
        hours: dict[str, Decimal] = defaultdict(Decimal)
        for usage in day.gpu:
            hours[usage.team] += usage.gpu_hours
        tokens: dict[str, Decimal] = defaultdict(Decimal)
        for counted in day.tokens:
            tokens[counted.team] += counted.tokens
        for team, expected in truth.teams.items():
            assert float(hours[team]) == pytest.approx(float(expected.gpu_hours), rel=TOLERANCE)
            assert float(tokens[team]) == pytest.approx(float(expected.tokens), rel=TOLERANCE)
    # and the period's cost cut into those days adds up to every row exactly
    with localcontext(money_context()):
        for row in [*report.costs.teams, report.costs.untagged]:
            assert sum(report.daily.of(row.team), Decimal(0)) == row.total_cost


def test_html_output_is_the_showback_page_with_the_daily_trend(
    minute: Cluster, tmp_path: Path
) -> None:
    config = config_file(tmp_path, minute.scenario, minute.prometheus.url)
    result = cli("--config", str(config), *period_args(), "--format", "html")
    assert result.returncode == 0, result.stderr
    page = result.stdout
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    report = minute.report(DAYS_START, DAYS_END)
    for row in report.costs.teams:
        assert f'data-team="{row.team}"' in page  # a trend line per team
    total = f"{report.costs.cluster.total_cost:,.2f} USD"
    assert page.count(total) >= 3  # headline, team table, trend, cost centers
    assert "Week over week: not enough history." in page  # two days of figures
    # --period reads the month before too, for the trend (none here: no figures then)
    month = f"{DAYS_END - timedelta(seconds=1):%Y-%m}"
    result = cli("--config", str(config), "--period", month, "--format", "html")
    assert result.returncode == 0, result.stderr
    assert f'id="period-{month}"' in result.stdout

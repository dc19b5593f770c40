"""CostReports written by the operator process from a real Prometheus, through an outage.

The operator runs against the Kubernetes emulator with a real Prometheus over a
backfilled simulated cluster; its reports must match the simulator's ground
truth, add up to the cluster total, keep their figures while Prometheus is
down (with `Stale=True`), and recover on their own when it is back.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from finops_devtools.simulator.generation import ScenarioParams, generate_scenario
from finops_devtools.simulator.ground_truth import ground_truth
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import Scenario
from tests.support.crd_schema import validate_against_crd
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess
from tests.support.paths import ROOT
from tests.support.prometheus_server import PrometheusServer, needs_prometheus, recent_days

pytestmark = needs_prometheus

CRD = ROOT / "crds" / "costreports.finops.resilio.tech.yaml"
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    start, end = recent_days(2)
    return generate_scenario(ScenarioParams(start=start, end=end, seed=11, teams=3))


@pytest.fixture(scope="module")
def prometheus(
    scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    try:
        server.backfill(scenario, ExportOptions(scrape_interval=60, operator_replicas=2))
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def operator(
    scenario: Scenario, prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KubeEmulator, OperatorProcess]]:
    cluster = KubeEmulator(
        {"finops.resilio.tech/v1alpha1/costreports": ("CostReport", False)}
    ).start()
    config = {
        "mode": "audit",
        "prometheus": {"url": prometheus.url},
        "pricing": scenario.pricing.as_file(),
        "reports": {"intervalSeconds": 5},
    }
    process = OperatorProcess(cluster, tmp_path_factory.mktemp("operator"), config)
    try:
        yield cluster, process.start()
    finally:
        process.stop()
        cluster.stop()


def months(scenario: Scenario) -> list[str]:
    start = datetime.datetime.fromtimestamp(scenario.start, datetime.UTC)
    end = datetime.datetime.fromtimestamp(scenario.end - 1, datetime.UTC)
    return sorted({f"{start:%Y-%m}", f"{end:%Y-%m}"})


def reports_of(cluster: KubeEmulator, period: str) -> dict[str, Any]:
    return {
        r["metadata"]["name"]: r
        for r in cluster.list("CostReport")
        if r["spec"]["period"] == period and r.get("status")
    }


def condition(report: dict[str, Any], kind: str) -> str | None:
    for c in report["status"].get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return None


def test_reports_match_the_ground_truth_and_add_up(
    scenario: Scenario, operator: tuple[KubeEmulator, OperatorProcess]
) -> None:
    cluster, _ = operator
    for period in months(scenario):
        reports = eventually(
            lambda p=period: reports_of(cluster, p).get(f"cluster-{p}") and reports_of(cluster, p),
            timeout=60,
        )
        for report in reports.values():
            validate_against_crd(report, CRD)
        year, month = map(int, period.split("-"))
        month_start = datetime.datetime(year, month, 1, tzinfo=datetime.UTC)
        truth = ground_truth(
            scenario,
            start=max(month_start, datetime.datetime.fromtimestamp(scenario.start, datetime.UTC)),
        )
        teams = {
            r["spec"]["team"]: r["status"] for r in reports.values() if r["spec"]["scope"] == "team"
        }
        untagged = reports[f"untagged-{period}"]["status"]
        total = reports[f"cluster-{period}"]["status"]
        for team, expected in truth.teams.items():
            got = untagged if team == "__untagged__" else teams[team]
            want = float(expected.gpu_hours)
            assert got["gpuHours"] == pytest.approx(want, rel=TOLERANCE), team
            assert float(got["gpuCost"]) == pytest.approx(float(expected.gpu_cost), rel=TOLERANCE)
        parts = [Decimal(s["totalCost"]) for s in [*teams.values(), untagged]]
        parts.append(Decimal(total["cluster"]["undistributedCost"]))
        cents = Decimal("0.01") * len(parts)
        assert abs(sum(parts) - Decimal(total["totalCost"])) <= cents


def test_prometheus_down_keeps_the_figures_marks_them_stale_and_recovers(
    scenario: Scenario,
    prometheus: PrometheusServer,
    operator: tuple[KubeEmulator, OperatorProcess],
) -> None:
    cluster, process = operator
    period = months(scenario)[-1]
    name = f"cluster-{period}"
    eventually(lambda: reports_of(cluster, period).get(name), timeout=60)
    before = cluster.get("CostReport", None, name)["status"]

    prometheus.stop()
    try:
        stale = eventually(
            lambda: (
                (r := cluster.get("CostReport", None, name))
                and condition(r, "Stale") == "True"
                and r
            ),
            timeout=30,
        )
        figures = ("gpuHours", "gpuCost", "totalCost", "idleGpuHours", "breakdowns")
        assert {k: stale["status"][k] for k in figures} == {k: before[k] for k in figures}
        stale_condition = next(c for c in stale["status"]["conditions"] if c["type"] == "Stale")
        assert stale_condition["reason"] == "PrometheusUnavailable"
        assert prometheus.url.removeprefix("http://") in stale_condition["message"]
        validate_against_crd(stale, CRD)
        assert "finops_costreport_refresh_failures_total" in process.metrics()
    finally:
        prometheus.start(same_port=True)
    eventually(
        lambda: condition(cluster.get("CostReport", None, name), "Stale") == "False", timeout=60
    )

"""`report` through a real Thanos Query over three sidecars (issue 22): the fleet.

Cluster A is an HA pair of Prometheus servers holding the same data, each with its
Thanos sidecar and external labels `cluster="a"` and `prometheus_replica` 0 or 1;
cluster B is one Prometheus with `cluster="b"`. The data carry no cluster label of
their own: the sidecars add the external labels, as in production. Read through a
Thanos Query with `--query.replica-label=prometheus_replica` (deduplication) and
through one without it, every cluster's figures must equal that cluster's own
report (read from an unlabelled Prometheus) to the cent, and the fleet total
their sum: nothing merges, nothing doubles.

And the golden fleet budget (`spec.clusters: all`) loaded into a real `thanos rule`,
reading a query endpoint that holds two clusters' recorded spend, an HA pair
undeduplicated, fires once with the clusters' sum.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_devtools.devcluster.thanos_runner import ThanosProcess, prometheus_config
from finops_devtools.simulator.world import Scenario
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.usage_reader import PeriodReport, report_period
from finops_operator.domain.config import PricingConfig, PrometheusConfig
from finops_operator.domain.costs.period import Period
from finops_operator.domain.rules.prometheus_rule import rule_groups_file
from tests.cli.test_fleet_report import END, OPTIONS, START, by_cluster, cents, two_clusters
from tests.golden.regenerate import RULES as GOLDEN_RULES
from tests.support.prometheus_server import PrometheusServer, needs_prometheus
from tests.support.tools import needs_tool, require_tool, tool_path

pytestmark = [needs_prometheus, needs_tool("thanos")]


@dataclass
class ThanosFleet:
    pricing: PricingConfig
    alone: dict[str, PrometheusServer]
    deduplicating: ThanosProcess
    raw: ThanosProcess

    def report(self, url: str) -> PeriodReport:
        client = PrometheusClient(PrometheusConfig(url=url))
        return report_period(client, self.pricing, Period(START, END))


@pytest.fixture(scope="module")
def thanos_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThanosFleet]:
    require_tool("thanos")
    thanos = str(tool_path("thanos"))
    a, b, pricing = two_clusters()
    workdir: Path = tmp_path_factory.mktemp("thanos")
    servers: list[PrometheusServer] = []
    processes: list[ThanosProcess] = []

    def prometheus(name: str, scenario: Scenario, *labels: tuple[str, str]) -> PrometheusServer:
        config = prometheus_config(labels) if labels else None
        server = PrometheusServer(workdir / name, **({"config": config} if config else {}))
        servers.append(server)
        server.backfill(scenario, OPTIONS, keep_files=False)
        return server.start()

    try:
        alone = {"a": prometheus("alone-a", a), "b": prometheus("alone-b", b)}
        members = [
            prometheus("a-0", a, ("cluster", "a"), ("prometheus_replica", "0")),
            prometheus("a-1", a, ("cluster", "a"), ("prometheus_replica", "1")),
            prometheus("b", b, ("cluster", "b")),
        ]
        for member in members:
            processes.append(ThanosProcess.sidecar(thanos, workdir, member))
        endpoints = [sidecar.grpc for sidecar in processes]
        deduplicating = ThanosProcess.query(thanos, workdir, endpoints, ("prometheus_replica",))
        processes.append(deduplicating)
        raw = ThanosProcess.query(thanos, workdir, endpoints)
        processes.append(raw)
        yield ThanosFleet(pricing, alone, deduplicating, raw)
    finally:
        for process in processes:
            process.stop()
        for server in servers:
            server.stop()


def _wait_for_stores(fleet: ThanosFleet) -> None:
    """Thanos Query finds its endpoints a few seconds after it starts."""
    for query in (fleet.deduplicating, fleet.raw):
        client = PrometheusClient(PrometheusConfig(url=query.url))
        deadline = time.monotonic() + 60
        while True:
            series = client.evaluate(
                "count by (cluster) (finops_gpu_hourly_price)", END.timestamp()
            )
            if len(series) == 2 or time.monotonic() > deadline:
                break
            time.sleep(1)


def test_per_cluster_figures_through_thanos_equal_each_clusters_own_to_the_cent(
    thanos_fleet: ThanosFleet,
) -> None:
    _wait_for_stores(thanos_fleet)
    own = {name: thanos_fleet.report(server.url) for name, server in thanos_fleet.alone.items()}
    want = {name: cents(report.costs.cluster.total_cost) for name, report in own.items()}
    fleet_total = cents(sum((r.costs.cluster.total_cost for r in own.values()), start=0))
    for query in (thanos_fleet.deduplicating, thanos_fleet.raw):
        through = thanos_fleet.report(query.url)
        assert by_cluster(through) == want, query.url
        assert cents(through.costs.cluster.total_cost) == fleet_total
        assert not through.warnings


# ---------------------------------------------------------------- Thanos Ruler

# GPU spend is recorded by the five cost labels, token spend by team only.
_GPU = 'feature="core",environment="production",workload_type="training",cost_center="cc-1"'
MONTH_TO_DATE = (
    # (metric, labels, value): what Thanos Ruler reads through a query endpoint that does
    # not deduplicate: cluster a's HA pair twice, cluster b once, GPU and tokens.
    ("finops:gpu_cost_month_to_date:sum", f'cluster="a",prometheus_replica="0",{_GPU}', 30),
    ("finops:gpu_cost_month_to_date:sum", f'cluster="a",prometheus_replica="1",{_GPU}', 30),
    ("finops:gpu_cost_month_to_date:sum", f'cluster="b",{_GPU}', 25),
    ("finops:token_cost_month_to_date:sum", 'cluster="b"', 10),
)


def _recorded_spend(path: Path, now: int) -> Path:
    """The last hour of the recorded month-to-date spend, every 30 s, as OpenMetrics."""
    lines = []
    for metric in dict.fromkeys(name for name, _, _ in MONTH_TO_DATE):
        lines.append(f"# TYPE {metric} gauge")
        for name, labels, value in MONTH_TO_DATE:
            if name == metric:
                series = f'{metric}{{{labels},team="ml-research"}}'
                lines += [f"{series} {value} {t}" for t in range(now - 3600, now - 29, 30)]
    path.write_text("\n".join([*lines, "# EOF", ""]))
    return path


def test_a_fleet_budget_fires_in_thanos_ruler_with_each_ha_pair_once(tmp_path: Path) -> None:
    """The golden fleet policy's rules in a real `thanos rule`, reading a query endpoint
    over two clusters: the team's 65 of 100 fires the 50 % alert, summed over clusters,
    the pair counted once (a doubled pair, 95, would fire the 80 % one)."""
    require_tool("thanos", "prometheus", "promtool")
    thanos = str(tool_path("thanos"))
    golden = yaml.safe_load((GOLDEN_RULES / "fleet-budget.yaml").read_text(encoding="utf-8"))
    rules = tmp_path / "fleet-budget.yaml"
    rules.write_text(yaml.safe_dump(rule_groups_file(golden)))
    server = PrometheusServer(tmp_path / "prometheus")
    server.backfill_file(_recorded_spend(tmp_path / "spend.om", int(time.time())))
    with server.start(), ThanosProcess.rule(thanos, tmp_path, [rules], server.url) as ruler:
        deadline = time.monotonic() + 120
        firing: list[dict[str, Any]] = []
        while not firing and time.monotonic() < deadline:
            time.sleep(2)
            with urllib.request.urlopen(f"{ruler.url}/api/v1/alerts", timeout=10) as answer:
                data = json.load(answer)["data"]
            # Thanos Ruler answers a list, Prometheus an object holding it.
            alerts = data["Alerts"] or []  # Thanos Ruler's key
            firing = [a for a in alerts if a["state"] == "firing"]
        assert [a["labels"]["threshold"] for a in firing] == ["50"], ruler.log()
        assert float(firing[0]["value"]) == 65
        assert firing[0]["labels"]["team"] == "ml-research"

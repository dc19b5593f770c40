"""Many clusters behind one query endpoint (issue 22): `report` against real Prometheus.

Cluster B runs pods with the same names, on nodes with the same names, as some of
cluster A's: the very case where series that differ only by their `cluster` label
used to merge (a fleet total of 7,644.18 USD instead of 13,404.18 was measured).
Each cluster is backfilled on its own into an unlabelled Prometheus (what its own
Prometheus shows its queries), and both into one Prometheus with a `cluster`
label on every series (what a Thanos Query over their sidecars shows), once
without replicas and once with cluster A as an HA pair read without
deduplication (`prometheus_replica` 0 and 1). The fleet's per-cluster figures must
equal each cluster's own report to the cent, the fleet total their sum, and
nothing may double over the HA pair.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from finops_devtools.simulator.generation import ScenarioParams, generate_scenario
from finops_devtools.simulator.ground_truth import ground_truth
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import Scenario
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.usage_reader import PeriodReport, report_period
from finops_operator.domain.config import PricingConfig, PrometheusConfig
from finops_operator.domain.costs.cost_queries import QueryNames
from finops_operator.domain.costs.period import Period
from finops_operator.domain.money import display_money
from tests.cli.test_report import cli, config_file
from tests.support.prometheus_server import (
    PrometheusServer,
    fleet_servers,
    needs_prometheus,
    recent_days,
    two_cluster_endpoints,
)

pytestmark = needs_prometheus

START, END = recent_days(2)
MARGIN = timedelta(hours=3)
OPTIONS = ExportOptions(scrape_interval=300, operator_replicas=1)
TOLERANCE = 0.01


@dataclass
class Fleet:
    a: Scenario
    b: Scenario
    pricing: PricingConfig
    alone_a: PrometheusServer
    alone_b: PrometheusServer
    shared: PrometheusServer  # both clusters, `cluster` label on every series
    ha: PrometheusServer  # the same, cluster A twice (`prometheus_replica` 0, 1)
    # One cluster's series, some unlabelled and some `cluster="a"`, as when the label
    # is added part way through a period: B's usage without it, A's with it.
    relabelled: PrometheusServer

    def report(self, server: PrometheusServer, names: QueryNames | None = None) -> PeriodReport:
        client = PrometheusClient(PrometheusConfig(url=server.url))
        return report_period(client, self.pricing, Period(START, END), names=names or QueryNames())


def two_clusters() -> tuple[Scenario, Scenario, PricingConfig]:
    """Clusters A and B (B: every other pod of A, same names and nodes, one token
    stream, no spend jump) and their pricing without a platform cost."""
    params = ScenarioParams(start=START - MARGIN, end=END + MARGIN, seed=22, teams=4)
    a = generate_scenario(params)
    b = replace(a, pods=a.pods[::2], token_streams=a.token_streams[:1], anomalies=())
    return a, b, a.pricing.model_copy(update={"shared_monthly": Decimal(0)})


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    a, b, pricing = two_clusters()
    with fleet_servers(tmp_path_factory) as server:
        shared, ha = two_cluster_endpoints(server, a, b, OPTIONS)
        yield Fleet(
            a=a,
            b=b,
            pricing=pricing,
            alone_a=server((a, OPTIONS)),
            alone_b=server((b, OPTIONS)),
            shared=shared,
            ha=ha,
            relabelled=server(
                (b, OPTIONS), (a, replace(OPTIONS, external_labels=(("cluster", "a"),)))
            ),
        )


def cents(amount: Decimal) -> str:
    return display_money(amount)


def by_cluster(report: PeriodReport) -> dict[str, str]:
    return {cluster.name: cents(cluster.costs.total_cost) for cluster in report.clusters}


def test_the_fleet_total_is_the_sum_of_the_clusters_to_the_cent(fleet: Fleet) -> None:
    alone_a, alone_b = fleet.report(fleet.alone_a), fleet.report(fleet.alone_b)
    shared = fleet.report(fleet.shared)
    a_total, b_total = alone_a.costs.cluster.total_cost, alone_b.costs.cluster.total_cost
    assert a_total > 0 and b_total > 0
    assert by_cluster(shared) == {"a": cents(a_total), "b": cents(b_total)}
    assert cents(shared.costs.cluster.total_cost) == cents(a_total + b_total)
    assert cents(shared.costs.cluster.gpu_hours) == cents(
        alone_a.costs.cluster.gpu_hours + alone_b.costs.cluster.gpu_hours
    )
    # Teams are the fleet's: a team's direct spend in both clusters (the shared pool,
    # unallocated capacity, is spread over the fleet's teams, docs/multi-cluster.md).
    team_a = {row.team: row.gpu_cost + row.token_cost for row in alone_a.costs.teams}
    team_b = {row.team: row.gpu_cost + row.token_cost for row in alone_b.costs.teams}
    assert set(team_b) <= set(team_a)
    for row in shared.costs.teams:
        want = team_a.get(row.team, Decimal(0)) + team_b.get(row.team, Decimal(0))
        assert cents(row.gpu_cost + row.token_cost) == cents(want), row.team


def test_each_cluster_matches_its_ground_truth(fleet: Fleet) -> None:
    shared = fleet.report(fleet.shared)
    figures = {cluster.name: cluster.costs for cluster in shared.clusters}
    for name, scenario in (("a", fleet.a), ("b", fleet.b)):
        truth = ground_truth(scenario, START, END, fleet.pricing).cluster
        for field in ("gpu_hours", "gpu_cost", "token_cost", "total_cost"):
            want, got = getattr(truth, field), getattr(figures[name], field)
            assert abs(float((got - want) / want)) < TOLERANCE, (name, field, got, want)


def test_an_ha_pair_read_without_deduplication_counts_once(fleet: Fleet) -> None:
    shared, ha = fleet.report(fleet.shared), fleet.report(fleet.ha)
    assert by_cluster(ha) == by_cluster(shared)
    assert cents(ha.costs.cluster.total_cost) == cents(shared.costs.cluster.total_cost)
    assert cents(ha.costs.cluster.tokens) == cents(shared.costs.cluster.tokens)
    assert cents(ha.costs.cluster.idle_cost) == cents(shared.costs.cluster.idle_cost)
    assert [j.cost for j in ha.jobs] == [j.cost for j in shared.jobs]


def test_a_per_cluster_reader_sees_its_own_cluster_only(fleet: Fleet) -> None:
    """What a per-cluster operator reads (config `cluster.name`): on the shared endpoint
    its own series, on its own Prometheus (no cluster label) all of them."""
    alone_b = fleet.report(fleet.alone_b)
    for server in (fleet.shared, fleet.ha, fleet.alone_b):
        only_b = fleet.report(server, QueryNames().only_cluster("b"))
        assert cents(only_b.costs.cluster.total_cost) == cents(alone_b.costs.cluster.total_cost)
        assert [row.team for row in only_b.costs.teams] == [row.team for row in alone_b.costs.teams]


def test_a_single_prometheus_is_one_unnamed_cluster(fleet: Fleet) -> None:
    alone = fleet.report(fleet.alone_a)
    assert [cluster.name for cluster in alone.clusters] == [""]
    assert alone.clusters[0].costs.total_cost == alone.costs.cluster.total_cost


# ---------------------------------------------------------------- the command line


def _config(tmp_path: Path, fleet: Fleet, url: str, **cluster: str) -> Path:
    path = config_file(tmp_path, replace(fleet.a, pricing=fleet.pricing), url)
    if cluster:
        document = yaml.safe_load(path.read_text())
        path.write_text(json.dumps({**document, "cluster": cluster}))
    return path


def _period() -> list[str]:
    return ["--start", START.isoformat(), "--end", END.isoformat()]


def test_report_json_lists_the_clusters_and_by_cluster_prints_them(
    fleet: Fleet, tmp_path: Path
) -> None:
    config = _config(tmp_path, fleet, fleet.ha.url)
    done = cli("--config", str(config), *_period(), "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    totals = {entry["name"]: entry["totalCost"] for entry in document["clusters"]}
    # Each cluster's exact total, rounded so that the lines add up to the fleet's total
    # (largest remainders: one line may round the other way, never by a cent or more).
    exact = {c.name: c.costs.total_cost for c in fleet.report(fleet.shared).clusters}
    assert set(totals) == set(exact) == {"a", "b"}
    for name, total in totals.items():
        assert abs(Decimal(total) - exact[name]) < Decimal("0.01"), (name, total, exact[name])
    # No platform cost here: the clusters' totals are the fleet's.
    summed = sum((Decimal(total) for total in totals.values()), Decimal(0))
    assert summed == Decimal(document["cluster"]["totalCost"])

    table = cli("--config", str(config), *_period(), "--by", "cluster")
    assert table.returncode == 0, table.stderr
    lines = {line.split()[0]: line.split()[-1] for line in table.stdout.splitlines() if line}
    assert (lines["a"], lines["b"]) == (totals["a"], totals["b"])
    assert lines["fleet"] == document["cluster"]["totalCost"]

    only = cli("--config", str(config), *_period(), "--format", "json", "--cluster", "a")
    assert only.returncode == 0, only.stderr
    assert [entry["name"] for entry in json.loads(only.stdout)["clusters"]] == ["a"]


def test_report_names_a_single_prometheus_after_the_configured_cluster(
    fleet: Fleet, tmp_path: Path
) -> None:
    config = _config(tmp_path, fleet, fleet.alone_a.url, name="training")
    done = cli("--config", str(config), *_period(), "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [entry["name"] for entry in document["clusters"]] == ["training"]
    assert document["clusters"][0]["totalCost"] == document["cluster"]["totalCost"]


def test_unlabelled_series_and_those_of_the_configured_cluster_are_one_row(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A read meeting both unlabelled and `cluster="a"` series with `cluster.name: a`
    shows one cluster `a`, its figures both parts' to the cent, in the JSON and in
    `--by cluster`."""
    whole = fleet.report(fleet.alone_a).costs.cluster.total_cost
    whole += fleet.report(fleet.alone_b).costs.cluster.total_cost
    config = _config(tmp_path, fleet, fleet.relabelled.url, name="a")
    done = cli("--config", str(config), *_period(), "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [entry["name"] for entry in document["clusters"]] == ["a"]
    assert document["clusters"][0]["totalCost"] == document["cluster"]["totalCost"] == cents(whole)
    table = cli("--config", str(config), *_period(), "--by", "cluster")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if line]
    assert [row[-1] for row in rows if row[0] == "a"] == [cents(whole)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "cluster", "--format", "csv"], "--by cluster works with --format table or json"),
        (["--by", "cluster,team"], "--by cluster goes alone"),
        (["--cluster", "not a name"], "is not a cluster name"),
        # A cluster the endpoint does not hold (a typo): the error names the filter.
        (["--cluster", "eu1"], "for cluster 'eu1' (label cluster)"),
    ],
)
def test_bad_cluster_arguments_exit_2(
    fleet: Fleet, tmp_path: Path, args: list[str], message: str
) -> None:
    config = _config(tmp_path, fleet, fleet.shared.url)
    done = cli("--config", str(config), *_period(), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_nothing_differs_but_the_cluster_label(fleet: Fleet) -> None:
    """The guard of the test itself: B's pods and nodes do carry A's names."""
    names_a = {(pod.namespace, pod.name) for pod in fleet.a.pods}
    assert {(pod.namespace, pod.name) for pod in fleet.b.pods} <= names_a
    assert len(fleet.b.pods) > 10


def test_the_focus_export_of_one_cluster_bills_that_cluster(fleet: Fleet, tmp_path: Path) -> None:
    config = _config(tmp_path, fleet, fleet.shared.url)
    one = cli("--config", str(config), *_period(), "--format", "focus", "--cluster", "b")
    assert one.returncode == 0, one.stderr
    rows = list(csv.DictReader(io.StringIO(one.stdout)))
    assert rows and {row["BillingAccountId"] for row in rows} == {"b"}
    # GPU and token charges name their resource; shared-cost rows name none.
    resources = {row["ResourceId"] for row in rows} - {""}
    assert resources and all(resource.startswith("b/") for resource in resources)
    fleet_rows = cli("--config", str(config), *_period(), "--format", "focus")
    assert fleet_rows.returncode == 0, fleet_rows.stderr
    accounts = {row["BillingAccountId"] for row in csv.DictReader(io.StringIO(fleet_rows.stdout))}
    assert accounts == {"gpu-cluster"}

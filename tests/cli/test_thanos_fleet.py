"""`report` through a real Thanos Query over three sidecars (issue 22): the fleet.

Cluster A is an HA pair of Prometheus servers holding the same data, each with its
Thanos sidecar and external labels `cluster="a"` and `prometheus_replica` 0 or 1;
cluster B is one Prometheus with `cluster="b"`. The data carry no cluster label of
their own: the sidecars add the external labels, as in production. Read through a
Thanos Query with `--query.replica-label=prometheus_replica` (deduplication) and
through one without it, every cluster's figures must equal that cluster's own
report (read from an unlabelled Prometheus) to the cent, and the fleet total
their sum: nothing merges, nothing doubles.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from finops_devtools.devcluster.thanos_runner import ThanosProcess, prometheus_config
from finops_devtools.simulator.world import Scenario
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.usage_reader import PeriodReport, report_period
from finops_operator.domain.config import PricingConfig, PrometheusConfig
from finops_operator.domain.costs.period import Period
from finops_operator.errors import NoUsageDataError
from tests.cli.test_fleet_report import END, OPTIONS, START, by_cluster, cents, two_clusters
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


# The Thanos built by scripts/build-thanos.sh (v0.42.5, GOTOOLCHAIN=go1.27.3) does not
# serve yet: its sidecar panics on its first unary gRPC call ("index out of range [64]
# with length 63" in grpc's mem.BinaryTieredBufferPool.poolForGet, from Thanos's
# extgrpc nonPoolingCodec.Marshal), so Thanos Query sees no store and the report finds
# no series. Strict: once a build serves, this fails and the mark must go.
@pytest.mark.xfail(
    strict=True,
    raises=NoUsageDataError,
    reason="thanos sidecar v0.42.5 (go1.27.3) panics in grpc's buffer pool: docs/multi-cluster.md",
)
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

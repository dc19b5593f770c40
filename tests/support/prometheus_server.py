"""The real Prometheus of the tests (finops_devtools.devcluster.prometheus_runner), and fixtures.

Fixtures (import them into a test module: `from tests.support.prometheus_server import
prometheus_factory`): `prometheus_factory` starts one server per call and stops
them all at teardown. For a module-wide server, wrap `backfilled_prometheus` in a
module-scoped fixture of your own (see tests/test_prometheus_harness.py); for
several module-wide servers each holding several clusters' series (a fleet behind
one query endpoint), `fleet_servers`.
`needs_prometheus` marks a test module that needs Prometheus (`needs_tool`, tests/support/tools.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from finops_devtools.devcluster.prometheus_runner import (
    MINIMAL_CONFIG,
    PROMETHEUS,
    PROMTOOL,
    PrometheusServer,
    backfilled_prometheus,
    free_port,
    previous_month,
    recent_days,
    tools_available,
)
from finops_devtools.errors import PrometheusRunnerError
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import Scenario
from tests.support.tools import needs_tool, require_tool

__all__ = [
    "MINIMAL_CONFIG",
    "PROMETHEUS",
    "PROMTOOL",
    "PrometheusRunnerError",
    "PrometheusServer",
    "backfilled_prometheus",
    "fleet_servers",
    "free_port",
    "needs_prometheus",
    "previous_month",
    "prometheus_factory",
    "recent_days",
    "tools_available",
    "two_cluster_endpoints",
]

needs_prometheus = needs_tool("prometheus", "promtool")


@pytest.fixture
def prometheus_factory(
    tmp_path: Path,
) -> Iterator[Callable[..., PrometheusServer]]:
    """Call with (scenario, options=None) for a started, backfilled Prometheus."""
    require_tool("prometheus", "promtool")
    started: list[PrometheusServer] = []

    def start(scenario: Scenario, options: ExportOptions | None = None) -> PrometheusServer:
        server = PrometheusServer(tmp_path / f"prometheus-{len(started)}")
        started.append(server)
        server.backfill(scenario, options)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


FleetServer = Callable[..., PrometheusServer]


@contextmanager
def fleet_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    """Call with (scenario, options) pairs for a started Prometheus holding them all (each
    scenario with its options' external labels: a cluster, a replica of an HA pair);
    every server started is stopped on exit."""
    started: list[PrometheusServer] = []

    def server(*contents: tuple[Scenario, ExportOptions]) -> PrometheusServer:
        one = PrometheusServer(tmp_path_factory.mktemp("prom"))
        started.append(one)
        for scenario, options in contents:
            one.backfill(scenario, options, keep_files=False)
        return one.start()

    try:
        yield server
    finally:
        for one in started:
            one.stop()


def two_cluster_endpoints(
    server: FleetServer, a: Scenario, b: Scenario, options: ExportOptions
) -> tuple[PrometheusServer, PrometheusServer]:
    """Clusters `a` and `b` behind one endpoint, as Thanos Query shows them (`cluster` on
    every series), and again with `a` an HA pair read without deduplication
    (`prometheus_replica` 0 and 1)."""

    def labelled(*pairs: tuple[str, str]) -> ExportOptions:
        return replace(options, external_labels=pairs)

    shared = server((a, labelled(("cluster", "a"))), (b, labelled(("cluster", "b"))))
    ha = server(
        (a, labelled(("cluster", "a"), ("prometheus_replica", "0"))),
        (a, labelled(("cluster", "a"), ("prometheus_replica", "1"))),
        (b, labelled(("cluster", "b"))),
    )
    return shared, ha

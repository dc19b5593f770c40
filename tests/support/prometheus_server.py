"""The real Prometheus of the tests (finops_devtools.devcluster.prometheus_runner), and fixtures.

Fixtures (import them into a test module: `from tests.support.prometheus_server import
prometheus_factory`): `prometheus_factory` starts one server per call and stops
them all at teardown. For a module-wide server, wrap `backfilled_prometheus` in a
module-scoped fixture of your own (see tests/test_prometheus_harness.py).
`needs_prometheus` marks a test module that needs Prometheus (`needs_tool`, tests/support/tools.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    "free_port",
    "needs_prometheus",
    "previous_month",
    "prometheus_factory",
    "recent_days",
    "tools_available",
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

"""The test Prometheus really holds the simulator's series, as the ground truth says."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from finops_devtools.simulator.generation import ScenarioParams, generate_scenario
from finops_devtools.simulator.ground_truth import ground_truth
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import Scenario, to_unix
from tests.support.prometheus_server import (
    PrometheusServer,
    backfilled_prometheus,
    needs_prometheus,
    prometheus_factory,  # noqa: F401 (a fixture)
    recent_days,
)

pytestmark = needs_prometheus

START, END = recent_days(2)
SCRAPE = 300
OPTIONS = ExportOptions(scrape_interval=SCRAPE, operator_replicas=2)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate_scenario(ScenarioParams(start=START, end=END, seed=11))


@pytest.fixture(scope="module")
def prometheus(
    scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    with backfilled_prometheus(tmp_path_factory.mktemp("prom"), scenario, OPTIONS) as server:
        yield server


def test_configured_prices_are_there_once_per_model_whatever_the_replicas(
    prometheus: PrometheusServer, scenario: Scenario
) -> None:
    at = START + timedelta(hours=12)
    expected = sum(scenario.pricing.gpu_hourly.values(), Decimal(0))
    deduplicated = prometheus.query_value("sum(max by (gpu_model) (finops_gpu_hourly_price))", at)
    assert Decimal(str(deduplicated)) == expected
    raw = prometheus.query_value("sum(finops_gpu_hourly_price)", at)
    assert Decimal(str(raw)) == 2 * expected


def test_allocation_at_an_instant_is_the_gpus_of_the_pods_running_then(
    prometheus: PrometheusServer, scenario: Scenario
) -> None:
    at = to_unix(START) + 30 * 3600  # a scrape of replica 0
    running = sum(scenario.pod_gpus(pod) for pod in scenario.pods if pod.start <= at < pod.end)
    value = prometheus.query_value(
        "sum(max by (namespace, pod) (max_over_time(finops_pod_gpu_allocation[1s])))", at
    )
    assert value == pytest.approx(float(running), rel=1e-9)


def test_a_days_gpu_hours_from_samples_match_the_ground_truth(
    prometheus: PrometheusServer, scenario: Scenario
) -> None:
    day_end = END - timedelta(days=1)
    truth = ground_truth(scenario, day_end - timedelta(days=1), day_end)
    samples = prometheus.query_value(
        'sum(sum_over_time(finops_pod_gpu_allocation{instance="10.0.1.10:8080"}[1d]))',
        day_end - timedelta(seconds=1),
    )
    hours = samples * SCRAPE / 3600
    assert hours == pytest.approx(float(truth.cluster.gpu_hours), rel=0.02)


def test_the_gateway_restart_shows_as_a_counter_reset(
    prometheus: PrometheusServer, scenario: Scenario
) -> None:
    assert scenario.gateway_restarts
    resets = prometheus.query(
        "resets(litellm_total_tokens_metric_total[2d]) > 0", END - timedelta(seconds=1)
    )
    assert len(resets) == len(scenario.token_streams)


def test_the_factory_fixture_starts_a_server_and_the_teardown_stops_it(
    prometheus_factory: Callable[..., PrometheusServer],  # noqa: F811
) -> None:
    start, end = recent_days(1, ago=3)
    scenario = generate_scenario(ScenarioParams(start=start, end=end, seed=3, teams=2))
    server = prometheus_factory(scenario, ExportOptions(scrape_interval=300))
    count = server.query_value("count(finops_node_gpu_capacity)", start + timedelta(hours=1))
    assert count == len(scenario.nodes)
    assert server.process is not None and server.process.poll() is None

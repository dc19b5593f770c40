"""Generated clusters: never over-allocated, with what the report tests need, the planted
anomaly and any scrape interval.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from finops_devtools.simulator.generation import DRA_TEAM, generate_scenario
from finops_devtools.simulator.ground_truth import ground_truth
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import DRA_DRIVER, RESOURCE_MIG_1G, RESOURCE_SHARED, Scenario
from tests.devtools.simulator.worlds import HOUR, SMALL, T0, D, openmetrics, pod, samples, tiny


def test_a_generated_cluster_never_allocates_more_than_a_node_has(small: Scenario) -> None:
    for node in small.nodes:
        on_node = [p for p in small.pods if p.node == node.name]
        for moment in {p.start for p in on_node}:
            held = sum(p.units for p in on_node if p.start <= moment < p.end)
            assert held <= node.gpus * node.units_per_gpu


def test_a_generated_cluster_has_what_the_tests_of_reports_need(small: Scenario) -> None:
    pods = small.pods
    assert any(p.start < small.start < p.end for p in pods), "pods running before the start"
    assert any(p.start < small.end < p.end for p in pods), "pods running past the end"
    assert any("team" not in p.labels for p in pods), "untagged pods"
    assert any(p.job is not None and p.failed for p in pods), "retried training runs"
    assert any(p.utilization.base <= 6 for p in pods), "idle GPUs"
    assert {small.node(p.node).resource for p in pods} >= {RESOURCE_MIG_1G, RESOURCE_SHARED}
    truth = ground_truth(small)
    assert truth.unallocated_gpu_hours > 0
    rows = sum((row.total_cost for row in truth.teams.values()), D(0))
    assert abs(rows + truth.undistributed_cost - truth.cluster.total_cost) < D("1e-20")


def test_the_planted_anomaly_multiplies_the_teams_token_spend(small: Scenario) -> None:
    (anomaly,) = small.anomalies
    before = ground_truth(small, anomaly.start - 6 * HOUR, anomaly.start)
    after = ground_truth(small, anomaly.start, anomaly.start + 6 * HOUR)
    team = anomaly.team
    assert after.teams[team].tokens > 2 * before.teams[team].tokens


@pytest.mark.parametrize("interval", [15, 300])
def test_scrape_intervals_from_15_seconds_to_5_minutes_are_accepted(interval: int) -> None:
    scenario = tiny(pod(T0, T0 + HOUR))
    text = openmetrics(scenario, ExportOptions(scrape_interval=interval))
    (points,) = samples(text, "finops_pod_gpu_allocation").values()
    assert len(points) == HOUR // interval
    assert datetime.fromtimestamp(points[0][0], UTC) == datetime(2026, 11, 10, tzinfo=UTC)
    assert timedelta(seconds=points[-1][0] - points[0][0]) == timedelta(seconds=HOUR - interval)


def test_dra_pods_hold_three_of_their_nodes_four_gpus_whatever_the_time() -> None:
    scenario = generate_scenario(replace(SMALL, dra=True))
    dra = [pod for pod in scenario.pods if pod.claim]
    assert {pod.namespace for pod in dra} == {DRA_TEAM}
    for moment in range(scenario.start, scenario.end, 3600):
        running = [pod for pod in dra if pod.start <= moment < pod.end]
        assert sum(scenario.pod_gpus(pod) for pod in running) == 3
        assert sorted(len(pod.sharers) for pod in running) == [0, 0, 2, 2]
    node = scenario.node("dra-h100-0")
    assert (node.resource, node.gpus) == (DRA_DRIVER, 4)

"""DRA GPUs and self-hosted models in the simulator, one cluster and a fleet, on real Prometheus.

A simulated month with DRA pods is reported to the cent of the ground truth. Then a
fleet of two days: cluster A runs the simulator's DRA pods (a direct claim, a templated one and one
shared by two pods, on a node NVIDIA's DRA driver publishes) and two vLLM servers.
Cluster B runs the same pods under the same names, with the same claim names, but
its GPUs are nearly idle and it serves no model (no vLLM series): where a query joins
series across clusters, B's pods would be counted as serving A's models, or take A's
utilization through A's claims. Both are backfilled with a `cluster` label into one
Prometheus (what Thanos Query shows), and again with A as an HA pair read without
deduplication; A alone into a Prometheus of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from finops_devtools.simulator.generation import (
    DRA_TEAM,
    SERVING_TEAM,
    NodePool,
    ScenarioParams,
    generate_scenario,
)
from finops_devtools.simulator.ground_truth import GroundTruth, TeamTruth, ground_truth
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_devtools.simulator.world import H100, Scenario, Utilization
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.serving_reader import Chargeback, read_serving, self_hosted
from finops_operator.controllers.usage_reader import PeriodReport, report_period
from finops_operator.domain.config import PricingConfig, PrometheusConfig, parse_config
from finops_operator.domain.costs.cost_queries import QueryNames
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.self_hosted import SelfHostedModel
from finops_operator.domain.costs.serving_queries import ServingNames
from finops_operator.domain.costs.showback import CostRow
from finops_operator.domain.money import display_money
from tests.support.prometheus_server import (
    PrometheusServer,
    backfilled_prometheus,
    fleet_servers,
    needs_prometheus,
    previous_month,
    recent_days,
    two_cluster_endpoints,
)

pytestmark = needs_prometheus

START, END = recent_days(2)
LLAMA = "llama-3.1-70b"
PRICING = PricingConfig.model_validate(
    {
        "gpuHourly": {"default": "2.00", H100: "4.00"},
        "tokensPer1k": {"default": "0.002", "gpt-4o": "0.01", LLAMA: "0"},
        "sharedMonthly": "0",
    }
)
# Every pod of the DRA and serving nodes starts and ends on a 15-minute boundary: at a
# 5-minute scrape, the samples integrate their GPU hours and utilization exactly.
OPTIONS = ExportOptions(scrape_interval=300, operator_replicas=1)
TOKEN_TOLERANCE = 0.005


@dataclass
class Fleet:
    a: Scenario
    b: Scenario
    alone_a: PrometheusServer
    shared: PrometheusServer  # A and B, `cluster` on every series
    ha: PrometheusServer  # the same, A twice (`prometheus_replica` 0, 1)

    def truth(self, scenario: Scenario) -> GroundTruth:
        return ground_truth(scenario, START, END, PRICING)

    def report(self, server: PrometheusServer, names: QueryNames | None = None) -> PeriodReport:
        return report_period(_client(server), PRICING, Period(START, END), names=names or NAMES)

    def served(
        self, server: PrometheusServer, names: QueryNames | None = None
    ) -> dict[tuple[str, str, str], SelfHostedModel]:
        config = parse_config({})
        usage = read_serving(
            _client(server),
            Period(START, END),
            names=names or NAMES,
            serving=ServingNames.from_config(config.self_hosted_models),
        )
        models = self_hosted(usage, PRICING, config)
        return {(m.model, m.namespace, m.cluster): m for m in models}


NAMES = QueryNames()


def _client(server: PrometheusServer) -> PrometheusClient:
    return PrometheusClient(PrometheusConfig(url=server.url))


def with_dra(start: datetime, end: datetime, **more: Any) -> Scenario:
    """A small cluster (one node of 4 H100s, no spend jump) with the DRA pods, over
    [start, end) and 3 hours around it."""
    params = ScenarioParams(
        start=start - timedelta(hours=3),
        end=end + timedelta(hours=3),
        node_pools=(NodePool(H100, count=1, gpus=4),),
        pricing=PRICING,
        anomaly=False,
        dra=True,
        **more,
    )
    return generate_scenario(params)


def two_clusters() -> tuple[Scenario, Scenario]:
    a = with_dra(START, END, seed=21, teams=2, llm_models=("gpt-4o", LLAMA), self_hosted=True)
    idle = Utilization(base=3, amplitude=0, noise=2)
    b = replace(
        a,
        pods=[replace(pod, utilization=idle) for pod in a.pods],
        served_models=(),
        token_streams=a.token_streams[:1],
    )
    return a, b


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    a, b = two_clusters()
    with fleet_servers(tmp_path_factory) as server:
        shared, ha = two_cluster_endpoints(server, a, b, OPTIONS)
        yield Fleet(
            a=a,
            b=b,
            alone_a=server((a, OPTIONS)),
            shared=shared,
            ha=ha,
        )


def cents(amount: Decimal) -> str:
    return display_money(amount)


def _same_gpu_figures(row: CostRow, *truths: TeamTruth) -> None:
    for field in ("gpu_hours", "gpu_cost", "idle_gpu_hours", "idle_cost"):
        want = sum((getattr(truth, field) for truth in truths), Decimal(0))
        assert cents(getattr(row, field)) == cents(want), (row.team, field)


def _team(report: PeriodReport, team: str) -> CostRow:
    [row] = [row for row in report.costs.teams if row.team == team]
    return row


# ---------------------------------------------------------------- DRA in the simulator


def test_the_scenario_holds_dra_pods_direct_templated_and_shared(fleet: Fleet) -> None:
    """The guard of the tests below: the DRA pods are there, a shared claim held by two."""
    dra = [pod for pod in fleet.a.pods if pod.claim]
    assert {pod.namespace for pod in dra} == {DRA_TEAM}
    shared = [pod for pod in dra if pod.sharers]
    assert shared and all(fleet.a.pod_gpus(pod) == Fraction(1, 2) for pod in shared)
    assert {len({p.name for p in dra if p.claim == pod.claim}) for pod in dra} == {1, 2}
    assert any("templated" in pod.claim for pod in dra)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, PrometheusServer]]:
    """A simulated month (the previous calendar month) of a small cluster with DRA pods."""
    scenario = with_dra(*previous_month(), seed=20, teams=1)
    with backfilled_prometheus(tmp_path_factory.mktemp("month"), scenario, OPTIONS) as server:
        yield scenario, server


def test_a_months_report_charges_dra_gpus_exactly(
    month: tuple[Scenario, PrometheusServer],
) -> None:
    """A month's report prices the DRA pods' GPUs (a shared claim split between its
    pods) and their idle time, read through dcgm-exporter's claim labels, to the cent
    of the ground truth; the DRA node's free GPU is unallocated capacity."""
    scenario, server = month
    period = Period(*previous_month())
    truth = ground_truth(scenario, period.start, period.end, PRICING)
    dra = truth.teams[DRA_TEAM]
    # Three whole GPUs' worth of pods all month (two whole claims, two halves of one).
    hours = Decimal((period.end - period.start).total_seconds()) / 3600
    assert dra.gpu_hours == 3 * hours and Decimal(0) < dra.idle_gpu_hours < dra.gpu_hours
    report = report_period(_client(server), PRICING, period, names=NAMES)
    _same_gpu_figures(_team(report, DRA_TEAM), dra)
    dra_node = [u for u in report.usage.capacity if u.gpu_model == H100]
    assert cents(sum((u.gpu_hours for u in dra_node), Decimal(0))) == cents(
        truth.capacity_gpu_hours_by_model[H100]
    )


# ---------------------------------------------------------------- a fleet


def test_dra_pods_of_two_clusters_with_the_same_claims_stay_apart(fleet: Fleet) -> None:
    """B's claims bear A's names; B's GPUs are nearly idle, A's busy: each cluster's DRA
    pods keep their own utilization (the claim join keeps the cluster label), in the
    fleet's usage by cluster as in a per-cluster reading."""
    truths = {"a": fleet.truth(fleet.a).teams[DRA_TEAM], "b": fleet.truth(fleet.b).teams[DRA_TEAM]}
    assert truths["b"].idle_gpu_hours > Decimal("1.5") * truths["a"].idle_gpu_hours
    for server in (fleet.shared, fleet.ha):
        report = fleet.report(server)
        _same_gpu_figures(_team(report, DRA_TEAM), *truths.values())
        for name, truth in truths.items():
            rows = [u for u in report.usage.gpu if u.team == DRA_TEAM and u.cluster == name]
            for field in ("gpu_hours", "idle_gpu_hours"):
                got = sum((getattr(row, field) for row in rows), Decimal(0))
                assert cents(got) == cents(getattr(truth, field)), (server.url, name, field)
            only = fleet.report(server, NAMES.only_cluster(name))
            _same_gpu_figures(_team(only, DRA_TEAM), truth)


def test_self_hosted_models_are_joined_within_their_cluster(fleet: Fleet) -> None:
    """B's pods bear the names of A's vLLM servers but serve nothing: the served models
    are A's, with A's GPU cost and tokens, whether read from the fleet, from the fleet
    with A as an HA pair not deduplicated, or from A's own Prometheus."""
    truth = fleet.truth(fleet.a).self_hosted
    assert set(truth) == {(LLAMA, SERVING_TEAM), ("qwen2.5-7b", SERVING_TEAM)}
    for server, cluster in ((fleet.shared, "a"), (fleet.ha, "a"), (fleet.alone_a, "")):
        models = fleet.served(server)
        for (model, namespace), want in truth.items():
            rows = [m for key, m in models.items() if key[:2] == (model, namespace)]
            gpu_cost = sum((m.gpu_cost for m in rows), Decimal(0))
            assert cents(gpu_cost) == cents(want.gpu_cost), (server.url, model)
            tokens = sum((m.tokens for m in rows), Decimal(0))
            expected = want.prompt_tokens + want.generation_tokens
            assert abs(float((tokens - expected) / expected)) < TOKEN_TOLERANCE, model
        assert set(models) == {(model, ns, cluster) for model, ns in truth}, server.url
    assert fleet.served(fleet.shared, NAMES.only_cluster("b")) == {}
    only_a = fleet.served(fleet.ha, NAMES.only_cluster("a"))
    assert {key[:2] for key in only_a} == set(truth)


def test_charging_the_consumers_keeps_each_clusters_total(fleet: Fleet) -> None:
    """The moved GPU hours stay in the cluster that used them: every cluster's figures,
    and the fleet's, are unchanged to the cent; only teams change."""
    config = parse_config({"selfHostedModels": {"chargeConsumers": True}})
    client = _client(fleet.shared)
    chargeback = Chargeback.of(client, config, NAMES)
    assert chargeback is not None
    off = fleet.report(fleet.shared)
    on = report_period(client, PRICING, Period(START, END), names=NAMES, adjust=chargeback)

    def by_cluster(report: PeriodReport) -> dict[str, tuple[str, str]]:
        return {
            c.name: (cents(c.costs.gpu_hours), cents(c.costs.total_cost)) for c in report.clusters
        }

    assert by_cluster(on) == by_cluster(off)
    assert set(by_cluster(on)) == {"a", "b"}
    assert _team(on, SERVING_TEAM).gpu_cost < _team(off, SERVING_TEAM).gpu_cost

"""The report's PromQL: text builders, the window plan, and that Prometheus parses every query."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.usage_reader import sum_by
from finops_operator.domain.config import QUERY_LABELS, PrometheusConfig, parse_config
from finops_operator.domain.costs.cost_queries import (
    DAY_MS,
    HOUR_MS,
    POD_ALLOCATION_LABELS,
    QueryNames,
    capacity_gpu_hours_query,
    duration_ms,
    gpu_hours_query,
    idle_gpu_hours_query,
    job_gpu_hours_query,
    plan_windows,
    samples_per_hour,
    tokens_query,
)
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.serving_queries import (
    serving_gpu_hours_query,
    serving_tokens_query,
)
from tests.support.prometheus_server import PrometheusServer
from tests.support.tools import require_tool

QUERIES: list[Callable[..., str]] = [
    gpu_hours_query,
    idle_gpu_hours_query,
    capacity_gpu_hours_query,
    tokens_query,
    job_gpu_hours_query,
]


def test_ranges_are_written_as_prometheus_durations_to_the_millisecond() -> None:
    assert duration_ms(DAY_MS) == "1d"
    assert duration_ms(HOUR_MS - 1) == "59m59s999ms"
    assert duration_ms(30 * DAY_MS) == "30d"
    assert duration_ms(DAY_MS + 5000) == "1d5s"
    with pytest.raises(ValueError):
        duration_ms(0)


def test_allocation_is_integrated_per_target_then_deduplicated_by_the_pods_labels() -> None:
    query = gpu_hours_query(DAY_MS)
    assert "sum_over_time(finops_pod_gpu_allocation[1d])" in query
    assert "/ on (cluster, job, instance) group_left ()" in query
    assert f"max by (cluster, {', '.join(POD_ALLOCATION_LABELS)})" in query
    assert query.startswith(
        "sum by (cluster, team, feature, environment, workload_type, cost_center, gpu_model) ("
    )


def test_the_sample_rate_is_measured_on_the_price_series_not_assumed() -> None:
    rate = samples_per_hour(DAY_MS)
    assert "count_over_time(finops_gpu_hourly_price[59m59s999ms])[1d:1h] offset -1ms" in rate
    assert rate.startswith("max by (cluster, job, instance) (")
    # A window shorter than an hour still holds one whole hour to count in.
    assert "[1h:1h]" in samples_per_hour(10 * 60_000)
    for query in (gpu_hours_query(DAY_MS), capacity_gpu_hours_query(DAY_MS)):
        assert not re.search(r"\b(15|30|60|300)\b", query), "no scrape interval is hard-coded"


def test_idle_hours_weigh_each_pods_allocation_by_its_mean_utilization() -> None:
    query = idle_gpu_hours_query(DAY_MS)
    assert "* on (cluster, namespace, pod) group_left ()" in query
    assert "avg_over_time(DCGM_FI_DEV_GPU_UTIL[1d])" in query and ")) / 100" in query
    # The GPU Operator's labels are renamed, and MIG pods read from the MIG metric.
    assert '"pod", "$1", "exported_pod", "(.+)"' in query
    assert 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU_I_ID!=""}[1d]' in query
    assert "clamp(" in query


def test_metric_names_and_the_utilization_scale_come_from_the_names_given() -> None:
    config = parse_config(
        {
            "gpuMetrics": {
                "preset": "dcgm-exporter",
                "utilizationMetric": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                "utilizationScale": 1,
                "migUtilizationMetric": "",
            },
            "llmGateway": {"inputTokensMetric": "gateway_in_total", "teamLabel": "team"},
        }
    )
    names = QueryNames.from_config(config)
    query = idle_gpu_hours_query(DAY_MS, names)
    assert (
        "avg by (cluster, namespace, pod) (avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE[1d]))\n"
        in query
    )
    assert "/ 100" not in query  # a ratio, not rescaled
    assert "exported_" not in query and "GPU_I_ID" not in query
    tokens = tokens_query(DAY_MS, names)
    assert "increase(gateway_in_total[1d])" in tokens and "team_alias" not in tokens


def test_tokens_are_summed_by_team_alias_model_and_direction_with_increase() -> None:
    query = tokens_query(DAY_MS)
    assert query.startswith("sum by (cluster, team, model, direction) (")
    assert (
        "label_replace(label_replace(max without (prometheus_replica, replica) "
        '(increase(litellm_input_tokens_metric_total[1d])), "team", '
        '"$1", "team_alias", "(.+)"), "direction", "input", "", "")'
    ) in query
    assert "increase(litellm_output_tokens_metric_total[1d])" in query


def test_capacity_is_deduplicated_by_node_model_and_resource() -> None:
    query = capacity_gpu_hours_query(DAY_MS)
    assert query.startswith(
        "sum by (cluster, gpu_model) (\n  max by (cluster, node, gpu_model, resource) ("
    )
    assert "sum_over_time(finops_node_gpu_capacity[1d])" in query


def test_job_hours_join_pods_to_the_job_that_owns_them_at_any_time_in_the_window() -> None:
    query = job_gpu_hours_query(DAY_MS)
    assert "group_left (owner_name)" in query
    assert 'max_over_time(kube_pod_owner{owner_kind="Job"}[1d])' in query
    assert query.startswith("sum by (cluster, namespace, owner_name, team, gpu_model) (")


def test_a_month_is_one_range_evaluation_of_whole_days() -> None:
    november = Period.month(2026, 11)
    start = int(november.start.timestamp() * 1000)
    end = int(november.end.timestamp() * 1000)
    (plan,) = plan_windows(start, end)
    assert (plan.count, plan.window_ms) == (30, DAY_MS)
    assert plan.first_eval_ms == start + DAY_MS - 1
    assert plan.last_eval_ms == end - 1
    assert (plan.start_ms, plan.end_ms) == (start, end)


def test_a_period_of_partial_days_adds_one_instant_evaluation_for_the_rest() -> None:
    whole, rest = plan_windows(0, 2 * DAY_MS + 7 * HOUR_MS)
    assert (whole.count, whole.start_ms, whole.end_ms) == (2, 0, 2 * DAY_MS)
    assert (rest.count, rest.window_ms, rest.start_ms, rest.end_ms) == (
        1,
        7 * HOUR_MS,
        2 * DAY_MS,
        2 * DAY_MS + 7 * HOUR_MS,
    )
    (short,) = plan_windows(0, 3 * HOUR_MS)
    assert (short.count, short.window_ms, short.first_eval_ms) == (1, 3 * HOUR_MS, 3 * HOUR_MS - 1)
    with pytest.raises(ValueError):
        plan_windows(5, 5)


def test_answers_are_summed_by_labels_over_instants_and_ranges() -> None:
    instant = [{"metric": {"team": "a", "job": "x"}, "value": [1, "1.5"]}]
    ranged = [
        {"metric": {"team": "a"}, "values": [[1, "2"], [3, "0.25"]]},
        {"metric": {}, "values": [[2, "3"]]},
    ]
    assert sum_by([*instant, *ranged], ("team",)) == {
        ("a",): Decimal("3.75"),
        ("",): Decimal(3),
    }


@pytest.mark.parametrize("bad", ["NaN", "+Inf", "-Inf"])
def test_a_nan_or_inf_sample_is_refused_never_skipped(bad: str) -> None:
    ranged = [{"metric": {"team": "a"}, "values": [[1, "2"], [2, bad], [3, "0.25"]]}]
    with pytest.raises(ValueError) as raised:
        sum_by(ranged, ("team",))
    assert f'a {bad} sample in the series {{team="a"}}' in str(raised.value)


# ---------------------------------------------------------------- parsed by a real Prometheus


@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_tool("prometheus", "promtool")
    server = PrometheusServer(tmp_path_factory.mktemp("prom-empty"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.parametrize("build", QUERIES, ids=lambda build: build.__name__)
@pytest.mark.parametrize("window_ms", [DAY_MS, 7 * HOUR_MS + 1234, 10 * 60_000])
def test_prometheus_parses_and_evaluates_every_query(
    empty_prometheus: PrometheusServer, build: Callable[[int], str], window_ms: int
) -> None:
    client = PrometheusClient(PrometheusConfig(url=empty_prometheus.url))
    at = datetime(2026, 1, 2, tzinfo=UTC).timestamp()
    assert client.evaluate(build(window_ms), at) == []
    assert client.evaluate_range(build(window_ms), at, at + 2 * window_ms / 1000, window_ms) == []


def test_prometheus_parses_the_queries_with_other_metric_names(
    empty_prometheus: PrometheusServer,
) -> None:
    names = QueryNames.from_config(
        parse_config(
            {
                "gpuMetrics": {"preset": "dcgm-exporter", "utilizationScale": 1},
                "llmGateway": {"preset": "otel-genai", "teamLabel": "team_id"},
            }
        )
    )
    client = PrometheusClient(PrometheusConfig(url=empty_prometheus.url))
    for build in QUERIES:
        assert client.evaluate(build(DAY_MS, names), 1_700_000_000.5) == []


def _backfilled(
    tmp_path_factory: pytest.TempPathFactory, stamps: list[float], gpus: int
) -> PrometheusServer:
    """A Prometheus holding one operator target's price series and one pod's `gpus`
    allocation, sampled at `stamps` (seconds)."""
    require_tool("prometheus", "promtool")
    target = 'job="finops-operator",instance="10.0.0.7:8080"'
    pod = (
        'namespace="ml",pod="train-0",node="n1",resource="nvidia.com/gpu",gpu_model="h100",'
        'team="ml",feature="chat",environment="prod",workload_type="training",cost_center="cc"'
    )
    lines = ["# TYPE finops_gpu_hourly_price gauge"]
    lines += [f'finops_gpu_hourly_price{{{target},gpu_model="h100"}} 4.5 {t:.3f}' for t in stamps]
    lines.append("# TYPE finops_pod_gpu_allocation gauge")
    lines += [f"finops_pod_gpu_allocation{{{target},{pod}}} {gpus} {t:.3f}" for t in stamps]
    folder = tmp_path_factory.mktemp("prom-last-hour")
    data = folder / "series.om"
    data.write_text("\n".join([*lines, "# EOF", ""]))
    server = PrometheusServer(folder / "prometheus")
    server.backfill_file(data)
    return server.start()


def test_a_target_seen_only_in_the_last_hour_of_a_window_counts_its_hours_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Windows are evaluated at their end - 1 ms; the hour ending at the end must still be
    counted for the sample rate. An operator that started at 23:00 (a new pod, a new
    `instance`), scraped every minute 7.5 s past it, holds 2 GPUs until 01:00: one hour
    on each day. Read without that hour, the first day had no rate (its hour lost) or one
    sample an hour (60 times the hours)."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = midnight.timestamp() - 2 * 86_400  # two days ago: whole days, inside retention
    stamps = [end - 3600 + 7.5 + 60 * i for i in range(120)]
    server = _backfilled(tmp_path_factory, stamps, gpus=2)
    try:
        client = PrometheusClient(PrometheusConfig(url=server.url))
        query = gpu_hours_query(DAY_MS)
        answer = client.evaluate_range(query, end - 0.001, end + 86_400 - 0.001, 86_400)
        assert [[Decimal(v) for _, v in row["values"]] for row in answer] == [
            [Decimal(2), Decimal(2)]
        ]
        # The rest of a day, evaluated off the hour, sees the same first hour.
        assert [
            Decimal(row["value"][1])
            for row in client.evaluate(gpu_hours_query(90 * 60_000), end + 1800 - 0.001)
        ] == [Decimal(3)]
    finally:
        server.stop()


# ---------------------------------------------------------------- clusters (issue 22)

ALL_QUERIES = (
    gpu_hours_query,
    idle_gpu_hours_query,
    capacity_gpu_hours_query,
    tokens_query,
    job_gpu_hours_query,
)


def test_every_aggregation_and_join_keeps_the_configured_cluster_label() -> None:
    names = QueryNames.from_config(parse_config({"cluster": {"label": "k8s_cluster"}}))
    for build in ALL_QUERIES:
        query = build(DAY_MS, names)
        groupings = re.findall(r"\b(?:by|on) \(([^)]*)\)", query)
        assert groupings, build.__name__
        for grouping in groupings:
            if "dra_claim" in grouping:
                continue  # main's DRA join (issue 21): not cluster-aware yet, docs/multi-cluster.md
            assert grouping.split(", ")[0] == "k8s_cluster", (build.__name__, grouping)
        assert "cluster=~" not in query, "every cluster is read unless told otherwise"


def test_one_cluster_is_its_labelled_series_and_the_unlabelled_ones() -> None:
    names = QueryNames().only_cluster("gpu.eu-1")
    for build in ALL_QUERIES:
        query = build(DAY_MS, names)
        selectors = re.findall(r"\b(?:finops_|litellm_|kube_pod_owner|DCGM_)\w*(\{[^}]*\})?", query)
        assert selectors and all('cluster=~"gpu\\\\.eu-1|"' in s for s in selectors), (
            build.__name__,
            selectors,
        )
    assert 'kube_pod_owner{cluster=~"gpu\\\\.eu-1|", owner_kind="Job"}' in job_gpu_hours_query(
        DAY_MS, names
    )


def test_without_replica_labels_tokens_are_summed_as_they_come() -> None:
    names = QueryNames.from_config(parse_config({"cluster": {"replicaLabels": []}}))
    assert "max without" not in tokens_query(DAY_MS, names)


def test_the_config_refuses_as_cluster_or_replica_label_every_label_the_queries_keep() -> None:
    """config.QUERY_LABELS (what `cluster.label` and `cluster.replicaLabels` may not be)
    holds every label a query groups, joins or keeps by, so it cannot fall behind them."""
    names = QueryNames(replica_labels=())
    queries = [
        build(DAY_MS, names)
        for build in (
            gpu_hours_query,
            idle_gpu_hours_query,
            capacity_gpu_hours_query,
            tokens_query,
            job_gpu_hours_query,
            serving_gpu_hours_query,
            serving_tokens_query,
        )
    ]
    kept = {
        label.strip()
        for query in queries
        for group in re.findall(r"\b(?:by|on|group_left) \(([^)]*)\)", query)
        for label in group.split(",")
        if label.strip()
    }
    assert "namespace" in kept and "served_model" in kept  # the pattern reads the queries
    assert kept - {names.cluster_label} <= QUERY_LABELS

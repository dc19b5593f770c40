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


def test_allocation_is_read_per_hour_then_deduplicated_by_the_pods_labels() -> None:
    query = gpu_hours_query(DAY_MS)
    # Each hour of the day once: each target's samples over its own price samples in
    # that hour, the fullest replica's, then the hours added.
    assert "sum_over_time(finops_pod_gpu_allocation[1h] offset 1ms)" in query
    assert "count_over_time(finops_gpu_hourly_price[1h] offset 1ms)" in query
    assert "/ on (cluster, job, instance) group_left ()" in query
    assert "[1d:1h] offset -2ms" in query
    assert f"max by (cluster, {', '.join(POD_ALLOCATION_LABELS)})" in query
    assert query.startswith(
        "sum by (cluster, team, feature, environment, workload_type, cost_center, gpu_model) ("
    )


def test_a_window_off_the_hour_has_hour_cells_ending_at_its_end_and_a_shorter_first_one() -> None:
    """7 h 20 min ending at 10:20:30: seven hours ending at 10:20:30, then [3:00:30, 3:20:30)."""
    phase = 20 * 60_000 + 30_000
    query = gpu_hours_query(7 * HOUR_MS + 20 * 60_000, end_phase_ms=phase)
    assert "sum_over_time(finops_pod_gpu_allocation[1h] offset -20m29s999ms)" in query
    assert "count_over_time(finops_gpu_hourly_price[1h] offset -20m29s999ms)" in query
    assert "[7h:1h] offset 20m29s998ms" in query
    assert "sum_over_time(finops_pod_gpu_allocation[20m] offset 7h)" in query
    assert "count_over_time(finops_gpu_hourly_price[20m] offset 7h)" in query
    assert ") * 1200000 / 3600000" in query
    assert query.count('"finops_cell"') == 2


def test_no_scrape_interval_is_assumed() -> None:
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
    assert query.startswith("sum by (cluster, gpu_model) (\n  sum_over_time(")
    assert "max by (cluster, node, gpu_model, resource) (" in query
    assert "sum_over_time(finops_node_gpu_capacity[1h] offset 1ms)" in query


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


def _targets_backfilled(
    tmp_path_factory: pytest.TempPathFactory,
    lives: list[tuple[str, float, float, int]],
    past: float = 7.5,
    gpus: int = 1,
) -> PrometheusServer:
    """A Prometheus holding operator targets (instance, first, end, scrape interval in
    seconds) scraped `past` seconds past the interval, each exporting its price series
    and one pod holding `gpus` GPUs."""
    require_tool("prometheus", "promtool")
    pod = (
        'namespace="ml",pod="train-0",node="n1",resource="nvidia.com/gpu",gpu_model="h100",'
        'team="ml",feature="chat",environment="prod",workload_type="training",cost_center="cc"'
    )
    price, allocation = ["# TYPE finops_gpu_hourly_price gauge"], []
    for instance, first, end, every in lives:
        target = f'job="finops-operator",instance="{instance}"'
        stamps = [first + past + every * i for i in range(int((end - first) // every))]
        price += [
            f'finops_gpu_hourly_price{{{target},gpu_model="h100"}} 4.5 {t:.3f}' for t in stamps
        ]
        allocation += [
            f"finops_pod_gpu_allocation{{{target},{pod}}} {gpus} {t:.3f}" for t in stamps
        ]
    lines = [*price, "# TYPE finops_pod_gpu_allocation gauge", *allocation, "# EOF", ""]
    folder = tmp_path_factory.mktemp("prom-targets")
    data = folder / "series.om"
    data.write_text("\n".join(lines))
    server = PrometheusServer(folder / "prometheus")
    server.backfill_file(data)
    return server.start()


def test_a_target_seen_only_in_the_last_hour_of_a_window_counts_its_hours_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Windows are evaluated at their end - 1 ms; the hour ending at the end must still be
    read. An operator that started at 23:00 (a new pod, a new `instance`), scraped every
    minute 7.5 s past it, reports 2 GPUs until 01:00: one hour on each day. When the
    sample rate was counted on whole clock hours before the evaluation, the first day
    had no rate (its hour lost) or, on an exact grid, one sample an hour (60 times the
    hours: the CI failure of stop 28)."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = midnight.timestamp() - 2 * 86_400  # two days ago: whole days, inside retention
    server = _targets_backfilled(
        tmp_path_factory, [("10.0.0.7:8080", end - 3600, end + 3600, 60)], gpus=2
    )
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


def test_replicas_that_follow_one_another_all_count_and_side_by_side_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two replicas run side by side; a rollout replaces both with new pods (new
    `instance`s), the second a minute after the first (`maxSurge: 1`). The pod held its
    GPU all day: 24 GPU hours, wherever the rollout falls. Deduplicated over the whole
    day (the greatest replica), the day gave the new replicas' share only (14 h for a
    rollout at 10:00)."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    day -= 3 * 86_400
    for rollout_minute in (0, 20):
        rollout = day + 10 * 3600 + rollout_minute * 60
        server = _targets_backfilled(
            tmp_path_factory,
            [
                ("10.0.0.1:8080", day - 3600, rollout, 60),
                ("10.0.0.2:8080", day - 3600, rollout + 60, 60),
                ("10.0.0.3:8080", rollout, day + 86_400 + 3600, 60),
                ("10.0.0.4:8080", rollout + 60, day + 86_400 + 3600, 60),
            ],
        )
        assert _pod_hours_of_the_day(server, day) == [24], rollout_minute


def test_each_target_is_read_at_its_own_scrape_interval(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A Helm upgrade that changes the ServiceMonitor's interval rolls the pods: the old
    target was scraped every 15 s until noon, the new one every minute since. Read at
    one rate for the job, the morning counted a quarter (15 of 24 hours)."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    day -= 3 * 86_400
    server = _targets_backfilled(
        tmp_path_factory,
        [
            ("10.0.0.1:8080", day - 3600, day + 12 * 3600, 15),
            ("10.0.0.2:8080", day + 12 * 3600, day + 86_400 + 3600, 60),
        ],
    )
    assert _pod_hours_of_the_day(server, day) == [24]


@pytest.mark.parametrize("past", [0.0, 0.001, 59.999])
def test_samples_on_the_edge_of_a_cell_count_once(
    tmp_path_factory: pytest.TempPathFactory, past: float
) -> None:
    """Scrapes on the minute, 1 ms after it and 1 ms before the next: Prometheus 2 reads
    ranges closed and 3 left-open, so a sample on a cell's edge may fall in two cells or
    none; the allocation and the price series are read over the same range, so either
    way the pod's hours are whole."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    day -= 3 * 86_400
    server = _targets_backfilled(
        tmp_path_factory, [("10.0.0.1:8080", day - 3600, day + 86_400 + 3600, 60)], past
    )
    assert _pod_hours_of_the_day(server, day) == [24]


def _pod_hours_of_the_day(server: PrometheusServer, day: float) -> list[Decimal]:
    """The GPU hours `server` gives for the day starting at `day`, to the millionth of an
    hour (Prometheus answers floats); stops the server."""
    try:
        client = PrometheusClient(PrometheusConfig(url=server.url))
        answer = client.evaluate(gpu_hours_query(DAY_MS), day + 86_400 - 0.001)
        return [Decimal(row["value"][1]).quantize(Decimal("0.000001")) for row in answer]
    finally:
        server.stop()


def test_a_window_off_the_hour_counts_each_sample_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """One replica all along: windows ending off the hour, cut into hours ending at their
    end and a shorter first cell, hold their minutes exactly, and two adjacent windows
    add up to the window they cover."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    day -= 3 * 86_400
    server = _targets_backfilled(tmp_path_factory, [("10.0.0.1:8080", day, day + 86_400, 60)])
    try:
        client = PrometheusClient(PrometheusConfig(url=server.url))

        def minutes(start: float, end: float) -> Decimal:
            window = round((end - start) * 1000)
            query = gpu_hours_query(window, end_phase_ms=round(end * 1000) % HOUR_MS)
            hours = Decimal(client.evaluate(query, end - 0.001)[0]["value"][1])
            return (hours * 60).quantize(Decimal("0.000001"))

        start, middle, end = day + 9 * 3600 + 17 * 60, day + 11 * 3600 + 43 * 60, day + 18 * 3600
        assert minutes(start, middle) == 146
        assert minutes(middle, end) == 377
        assert minutes(start, end) == 146 + 377
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

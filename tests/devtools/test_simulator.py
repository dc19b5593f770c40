"""The cluster simulator: deterministic worlds, valid OpenMetrics, and an exact truth."""

from __future__ import annotations

import io
import itertools
import re
import shutil
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from finops_devtools.simulator import (
    A100,
    H100,
    RESOURCE_MIG_1G,
    RESOURCE_SHARED,
    ExportOptions,
    Node,
    Pod,
    Scenario,
    ScenarioParams,
    TokenStream,
    Utilization,
    _mix,
    generate_scenario,
    ground_truth,
    to_unix,
    write_openmetrics,
    write_openmetrics_chunks,
)
from finops_operator.domain.config import PricingConfig

D = Decimal
T0 = to_unix(datetime(2026, 11, 10, tzinfo=UTC))
HOUR = 3600
PRICES = PricingConfig.model_validate(
    {"gpuHourly": {"default": "2", H100: "4"}, "tokensPer1k": {"default": "0.002"}}
)
SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+) (\d+)$")


def tiny(*pods: Pod, nodes: tuple[Node, ...] | None = None, **extra: object) -> Scenario:
    return Scenario(
        start=T0,
        end=T0 + 6 * HOUR,
        nodes=nodes or (Node("gpu-a", H100, "nvidia.com/gpu", gpus=8),),
        pods=pods,
        pricing=PRICES,
        **extra,  # type: ignore[arg-type]
    )


def pod(start: int, end: int, *, units: int = 2, node: str = "gpu-a", **extra: object) -> Pod:
    fields: dict[str, object] = {
        "uid": 1,
        "namespace": "search",
        "name": "ranker-0",
        "node": node,
        "units": units,
        "start": start,
        "end": end,
        "labels": {
            "team": "search",
            "feature": "ranking",
            "environment": "production",
            "workload_type": "inference",
            "cost_center": "cc-1",
        },
        "devices": tuple(range(units)),
        "utilization": Utilization(base=25),
    } | extra
    return Pod(**fields)  # type: ignore[arg-type]


def openmetrics(scenario: Scenario, options: ExportOptions | None = None) -> str:
    buffer = io.StringIO()
    write_openmetrics(scenario, buffer, options)
    return buffer.getvalue()


def samples(text: str, metric: str) -> dict[str, list[tuple[int, str]]]:
    """Series (by their label text) of `metric` -> [(timestamp, value)] in file order."""
    series: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) == metric:
            series[match.group(2)].append((int(match.group(4)), match.group(3)))
    return series


SMALL = ScenarioParams(
    start=datetime(2026, 11, 10, tzinfo=UTC), end=datetime(2026, 11, 12, tzinfo=UTC), seed=4
)


@pytest.fixture(scope="module")
def small() -> Scenario:
    return generate_scenario(SMALL)


# ---------------------------------------------------------------- ground truth by hand


def test_one_pod_for_one_hour_at_a_known_price_is_hand_checked() -> None:
    scenario = tiny(pod(T0 + HOUR, T0 + 2 * HOUR))  # 2 H100s at 25 %, 4.00 an hour
    truth = ground_truth(scenario, T0, T0 + 3 * HOUR)
    search = truth.teams["search"]
    assert (search.gpu_hours, search.gpu_cost) == (D(2), D(8))
    assert (search.idle_gpu_hours, search.idle_cost) == (D("1.5"), D(6))
    assert search.gpu_hours_by["feature"] == {"ranking": D(2)}
    # 8 GPUs for 3 hours; 22 of those 24 GPU hours unallocated, at 4.00: all shared to search.
    assert (truth.capacity_gpu_hours, truth.unallocated_gpu_hours) == (D(24), D(22))
    assert (truth.unallocated_cost, truth.platform_cost) == (D(88), D(0))
    assert (search.shared_cost, search.total_cost) == (D(88), D(96))
    assert truth.cluster.total_cost == D(96)  # 24 GPU hours at 4.00
    assert set(truth.teams) == {"search"}


def test_a_pod_crossing_the_period_bounds_counts_only_inside() -> None:
    scenario = tiny(pod(T0 + HOUR // 2, T0 + 5 * HOUR + HOUR // 2, units=1))
    truth = ground_truth(scenario, T0 + HOUR, T0 + 5 * HOUR)
    assert truth.teams["search"].gpu_hours == D(4)
    outside = ground_truth(scenario, T0 + 5 * HOUR + HOUR // 2, T0 + 6 * HOUR)
    assert outside.teams == {}
    assert outside.unallocated_gpu_hours == D(4)


def test_a_mig_slice_is_a_seventh_and_a_time_sliced_share_a_quarter_of_a_gpu() -> None:
    nodes = (
        Node("mig-a", A100, RESOURCE_MIG_1G, gpus=1, units_per_gpu=7),
        Node("shared-a", A100, RESOURCE_SHARED, gpus=1, units_per_gpu=4),
    )
    mig = pod(T0, T0 + 6 * HOUR, units=1, node="mig-a", slice_id=3, devices=(0,))
    shared = pod(T0, T0 + 2 * HOUR, units=1, node="shared-a", uid=2, name="notebook-0")
    scenario = tiny(mig, shared, nodes=nodes)
    assert scenario.pod_gpus(mig) == Fraction(1, 7)
    assert scenario.pod_gpus(shared) == Fraction(1, 4)
    truth = ground_truth(scenario)
    assert Fraction(6, 7) + Fraction(2, 4) == Fraction(19, 14)
    assert truth.teams["search"].gpu_hours == pytest.approx(D(19) / D(14), abs=D("1e-25"))
    assert truth.teams["search"].gpu_cost == pytest.approx(D(38) / D(14), abs=D("1e-25"))
    text = openmetrics(scenario)
    allocations = samples(text, "finops_pod_gpu_allocation")
    values = {points[0][1] for points in allocations.values()}
    assert values == {repr(1 / 7), repr(1 / 4)}
    assert any('resource="nvidia.com/mig-1g.10gb"' in labels for labels in allocations)
    (dcgm_mig,) = [s for s in samples(text, "DCGM_FI_DEV_GPU_UTIL") if "GPU_I_ID" in s]
    assert 'GPU_I_PROFILE="1g.10gb"' in dcgm_mig and 'GPU_I_ID="3"' in dcgm_mig


def test_idle_time_integrates_the_utilization_curve_minute_by_minute() -> None:
    curve = Utilization(base=50, amplitude=30, noise=10)
    busy_pod = pod(T0 + 7 * 60, T0 + 5 * HOUR + 13 * 60, units=2, utilization=curve)
    scenario = tiny(busy_pod)
    truth = ground_truth(scenario, T0 + HOUR, T0 + 6 * HOUR)
    # Brute force, one minute at a time, each device on its own.
    idle = Fraction(0)
    for minute in range((T0 + HOUR) // 60, (T0 + 5 * HOUR + 13 * 60) // 60):
        window = minute * 60 // scenario.utilization_step
        for device in busy_pod.devices:
            level = curve.value(_mix(busy_pod.uid, device, scenario.seed), window, 300)
            idle += Fraction(60 * (100 - level), 100 * HOUR)
    assert truth.teams["search"].idle_gpu_hours == D(idle.numerator) / D(idle.denominator)
    assert 0 < truth.teams["search"].idle_gpu_hours < truth.teams["search"].gpu_hours


def test_a_pod_missing_its_team_label_is_untagged_and_so_is_each_missing_label() -> None:
    anonymous = pod(T0, T0 + HOUR, labels={"feature": "chat"})
    scenario = tiny(anonymous)
    truth = ground_truth(scenario)
    assert set(truth.teams) == {"__untagged__"}
    assert truth.teams["__untagged__"].gpu_hours_by["environment"] == {"__untagged__": D(2)}
    (labels,) = samples(openmetrics(scenario), "finops_pod_gpu_allocation")
    assert 'team="__untagged__",feature="chat",environment="__untagged__"' in labels


def test_tokens_are_counted_exactly_and_resets_lose_none_of_them() -> None:
    stream = TokenStream("search", "gpt-4o", "sk-1", hourly=36_000, key=9)
    scenario = tiny(token_streams=(stream,), gateway_restarts=(T0 + 3 * HOUR + 600,))
    hourly = [scenario.tokens_in_hour(stream, T0 // HOUR + h) for h in range(6)]
    truth = ground_truth(scenario)
    assert truth.teams["search"].tokens == sum(hourly)
    assert truth.teams["search"].token_cost == D(sum(hourly)) * D("0.002") / 1000
    half = ground_truth(scenario, T0 + HOUR // 2, T0 + HOUR)
    assert half.teams["search"].tokens == D(hourly[0]) / 2


# ---------------------------------------------------------------- OpenMetrics


def test_the_same_seed_gives_the_same_metrics_and_truth(small: Scenario) -> None:
    again = generate_scenario(SMALL)
    options = ExportOptions(scrape_interval=300, operator_replicas=2)
    assert openmetrics(small, options) == openmetrics(again, options)
    assert ground_truth(small) == ground_truth(again)
    other = generate_scenario(ScenarioParams(start=SMALL.start, end=SMALL.end, seed=5))
    assert [p.name for p in other.pods] != [p.name for p in small.pods]


def test_series_are_in_time_order_on_the_scrape_grid_and_the_file_ends_with_eof(
    small: Scenario,
) -> None:
    text = openmetrics(small, ExportOptions(scrape_interval=120, operator_replicas=2))
    assert text.endswith("\n# EOF\n")
    seen: dict[str, int] = {}
    families: list[str] = []
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            families.append(line.split()[2])
            continue
        match = SAMPLE.match(line)
        if not match:
            assert line.startswith("#"), line
            continue
        key = match.group(1) + match.group(2)
        t = int(match.group(4))
        assert small.start <= t < small.end
        assert t > seen.get(key, 0), f"out of order: {line}"
        seen[key] = t
        assert t % 120 in (0, 7), line  # replica 1 scrapes 7 s after replica 0
    assert len(families) == len(set(families)), "a metric family must be contiguous"


def test_two_operator_replicas_export_each_series_twice_with_their_own_target_labels(
    small: Scenario,
) -> None:
    text = openmetrics(small, ExportOptions(scrape_interval=300, operator_replicas=2))
    allocation = samples(text, "finops_pod_gpu_allocation")
    instances = defaultdict(set)
    for labels in allocation:
        pod_name = re.search(r'pod="([^"]+)"', labels)
        instance = re.search(r'instance="([^"]+)"', labels)
        assert pod_name and instance
        instances[pod_name.group(1)].add(instance.group(1))
        assert 'job="finops-operator"' in labels and 'service="finops-operator"' in labels
    assert set(map(frozenset, instances.values())) == {
        frozenset({"10.0.1.10:8080", "10.0.1.11:8080"})
    }
    prices = samples(text, "finops_gpu_hourly_price")
    assert len(prices) == 2 * len(small.pricing.gpu_hourly)
    assert all('namespace="finops-system"' in labels for labels in prices)
    assert len({re.search(r'pod="([^"]+)"', s).group(1) for s in prices}) == 2  # type: ignore[union-attr]


def test_gateway_restarts_show_as_counter_resets(small: Scenario) -> None:
    (restart,) = small.gateway_restarts
    text = openmetrics(small, ExportOptions(scrape_interval=60))
    counters = samples(text, "litellm_total_tokens_metric_total")
    assert len(counters) == len(small.token_streams)
    for points in counters.values():
        drops = [t for (_, a), (t, b) in itertools.pairwise(points) if int(b) < int(a)]
        assert drops == [restart]
        assert int(dict(points)[restart]) == 0


def test_restarts_and_failed_job_attempts_are_counted(small: Scenario) -> None:
    text = openmetrics(small, ExportOptions(scrape_interval=300))
    restarting = [p for p in small.pods if len(p.restarts) > 2]
    assert restarting, "the seed should plant a crash loop"
    restarts = samples(text, "kube_pod_container_status_restarts_total")
    crash = restarting[0]
    (points,) = [v for k, v in restarts.items() if f'pod="{crash.name}"' in k]
    assert int(points[-1][1]) == sum(1 for t in crash.restarts if t <= points[-1][0])
    failed_jobs = samples(text, "kube_job_status_failed")
    assert any(int(points[-1][1]) > 0 for points in failed_jobs.values())
    truth = ground_truth(small)
    retried = [job for job in truth.jobs.values() if job.failed_attempts]
    assert retried and all(job.cost >= job.gpu_hours * 2 > 0 for job in retried)


def test_promtool_backfills_the_openmetrics(small: Scenario, tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("needs promtool (Debian's prometheus package)")
    path = tmp_path / "small.om"
    count = write_openmetrics(small, path, ExportOptions(scrape_interval=300, operator_replicas=2))
    assert count > 10_000
    result = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(path), str(tmp_path / "d")],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "d").iterdir())) >= 24  # 2-hour blocks over 2 days


def test_daily_chunks_hold_exactly_the_samples_of_the_whole_file(
    small: Scenario, tmp_path: Path
) -> None:
    options = ExportOptions(scrape_interval=300, operator_replicas=2)
    paths = write_openmetrics_chunks(small, tmp_path, options)
    assert [path.name for path in paths] == ["20261110T000000Z.om", "20261111T000000Z.om"]
    whole = openmetrics(small, options)
    for metric in ("finops_pod_gpu_allocation", "litellm_total_tokens_metric_total"):
        merged: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for path in paths:
            for labels, points in samples(path.read_text(), metric).items():
                merged[labels] += points
        assert merged == samples(whole, metric)
    with pytest.raises(ValueError, match="7200"):
        write_openmetrics_chunks(small, tmp_path, options, chunk=3600)


# ---------------------------------------------------------------- generated worlds


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

"""The ground truth, checked by hand on tiny worlds: prices, bounds, fractions of GPUs,
idle time, untagged pods, tokens.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from finops_devtools.simulator.ground_truth import ground_truth
from finops_devtools.simulator.world import (
    A100,
    DRA_DRIVER,
    H100,
    RESOURCE_MIG_1G,
    RESOURCE_SHARED,
    Node,
    TokenStream,
    Utilization,
    stable_hash,
)
from tests.devtools.simulator.worlds import HOUR, T0, D, openmetrics, pod, samples, tiny


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


def test_pods_sharing_a_dra_claim_hold_half_its_gpu_each_and_its_device_is_written_once() -> None:
    node = (Node("dra-a", H100, DRA_DRIVER, gpus=2),)
    sharers = (1, 2)
    common = {"units": 1, "node": "dra-a", "devices": (0,), "claim": "shared", "sharers": sharers}
    first = pod(T0, T0 + 2 * HOUR, **common)
    second = pod(T0, T0 + 2 * HOUR, uid=2, name="ranker-1", **common)
    own = pod(
        T0, T0 + 2 * HOUR, uid=3, name="ranker-2", units=1, node="dra-a", claim="own", devices=(1,)
    )
    scenario = tiny(first, second, own, nodes=node)
    assert [scenario.pod_gpus(p) for p in (first, second, own)] == [
        Fraction(1, 2),
        Fraction(1, 2),
        Fraction(1),
    ]
    truth = ground_truth(scenario)
    # 1/2 + 1/2 + 1 GPU for 2 hours at 4.00; all at 25 %.
    assert (truth.teams["search"].gpu_hours, truth.teams["search"].gpu_cost) == (D(4), D(16))
    assert truth.teams["search"].idle_gpu_hours == D(3)
    text = openmetrics(scenario)
    allocations = samples(text, "finops_pod_gpu_allocation")
    assert all(f'resource="{DRA_DRIVER}"' in labels for labels in allocations)
    assert sorted(points[0][1] for points in allocations.values()) == ["0.5", "0.5", "1"]
    claimed = samples(text, "finops_dra_claim_pods")
    assert len(claimed) == 3
    assert sum('dra_claim_name="shared"' in labels for labels in claimed) == 2
    dcgm = samples(text, "DCGM_FI_DEV_GPU_UTIL")
    # dcgm-exporter maps the shared device to one pod: the first sharer.
    assert len(dcgm) == 2
    (shared,) = [labels for labels in dcgm if 'dra_claim_name="shared"' in labels]
    assert 'pod="ranker-0"' in shared and 'dra_device_name="gpu-0"' in shared
    assert 'dra_pool_name="dra-a"' in shared and 'dra_claim_namespace="search"' in shared
    assert samples(text, "kube_pod_container_resource_requests") == {}


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
            level = curve.value(stable_hash(busy_pod.uid, device, scenario.seed), window, 300)
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

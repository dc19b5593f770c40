"""GPU allocation of pods and nodes: devices, fractions, models, labels."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import COMPLETE_LABELS
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.conventions import DEFAULT_GPU_RESOURCES
from finops_operator.domain.gpus.allocation import (
    UNKNOWN_MODEL,
    allocation_samples,
    capacity_samples,
    gpu_model,
    in_devices,
    node_gpus,
    pod_gpus,
    price_samples,
)
from finops_operator.domain.workloads import GpuMatcher

IS_GPU = GpuMatcher(DEFAULT_GPU_RESOURCES)


def running_pod(
    resources: dict[str, Any],
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    init: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": "gpu-node-1",
        "containers": [{"name": "main", "resources": {"limits": resources}}],
    }
    if init is not None:
        spec["initContainers"] = [{"name": "warmup", "resources": {"limits": init}}]
    return {
        "metadata": {"name": "trainer-0", "namespace": "ml", "labels": labels or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


def node(labels: dict[str, str], capacity: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "gpu-node-1", "labels": labels},
        "status": {"capacity": {"cpu": "96", **capacity}},
    }


@pytest.mark.parametrize(
    ("resource", "model", "replicas", "fraction"),
    [
        ("nvidia.com/gpu", "NVIDIA-H100-80GB-HBM3", 1, Decimal(1)),
        ("nvidia.com/mig-1g.10gb", "NVIDIA-H100-80GB-HBM3", 1, Decimal(1) / 7),
        ("nvidia.com/mig-3g.40gb", "NVIDIA-A100-SXM4-80GB", 1, Decimal(3) / 7),
        ("nvidia.com/mig-1g.6gb", "NVIDIA-A30", 1, Decimal(1) / 4),
        ("nvidia.com/gpu", "Tesla-T4", 4, Decimal(1) / 4),
        ("nvidia.com/gpu.shared", "Tesla-T4", 8, Decimal(1) / 8),
        ("amd.com/gpu", "AMD-Instinct-MI300X", 1, Decimal(1)),
    ],
    ids=[
        "a whole GPU is one device",
        "a 1g slice of a 7-slice GPU is a seventh",
        "a 3g slice is three sevenths",
        "a 1g slice of a 4-slice A30 is a quarter",
        "a time-sliced GPU with 4 replicas is a quarter",
        "a renamed shared GPU with 8 replicas is an eighth",
        "an AMD GPU is one device",
    ],
)
def test_a_unit_of_each_gpu_resource_is_its_share_of_a_device(
    resource: str, model: str, replicas: int, fraction: Decimal
) -> None:
    assert in_devices(Decimal(1), resource, model, replicas) == fraction


@pytest.mark.parametrize(
    ("labels", "model"),
    [
        ({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "NVIDIA-H100-80GB-HBM3"),
        ({"nvidia.com/gpu.product": "Tesla-T4-SHARED"}, "Tesla-T4"),
        ({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"}, "NVIDIA-A100-SXM4-40GB"),
        ({"amd.com/gpu.product-name": "AMD-Instinct-MI300X"}, "AMD-Instinct-MI300X"),
        ({}, UNKNOWN_MODEL),
    ],
    ids=["plain", "time-sliced suffix", "MIG suffix", "AMD", "no label"],
)
def test_the_gpu_model_comes_from_the_node_product_label(
    labels: dict[str, str], model: str
) -> None:
    assert gpu_model(labels) == model


def test_a_running_pod_holds_its_gpus_with_its_cost_labels() -> None:
    held = pod_gpus(running_pod({"nvidia.com/gpu": "2"}, COMPLETE_LABELS), IS_GPU)
    assert held is not None
    assert held.requests == (("nvidia.com/gpu", Decimal(2)),)
    assert held.cost_labels == (
        "search-platform",
        "semantic-search",
        "production",
        "inference",
        "cc-1042",
    )


def test_a_missing_cost_label_is_exported_as_untagged() -> None:
    held = pod_gpus(running_pod({"nvidia.com/gpu": 1}, {"resilio.tech/team": "ranking"}), IS_GPU)
    assert held is not None
    assert held.cost_labels == ("ranking", *["__untagged__"] * 4)


@pytest.mark.parametrize("phase", ["Pending", "Succeeded", "Failed", "Unknown"])
def test_a_pod_that_is_not_running_holds_nothing(phase: str) -> None:
    assert pod_gpus(running_pod({"nvidia.com/gpu": 1}, phase=phase), IS_GPU) is None


def test_a_pod_without_gpus_or_with_zero_gpus_holds_nothing() -> None:
    assert pod_gpus(running_pod({"cpu": "2"}), IS_GPU) is None
    assert pod_gpus(running_pod({"nvidia.com/gpu": "0"}), IS_GPU) is None


def test_init_containers_count_by_the_larger_of_their_max_and_the_containers_sum() -> None:
    held = pod_gpus(running_pod({"nvidia.com/gpu": 1}, init={"nvidia.com/gpu": 4}), IS_GPU)
    assert held is not None and held.requests == (("nvidia.com/gpu", Decimal(4)),)
    held = pod_gpus(running_pod({"nvidia.com/gpu": 2}, init={"nvidia.com/gpu": 1}), IS_GPU)
    assert held is not None and held.requests == (("nvidia.com/gpu", Decimal(2)),)


def test_allocation_is_in_devices_of_the_node_model() -> None:
    mig_node = node(
        {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"},
        {"nvidia.com/mig-1g.10gb": "28"},
    )
    nodes = {"gpu-node-1": node_gpus(mig_node, IS_GPU)}
    held = pod_gpus(running_pod({"nvidia.com/mig-1g.10gb": 2}, COMPLETE_LABELS), IS_GPU)
    assert held is not None and nodes["gpu-node-1"] is not None
    [(values, devices)] = allocation_samples([held], nodes)
    assert devices == Decimal(2) / 7
    assert values[:5] == (
        "ml",
        "trainer-0",
        "gpu-node-1",
        "nvidia.com/mig-1g.10gb",
        "NVIDIA-H100-80GB-HBM3",
    )
    assert capacity_samples(nodes) == [
        (("gpu-node-1", "NVIDIA-H100-80GB-HBM3", "nvidia.com/mig-1g.10gb"), Decimal(4))
    ]


def test_a_time_sliced_node_offers_its_physical_devices() -> None:
    shared = node(
        {"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.replicas": "4"},
        {"nvidia.com/gpu": "16"},
    )
    gpus = node_gpus(shared, IS_GPU)
    assert gpus is not None
    assert capacity_samples({"n": gpus}) == [(("n", "Tesla-T4", "nvidia.com/gpu"), Decimal(4))]


def test_a_node_without_gpus_is_not_kept() -> None:
    assert node_gpus(node({}, {"nvidia.com/gpu": "0"}), IS_GPU) is None


def test_prices_cover_configured_models_the_default_models_on_nodes_and_unknown() -> None:
    pricing = PricingConfig.model_validate(
        {"gpuHourly": {"default": "2.00", "NVIDIA-H100-80GB-HBM3": "4.00"}}
    )
    gpus = node_gpus(node({"nvidia.com/gpu.product": "Tesla-T4"}, {"nvidia.com/gpu": "1"}), IS_GPU)
    assert gpus is not None
    assert price_samples(pricing, {"n": gpus}) == [
        ("NVIDIA-H100-80GB-HBM3", Decimal("4.00")),
        ("Tesla-T4", Decimal("2.00")),
        ("default", Decimal("2.00")),
        ("unknown", Decimal("2.00")),
    ]

"""The operator's GPU inventory on /metrics, as a real process against the emulator."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, pod_spec
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess, running_operator


@pytest.fixture(scope="module")
def operator(
    cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    config = {
        "mode": "audit",
        "pricing": {"gpuHourly": {"default": "2.00", "NVIDIA-H100-80GB-HBM3": "4.25"}},
    }
    with running_operator(cluster, tmp_path_factory, config) as process:
        yield process


def samples(text: str, metric: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of `metric` in Prometheus text, keyed by its label set."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{metric}\{{(.*)\}} (\S+)$", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            found[labels] = float(match.group(2))
    return found


def gpu_node(name: str, product: str, capacity: dict[str, str], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product, **labels}},
        "status": {"capacity": {"cpu": "96", **capacity}},
    }


def gpu_pod(
    name: str, node: str, labels: dict[str, str], resource: str, gpus: int
) -> dict[str, Any]:
    spec = pod_spec(gpus, resource)
    spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "labels": labels},
        "spec": spec,
        "status": {"phase": "Running"},
    }


def test_running_gpu_pods_nodes_and_prices_are_exported_exactly(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    cluster.create(gpu_node("h100-a", "NVIDIA-H100-80GB-HBM3", {"nvidia.com/gpu": "8"}))
    cluster.create(
        gpu_node(
            "t4-shared",
            "Tesla-T4-SHARED",
            {"nvidia.com/gpu": "16"},
            **{"nvidia.com/gpu.replicas": "4"},
        )
    )
    cluster.create(gpu_pod("trainer-0", "h100-a", COMPLETE_LABELS, "nvidia.com/gpu", 4))
    cluster.create(
        gpu_pod("notebook", "t4-shared", {"resilio.tech/team": "ranking"}, "nvidia.com/gpu", 1)
    )

    def exported() -> Any:
        text = operator.metrics()
        found = samples(text, "finops_pod_gpu_allocation")
        return (text, found) if len(found) == 2 else None

    text, allocation = eventually(exported)
    assert (
        allocation[
            frozenset(
                {
                    ("namespace", "ml"),
                    ("pod", "trainer-0"),
                    ("node", "h100-a"),
                    ("resource", "nvidia.com/gpu"),
                    ("gpu_model", "NVIDIA-H100-80GB-HBM3"),
                    ("team", "search-platform"),
                    ("feature", "semantic-search"),
                    ("environment", "production"),
                    ("workload_type", "inference"),
                    ("cost_center", "cc-1042"),
                }
            )
        ]
        == 4.0
    )
    notebook = [v for k, v in allocation.items() if ("pod", "notebook") in k]
    assert notebook == [0.25]
    untagged = next(k for k in allocation if ("pod", "notebook") in k)
    assert ("feature", "__untagged__") in untagged and ("team", "ranking") in untagged

    capacity = samples(text, "finops_node_gpu_capacity")
    assert capacity == {
        frozenset(
            {
                ("node", "h100-a"),
                ("gpu_model", "NVIDIA-H100-80GB-HBM3"),
                ("resource", "nvidia.com/gpu"),
            }
        ): 8.0,
        frozenset(
            {("node", "t4-shared"), ("gpu_model", "Tesla-T4"), ("resource", "nvidia.com/gpu")}
        ): 4.0,
    }
    prices = samples(text, "finops_gpu_hourly_price")
    assert prices[frozenset({("gpu_model", "NVIDIA-H100-80GB-HBM3")})] == 4.25
    assert prices[frozenset({("gpu_model", "Tesla-T4")})] == 2.0


def test_a_finished_or_deleted_pod_leaves_the_allocation(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    cluster.create(gpu_pod("short-job", "h100-a", COMPLETE_LABELS, "nvidia.com/gpu", 1))
    cluster.create(gpu_pod("gone", "h100-a", COMPLETE_LABELS, "nvidia.com/gpu", 2))

    def pods_exported() -> set[str]:
        found = samples(operator.metrics(), "finops_pod_gpu_allocation")
        return {dict(k)["pod"] for k in found}

    eventually(lambda: {"short-job", "gone"} <= pods_exported())
    cluster.patch("Pod", "ml", "short-job", {"status": {"phase": "Succeeded"}})
    cluster.delete("Pod", "ml", "gone")
    eventually(lambda: not ({"short-job", "gone"} & pods_exported()))


def test_watching_pods_and_nodes_writes_nothing_to_them(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    cluster.create(gpu_node("a100-quiet", "NVIDIA-A100-SXM4-80GB", {"nvidia.com/gpu": "4"}))
    cluster.create(gpu_pod("quiet", "a100-quiet", COMPLETE_LABELS, "nvidia.com/gpu", 1))
    eventually(
        lambda: any(
            ("pod", "quiet") in k for k in samples(operator.metrics(), "finops_pod_gpu_allocation")
        )
    )
    assert cluster.emulator is not None
    written = {path for method, path in cluster.emulator.log if method in ("PATCH", "PUT")}
    assert cluster.path("Node", None, "a100-quiet") not in written
    assert cluster.path("Pod", "ml", "quiet") not in written

"""The inventory on /metrics: the same series as prometheus_client renders, built once per change.

`InventoryExposition` replaced a collector that `generate_latest` rendered at
every scrape, on the admission event loop (issue 14, item 4). These tests hold
it to that collector's output, sample for sample, and count its rebuilds.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from finops_devtools.devcluster import free_port
from finops_devtools.devcluster.prometheus_runner import PrometheusServer
from finops_devtools.devcluster.reviews import COMPLETE_LABELS, pod_spec
from finops_operator.adapters.metrics import InventoryExposition, OperatorMetrics
from finops_operator.adapters.webhook_server import metrics_app, start_site
from finops_operator.domain import conventions
from finops_operator.domain.config import Config, parse_config
from finops_operator.domain.gpus.allocation import (
    ALLOCATION_LABELS,
    allocation_samples,
    capacity_samples,
    price_samples,
    token_price_samples,
)
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.policies.label_check import LabelPolicy
from tests.support.dra import DRIVER, allocated_claim, dra_pod, gpu_device, resource_slice
from tests.support.tools import require_tool

A100 = "NVIDIA A100-SXM4-80GB"

CONFIG = Config()


class ReferenceCollector(Collector):
    """What the operator exported before: prometheus_client's own rendering, at each scrape."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nodes = dict(self.inventory.nodes)
        allocation = GaugeMetricFamily(
            conventions.METRIC_POD_GPU_ALLOCATION, "help", labels=ALLOCATION_LABELS
        )
        pods = list(self.inventory.pods.values())
        for values, held in allocation_samples(pods, nodes, self.inventory.claimed):
            allocation.add_metric(values, float(held))
        capacity = GaugeMetricFamily(
            conventions.METRIC_NODE_GPU_CAPACITY, "help", labels=("node", "gpu_model", "resource")
        )
        for node_values, devices in [*capacity_samples(nodes), *self.inventory.dra_capacity()]:
            capacity.add_metric(node_values, float(devices))
        price = GaugeMetricFamily(
            conventions.METRIC_GPU_HOURLY_PRICE, "help", labels=("gpu_model",)
        )
        for model, amount in price_samples(CONFIG.pricing, nodes, self.inventory.dra_models()):
            price.add_metric((model,), float(amount))
        token_price = GaugeMetricFamily(
            conventions.METRIC_TOKEN_PRICE, "help", labels=("model", "direction")
        )
        for model, direction, amount in token_price_samples(CONFIG.pricing):
            token_price.add_metric((model, direction), float(amount))
        claim_pods = GaugeMetricFamily(
            conventions.METRIC_DRA_CLAIM_PODS,
            "help",
            labels=("dra_claim_namespace", "dra_claim_name", "namespace", "pod"),
        )
        for (namespace, name), claim in self.inventory.claims.items():
            for pod_name in claim.reserved_for:
                claim_pods.add_metric((namespace, name, namespace, pod_name), 1)
        yield from (allocation, capacity, price, token_price, claim_pods)


def pod(name: str, node: str, gpus: int | str = 1, **labels: str) -> dict[str, Any]:
    spec = pod_spec(gpus)
    spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "labels": {**COMPLETE_LABELS, **labels}},
        "spec": spec,
        "status": {"phase": "Running"},
    }


def node(name: str, product: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "status": {"capacity": {"nvidia.com/gpu": "8"}},
    }


def samples(text: str) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    return {
        (sample.name, frozenset(sample.labels.items()), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def fleet() -> Inventory:
    inventory = Inventory(LabelPolicy(CONFIG).is_gpu)
    inventory.observe_node("ADDED", node("gpu-1", "NVIDIA-H100-80GB-HBM3"))
    for index in range(50):
        inventory.observe_pod("ADDED", pod(f"trainer-{index}", "gpu-1", gpus=1 + index % 4))
    # Label values that need escaping in the text format.
    odd = {"resilio.tech/feature": 'say "hi"\\ now'}
    inventory.observe_pod("ADDED", pod("odd", "gpu-2", **odd))
    # Two pods sharing a GPU through a DRA claim, on a node without extended resources.
    inventory.observe_slice("ADDED", resource_slice("dra-1", [gpu_device("gpu-0", A100)]))
    claim = allocated_claim("ml", "shared", [("dra-1", "gpu-0")], ["dra-a", "dra-b"])
    inventory.observe_claim("ADDED", claim)
    for name in ("dra-a", "dra-b"):
        inventory.observe_pod("ADDED", dra_pod("ml", name, COMPLETE_LABELS, "shared", node="dra-1"))
    return inventory


def test_the_cached_text_has_the_same_samples_prometheus_client_renders() -> None:
    inventory = fleet()
    reference = CollectorRegistry()
    reference.register(ReferenceCollector(inventory))
    text, packed = InventoryExposition(inventory, CONFIG.pricing).render()
    assert samples(text.decode()) == samples(generate_latest(reference).decode())
    assert len(samples(text.decode())) > 50
    assert gzip.decompress(packed) == text
    # The HELP lines are the operator's own, one per family, each with its TYPE.
    helps = [line for line in text.decode().splitlines() if line.startswith("# HELP")]
    assert len(helps) == 5 and text.decode().count("# TYPE") == 5


def test_it_is_rebuilt_only_when_a_record_changes() -> None:
    inventory = fleet()
    exposition = InventoryExposition(inventory, CONFIG.pricing)
    first = exposition.render()
    assert exposition.render() is not None and exposition.rebuilds == 1
    # A status update that leaves GPUs, node and labels alone: same record, no rebuild.
    inventory.observe_pod("MODIFIED", pod("trainer-3", "gpu-1", gpus=4))
    assert exposition.render() == first and exposition.rebuilds == 1
    inventory.observe_pod("MODIFIED", pod("trainer-3", "gpu-1", gpus=2))
    inventory.observe_pod("DELETED", pod("trainer-4", "gpu-1"))
    text, _ = exposition.render()
    assert exposition.rebuilds == 2
    held = {
        dict(labels)["pod"]: value
        for name, labels, value in samples(text.decode())
        if name == conventions.METRIC_POD_GPU_ALLOCATION
    }
    assert held["trainer-3"] == 2.0 and "trainer-4" not in held


def test_a_node_that_changes_model_relabels_the_pods_on_it() -> None:
    inventory = fleet()
    exposition = InventoryExposition(inventory, CONFIG.pricing)
    exposition.render()
    inventory.observe_node("MODIFIED", node("gpu-1", "NVIDIA-A100-SXM4-80GB"))
    text, _ = exposition.render()
    models = {
        dict(labels)["gpu_model"]
        for name, labels, _ in samples(text.decode())
        if name == conventions.METRIC_POD_GPU_ALLOCATION and dict(labels)["node"] == "gpu-1"
    }
    assert models == {"NVIDIA-A100-SXM4-80GB"}


def allocation(text: bytes) -> dict[str, tuple[dict[str, str], float]]:
    return {
        dict(labels)["pod"]: (dict(labels), value)
        for name, labels, value in samples(text.decode())
        if name == conventions.METRIC_POD_GPU_ALLOCATION
    }


def test_a_dra_pod_is_exported_like_an_extended_resource_pod_with_its_devices_model() -> None:
    inventory = fleet()
    exposition = InventoryExposition(inventory, CONFIG.pricing)
    text, _ = exposition.render()
    labels, held = allocation(text)["dra-a"]
    assert held == 0.5 and labels["gpu_model"] == "NVIDIA-A100-SXM4-80GB"
    assert labels["resource"] == DRIVER and labels["node"] == "dra-1"
    extended, _ = allocation(text)["trainer-0"]
    cost_labels = set(extended) - {"pod", "node", "resource", "gpu_model"}
    assert {key: labels[key] for key in cost_labels} == {k: extended[k] for k in cost_labels}
    prices = {
        dict(labels)["gpu_model"]
        for name, labels, _ in samples(text.decode())
        if name == conventions.METRIC_GPU_HOURLY_PRICE
    }
    assert "NVIDIA-A100-SXM4-80GB" in prices
    sharers = {
        (
            labels["dra_claim_namespace"],
            labels["dra_claim_name"],
            labels["namespace"],
            labels["pod"],
        )
        for name, labels in ((s[0], dict(s[1])) for s in samples(text.decode()))
        if name == conventions.METRIC_DRA_CLAIM_PODS
    }
    assert sharers == {("ml", "shared", "ml", "dra-a"), ("ml", "shared", "ml", "dra-b")}
    offered = {
        (labels["node"], labels["gpu_model"], labels["resource"]): value
        for name, labels, value in ((s[0], dict(s[1]), s[2]) for s in samples(text.decode()))
        if name == conventions.METRIC_NODE_GPU_CAPACITY
    }
    assert offered[("dra-1", "NVIDIA-A100-SXM4-80GB", DRIVER)] == 1.0
    # The claim now reserved by one pod only (the other ended): the whole GPU is its.
    claim = allocated_claim("ml", "shared", [("dra-1", "gpu-0")], ["dra-a"])
    inventory.observe_pod("DELETED", dra_pod("ml", "dra-b", COMPLETE_LABELS, "shared"))
    inventory.observe_claim("MODIFIED", claim)
    text, _ = exposition.render()
    assert allocation(text)["dra-a"][1] == 1.0 and "dra-b" not in allocation(text)
    # Its device republished as a MIG slice: the pod's line follows the slice.
    mig = gpu_device("gpu-0", A100, mig_profile="1g.10gb")
    inventory.observe_slice("MODIFIED", resource_slice("dra-1", [mig]))
    text, _ = exposition.render()
    assert abs(allocation(text)["dra-a"][1] - 1 / 7) < 1e-12


async def test_metrics_serves_the_registry_and_the_inventory_plain_and_gzipped() -> None:
    metrics = OperatorMetrics()
    metrics.leader.set(1)
    inventory = fleet()
    app = metrics_app(metrics, inventory=InventoryExposition(inventory, CONFIG.pricing))
    async with TestClient(TestServer(app)) as client:
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.headers.get("Content-Encoding") is None
        text = await plain.text()
        packed = await client.get(
            "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
        )
        assert packed.headers["Content-Encoding"] == "gzip"
        body = await packed.read()
    assert "finops_leader 1.0" in text
    assert samples(gzip.decompress(body).decode()) == samples(text)
    assert {name for name, _, _ in samples(text)} >= {
        conventions.METRIC_POD_GPU_ALLOCATION,
        conventions.METRIC_NODE_GPU_CAPACITY,
        conventions.METRIC_GPU_HOURLY_PRICE,
        "finops_leader",
    }


async def test_prometheus_scrapes_the_two_gzip_members_as_one_answer(tmp_path: Path) -> None:
    """Go's gzip reader (Prometheus') reads concatenated members: every series arrives."""
    require_tool("prometheus", "promtool")
    metrics = OperatorMetrics()
    metrics.leader.set(1)
    app = metrics_app(metrics, inventory=InventoryExposition(fleet(), CONFIG.pricing))
    runner = await start_site(app, "127.0.0.1", port := free_port())
    config = yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {"job_name": "operator", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            ],
        }
    )
    prometheus = PrometheusServer(tmp_path)
    try:
        await asyncio.to_thread(prometheus.start, 60.0, False, config)
        query = f"count({conventions.METRIC_POD_GPU_ALLOCATION}) + on() finops_leader"
        for _ in range(150):
            found = await asyncio.to_thread(prometheus.query, query)
            if found:
                break
            await asyncio.sleep(0.2)
        assert found and float(found[0]["value"][1]) == 53 + 1  # 51 extended, 2 DRA
        health = await asyncio.to_thread(prometheus.api, "targets")
        [target] = health["activeTargets"]
        assert target["health"] == "up", target
    finally:
        await asyncio.to_thread(prometheus.stop)
        await runner.cleanup()


def token_prices(config_data: dict[str, object]) -> dict[tuple[str, str], float]:
    config = parse_config(config_data)
    text, _ = InventoryExposition(Inventory(lambda _: False), config.pricing).render()
    return {
        (sample.labels["model"], sample.labels["direction"]): sample.value
        for family in text_string_to_metric_families(text.decode())
        if family.name == "finops_token_price_per_1k"
        for sample in family.samples
    }


def test_token_prices_are_exported_per_model_and_direction_with_the_default() -> None:
    prices = token_prices(
        {"pricing": {"tokensPer1k": {"gpt-4o": {"input": "0.0025", "output": "0.01"}, "m": "0.1"}}}
    )
    assert prices == {
        ("default", "input"): 0.002,
        ("default", "output"): 0.002,
        ("gpt-4o", "input"): 0.0025,
        ("gpt-4o", "output"): 0.01,
        ("m", "input"): 0.1,
        ("m", "output"): 0.1,
    }


def test_without_token_prices_the_default_is_still_exported() -> None:
    assert set(token_prices({})) == {("default", "input"), ("default", "output")}


def test_without_pod_series_the_allocation_is_summed_without_pod_names() -> None:
    inventory = fleet()
    per_pod, _ = InventoryExposition(inventory, CONFIG.pricing).render()
    exposition = InventoryExposition(inventory, CONFIG.pricing, pod_series=False)
    text, packed = exposition.render()
    assert gzip.decompress(packed) == text
    assert b"trainer-" not in text and b'pod="' not in text

    def allocation(found: str) -> list[dict[str, str | float]]:
        return [
            {**dict(labels), "value": value}
            for name, labels, value in samples(found)
            if name == conventions.METRIC_POD_GPU_ALLOCATION
        ]

    summed = allocation(text.decode())
    assert all("pod" not in s for s in summed)
    # Per namespace and node the same GPUs as the per-pod series, in fewer series.
    for where in ("gpu-1", "gpu-2", "dra-1"):
        assert sum(float(s["value"]) for s in summed if s["node"] == where) == sum(
            float(s["value"]) for s in allocation(per_pod.decode()) if s["node"] == where
        )
    assert len(summed) == 3  # the two DRA pods' halves of one GPU are one series
    # The node families are unchanged, the claim-to-pod series (pod names) gone, and a
    # change is seen at the next scrape.
    per_pod_only = (conventions.METRIC_POD_GPU_ALLOCATION, conventions.METRIC_DRA_CLAIM_PODS)
    others = {s for s in samples(per_pod.decode()) if s[0] not in per_pod_only}
    assert others <= samples(text.decode())
    assert conventions.METRIC_DRA_CLAIM_PODS.encode() not in text
    inventory.observe_pod("DELETED", pod("trainer-0", "gpu-1"))
    after = allocation(exposition.render()[0].decode())
    gpu_1 = [s for s in after if s["node"] == "gpu-1"]
    assert (
        float(gpu_1[0]["value"])
        == float(next(s for s in summed if s["node"] == "gpu-1")["value"]) - 1
    )

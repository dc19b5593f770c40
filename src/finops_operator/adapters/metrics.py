"""The operator's own Prometheus metrics: admission traffic and label violations.

One registry per process, so tests and the operator never share global state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.gpus.allocation import (
    ALLOCATION_LABELS,
    allocation_samples,
    capacity_samples,
    price_samples,
    token_price_samples,
)
from finops_operator.domain.gpus.inventory import Inventory


class OperatorMetrics:
    """The operator's series; its methods are the controllers' `ports.MetricsPort`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.admission_requests = Counter(
            conventions.METRIC_ADMISSION_REQUESTS.removesuffix("_total"),
            "AdmissionReviews answered, by webhook, workload kind and outcome.",
            ("webhook", "kind", "outcome"),
            registry=self.registry,
        )
        self.admission_duration = Histogram(
            conventions.METRIC_ADMISSION_DURATION,
            "Time to answer an AdmissionReview, from request body to response.",
            ("webhook",),
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
            registry=self.registry,
        )
        self.policy_ready = Gauge(
            "finops_costpolicy_ready",
            "1 when a CostPolicy's PrometheusRule is in step with it, 0 when it is not.",
            ("namespace", "costpolicy"),
            registry=self.registry,
        )
        self.policy_failures = Counter(
            "finops_costpolicy_failures",
            "Reconciliations that left a CostPolicy not ready, by namespace and reason.",
            ("namespace", "reason"),
            registry=self.registry,
        )
        self.reports_refreshed = Gauge(
            "finops_costreport_refreshed_timestamp_seconds",
            "When the CostReports of a period were last refreshed from Prometheus.",
            ("period",),
            registry=self.registry,
        )
        self.report_failures = Counter(
            "finops_costreport_refresh_failures",
            "CostReport refreshes that failed, by what failed (prometheus, kubernetes).",
            ("source",),
            registry=self.registry,
        )
        self.leader = Gauge(
            "finops_leader",
            "1 on the replica that holds the Lease and writes, 0 on a standby.",
            registry=self.registry,
        )
        self.leader_election_errors = Counter(
            "finops_leader_election_errors",
            "Leader election rounds that failed unexpectedly (the loop goes on).",
            registry=self.registry,
        )
        self.violations = Gauge(
            conventions.METRIC_VIOLATIONS,
            "GPU workloads currently missing or misusing cost labels, by namespace and kind.",
            ("namespace", "kind"),
            registry=self.registry,
        )

    def mark_policy_ready(self, namespace: str, name: str, ready: bool) -> None:
        self.policy_ready.labels(namespace, name).set(1 if ready else 0)

    def forget_policy(self, namespace: str, name: str) -> None:
        with contextlib.suppress(KeyError):
            self.policy_ready.remove(namespace, name)

    def count_policy_failure(self, namespace: str, reason: str) -> None:
        self.policy_failures.labels(namespace, reason).inc()

    def mark_reports_refreshed(self, period: str, timestamp: float) -> None:
        self.reports_refreshed.labels(period).set(timestamp)

    def count_report_failure(self, source: str) -> None:
        self.report_failures.labels(source).inc()


class InventoryCollector(Collector):
    """Reads the inventory at scrape time, so the series always match the current state."""

    def __init__(self, inventory: Inventory, pricing: PricingConfig) -> None:
        self.inventory = inventory
        self.pricing = pricing

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nodes = dict(self.inventory.nodes)
        allocation = GaugeMetricFamily(
            conventions.METRIC_POD_GPU_ALLOCATION,
            "GPUs held by a running pod (fractional for MIG slices and shared GPUs).",
            labels=ALLOCATION_LABELS,
        )
        for values, held in allocation_samples(list(self.inventory.pods.values()), nodes):
            allocation.add_metric(values, float(held))
        yield allocation
        capacity = GaugeMetricFamily(
            conventions.METRIC_NODE_GPU_CAPACITY,
            "GPUs a node offers, in devices.",
            labels=("node", "gpu_model", "resource"),
        )
        for node_values, devices in capacity_samples(nodes):
            capacity.add_metric(node_values, float(devices))
        yield capacity
        price = GaugeMetricFamily(
            conventions.METRIC_GPU_HOURLY_PRICE,
            f"Configured price of one GPU hour, in {self.pricing.currency}.",
            labels=("gpu_model",),
        )
        for model, amount in price_samples(self.pricing, nodes):
            price.add_metric((model,), float(amount))
        yield price
        token_price = GaugeMetricFamily(
            conventions.METRIC_TOKEN_PRICE,
            f"Configured price of 1,000 LLM tokens by model and direction, in "
            f"{self.pricing.currency}.",
            labels=("model", "direction"),
        )
        for model, direction, amount in token_price_samples(self.pricing):
            token_price.add_metric((model, direction), float(amount))
        yield token_price

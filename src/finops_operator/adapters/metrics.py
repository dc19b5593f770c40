"""The operator's own Prometheus metrics: admission traffic, label violations, GPU inventory.

One registry per process, so tests and the operator never share global state.
The GPU inventory, one series per pod and GPU resource, is not in the registry:
`InventoryExposition` renders it once per change (docs/benchmarks.md,
"/metrics at fleet scale").
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import zlib
from collections.abc import Sequence
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.utils import floatToGoString

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.gpus.allocation import (
    ALLOCATION_LABELS,
    UNKNOWN_MODEL,
    NodeGpus,
    PodGpus,
    allocation_samples,
    capacity_samples,
    price_samples,
    token_price_samples,
)
from finops_operator.domain.gpus.dra import DraClaim
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.gpus.utilization import DRA_CLAIM_LABELS


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
        self.policy_reports_available = Gauge(
            "finops_policy_reports_available",
            "1 once a PolicyReport (or Report) of the configured API was written, 0 while "
            "the API server does not serve it (its CRD is missing); no series before the "
            "first write.",
            ("api",),
            registry=self.registry,
        )
        self.policy_report_failures = Counter(
            "finops_policy_report_write_failures",
            "PolicyReport writes that failed, by HTTP status (0: the API was unreachable).",
            ("status",),
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
        self.exemptions = Gauge(
            conventions.METRIC_EXEMPTIONS,
            "GPU workloads exempt from the cost label check by the exempt annotation, by "
            "namespace and kind (admission checked who may exempt; the audit records them).",
            ("namespace", "kind"),
            registry=self.registry,
        )
        self.config_valid = Gauge(
            "finops_config_valid",
            "1 when the operator's ConfigMap holds a valid configuration, 0 when it does not "
            "(the configuration in use stays; a Warning Event on the ConfigMap names the problem).",
            registry=self.registry,
        )
        self.config_restart_needed = Gauge(
            "finops_config_restart_needed",
            "1 when the ConfigMap holds a valid configuration other than the one in use: "
            "the operator reads it at start, so restart it to apply.",
            registry=self.registry,
        )
        self.config_safe_default = Gauge(
            "finops_config_safe_default",
            "1 when the operator started with an invalid configuration and serves the "
            "safe default (the built-in defaults in audit mode) instead.",
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

    def mark_policy_reports_available(self, api: str, available: bool) -> None:
        self.policy_reports_available.labels(api).set(1 if available else 0)

    def count_policy_report_failure(self, status: str) -> None:
        self.policy_report_failures.labels(status).inc()

    def count_violations(self, namespace: str, kind: str, change: int) -> None:
        self.violations.labels(namespace, kind).inc(change)

    def count_exemption(self, namespace: str, kind: str, delta: int) -> None:
        self.exemptions.labels(namespace, kind).inc(delta)

    def mark_config(self, *, valid: bool, restart_needed: bool, safe_default: bool) -> None:
        self.config_valid.set(1 if valid else 0)
        self.config_restart_needed.set(1 if restart_needed else 0)
        self.config_safe_default.set(1 if safe_default else 0)


GZIP_LEVEL = 1  # the text repeats itself: level 1 packs it ~10x, several times faster than 9
ALLOCATION_HELP = "GPUs held by a running pod (fractional for MIG slices and shared GPUs)."
ALLOCATION_HELP_WITHOUT_PODS = (
    "GPUs held by running pods, summed over the pods of each namespace, node, model and "
    "cost labels (metrics.podSeries: false)."
)
CAPACITY_HELP = "GPUs a node offers, in devices."
CAPACITY_LABELS = ("node", "gpu_model", "resource")
CLAIM_PODS_HELP = (
    "1 for each pod reserving a DRA ResourceClaim with GPU devices (status.reservedFor)."
)
CLAIM_PODS_LABELS = (*DRA_CLAIM_LABELS, "namespace", "pod")
Key = tuple[str, str]
Offered = list[tuple[tuple[str, str, str], Decimal]]  # (node, model, DRA driver), GPUs


BUCKETS = 64  # the allocation series are cached in this many parts, by pod
# A pod's node's (model, replicas) and the (driver, model, devices) its DRA claims hold.
Placement = tuple[str, int, tuple[tuple[str, str, Decimal], ...]]


class InventoryExposition:
    """The inventory's families in the Prometheus text format, built once per change.

    At 50,000 GPU pods the allocation family is about 14 MB of text. Rendering it
    through `prometheus_client` at every scrape cost 1.3-2.8 CPU-seconds, on the
    event loop that answers admission. Here the text is kept until
    `Inventory.version` moves, in `BUCKETS` parts (a pod's part is fixed by a
    hash of its namespace and name), each with its own gzip member. A change
    renders again the lines of the pods whose record or node changed, and packs
    again only the parts they are in: the answer is the parts' members one after
    the other (RFC 1952 allows several members in one stream). Scrapes call
    `render` from the metrics server's own thread (`webhook_server.metrics_app`).

    The output is what `generate_latest` gave for the same series (a
    `GaugeMetricFamily` per metric, same HELP, same label order, Go float format).
    """

    def __init__(
        self,
        inventory: Inventory,
        pricing: PricingConfig,
        gzip_level: int = GZIP_LEVEL,
        pod_series: bool = True,
    ) -> None:
        self.inventory = inventory
        self.pricing = pricing
        self.gzip_level = gzip_level
        # False (`metrics.podSeries`): the allocation summed without the `pod` label.
        self.pod_series = pod_series
        self.rebuilds = 0
        self._lock = threading.Lock()
        self._version = -1
        self._text = b""
        self._gzipped = b""
        # Per pod: its record, its placement (node's model and replicas, what its DRA
        # claims hold), its part, its lines.
        self._lines: dict[tuple[str, str], tuple[PodGpus, Placement, int, str]] = {}
        self._parts: list[tuple[bytes, bytes]] = [(b"", b"")] * BUCKETS
        # What the tail (nodes, prices, DRA claims' pods) was last rendered from.
        self._nodes: tuple[dict[str, NodeGpus], Offered, dict[Key, DraClaim] | None] | None = None
        self._tail: tuple[bytes, bytes] = (b"", b"")
        self._head = self._pack(_header(conventions.METRIC_POD_GPU_ALLOCATION, ALLOCATION_HELP))

    def render(self) -> tuple[bytes, bytes]:
        """The families as text, and the same text gzipped (a stream of several members)."""
        with self._lock:
            version = self.inventory.version  # before the snapshot: a later change rebuilds
            if version != self._version:
                self._rebuild()
                self._version = version
                self.rebuilds += 1
            return self._text, self._gzipped

    def _pack(self, text: str) -> tuple[bytes, bytes]:
        raw = text.encode()
        return raw, gzip.compress(raw, compresslevel=self.gzip_level, mtime=0)

    def _rebuild(self) -> None:
        pods = list(self.inventory.pods.items())  # copies in C: atomic against the loop
        nodes = dict(self.inventory.nodes)
        if not self.pod_series:
            self._rebuild_without_pods([pod for _, pod in pods], nodes)
            return
        previous = self._lines
        claimed = self.inventory.claimed
        lines: dict[tuple[str, str], tuple[PodGpus, Placement, int, str]] = {}
        changed: set[int] = set()
        for key, pod in pods:
            node = nodes.get(pod.node)
            placement = (
                *((node.gpu_model, node.replicas) if node else (UNKNOWN_MODEL, 1)),
                claimed(pod) if pod.claims else (),
            )
            kept = previous.get(key)
            if kept is not None and kept[0] is pod and kept[1] == placement:
                lines[key] = kept
                continue
            part = kept[2] if kept is not None else _part_of(key)
            text = "".join(
                _sample(conventions.METRIC_POD_GPU_ALLOCATION, ALLOCATION_LABELS, values, held)
                for values, held in allocation_samples([pod], nodes, claimed)
            )
            lines[key] = (pod, placement, part, text)
            changed.add(part)
        changed.update(previous[key][2] for key in previous.keys() - lines.keys())
        if changed:
            texts: dict[int, list[str]] = {part: [] for part in changed}
            for _, _, part, text in lines.values():
                if part in texts:
                    texts[part].append(text)
            for part, members in texts.items():
                self._parts[part] = self._pack("".join(members))
        self._lines = lines
        self._render_tail(nodes, dict(self.inventory.claims))
        parts = [self._head, *self._parts, self._tail]
        self._text = b"".join(text for text, _ in parts)
        self._gzipped = b"".join(packed for _, packed in parts if packed)

    def _rebuild_without_pods(self, pods: list[PodGpus], nodes: dict[str, NodeGpus]) -> None:
        """The allocation family summed over the pods that share every other label: one
        series per namespace, node, resource, model and cost labels, whatever the pods.
        No claim-to-pod series either: it would name the pods."""
        pod_at = ALLOCATION_LABELS.index("pod")
        labels = ALLOCATION_LABELS[:pod_at] + ALLOCATION_LABELS[pod_at + 1 :]
        sums: dict[tuple[str, ...], Decimal] = {}
        for values, held in allocation_samples(pods, nodes, self.inventory.claimed):
            key = values[:pod_at] + values[pod_at + 1 :]
            sums[key] = sums.get(key, Decimal(0)) + held
        head = _header(conventions.METRIC_POD_GPU_ALLOCATION, ALLOCATION_HELP_WITHOUT_PODS)
        allocation = self._pack(
            head
            + "".join(
                _sample(conventions.METRIC_POD_GPU_ALLOCATION, labels, key, held)
                for key, held in sorted(sums.items())
            )
        )
        self._render_tail(nodes, None)
        self._text = allocation[0] + self._tail[0]
        self._gzipped = allocation[1] + self._tail[1]

    def _render_tail(self, nodes: dict[str, NodeGpus], claims: dict[Key, DraClaim] | None) -> None:
        """The node and price families, and the claim-to-pod one unless `claims` is None;
        rendered again only when they changed."""
        offered = self.inventory.dra_capacity()
        models = {model for (_, model, _), _ in offered}
        if (nodes, offered, claims) != self._nodes:
            self._nodes = (nodes, offered, claims)
            tail = self._node_families(nodes, models, offered)
            self._tail = self._pack(tail + (_claim_pods(claims) if claims is not None else ""))

    def _node_families(
        self, nodes: dict[str, NodeGpus], dra_models: set[str], offered: Offered
    ) -> str:
        lines = [_header(conventions.METRIC_NODE_GPU_CAPACITY, CAPACITY_HELP)]
        lines += [
            _sample(conventions.METRIC_NODE_GPU_CAPACITY, CAPACITY_LABELS, values, devices)
            for values, devices in [*capacity_samples(nodes), *offered]
        ]
        lines.append(
            _header(
                conventions.METRIC_GPU_HOURLY_PRICE,
                f"Configured price of one GPU hour, in {self.pricing.currency}.",
            )
        )
        lines += [
            _sample(conventions.METRIC_GPU_HOURLY_PRICE, ("gpu_model",), (model,), amount)
            for model, amount in price_samples(self.pricing, nodes, dra_models)
        ]
        lines.append(
            _header(
                conventions.METRIC_TOKEN_PRICE,
                f"Configured price of 1,000 LLM tokens by model and direction, in "
                f"{self.pricing.currency}.",
            )
        )
        lines += [
            _sample(
                conventions.METRIC_TOKEN_PRICE, ("model", "direction"), (model, direction), amount
            )
            for model, direction, amount in token_price_samples(self.pricing)
        ]
        return "".join(lines)


def _claim_pods(claims: dict[Key, DraClaim]) -> str:
    """1 per pod reserving a GPU claim: the utilization join's way from claim to pods."""
    lines = [_header(conventions.METRIC_DRA_CLAIM_PODS, CLAIM_PODS_HELP)]
    lines += [
        _sample(conventions.METRIC_DRA_CLAIM_PODS, CLAIM_PODS_LABELS, (*key, *key[:1], pod), 1)
        for key, claim in sorted(claims.items())
        for pod in claim.reserved_for
    ]
    return "".join(lines)


def _part_of(key: tuple[str, str]) -> int:
    return zlib.crc32(f"{key[0]}/{key[1]}".encode()) % BUCKETS


def _header(name: str, help_text: str) -> str:
    escaped = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {escaped}\n# TYPE {name} gauge\n"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _sample(name: str, labels: Sequence[str], values: Sequence[str], value: Decimal | float) -> str:
    pairs = ",".join(f'{label}="{_escape(v)}"' for label, v in zip(labels, values, strict=True))
    number: str = floatToGoString(float(value))  # type: ignore[no-untyped-call]
    return f"{name}{{{pairs}}} {number}\n"

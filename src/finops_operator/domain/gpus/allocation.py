"""GPU allocation: how many GPUs each running pod holds, of which model, for whom.

This is the inventory behind the `finops_pod_gpu_allocation`,
`finops_node_gpu_capacity` and `finops_gpu_hourly_price` series. Quantities
are in devices: a MIG slice counts as its share of the device (a `1g.10gb`
slice of a 7-slice GPU is 1/7) and a time-sliced share as 1/replicas, read from
GPU feature discovery's node labels. Plain functions over plain data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.config import TOKEN_DIRECTIONS, PricingConfig
from finops_operator.domain.workloads import GpuMatcher, parse_quantity

UNKNOWN_MODEL: Final = "unknown"
PRODUCT_LABELS: Final = ("nvidia.com/gpu.product", "amd.com/gpu.product-name")
REPLICAS_LABEL: Final = "nvidia.com/gpu.replicas"
_MIG: Final = re.compile(r"^nvidia\.com/mig-(\d+)g\.[0-9a-z.]+$")
# MIG compute slices per device; 7 for A100/H100/H200/B200, 4 for A30.
_FOUR_SLICE_MODELS: Final = re.compile(r"A30\b|A30-", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PodGpus:
    """What the inventory keeps of a running GPU pod: small, so 10,000 pods stay cheap."""

    namespace: str
    pod: str
    node: str
    cost_labels: tuple[str, ...]  # in conventions.COST_LABELS order, UNTAGGED where missing
    requests: tuple[tuple[str, Decimal], ...]  # (resource, quantity) per GPU resource
    claims: tuple[str, ...] = ()  # its ResourceClaims' names (DRA), resolved in `dra`


@dataclass(frozen=True)
class NodeGpus:
    gpu_model: str
    replicas: int
    capacity: tuple[tuple[str, Decimal], ...]  # (resource, advertised quantity)


def gpu_model(node_labels: Mapping[str, str]) -> str:
    """The device model for pricing: GFD's product label without MIG/sharing suffixes."""
    for key in PRODUCT_LABELS:
        product = node_labels.get(key)
        if product:
            return re.sub(r"(-MIG-.*|-SHARED)$", "", product)
    return UNKNOWN_MODEL


def _replicas(node_labels: Mapping[str, str]) -> int:
    try:
        return max(1, int(node_labels.get(REPLICAS_LABEL, "1")))
    except ValueError:
        return 1


def node_gpus(node: Mapping[str, Any], is_gpu: GpuMatcher) -> NodeGpus | None:
    """A node's GPU model, sharing replicas and advertised GPU resources; None without GPUs."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    capacity = []
    for resource, raw in ((node.get("status") or {}).get("capacity") or {}).items():
        quantity = parse_quantity(raw)
        if is_gpu(resource) and quantity:
            capacity.append((resource, quantity))
    if not capacity:
        return None
    return NodeGpus(gpu_model(labels), _replicas(labels), tuple(sorted(capacity)))


def _share(resource: str, model: str, replicas: int) -> tuple[int, int]:
    mig = _MIG.match(resource)
    if mig:
        return int(mig.group(1)), 4 if _FOUR_SLICE_MODELS.search(model) else 7
    if resource.startswith("nvidia.com/gpu") and replicas > 1:
        return 1, replicas
    return 1, 1


def in_devices(quantity: Decimal, resource: str, model: str, replicas: int) -> Decimal:
    """`quantity` units of `resource`, in physical devices (dividing last, to stay exact)."""
    part, whole = _share(resource, model, replicas)
    return quantity * part / whole


def _effective_requests(spec: Mapping[str, Any], is_gpu: GpuMatcher) -> dict[str, Decimal]:
    """Kubernetes' effective pod request: max(sum over containers, max over init containers)."""

    def claims(container: Mapping[str, Any]) -> dict[str, Decimal]:
        resources = container.get("resources") or {}
        found: dict[str, Decimal] = {}
        for section in ("requests", "limits"):
            for resource, raw in (resources.get(section) or {}).items():
                if not is_gpu(resource):
                    continue  # cpu, memory: most of a fleet's quantities, never parsed
                quantity = parse_quantity(raw)
                if quantity is not None and quantity > 0:
                    found[resource] = quantity
        return found

    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        for resource, quantity in claims(container).items():
            total[resource] = total.get(resource, Decimal(0)) + quantity
    for container in spec.get("initContainers") or []:
        for resource, quantity in claims(container).items():
            total[resource] = max(total.get(resource, Decimal(0)), quantity)
    return total


def _entries(value: Any) -> list[Mapping[str, Any]]:
    return (
        [entry for entry in value if isinstance(entry, Mapping)] if isinstance(value, list) else []
    )


def pod_claim_names(pod: Mapping[str, Any]) -> tuple[str, ...]:
    """The ResourceClaims a pod uses, by name: direct ones, and those made from templates.

    A template's claim has a generated name, known once the controller wrote it to
    `status.resourceClaimStatuses`; until then the pod holds nothing through it.
    """
    generated = {
        str(entry.get("name")): entry.get("resourceClaimName")
        for entry in _entries((pod.get("status") or {}).get("resourceClaimStatuses"))
    }
    names = []
    for entry in _entries((pod.get("spec") or {}).get("resourceClaims")):
        name = entry.get("resourceClaimName")
        if not name and entry.get("resourceClaimTemplateName"):
            name = generated.get(str(entry.get("name")))
        if isinstance(name, str) and name:
            names.append(name)
    return tuple(dict.fromkeys(names))


def pod_gpus(pod: Mapping[str, Any], is_gpu: GpuMatcher) -> PodGpus | None:
    """The GPUs a pod holds now; None unless it is Running on a node with GPU requests.

    A pod with ResourceClaims is kept with their names even without GPU requests:
    what the claims hold is known only from the claims and slices (`dra`).
    """
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    if status.get("phase") != "Running" or not spec.get("nodeName"):
        return None
    requests = _effective_requests(spec, is_gpu)
    claims = pod_claim_names(pod)
    if not requests and not claims:
        return None
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    values = tuple(str(labels.get(key) or conventions.UNTAGGED) for key in conventions.COST_LABELS)
    return PodGpus(
        namespace=str(meta.get("namespace", "")),
        pod=str(meta.get("name", "")),
        node=str(spec["nodeName"]),
        cost_labels=values,
        requests=tuple(sorted(requests.items())),
        claims=claims,
    )


ALLOCATION_LABELS: Final = (
    "namespace",
    "pod",
    "node",
    "resource",
    "gpu_model",
    *(conventions.METRIC_LABEL_FOR[key] for key in conventions.COST_LABELS),
)


ClaimedGpus = Callable[[PodGpus], Sequence[tuple[str, str, Decimal]]]


def allocation_samples(
    pods: Iterable[PodGpus], nodes: Mapping[str, NodeGpus], claimed: ClaimedGpus | None = None
) -> list[tuple[tuple[str, ...], Decimal]]:
    """(label values in ALLOCATION_LABELS order, GPUs held) for every pod and GPU resource.

    `claimed` gives what a pod holds through DRA, as (driver, model, devices): its
    series carries the driver as `resource` and the device's own model.
    """
    samples = []
    for pod in pods:
        node = nodes.get(pod.node)
        model = node.gpu_model if node else UNKNOWN_MODEL
        replicas = node.replicas if node else 1
        for resource, quantity in pod.requests:
            held = in_devices(quantity, resource, model, replicas)
            samples.append(
                ((pod.namespace, pod.pod, pod.node, resource, model, *pod.cost_labels), held)
            )
        for driver, device_model, held in claimed(pod) if claimed and pod.claims else ():
            samples.append(
                ((pod.namespace, pod.pod, pod.node, driver, device_model, *pod.cost_labels), held)
            )
    return samples


def capacity_samples(nodes: Mapping[str, NodeGpus]) -> list[tuple[tuple[str, str, str], Decimal]]:
    """(node, gpu_model, resource) and the devices the node offers through that resource."""
    return [
        (
            (name, node.gpu_model, resource),
            in_devices(quantity, resource, node.gpu_model, node.replicas),
        )
        for name, node in sorted(nodes.items())
        for resource, quantity in node.capacity
    ]


def price_samples(
    pricing: PricingConfig, nodes: Mapping[str, NodeGpus], more_models: Iterable[str] = ()
) -> list[tuple[str, Decimal]]:
    """The hourly price of every configured model (`default` included) and every model on a node.

    `more_models`: the models of the devices published through DRA.

    The recording rules price a model without its own series at `default`.
    """
    models = set(pricing.gpu_hourly)
    models |= {node.gpu_model for node in nodes.values()}
    models |= set(more_models)
    models.add(UNKNOWN_MODEL)
    return [(model, pricing.gpu_price(model)) for model in sorted(models)]


def token_price_samples(pricing: PricingConfig) -> list[tuple[str, str, Decimal]]:
    """(model, direction, price per 1,000 tokens) of every configured model, `default` included.

    Exported as `finops_token_price_per_1k`, so that recording rules and dashboards
    price tokens from the configuration in force rather than from numbers baked in
    when they were generated. A model without its own series is priced at `default`.
    """
    return [
        (model, direction, pricing.token_price(model, direction))
        for model in sorted(pricing.tokens_per_1k)
        for direction in TOKEN_DIRECTIONS
    ]

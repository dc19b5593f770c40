"""What a workload is, where its pods' labels live, and whether it asks for a GPU.

Seven kinds create pods: Pods themselves and six controllers that carry a pod
template. Cost attribution reads the pod's labels, so the check reads the
template's labels for controllers. Everything here is plain functions over the
object as a dict, as the API server or a manifest file gives it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

# kind -> (API group, plural, path from the object to its pod template, or () for a Pod)
WORKLOAD_KINDS: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "Pod": ("", "pods", ()),
    "Deployment": ("apps", "deployments", ("spec", "template")),
    "StatefulSet": ("apps", "statefulsets", ("spec", "template")),
    "DaemonSet": ("apps", "daemonsets", ("spec", "template")),
    "ReplicaSet": ("apps", "replicasets", ("spec", "template")),
    "Job": ("batch", "jobs", ("spec", "template")),
    "CronJob": ("batch", "cronjobs", ("spec", "jobTemplate", "spec", "template")),
}
KIND_FOR_PLURAL: Final = {plural: kind for kind, (_, plural, _) in WORKLOAD_KINDS.items()}


def is_workload_kind(kind: Any) -> bool:
    return isinstance(kind, str) and kind in WORKLOAD_KINDS


# Groups that once served a kind, besides its current one (manifests older than 1.16).
_LEGACY_GROUPS: Final = {
    "Deployment": "extensions",
    "DaemonSet": "extensions",
    "ReplicaSet": "extensions",
}


def is_workload(obj: Mapping[str, Any]) -> bool:
    """One of the seven kinds, in its own API group when the object names one.

    A custom resource that reuses a name (Volcano's `Job` in `batch.volcano.sh`) is
    not a Kubernetes Job and has no pod template where a Job keeps it.
    """
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in WORKLOAD_KINDS:
        return False
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str) or not api_version:
        return True
    group = api_version.rpartition("/")[0]
    return group == WORKLOAD_KINDS[kind][0] or group == _LEGACY_GROUPS.get(kind)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object that plays the pod: the Pod itself or its template (empty if absent)."""
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in WORKLOAD_KINDS:
        return {}
    node: Mapping[str, Any] = obj
    for step in WORKLOAD_KINDS[kind][2]:
        node = _mapping(node.get(step))
    return node


def pod_labels_path(kind: str) -> tuple[str, ...]:
    """Where a kind keeps the labels its pods get, e.g. spec.template.metadata.labels."""
    return (*WORKLOAD_KINDS[kind][2], "metadata", "labels")


def pod_labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(pod_template(obj).get("metadata")).get("labels"))


_SUFFIXES: Final[dict[str, Decimal | int]] = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY: Final = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ("1", "500m", 2) as a Decimal; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
        return number if number.is_finite() else None
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class GpuRequest:
    """One container's claim on one GPU resource."""

    container: str
    resource: str
    quantity: Decimal


class GpuMatcher:
    """Decides which extended resource names are GPUs (exact names and `*`/`?` patterns)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = tuple(patterns)
        self._exact = frozenset(p for p in patterns if "*" not in p and "?" not in p)
        self._globs = tuple(
            re.compile(fnmatch.translate(p)) for p in patterns if p not in self._exact
        )

    def __call__(self, resource: str) -> bool:
        return resource in self._exact or any(g.match(resource) for g in self._globs)


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in ("initContainers", "containers"):
        items = spec.get(field)
        if isinstance(items, list):
            yield from (c for c in items if isinstance(c, Mapping))


def gpu_requests(obj: Mapping[str, Any], is_gpu: GpuMatcher) -> list[GpuRequest]:
    """Every non-zero GPU quantity a workload's containers and init containers ask for.

    A container asks for the larger of its request and its limit of a resource
    (the API server wants them equal for extended resources, but a manifest in CI
    has not met the API server yet). A quantity that cannot be parsed counts as
    one GPU: governance errs towards checking.
    """
    spec = _mapping(pod_template(obj).get("spec"))
    found = []
    for container in _containers(spec):
        resources = _mapping(container.get("resources"))
        claimed: dict[str, Decimal] = {}
        for section in ("requests", "limits"):
            for resource, raw in _mapping(resources.get(section)).items():
                if not isinstance(resource, str) or not is_gpu(resource):
                    continue
                quantity = parse_quantity(raw)
                if quantity is None:
                    quantity = Decimal(1)
                claimed[resource] = max(quantity, claimed.get(resource, quantity))
        name = container.get("name")
        for resource, quantity in claimed.items():
            if quantity > 0:
                found.append(GpuRequest(name if isinstance(name, str) else "", resource, quantity))
    return found


def is_gpu_workload(obj: Mapping[str, Any], is_gpu: GpuMatcher) -> bool:
    return is_workload(obj) and bool(gpu_requests(obj, is_gpu))

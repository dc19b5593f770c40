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
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final


class WorkloadKind(StrEnum):
    """The seven kinds that make pods: the one list every other place derives from."""

    POD = "Pod"
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"
    REPLICA_SET = "ReplicaSet"
    JOB = "Job"
    CRON_JOB = "CronJob"

    @property
    def group(self) -> str:
        """The API group ("" for the core group)."""
        return _SHAPES[self][0]

    @property
    def plural(self) -> str:
        """The resource name in URLs and RBAC rules: `deployments`."""
        return _SHAPES[self][1]

    @property
    def template_path(self) -> tuple[str, ...]:
        """The path from the object to its pod template, () for a Pod (its own pod)."""
        return _SHAPES[self][2]

    @property
    def legacy_group(self) -> str | None:
        """A group that once served the kind besides its own (manifests older than 1.16)."""
        return _LEGACY_GROUPS.get(self)

    @classmethod
    def of(cls, kind: Any) -> WorkloadKind | None:
        """The member named `kind`, or None when `kind` is not one of the seven."""
        return cls(kind) if isinstance(kind, str) and kind in cls._value2member_map_ else None


_TEMPLATE: Final = ("spec", "template")
# kind -> (API group, plural, path from the object to its pod template, or () for a Pod)
_SHAPES: Final[dict[WorkloadKind, tuple[str, str, tuple[str, ...]]]] = {
    WorkloadKind.POD: ("", "pods", ()),
    WorkloadKind.DEPLOYMENT: ("apps", "deployments", _TEMPLATE),
    WorkloadKind.STATEFUL_SET: ("apps", "statefulsets", _TEMPLATE),
    WorkloadKind.DAEMON_SET: ("apps", "daemonsets", _TEMPLATE),
    WorkloadKind.REPLICA_SET: ("apps", "replicasets", _TEMPLATE),
    WorkloadKind.JOB: ("batch", "jobs", _TEMPLATE),
    WorkloadKind.CRON_JOB: ("batch", "cronjobs", ("spec", "jobTemplate", *_TEMPLATE)),
}
# Groups that once served a kind, besides its current one (manifests older than 1.16).
_LEGACY_GROUPS: Final = {
    WorkloadKind.DEPLOYMENT: "extensions",
    WorkloadKind.DAEMON_SET: "extensions",
    WorkloadKind.REPLICA_SET: "extensions",
}
if set(_SHAPES) != set(WorkloadKind):  # pragma: no cover - a kind added without its shape
    raise AssertionError(f"WorkloadKind without a shape: {set(WorkloadKind) - set(_SHAPES)}")

# The same, as plain data keyed by kind name: kind -> (API group, plural, template path).
WORKLOAD_KINDS: Final[Mapping[str, tuple[str, str, tuple[str, ...]]]] = MappingProxyType(
    {kind.value: (kind.group, kind.plural, kind.template_path) for kind in WorkloadKind}
)
KIND_FOR_PLURAL: Final = {kind.plural: kind.value for kind in WorkloadKind}


def is_workload_kind(kind: Any) -> bool:
    return WorkloadKind.of(kind) is not None


def is_workload(obj: Mapping[str, Any]) -> bool:
    """One of the seven kinds, in its own API group when the object names one.

    A custom resource that reuses a name (Volcano's `Job` in `batch.volcano.sh`) is
    not a Kubernetes Job and has no pod template where a Job keeps it.
    """
    kind = WorkloadKind.of(obj.get("kind"))
    if kind is None:
        return False
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str) or not api_version:
        return True
    group = api_version.rpartition("/")[0]
    return group == kind.group or group == kind.legacy_group


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object that plays the pod: the Pod itself or its template (empty if absent)."""
    kind = WorkloadKind.of(obj.get("kind"))
    if kind is None:
        return {}
    node: Mapping[str, Any] = obj
    for step in kind.template_path:
        node = _mapping(node.get(step))
    return node


def pod_labels_path(kind: str) -> tuple[str, ...]:
    """Where a kind keeps the labels its pods get, e.g. spec.template.metadata.labels."""
    return (*WorkloadKind(kind).template_path, "metadata", "labels")


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


def created_by_controller(obj: Mapping[str, Any]) -> bool:
    """True when a workload controller owns the object (a ReplicaSet's Pod, a CronJob's Job).

    It reads the object's own ownerReferences: any reference marked `controller: true`
    whose kind is one of the seven counts, whoever wrote it.
    """
    refs = _mapping(obj.get("metadata")).get("ownerReferences")
    if not isinstance(refs, list):
        return False
    return any(
        isinstance(ref, Mapping)
        and ref.get("controller") is True
        and WorkloadKind.of(ref.get("kind")) is not None
        for ref in refs
    )

"""What a workload is, where its pods' labels live, and whether it asks for a GPU.

Seven kinds create pods: Pods themselves and six controllers that carry a pod
template. Cost attribution reads the pod's labels, so the check reads the
template's labels for controllers. Everything here is plain functions over the
object as a dict, as the API server or a manifest file gives it.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
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
        member = cls._value2member_map_.get(kind) if isinstance(kind, str) else None
        return member if isinstance(member, WorkloadKind) else None


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
    if type(value) is dict:  # what JSON gives: spares the slower ABC check below
        return value
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


# The largest magnitude a quantity may have: Kubernetes keeps quantities in an int64
# of milli-units, so anything beyond 2**63 is no quantity the API server accepts.
MAX_QUANTITY: Final = Decimal(2**63)
# Exponents far beyond MAX_QUANTITY are refused before any arithmetic, so that a
# hostile `1e999999999999` costs nothing and raises nothing.
_MAX_ADJUSTED_EXPONENT: Final = 30
_QUANTITY_CONTEXT: Final = Context(prec=60)


def _bounded(number: Decimal) -> Decimal | None:
    if not number.is_finite() or number.adjusted() > _MAX_ADJUSTED_EXPONENT:
        return None
    return number if abs(number) <= MAX_QUANTITY else None


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ("1", "500m", 2) as a Decimal; None when it is not one.

    None too for a quantity larger than the API server can store (above 2**63):
    the result is always a bounded, finite number, and nothing here raises.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _bounded(Decimal(value)) if abs(value) <= MAX_QUANTITY else None
    if isinstance(value, float | Decimal):
        return _bounded(Decimal(str(value)))
    if not isinstance(value, str) or len(value) > 100:
        return None
    return _parse_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_text(value: str) -> Decimal | None:
    """A quantity written as text; cached, as a fleet writes the same few ("1", "8", "500m")."""
    match = _QUANTITY.match(value.strip())
    if match is None:
        return None
    try:
        with localcontext(_QUANTITY_CONTEXT):
            number = _bounded(Decimal(match.group(1)))
            if number is None:
                return None
            return _bounded(number * _SUFFIXES[match.group(2) or ""])
    except ArithmeticError:  # decimal's InvalidOperation ("1.2.3"), Overflow, ...
        return None


@dataclass(frozen=True)
class GpuRequest:
    """One container's claim on one GPU resource."""

    container: str
    resource: str
    quantity: Decimal


_KNOWN_RESOURCES: Final = 1024  # resource names a GpuMatcher remembers its answer for


class GpuMatcher:
    """Decides which extended resource names are GPUs (exact names and `*`/`?` patterns)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = tuple(patterns)
        self._exact = frozenset(p for p in patterns if "*" not in p and "?" not in p)
        self._globs = tuple(
            re.compile(fnmatch.translate(p)) for p in patterns if p not in self._exact
        )
        self._known: dict[str, bool] = {}  # resource name -> answer, for the names seen

    def __call__(self, resource: str) -> bool:
        known = self._known.get(resource)
        if known is None:
            known = resource in self._exact or any(g.match(resource) for g in self._globs)
            if len(self._known) < _KNOWN_RESOURCES:  # names come from objects: bounded
                self._known[resource] = known
        return known


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


def dra_claims(obj: Mapping[str, Any]) -> list[str]:
    """The pod's Dynamic Resource Allocation claims, by name: each counts as asking for a GPU.

    A pod asks for devices through DRA in `spec.resourceClaims` (Kubernetes 1.31+),
    each entry naming a ResourceClaimTemplate (`resourceClaimTemplateName`) or a
    ResourceClaim (`resourceClaimName`). The device class that says whether the
    device is a GPU lives in that other object, which a pure check cannot read; DRA
    is used for accelerators almost only, so every such claim counts as one GPU:
    governance errs towards checking (docs/admission.md, "What is checked").
    """
    claims = _mapping(pod_template(obj).get("spec")).get("resourceClaims")
    if not isinstance(claims, list):
        return []
    found = []
    for claim in claims:
        if not isinstance(claim, Mapping):
            continue
        source = claim.get("resourceClaimTemplateName") or claim.get("resourceClaimName")
        if isinstance(source, str) and source:
            name = claim.get("name")
            found.append(name if isinstance(name, str) else "")
    return found


def asks_for_gpu(obj: Mapping[str, Any], is_gpu: GpuMatcher) -> bool:
    """A non-zero GPU quantity in a container, or a DRA resource claim.

    `bool(gpu_requests(...))` without building the list: the audit asks this of
    every object of a fleet, most of which ask for no GPU at all.
    """
    spec = _mapping(pod_template(obj).get("spec"))
    for container in _containers(spec):
        resources = _mapping(container.get("resources"))
        for section in ("requests", "limits"):
            for resource, raw in _mapping(resources.get(section)).items():
                if isinstance(resource, str) and is_gpu(resource):
                    quantity = parse_quantity(raw)
                    if quantity is None or quantity > 0:  # unparseable counts as one GPU
                        return True
    return bool(dra_claims(obj))


def is_gpu_workload(obj: Mapping[str, Any], is_gpu: GpuMatcher) -> bool:
    return is_workload(obj) and asks_for_gpu(obj, is_gpu)


# child kind -> the kinds whose controller creates it, with their API group. Only the
# built-in controllers create the seven kinds: a ReplicaSet, StatefulSet, DaemonSet or
# Job makes Pods, a Deployment makes ReplicaSets, a CronJob makes Jobs. Nothing makes
# Deployments, StatefulSets, DaemonSets or CronJobs.
CONTROLLER_OWNERS: Final[Mapping[WorkloadKind, frozenset[WorkloadKind]]] = MappingProxyType(
    {
        WorkloadKind.POD: frozenset(
            {
                WorkloadKind.REPLICA_SET,
                WorkloadKind.STATEFUL_SET,
                WorkloadKind.DAEMON_SET,
                WorkloadKind.JOB,
            }
        ),
        WorkloadKind.REPLICA_SET: frozenset({WorkloadKind.DEPLOYMENT}),
        WorkloadKind.JOB: frozenset({WorkloadKind.CRON_JOB}),
    }
)


def _owner_kind(ref: Any) -> WorkloadKind | None:
    """The workload kind of a controller ownerReference, in its own API group; else None."""
    if not isinstance(ref, Mapping) or ref.get("controller") is not True:
        return None
    kind = WorkloadKind.of(ref.get("kind"))
    api_version = ref.get("apiVersion")
    if kind is None or not isinstance(api_version, str):
        return None
    group = api_version.rpartition("/")[0]
    return kind if group == kind.group else None


def controller_reference(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The controller ownerReference naming a kind that creates the object, or None.

    A Pod of a ReplicaSet, StatefulSet, DaemonSet or Job, a ReplicaSet of a
    Deployment, a Job of a CronJob (`CONTROLLER_OWNERS`), each in its own API group
    (`apps/...`, `batch/...`). ownerReferences are written by whoever creates the
    object and the API server does not check them, so any other pair is a forgery
    (a bare Pod claiming a Deployment) and does not count. A pair that does count
    is still only a claim: docs/admission.md, "Who may claim an owner", says who
    must vouch for it (the writer at admission, the owner itself in the audit).
    """
    kind = WorkloadKind.of(obj.get("kind"))
    owners = CONTROLLER_OWNERS.get(kind) if kind is not None else None
    refs = _mapping(obj.get("metadata")).get("ownerReferences")
    if not owners or not isinstance(refs, list):
        return None
    return next((ref for ref in refs if _owner_kind(ref) in owners), None)


def created_by_controller(obj: Mapping[str, Any]) -> bool:
    """True when the object claims a controller of a kind that creates it
    (`controller_reference`); a claim, not a proof."""
    return controller_reference(obj) is not None

"""A seeded-random corpus of workloads and namespaces, for properties over many objects.

Each case varies what the verdict reads: the kind (and a kind's name in another API
group, and a kind that is not a workload), the GPU request, the pod labels (absent,
empty, null, invalid, not a string), the namespace (exempt or not, none), the exempt
annotation (on the object or its template), the controller owner reference, the
cluster mode and the namespace's mode label and cost labels.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from finops_devtools.devcluster.reviews import (
    ALICE,
    CLUSTER_ADMIN,
    COMPLETE_LABELS,
    REPLICASET_CONTROLLER,
    TEAM_A_DEV,
    workload,
)
from finops_operator.domain.config import Config, Mode
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.workloads import WorkloadKind, pod_template

BAD_VALUES: dict[str, list[Any]] = {
    "resilio.tech/team": ["ML-Research", "search-", "", None, 42],
    "resilio.tech/feature": ["", "Semantic Search", True],
    "resilio.tech/environment": ["prod", "qa", "", None],
    "resilio.tech/workload-type": ["batch-ish", ""],
    "resilio.tech/cost-center": ["1234", "cc-12\n", 4120, ""],
}
NAMESPACES = ("team-a", "team-b", "kube-system", None)
# (apiVersion, kind) of a controller ownerReference: real pairs and forged ones.
OWNERS = (
    None,
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("v1", "ReplicaSet"),
)
# Values of the exempt annotation: only "true" exempts, and only with a reason.
EXEMPT_VALUES = ("true", "true", "true", "false", "", "burn-in")
EXEMPT_REASONS = ("burn-in (FIN-1)", "burn-in (FIN-1)", "vendor-paid", "", None)
# request.userInfo of who writes the object: a cluster admin may exempt, the others not.
USERS = (CLUSTER_ADMIN, ALICE, TEAM_A_DEV, REPLICASET_CONTROLLER)
NAMESPACE_MODES = (None, "enforce", "audit", "off", "lax")
POLICIES = {mode: LabelPolicy(Config(mode=mode)) for mode in Mode}


@dataclass(frozen=True)
class Case:
    obj: dict[str, Any]
    old: dict[str, Any]
    policy: LabelPolicy
    namespaces: dict[str, dict[str, str]]
    user: Mapping[str, Any] = field(default_factory=lambda: ALICE)

    @property
    def namespace(self) -> str | None:
        value = self.obj["metadata"].get("namespace")
        return value if isinstance(value, str) else None


def _labels(rng: random.Random) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    for key, good in COMPLETE_LABELS.items():
        roll = rng.random()
        if roll < 0.55:
            labels[key] = good
        elif roll < 0.8:
            labels[key] = rng.choice(BAD_VALUES[key])
        # else: absent
    return labels


def _workload(rng: random.Random, kind: str, namespace: str | None) -> dict[str, Any]:
    gpus = rng.choice([1, 1, 1, 2, "500m", 0, "0", None, "lots"])
    obj = workload(kind, namespace=namespace or "x", labels=_labels(rng), gpus=gpus)
    if namespace is None:
        del obj["metadata"]["namespace"]
    return obj


def _case(rng: random.Random) -> Case:
    kind = rng.choice([*WorkloadKind, *WorkloadKind, "Volcano Job"])
    namespace = rng.choice(NAMESPACES)
    obj = _workload(rng, "Job" if kind == "Volcano Job" else kind, namespace)
    if kind == "Volcano Job":
        obj["apiVersion"] = "batch.volcano.sh/v1alpha1"
    if rng.random() < 0.1:
        where = obj["metadata"] if rng.random() < 0.5 else pod_template(obj)["metadata"]
        annotations = where.setdefault("annotations", {})
        annotations["finops.resilio.tech/exempt"] = rng.choice(EXEMPT_VALUES)
        reason = rng.choice(EXEMPT_REASONS)
        if reason is not None:
            annotations["finops.resilio.tech/exempt-reason"] = reason
    owner = rng.choice(OWNERS)
    if owner is not None:
        api_version, owner_kind = owner
        obj["metadata"]["ownerReferences"] = [
            {
                "apiVersion": api_version,
                "kind": owner_kind,
                "name": "o",
                "uid": "u",
                "controller": True,
            }
        ]
    old = copy.deepcopy(obj)
    if rng.random() < 0.2:  # the update adds or changes the exemption's reason
        old_meta = old["metadata"].setdefault("annotations", {})
        old_meta["finops.resilio.tech/exempt-reason"] = rng.choice(["", "earlier reason"])
    if rng.random() < 0.7:
        template = pod_template(old)
        template["metadata"]["labels"] = {"app": "llm", **_labels(rng)}
    ns_labels: dict[str, str] = {}
    ns_mode = rng.choice(NAMESPACE_MODES)
    if ns_mode is not None:
        ns_labels["finops.resilio.tech/mode"] = ns_mode
    for key, good in COMPLETE_LABELS.items():
        if rng.random() < 0.25:
            ns_labels[key] = good
    namespaces = {namespace: ns_labels} if namespace is not None else {}
    return Case(obj, old, POLICIES[rng.choice(list(Mode))], namespaces, rng.choice(USERS))


def corpus(size: int = 600, seed: int = 11) -> Iterator[Case]:
    rng = random.Random(seed)
    for _ in range(size):
        yield _case(rng)

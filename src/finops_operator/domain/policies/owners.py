"""Who vouches for an object that claims an owner: the trust rule for ownerReferences.

A Pod of a ReplicaSet, a ReplicaSet of a Deployment, a Job of a CronJob carries
the labels of a template that was judged when its owner was written, so its
violations are its owner's and are reported once, at the owner. But anyone who
may create a Pod may write any ownerReference, with the real name and uid of a
real object (issue 19: an untagged 8-GPU Job claiming its user's suspended,
non-GPU CronJob ran with no trace). So a claim counts only when someone
trustworthy vouches for it:

- **at admission, the writer**: the object is written by the
  kube-controller-manager (`CONTROLLER_USERS`), which makes children only from
  its owners' templates. Nobody else's claim counts. CEL sees the writer too, so
  the webhook's match condition and the generated ValidatingAdmissionPolicy apply
  the same rule, and nothing waits for a cache;
- **in the audit, the owner itself** (`vouch`): the audit cannot know the writer,
  so it looks the owner up in the operator's watch cache (`OwnerLookup`, a plain
  callable the controllers fill): same name and uid, a workload that asks for a
  GPU itself, and a template with the same cost labels as the object (a label the
  owner's template lacks may carry the namespace's value, as the mutating
  webhook fills it).

Everything else is judged on its own. docs/admission.md, "Who may claim an
owner", gives each attack and its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from finops_operator.domain.policies.label_check import LabelPolicy, Requester
from finops_operator.domain.workloads import (
    CONTROLLER_OWNERS,
    WorkloadKind,
    asks_for_gpu,
    controller_reference,
    pod_labels,
)

# The kube-controller-manager's identities: its own (one client for every controller)
# and, with --use-service-account-credentials (kubeadm's default, and managed clusters'),
# the ServiceAccount of each controller that makes one of the seven kinds. Only cluster
# administrators can act as them.
CONTROLLER_USERS: Final = frozenset(
    {
        "system:kube-controller-manager",
        *(
            f"system:serviceaccount:kube-system:{name}"
            for name in (
                "replicaset-controller",
                "deployment-controller",
                "statefulset-controller",
                "daemon-set-controller",
                "job-controller",
                "cronjob-controller",
            )
        ),
    }
)
# The kinds that own one of the seven: their watch events fill the owner cache.
OWNER_KINDS: Final = frozenset(kind for owners in CONTROLLER_OWNERS.values() for kind in owners)


def written_by_controller(requester: Requester) -> bool:
    """Whether an admission request comes from the kube-controller-manager."""
    return requester.username in CONTROLLER_USERS


class Vouch(StrEnum):
    """What the audit's owner cache says of an object's owner claim."""

    VOUCHED = "vouched for by its owner"
    NO_CLAIM = "claims no owner of a kind that makes it"
    OWNER_UNKNOWN = "its owner is not known (yet)"
    OTHER_UID = "its owner's name belongs to another object (uid differs)"
    OWNER_ASKS_NO_GPU = "its owner asks for no GPU"
    LABELS_DIFFER = "its cost labels differ from its owner's template"


@dataclass(frozen=True)
class OwnerRecord:
    """What the audit keeps of a workload that may own another: a few strings and a flag."""

    uid: str
    asks_for_gpu: bool
    cost_labels: tuple[tuple[str, str], ...]  # its template's, sorted by key


# (kind, namespace, name) -> the owner's record, or None when the cache has no such object
OwnerLookup = Callable[[str, str, str], OwnerRecord | None]


def _cost_labels(obj: Mapping[str, Any], policy: LabelPolicy) -> dict[str, str]:
    labels = pod_labels(obj)
    return {
        key: value
        for key in policy.config.labels
        if isinstance(value := labels.get(key), str) and value
    }


def owner_record(obj: Mapping[str, Any], policy: LabelPolicy) -> OwnerRecord:
    """The record of a workload (a watch event's body, with its `kind`) for the owner cache."""
    uid = (obj.get("metadata") or {}).get("uid")
    return OwnerRecord(
        uid if isinstance(uid, str) else "",
        asks_for_gpu(obj, policy.is_gpu),
        tuple(sorted(_cost_labels(obj, policy).items())),
    )


def vouch(
    obj: Mapping[str, Any],
    namespace: str | None,
    owners: OwnerLookup | None,
    policy: LabelPolicy,
    namespace_labels: Mapping[str, str] | None = None,
) -> Vouch:
    """Whether the owner the object claims vouches for it; see the module docstring.

    `owners` None (lint, or a caller with no cache) knows no owner. A cost label
    the owner's template lacks may be the namespace's (`namespace_labels`): the
    mutating webhook fills it on the object, and it was not the owner's to give.
    """
    ref = controller_reference(obj)
    if ref is None:
        return Vouch.NO_CLAIM
    kind = WorkloadKind.of(ref.get("kind"))
    name = ref.get("name")
    record = None
    if owners is not None and kind is not None and isinstance(name, str):
        record = owners(kind.value, namespace or "", name)
    if record is None:
        return Vouch.OWNER_UNKNOWN
    if not record.uid or record.uid != ref.get("uid"):
        return Vouch.OTHER_UID
    if not record.asks_for_gpu:
        return Vouch.OWNER_ASKS_NO_GPU
    given = dict(record.cost_labels)
    mine = _cost_labels(obj, policy)
    supplied = namespace_labels or {}
    for key in policy.config.labels:
        value = mine.get(key)
        if key in given and value != given[key]:
            return Vouch.LABELS_DIFFER
        if key not in given and value is not None and value != supplied.get(key):
            return Vouch.LABELS_DIFFER
    return Vouch.VOUCHED

"""Background audit: what a watched workload's violations annotation should say.

The admission webhook judges objects as they are written; the audit judges what
already runs (including what predates the operator) and keeps one annotation,
`finops.resilio.tech/violations`, in step with the truth. This module decides;
the operator's event handler writes, and only when the decision differs from
what the object already says, so compliant objects are never patched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from finops_operator.domain import conventions
from finops_operator.domain.policies.label_check import (
    NO_VIOLATIONS,
    Exemption,
    LabelPolicy,
    Violations,
    object_ref,
    violation_message,
)
from finops_operator.domain.policies.owners import OwnerLookup, Vouch
from finops_operator.domain.policies.verdict import Skip, Verdict, judge
from finops_operator.domain.workloads import pod_labels


class AuditReason(StrEnum):
    """Why an object carries the violations it does (or none)."""

    VIOLATING = "violating"
    COMPLIANT = "compliant"
    NOT_JUDGED = "not judged"  # not a GPU workload, exempt, or mode off: see the verdict's skip
    LEFT_TO_OWNER = "left to its owner"  # its owner vouches for it (owners.py)


@dataclass(frozen=True)
class AuditOutcome:
    violations: Violations
    desired: str | None
    current: str | None
    reason: AuditReason = AuditReason.COMPLIANT
    skip: Skip | None = None
    owner: Vouch | None = None  # what the owner cache said of its owner claim

    @property
    def owner_unknown(self) -> bool:
        """Judged on its own because its claimed owner is not in the cache (yet): the
        caller may judge it again once the owner's watch has had time to show it."""
        return self.owner is Vouch.OWNER_UNKNOWN

    @property
    def changed(self) -> bool:
        return self.desired != self.current


def audit_reason(verdict: Verdict) -> AuditReason:
    if verdict.skip is not None:
        return AuditReason.NOT_JUDGED
    if verdict.created_by_controller:
        return AuditReason.LEFT_TO_OWNER
    return AuditReason.VIOLATING if verdict.violations else AuditReason.COMPLIANT


def audit_workload(
    obj: Mapping[str, Any],
    policy: LabelPolicy,
    namespace_labels: Mapping[str, str] | None,
    owners: OwnerLookup | None = None,
) -> AuditOutcome:
    """The violations of a live object and the annotation value it should carry.

    An object its owner vouches for (`owners`, the watch cache: `owners.vouch`) is
    left to that owner: the owner carries the annotation, so a Deployment's
    violation is reported once, not once more on each ReplicaSet and Pod. Any
    other object, owner claim or not, is judged on its own.
    """
    meta = obj.get("metadata") or {}
    current = (meta.get("annotations") or {}).get(conventions.VIOLATIONS_ANNOTATION)
    verdict = judge(
        obj,
        policy=policy,
        namespace=meta.get("namespace"),
        namespace_labels=namespace_labels,
        owners=owners,
    )
    reason = audit_reason(verdict)
    if reason is AuditReason.LEFT_TO_OWNER:
        # Its controller may copy the owner's annotations onto it (a Deployment's onto its
        # ReplicaSets): removing them would start a write loop with that controller.
        return AuditOutcome(NO_VIOLATIONS, current, current, reason, verdict.skip, verdict.owner)
    found = verdict.violations if reason is AuditReason.VIOLATING else NO_VIOLATIONS
    desired = found.annotation() if found else None
    if desired is None and verdict.owner not in (None, Vouch.NO_CLAIM):
        # Compliant on its own but claiming an owner: an annotation there may be the
        # owner's, copied by its controller (as above); nothing to remove.
        desired = current
    return AuditOutcome(found, desired, current, reason, verdict.skip, verdict.owner)


def event_message(obj: Mapping[str, Any], outcome: AuditOutcome) -> str:
    meta = obj.get("metadata") or {}
    if outcome.violations:
        return violation_message(
            obj["kind"], meta.get("namespace"), meta.get("name"), outcome.violations
        )
    return f"{obj['kind']} {meta.get('namespace')}/{meta.get('name')} now carries its cost labels."


def exemption_message(obj: Mapping[str, Any], exemption: Exemption) -> str:
    """The Event message of a GPU workload exempt by annotation, with its reason.

    The audit cannot know who set the annotation; admission checked that
    (docs/admission.md, "Who may exempt"), and this records that it is in force.
    """
    meta = obj.get("metadata") or {}
    ref = object_ref(str(obj.get("kind")), meta.get("namespace"), meta.get("name"))
    return (
        f"{ref} asks for a GPU and is exempt from the cost label check by "
        f"{conventions.EXEMPT_ANNOTATION}: {exemption.detail}"
    )


def judged_state(obj: Mapping[str, Any]) -> str:
    """A short key for what the audit's decision reads from the object itself.

    Its labels, its pods' labels and its `metadata.generation` (which a change
    of the spec, GPU requests included, moves). Two watch events with the same
    key ask for the same decision about the same state of the object: the audit
    writer writes that decision once, however often, and however late, an event
    of that state comes back (a resync, a replayed watch, a status update).
    """
    meta = obj.get("metadata") or {}
    labels = meta.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    state = [meta.get("generation"), sorted(labels.items()), sorted(pod_labels(obj).items())]
    text = json.dumps(state, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

"""Background audit: what a watched workload's violations annotation should say.

The admission webhook judges objects as they are written; the audit judges what
already runs (including what predates the operator) and keeps one annotation,
`finops.resilio.tech/violations`, in step with the truth. This module decides;
the operator's event handler writes, and only when the decision differs from
what the object already says, so compliant objects are never patched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finops_operator.domain import conventions
from finops_operator.domain.policies.admission import created_by_controller, effective_mode
from finops_operator.domain.policies.label_check import (
    NO_VIOLATIONS,
    LabelPolicy,
    Violations,
    violation_message,
)


@dataclass(frozen=True)
class AuditOutcome:
    violations: Violations
    desired: str | None
    current: str | None

    @property
    def changed(self) -> bool:
        return self.desired != self.current


def audit_workload(
    obj: Mapping[str, Any], policy: LabelPolicy, namespace_labels: Mapping[str, str] | None
) -> AuditOutcome:
    """The violations of a live object and the annotation value it should carry.

    Objects created by a watched controller are left to their owner: the owner
    carries the annotation, so a Deployment's violation is reported once, not
    once more on each ReplicaSet and Pod.
    """
    meta = obj.get("metadata") or {}
    current = (meta.get("annotations") or {}).get(conventions.VIOLATIONS_ANNOTATION)
    mode = effective_mode(policy.config.mode, namespace_labels)
    if mode == "off" or created_by_controller(obj):
        found = NO_VIOLATIONS
    else:
        found = policy.check_workload(obj, meta.get("namespace"))
    return AuditOutcome(found, found.annotation() if found else None, current)


def event_message(obj: Mapping[str, Any], outcome: AuditOutcome) -> str:
    meta = obj.get("metadata") or {}
    if outcome.violations:
        return violation_message(
            obj["kind"], meta.get("namespace"), meta.get("name"), outcome.violations
        )
    return f"{obj['kind']} {meta.get('namespace')}/{meta.get('name')} now carries its cost labels."

"""Admission decisions: AdmissionReview in, AdmissionReview out, as plain dicts.

The webhook server only moves bytes. This module reads the request, asks
`verdict.judge` once for the verdict on its object (with the namespace labels the
operator has indexed), and translates that verdict into an answer: allowed or
denied, warnings, audit annotations, a JSONPatch.

The rules, as the verdict applies them (docs/admission.md explains them for users):

- Only CREATE and UPDATE of the main resource of the seven workload kinds are
  judged. Deletes, CONNECT, status and scale subresources are always allowed.
- Non-GPU workloads, exempt namespaces, exempt objects and mode `off` pass. An
  exempt annotation counts only with its reason and, when this request adds or
  changes it, only from a user `exemptions` allows (`verdict.exemption_honoured`);
  every honoured exemption is answered with a warning, and one that is not
  honoured is judged as if absent, with a note naming who and which keys allow.
- `audit` admits with Kubernetes warnings; `enforce` denies with one line.
- In `enforce`, two cases are admitted with warnings instead of denied, so that
  installing the operator never breaks workloads that already run:
  an UPDATE that adds no new violation to an old object that was itself judged
  (a GPU workload created before the operator existed can still be scaled,
  patched and rolled; adding a GPU to an untagged workload, or removing its
  exemption, is judged like a CREATE), and an object the kube-controller-manager
  writes for its owner (a Pod of a ReplicaSet, a Job of a CronJob: the pairs of
  `created_by_controller`, written by one of `owners.CONTROLLER_USERS`), whose
  template was judged when its owner was admitted. Anyone else's owner claim
  counts for nothing: the object is judged on its own.
- The mutating side fills missing cost labels from the namespace's labels and
  records which it filled in an annotation on the pod (template).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.config import ExemptionsConfig, Mode
from finops_operator.domain.policies.label_check import (
    LabelPolicy,
    Requester,
    object_ref,
    violation_message,
)
from finops_operator.domain.policies.verdict import (
    JUDGED_OPERATIONS,
    Leniency,
    Skip,
    Verdict,
    judge,
)
from finops_operator.domain.workloads import WorkloadKind, pod_template
from finops_operator.domain.workloads import created_by_controller as created_by_controller
from finops_operator.errors import MalformedReviewError

REVIEW_API_VERSION: Final = "admission.k8s.io/v1"
PREDATES_NOTE: Final = (
    "finops: admitted because these violations predate this update; fix them soon"
)


def misspelt_note(value: str) -> str:
    """The warning for an exempt annotation whose value is not `"true"`."""
    return (
        f"finops: {conventions.EXEMPT_ANNOTATION}={value!r} does not exempt; only "
        f"{conventions.EXEMPT_VALUE!r} does (put the reason in "
        f"{conventions.EXEMPT_REASON_ANNOTATION})"
    )


UNREASONED_NOTE: Final = (
    f"finops: {conventions.EXEMPT_ANNOTATION}='{conventions.EXEMPT_VALUE}' does not exempt "
    f"without a reason in {conventions.EXEMPT_REASON_ANNOTATION}"
)


def exempt_note(ref: str) -> str:
    """The warning that answers every honoured exempt annotation."""
    return (
        f"finops: {ref} is exempt from the cost label check by "
        f"{conventions.EXEMPT_ANNOTATION} (reason in {conventions.EXEMPT_REASON_ANNOTATION})"
    )


def not_honoured(requester: Requester, exemptions: ExemptionsConfig) -> str:
    """Why an exempt annotation was not honoured: who wrote it, and which keys allow whom."""
    return (
        f"The exempt annotation is not honoured: {requester} may not exempt "
        f"(only {exemptions.who_may} may)."
    )


NamespaceLabels = Mapping[str, Mapping[str, str]]


class Outcome(StrEnum):
    """What happened to a request; the `outcome` label of the admission metrics."""

    SKIPPED = "skipped"  # not judged: another operation or kind, a subresource, no GPU
    COMPLIANT = "compliant"
    EXEMPT = "exempt"  # an exempt namespace or object, or mode `off`
    WARNED = "warned"
    DENIED = "denied"
    MUTATED = "mutated"
    MALFORMED = "malformed"
    # Not judged: the operator was not ready (its namespace index not loaded), so it
    # answered 503 and the webhook's failurePolicy decided.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Request:
    """The parts of an AdmissionRequest a decision reads."""

    uid: str
    operation: str
    kind: str
    namespace: str | None
    name: str | None
    sub_resource: str
    dry_run: bool
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None
    # request.userInfo; nobody when absent (the API server always sends it).
    user: Requester = field(default_factory=Requester)

    @property
    def ref(self) -> str:
        return object_ref(self.kind, self.namespace, self.name)


@dataclass(frozen=True)
class Decision:
    """What to answer, plus what happened, for metrics and logs."""

    allowed: bool
    outcome: Outcome
    message: str = ""
    code: int = 200
    warnings: tuple[str, ...] = ()
    patch: list[dict[str, Any]] | None = None
    audit_annotations: Mapping[str, str] = field(default_factory=dict)


SKIPPED: Final = Decision(allowed=True, outcome=Outcome.SKIPPED)
EXEMPT: Final = Decision(allowed=True, outcome=Outcome.EXEMPT)
COMPLIANT: Final = Decision(allowed=True, outcome=Outcome.COMPLIANT)


def parse_review(body: Any) -> Request:
    """Read an AdmissionReview; raise MalformedReviewError saying what is missing or wrong."""
    if not isinstance(body, Mapping):
        raise MalformedReviewError("the body must be a JSON object holding an AdmissionReview")
    request = body.get("request")
    uid = request.get("uid") if isinstance(request, Mapping) else None
    uid = uid if isinstance(uid, str) and uid else None
    if body.get("kind") != "AdmissionReview" or body.get("apiVersion") != REVIEW_API_VERSION:
        raise MalformedReviewError(
            f"expected kind AdmissionReview of apiVersion {REVIEW_API_VERSION}, got kind "
            f"{body.get('kind')!r} of apiVersion {body.get('apiVersion')!r}",
            uid,
        )
    if not isinstance(request, Mapping):
        raise MalformedReviewError("the AdmissionReview has no 'request' object")
    if uid is None:
        raise MalformedReviewError("request.uid is missing or not a string")
    operation = request.get("operation")
    if not isinstance(operation, str):
        raise MalformedReviewError("request.operation is missing or not a string", uid)
    kind = request.get("kind")
    if not isinstance(kind, Mapping) or not isinstance(kind.get("kind"), str):
        raise MalformedReviewError("request.kind.kind is missing or not a string", uid)
    obj = request.get("object")
    old = request.get("oldObject")
    for label, value in (("request.object", obj), ("request.oldObject", old)):
        if value is not None and not isinstance(value, Mapping):
            raise MalformedReviewError(f"{label} must be an object or null", uid)
    if operation in JUDGED_OPERATIONS and obj is None:
        raise MalformedReviewError(f"request.object is required for {operation}", uid)
    if obj is not None and not isinstance(obj.get("metadata", {}), Mapping):
        raise MalformedReviewError("request.object.metadata must be an object", uid)
    name = request.get("name")
    namespace = request.get("namespace")
    if not name and obj is not None:
        meta = obj.get("metadata") or {}
        name = meta.get("name") or meta.get("generateName")
    sub_resource = request.get("subResource") or ""
    user = _user_info(request.get("userInfo"), uid)
    return Request(
        uid=uid,
        operation=operation,
        kind=kind["kind"],
        namespace=namespace if isinstance(namespace, str) and namespace else None,
        name=name if isinstance(name, str) else None,
        sub_resource=sub_resource if isinstance(sub_resource, str) else "?",
        dry_run=request.get("dryRun") is True,
        object=obj,
        old_object=old,
        user=user,
    )


def _user_info(info: Any, uid: str) -> Requester:
    if info is None:
        return Requester()
    if not isinstance(info, Mapping):
        raise MalformedReviewError("request.userInfo must be an object", uid)
    username = info.get("username", "")
    groups = info.get("groups") or []
    if not isinstance(username, str):
        raise MalformedReviewError("request.userInfo.username must be a string", uid)
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise MalformedReviewError("request.userInfo.groups must be a list of strings", uid)
    return Requester(username, tuple(groups))


def judge_request(request: Request, policy: LabelPolicy, namespaces: NamespaceLabels) -> Verdict:
    """The verdict on the object of an AdmissionRequest, with its namespace's labels."""
    return judge(
        request.object,
        policy=policy,
        namespace=request.namespace,
        namespace_labels=namespaces.get(request.namespace or ""),
        kind=request.kind,
        operation=request.operation,
        sub_resource=request.sub_resource,
        old=request.old_object,
        requester=request.user,
    )


def _not_judged(verdict: Verdict) -> Decision | None:
    if verdict.skip is None:
        return None
    return EXEMPT if verdict.skip.lets_through else SKIPPED


def validate(request: Request, policy: LabelPolicy, namespaces: NamespaceLabels) -> Decision:
    verdict = judge_request(request, policy, namespaces)
    if verdict.skip is Skip.EXEMPT_ANNOTATION and verdict.mode is not Mode.OFF:
        return Decision(True, Outcome.EXEMPT, warnings=(exempt_note(request.ref),))
    if (skipped := _not_judged(verdict)) is not None:
        return skipped
    refused = ""
    if verdict.refused_exemption is not None:
        refused = not_honoured(verdict.refused_exemption, policy.config.exemptions)
    found = verdict.violations
    if not found:
        if refused:
            return Decision(
                True, Outcome.COMPLIANT, warnings=(f"finops: {request.ref}: {refused}",)
            )
        return COMPLIANT
    warnings = tuple(f"finops: {request.ref}: {problem}" for problem in found.problems())
    if verdict.misspelt_exemption is not None:
        warnings = (*warnings, misspelt_note(verdict.misspelt_exemption))
    if verdict.unreasoned_exemption:
        warnings = (*warnings, UNREASONED_NOTE)
    if refused:
        warnings = (*warnings, f"finops: {request.ref}: {refused}")
    audit = {"violations": found.annotation()}
    leniency = verdict.leniency
    if leniency is Leniency.PREDATES_UPDATE:
        warnings = (*warnings, PREDATES_NOTE)
    if leniency is not None:
        return Decision(True, Outcome.WARNED, warnings=warnings, audit_annotations=audit)
    message = violation_message(request.kind, request.namespace, request.name, found)
    if refused:
        message = f"{message} {refused}"
    return Decision(
        False, Outcome.DENIED, message=message, code=403, warnings=warnings, audit_annotations=audit
    )


def mutate(request: Request, policy: LabelPolicy, namespaces: NamespaceLabels) -> Decision:
    """Fill missing cost labels from the namespace's labels; never denies."""
    verdict = judge_request(request, policy, namespaces)
    if (skipped := _not_judged(verdict)) is not None:
        return skipped
    if not verdict.inheritable:
        return COMPLIANT
    assert request.object is not None  # judged
    workload = {**request.object, "kind": request.kind}
    return Decision(True, Outcome.MUTATED, patch=inherit_patch(workload, verdict.inheritable))


def inherit_patch(obj: Mapping[str, Any], inherited: Mapping[str, str]) -> list[dict[str, Any]]:
    """A JSONPatch adding `inherited` to the pod (template) labels, noted in an annotation."""
    # The template exists: only GPU workloads get here, and their GPUs are in the template.
    meta_path = (*WorkloadKind(obj["kind"]).template_path, "metadata")
    meta = pod_template(obj).get("metadata")
    noted = set(inherited)
    if not isinstance(meta, Mapping):
        value: dict[str, Any] = {
            "labels": dict(inherited),
            "annotations": {conventions.INHERITED_ANNOTATION: ",".join(sorted(noted))},
        }
        return [_add(meta_path, value)]
    ops = []
    if isinstance(meta.get("labels"), Mapping):
        ops += [_add((*meta_path, "labels", key), value) for key, value in inherited.items()]
    else:
        ops.append(_add((*meta_path, "labels"), dict(inherited)))
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping):
        earlier = annotations.get(conventions.INHERITED_ANNOTATION)
        if isinstance(earlier, str) and earlier:
            noted |= set(earlier.split(","))
        path = (*meta_path, "annotations", conventions.INHERITED_ANNOTATION)
        ops.append(_add(path, ",".join(sorted(noted))))
    else:
        noted_map = {conventions.INHERITED_ANNOTATION: ",".join(sorted(noted))}
        ops.append(_add((*meta_path, "annotations"), noted_map))
    return ops


def _add(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    pointer = "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in path)
    return {"op": "add", "path": pointer, "value": value}


def response_review(uid: str, decision: Decision) -> dict[str, Any]:
    """The AdmissionReview the API server expects back."""
    response: dict[str, Any] = {"uid": uid, "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {
            "code": decision.code,
            "reason": "Forbidden" if decision.code == 403 else "BadRequest",
            "message": decision.message,
        }
    if decision.warnings:
        response["warnings"] = list(decision.warnings)
    if decision.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(decision.patch).encode()).decode()
    if decision.audit_annotations:
        response["auditAnnotations"] = dict(decision.audit_annotations)
    return {"apiVersion": REVIEW_API_VERSION, "kind": "AdmissionReview", "response": response}


def malformed_review(err: MalformedReviewError) -> dict[str, Any]:
    message = f"malformed AdmissionReview: {err}"
    decision = Decision(False, Outcome.MALFORMED, message=message, code=400)
    return response_review(err.uid or "", decision)

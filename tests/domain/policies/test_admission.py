"""Admission decisions, as pure functions over AdmissionReview dicts."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import (
    ALICE,
    CLUSTER_ADMIN,
    COMPLETE_LABELS,
    EXEMPT,
    EXEMPT_REASON,
    REPLICASET_CONTROLLER,
    TEAM_A_DEV,
    review,
    workload,
)
from finops_operator.domain.config import Config
from finops_operator.domain.policies import admission
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.workloads import WORKLOAD_KINDS, pod_labels, pod_template

ENFORCE = LabelPolicy(Config(mode="enforce"))
AUDIT = LabelPolicy(Config(mode="audit"))
NO_NAMESPACES: dict[str, dict[str, str]] = {}
KINDS = list(WORKLOAD_KINDS)


def decide_validate(
    body: dict[str, Any], policy: LabelPolicy = ENFORCE, namespaces: Any = NO_NAMESPACES
) -> admission.Decision:
    return admission.validate(admission.parse_review(body), policy, namespaces)


def apply_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply JSONPatch `add` operations as the API server does."""
    result = copy.deepcopy(obj)
    for op in ops:
        assert op["op"] == "add"
        steps = [s.replace("~1", "/").replace("~0", "~") for s in op["path"].split("/")[1:]]
        node = result
        for step in steps[:-1]:
            node = node[step]
        node[steps[-1]] = op["value"]
    return result


@pytest.mark.parametrize("kind", KINDS)
def test_an_untagged_gpu_workload_of_every_kind_is_denied_in_enforce(kind: str) -> None:
    decision = decide_validate(review(workload(kind)))
    assert not decision.allowed
    assert decision.code == 403
    assert f"{kind} team-a/llm" in decision.message
    assert "resilio.tech/team" in decision.message and "\n" not in decision.message


@pytest.mark.parametrize("kind", KINDS)
def test_an_untagged_gpu_workload_of_every_kind_is_admitted_with_warnings_in_audit(
    kind: str,
) -> None:
    decision = decide_validate(review(workload(kind)), AUDIT)
    assert decision.allowed
    assert len(decision.warnings) == 5
    assert any("missing resilio.tech/cost-center" in w for w in decision.warnings)
    assert json.loads(decision.audit_annotations["violations"])["missing"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_tagged_gpu_workload_is_admitted_without_warnings(kind: str) -> None:
    decision = decide_validate(review(workload(kind, labels=COMPLETE_LABELS)))
    assert (decision.allowed, decision.outcome, decision.warnings) == (True, "compliant", ())


@pytest.mark.parametrize("kind", KINDS)
def test_a_workload_without_gpus_is_skipped(kind: str) -> None:
    for gpus in (None, 0, "0"):
        decision = decide_validate(review(workload(kind, gpus=gpus)))
        assert decision is admission.SKIPPED


def test_the_denial_names_each_invalid_value_with_its_rule() -> None:
    labels = {**COMPLETE_LABELS, "resilio.tech/environment": "prod"}
    decision = decide_validate(review(workload("Deployment", labels=labels)))
    assert not decision.allowed
    assert "resilio.tech/environment='prod'" in decision.message
    assert "production, staging, development" in decision.message


@pytest.mark.parametrize(
    ("operation", "sub_resource"),
    [("DELETE", None), ("CONNECT", None), ("UPDATE", "status"), ("UPDATE", "scale")],
    ids=["deletes", "connects", "status updates", "scale changes"],
)
def test_deletes_status_and_scale_are_never_blocked(operation: str, sub_resource: str) -> None:
    obj = workload("Deployment")
    body = review(
        None if operation == "DELETE" else obj, operation, old=obj, sub_resource=sub_resource
    )
    assert decide_validate(body).allowed


def test_an_update_that_adds_no_new_violation_is_admitted_with_a_warning() -> None:
    old = workload("Deployment")
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm/vllm-openai:v0.6.4"
    decision = decide_validate(review(new, "UPDATE", old=old))
    assert decision.allowed
    assert any("predate" in w for w in decision.warnings)


def test_an_update_that_removes_a_cost_label_is_denied() -> None:
    old = workload("Deployment", labels=COMPLETE_LABELS)
    labels = {k: v for k, v in COMPLETE_LABELS.items() if k != "resilio.tech/team"}
    new = workload("Deployment", labels=labels)
    decision = decide_validate(review(new, "UPDATE", old=old))
    assert not decision.allowed
    assert "missing resilio.tech/team" in decision.message


def test_an_update_that_changes_a_bad_value_to_another_bad_value_is_denied() -> None:
    old = workload("Pod", labels={**COMPLETE_LABELS, "resilio.tech/environment": "prod"})
    new = workload("Pod", labels={**COMPLETE_LABELS, "resilio.tech/environment": "qa"})
    assert not decide_validate(review(new, "UPDATE", old=old)).allowed


def test_a_pod_created_by_its_replicaset_is_admitted_with_warnings() -> None:
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "llm-5d9",
            "uid": "u",
            "controller": True,
        }
    ]
    decision = decide_validate(review(pod, user=REPLICASET_CONTROLLER))
    assert decision.allowed and decision.warnings
    # The same claim written by anyone else counts for nothing (issue 19).
    for user in (ALICE, TEAM_A_DEV, CLUSTER_ADMIN):
        decision = decide_validate(review(pod, user=user))
        assert not decision.allowed and decision.outcome is admission.Outcome.DENIED


def test_a_pod_owned_by_something_that_is_not_a_workload_controller_is_still_denied() -> None:
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u", "controller": True}
    ]
    assert not decide_validate(review(pod)).allowed


def test_an_exempt_namespace_passes_silently_and_an_honoured_annotation_with_a_warning() -> None:
    decision = decide_validate(review(workload("Pod", namespace="kube-system")))
    assert (decision.allowed, decision.outcome, decision.warnings) == (True, "exempt", ())
    annotated = workload("Pod", annotations={EXEMPT: "true", EXEMPT_REASON: "vendor benchmark"})
    decision = decide_validate(review(annotated, user=CLUSTER_ADMIN))
    assert (decision.allowed, decision.outcome) == (True, "exempt")
    assert decision.warnings == (
        "finops: Pod team-a/llm is exempt from the cost label check by "
        "finops.resilio.tech/exempt (reason in finops.resilio.tech/exempt-reason)",
    )


def test_a_namespace_label_overrides_the_cluster_mode() -> None:
    body = review(workload("Pod"))
    audit_ns = {"team-a": {"finops.resilio.tech/mode": "audit"}}
    off_ns = {"team-a": {"finops.resilio.tech/mode": "off"}}
    enforce_ns = {"team-a": {"finops.resilio.tech/mode": "enforce"}}
    assert decide_validate(body, ENFORCE, audit_ns).outcome == "warned"
    assert decide_validate(body, ENFORCE, off_ns).outcome == "exempt"
    assert decide_validate(body, AUDIT, enforce_ns).outcome == "denied"


def test_an_unknown_namespace_mode_falls_back_to_the_cluster_mode() -> None:
    body = review(workload("Pod"))
    assert decide_validate(
        body, ENFORCE, {"team-a": {"finops.resilio.tech/mode": "lax"}}
    ).outcome == ("denied")


def test_a_dry_run_gets_the_same_answer() -> None:
    assert decide_validate(review(workload("Job"), dry_run=True)).outcome == "denied"


@pytest.mark.parametrize("kind", KINDS)
def test_missing_labels_are_filled_from_the_namespace_and_recorded(kind: str) -> None:
    obj = workload(kind, labels={"resilio.tech/team": "search-platform"})
    namespaces = {
        "team-a": {
            "resilio.tech/team": "other-team",
            "resilio.tech/cost-center": "cc-77",
            "resilio.tech/environment": "staging",
            "kubernetes.io/metadata.name": "team-a",
        }
    }
    decision = admission.mutate(admission.parse_review(review(obj)), ENFORCE, namespaces)
    assert decision.allowed and decision.patch
    patched = apply_patch({**obj}, decision.patch)
    labels = pod_labels(patched)
    assert labels["resilio.tech/team"] == "search-platform"  # never overwritten
    assert labels["resilio.tech/cost-center"] == "cc-77"
    assert labels["resilio.tech/environment"] == "staging"
    assert "kubernetes.io/metadata.name" not in labels
    noted = pod_template(patched)["metadata"]["annotations"]["finops.resilio.tech/inherited-labels"]
    assert noted == "resilio.tech/cost-center,resilio.tech/environment"


def test_inheritance_builds_the_labels_and_annotations_maps_when_absent() -> None:
    obj = workload("Pod")
    del obj["metadata"]["labels"]
    namespaces = {"team-a": {"resilio.tech/team": "search-platform"}}
    decision = admission.mutate(admission.parse_review(review(obj)), ENFORCE, namespaces)
    assert decision.patch is not None
    patched = apply_patch(obj, decision.patch)
    assert patched["metadata"]["labels"] == {"resilio.tech/team": "search-platform"}
    assert patched["metadata"]["annotations"] == {
        "finops.resilio.tech/inherited-labels": "resilio.tech/team"
    }


def test_nothing_to_inherit_means_no_patch() -> None:
    decision = admission.mutate(admission.parse_review(review(workload("Pod"))), ENFORCE, {})
    assert decision.patch is None and decision.allowed


def test_the_response_carries_a_base64_json_patch() -> None:
    namespaces = {"team-a": {"resilio.tech/team": "search-platform"}}
    body = review(workload("Pod"))
    decision = admission.mutate(admission.parse_review(body), ENFORCE, namespaces)
    answer = admission.response_review(body["request"]["uid"], decision)
    assert answer["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["response"]["patch"])) == decision.patch


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([], "JSON object"),
        ({"kind": "Pod", "apiVersion": "v1"}, "expected kind AdmissionReview"),
        ({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}, "no 'request'"),
        (
            {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}},
            "request.uid",
        ),
        (
            {
                "kind": "AdmissionReview",
                "apiVersion": "admission.k8s.io/v1",
                "request": {"uid": "1", "operation": "CREATE", "kind": {"kind": "Pod"}},
            },
            "request.object is required",
        ),
        (
            {
                "kind": "AdmissionReview",
                "apiVersion": "admission.k8s.io/v1",
                "request": {
                    "uid": "1",
                    "operation": "CREATE",
                    "kind": {"kind": "Pod"},
                    "object": 7,
                },
            },
            "request.object must be an object",
        ),
    ],
    ids=[
        "a list",
        "another kind",
        "no request",
        "no uid",
        "no object on create",
        "an object that is a number",
    ],
)
def test_a_malformed_review_is_refused_with_a_message_saying_what_is_wrong(
    body: Any, complaint: str
) -> None:
    with pytest.raises(admission.MalformedReviewError, match=complaint):
        admission.parse_review(body)


def test_the_answer_to_a_malformed_review_keeps_its_uid_when_there_is_one() -> None:
    body = {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {"uid": "abc"},
    }
    with pytest.raises(admission.MalformedReviewError) as caught:
        admission.parse_review(body)
    answer = admission.malformed_review(caught.value)
    assert answer["response"]["uid"] == "abc"
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 400

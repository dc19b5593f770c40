"""Enforce bypasses found by the adversarial review of issue 13, items 3, 4 and 11.

Each test is an attack that was admitted in enforce mode; each must now be denied,
while what the leniencies are for (an old GPU workload scaled or rolled, a Pod made
by a real ReplicaSet) is still admitted.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import (
    CLUSTER_ADMIN,
    COMPLETE_LABELS,
    REPLICASET_CONTROLLER,
    TEAM_A_DEV,
    review,
    workload,
)
from finops_operator.domain.config import Config
from finops_operator.domain.policies import admission
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.workloads import WORKLOAD_KINDS, pod_template

ENFORCE = LabelPolicy(Config(mode="enforce"))
KINDS = list(WORKLOAD_KINDS)
EXEMPT = "finops.resilio.tech/exempt"


def validate(body: dict[str, Any], policy: LabelPolicy = ENFORCE) -> admission.Decision:
    return admission.validate(admission.parse_review(body), policy, {})


def scaled(obj: dict[str, Any]) -> dict[str, Any]:
    """The same object after an unrelated change (an image bump)."""
    new = copy.deepcopy(obj)
    container = pod_template(new)["spec"]["containers"][0]
    container["image"] = "vllm/vllm-openai:v0.6.4"
    return new


# --- item 3: the UPDATE leniency needs an old object that was itself judged -------------


@pytest.mark.parametrize("kind", KINDS)
def test_adding_a_gpu_to_an_untagged_workload_is_denied(kind: str) -> None:
    # kubectl set resources ... --limits=nvidia.com/gpu=4 on a workload without GPUs
    old = workload(kind, gpus=None)
    new = workload(kind, gpus=4)
    decision = validate(review(new, "UPDATE", old=old))
    assert not decision.allowed and decision.code == 403
    assert admission.PREDATES_NOTE not in decision.warnings


@pytest.mark.parametrize("kind", KINDS)
def test_adding_a_gpu_with_a_zero_quantity_before_is_denied(kind: str) -> None:
    decision = validate(review(workload(kind, gpus=1), "UPDATE", old=workload(kind, gpus="0")))
    assert not decision.allowed


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["object", "template"])
def test_removing_the_exempt_annotation_is_denied(kind: str, where: str) -> None:
    old = workload(kind)
    meta = old["metadata"] if where == "object" or kind == "Pod" else pod_template(old)["metadata"]
    meta.setdefault("annotations", {}).update({EXEMPT: "true", f"{EXEMPT}-reason": "burn-in"})
    decision = validate(review(workload(kind), "UPDATE", old=old, user=CLUSTER_ADMIN))
    assert not decision.allowed


@pytest.mark.parametrize("kind", KINDS)
def test_an_old_untagged_gpu_workload_can_still_be_changed(kind: str) -> None:
    old = workload(kind, gpus=2)
    decision = validate(review(scaled(old), "UPDATE", old=old))
    assert decision.allowed
    assert admission.PREDATES_NOTE in decision.warnings


def test_an_update_in_an_exempt_namespace_stays_exempt() -> None:
    old = workload("Deployment", namespace="kube-system", gpus=None)
    new = workload("Deployment", namespace="kube-system", gpus=4)
    assert validate(review(new, "UPDATE", old=old)).outcome is admission.Outcome.EXEMPT


def test_an_update_of_a_workload_that_predates_a_mode_off_namespace_is_judged() -> None:
    # The namespace was `off` (nothing judged); it is `enforce` now. Its labels are the
    # namespace's now, so the old object is judged under today's mode, and the update
    # of an already violating GPU workload is admitted with the note.
    namespaces = {"team-a": {"finops.resilio.tech/mode": "enforce"}}
    old = workload("Deployment")
    request = admission.parse_review(review(scaled(old), "UPDATE", old=old))
    decision = admission.validate(request, LabelPolicy(Config(mode="off")), namespaces)
    assert decision.allowed and admission.PREDATES_NOTE in decision.warnings


# --- item 4: the exempt annotation exempts with "true" only ------------------------------


@pytest.mark.parametrize("value", ["", "false", "False", "no", "0", "yes", "TRUE", "burn-in"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_exempt_annotation_that_is_not_true_does_not_exempt(kind: str, value: str) -> None:
    decision = validate(review(workload(kind, annotations={EXEMPT: value})))
    assert not decision.allowed
    assert any("does not exempt" in warning for warning in decision.warnings)


@pytest.mark.parametrize("kind", KINDS)
def test_the_exempt_annotation_true_exempts(kind: str) -> None:
    obj = workload(kind, annotations={EXEMPT: "true", f"{EXEMPT}-reason": "burn-in"})
    decision = validate(review(obj, user=CLUSTER_ADMIN))
    assert decision.outcome is admission.Outcome.EXEMPT
    assert decision.warnings == (admission.exempt_note(f"{kind} team-a/llm"),)


# --- item 4: forged ownerReferences ------------------------------------------------------


def owned_by(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": api_version, "kind": kind, "name": "x", "uid": "u-1", "controller": True}
    ]
    return obj


@pytest.mark.parametrize(
    ("kind", "owner"),
    [
        ("Pod", ("apps/v1", "Deployment")),
        ("Pod", ("batch/v1", "CronJob")),
        ("Pod", ("v1", "Pod")),
        ("Pod", ("v1", "ReplicaSet")),  # the right kind in the wrong API group
        ("Pod", ("example.com/v1", "Job")),
        ("Deployment", ("apps/v1", "Deployment")),
        ("StatefulSet", ("apps/v1", "Deployment")),
        ("DaemonSet", ("apps/v1", "ReplicaSet")),
        ("CronJob", ("batch/v1", "CronJob")),
        ("ReplicaSet", ("apps/v1", "StatefulSet")),
        ("Job", ("batch/v1", "Job")),
    ],
)
def test_a_forged_controller_owner_is_denied(kind: str, owner: tuple[str, str]) -> None:
    decision = validate(review(owned_by(workload(kind), *owner)))
    assert not decision.allowed


@pytest.mark.parametrize(
    ("kind", "owner"),
    [
        ("Pod", ("apps/v1", "ReplicaSet")),
        ("Pod", ("apps/v1", "StatefulSet")),
        ("Pod", ("apps/v1", "DaemonSet")),
        ("Pod", ("batch/v1", "Job")),
        ("ReplicaSet", ("apps/v1", "Deployment")),
        ("Job", ("batch/v1", "CronJob")),
    ],
)
def test_what_a_real_controller_makes_is_never_locked_out(
    kind: str, owner: tuple[str, str]
) -> None:
    decision = validate(review(owned_by(workload(kind), *owner), user=REPLICASET_CONTROLLER))
    assert decision.allowed and decision.outcome is admission.Outcome.WARNED
    # Issue 19: the same real pair, claimed by a namespace admin, is judged on its own.
    decision = validate(review(owned_by(workload(kind), *owner), user=TEAM_A_DEV))
    assert not decision.allowed


# --- item 11: Intel GPUs and DRA claims are judged ---------------------------------------


@pytest.mark.parametrize("resource", ["gpu.intel.com/i915", "gpu.intel.com/xe"])
@pytest.mark.parametrize("kind", KINDS)
def test_intel_gpus_are_judged_by_default(kind: str, resource: str) -> None:
    assert not validate(review(workload(kind, resource=resource))).allowed
    tagged = workload(kind, resource=resource, labels=COMPLETE_LABELS)
    assert validate(review(tagged)).outcome is admission.Outcome.COMPLIANT


def with_claim(obj: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any]:
    spec = pod_template(obj)["spec"]
    spec["resourceClaims"] = [{"name": "gpu", **claim}]
    spec["containers"][0]["resources"]["claims"] = [{"name": "gpu"}]
    return obj


@pytest.mark.parametrize(
    "claim",
    [{"resourceClaimTemplateName": "single-gpu"}, {"resourceClaimName": "shared-a100"}],
    ids=["a claim template", "a named claim"],
)
@pytest.mark.parametrize("kind", KINDS)
def test_a_dra_resource_claim_counts_as_asking_for_a_gpu(kind: str, claim: Any) -> None:
    obj = with_claim(workload(kind, gpus=None), claim)
    assert not validate(review(obj)).allowed
    tagged = with_claim(workload(kind, gpus=None, labels=COMPLETE_LABELS), claim)
    assert validate(review(tagged)).outcome is admission.Outcome.COMPLIANT


@pytest.mark.parametrize(
    "claims",
    [[{"name": "gpu"}], [], "gpu", [7], [{"name": "gpu", "resourceClaimTemplateName": ""}]],
    ids=["no source", "none", "a string", "a number", "an empty template name"],
)
def test_resource_claims_without_a_source_do_not_count(claims: Any) -> None:
    obj = workload("Pod", gpus=None)
    obj["spec"]["resourceClaims"] = claims
    assert validate(review(obj)).outcome is admission.Outcome.SKIPPED

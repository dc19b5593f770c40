"""The one verdict: every reason not to judge, each mode, the namespace, the old object."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import (
    COMPLETE_LABELS,
    REPLICASET_CONTROLLER,
    TEAM_A_DEV,
    workload,
)
from finops_operator.domain.config import Config, Mode
from finops_operator.domain.policies.label_check import (
    NO_VIOLATIONS,
    ExemptBy,
    LabelPolicy,
    Requester,
)
from finops_operator.domain.policies.verdict import (
    Leniency,
    Operation,
    Skip,
    Verdict,
    effective_mode,
    judge,
)
from finops_operator.domain.workloads import WorkloadKind, pod_template

ENFORCE = LabelPolicy(Config(mode="enforce"))
AUDIT = LabelPolicy(Config(mode="audit"))
OFF = LabelPolicy(Config(mode="off"))
TEAM = "resilio.tech/team"
ENV = "resilio.tech/environment"
CC = "resilio.tech/cost-center"
WITHOUT_TEAM = {k: v for k, v in COMPLETE_LABELS.items() if k != TEAM}
OWNED_BY_A_REPLICASET = [
    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": True}
]


def verdict_on(obj: dict[str, Any] | None, policy: LabelPolicy = ENFORCE, **kw: Any) -> Verdict:
    namespace = kw.pop("namespace", "team-a")
    return judge(obj, policy=policy, namespace=namespace, **kw)


# --- judged or not, and why --------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "kw", "skip"),
    [
        pytest.param(workload("Pod"), {"operation": "DELETE"}, Skip.OPERATION, id="a delete"),
        pytest.param(workload("Pod"), {"operation": "CONNECT"}, Skip.OPERATION, id="a connect"),
        pytest.param(
            workload("Deployment"),
            {"operation": "UPDATE", "sub_resource": "scale"},
            Skip.SUBRESOURCE,
            id="a scale change",
        ),
        pytest.param(
            workload("Pod"),
            {"operation": "UPDATE", "sub_resource": "status"},
            Skip.SUBRESOURCE,
            id="a status update",
        ),
        pytest.param(None, {"operation": "CREATE"}, Skip.NO_OBJECT, id="no object"),
        pytest.param(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
            {},
            Skip.NOT_A_WORKLOAD,
            id="a ConfigMap",
        ),
        pytest.param(
            {**workload("Job"), "apiVersion": "batch.volcano.sh/v1alpha1"},
            {},
            Skip.OTHER_API_GROUP,
            id="Volcano's Job",
        ),
        pytest.param(workload("Job", gpus=None), {}, Skip.NO_GPU, id="no GPU"),
        pytest.param(workload("Job", gpus="0"), {}, Skip.NO_GPU, id="zero GPUs"),
        pytest.param(
            workload("Pod", namespace="kube-system"),
            {"namespace": "kube-system"},
            Skip.EXEMPT_NAMESPACE,
            id="an exempt namespace",
        ),
        pytest.param(
            workload(
                "Pod",
                annotations={
                    "finops.resilio.tech/exempt": "true",
                    "finops.resilio.tech/exempt-reason": "burn-in",
                },
            ),
            {},
            Skip.EXEMPT_ANNOTATION,
            id="the exempt annotation",
        ),
        pytest.param(workload("Pod"), {"policy": OFF}, Skip.MODE_OFF, id="mode off"),
        pytest.param(
            workload("Pod"),
            {"namespace_labels": {"finops.resilio.tech/mode": "off"}},
            Skip.MODE_OFF,
            id="a namespace in mode off",
        ),
    ],
)
def test_each_reason_not_to_judge(
    obj: dict[str, Any] | None, kw: dict[str, Any], skip: Skip
) -> None:
    verdict = verdict_on(obj, **kw)
    assert verdict.skip is skip
    assert not verdict.judged and not verdict.denied and verdict.leniency is None


@pytest.mark.parametrize("skip", list(Skip))
def test_only_exemptions_and_mode_off_let_a_covered_workload_through(skip: Skip) -> None:
    assert skip.lets_through is (
        skip in (Skip.EXEMPT_NAMESPACE, Skip.EXEMPT_ANNOTATION, Skip.MODE_OFF)
    )


def test_the_kind_given_overrides_the_objects_own() -> None:
    obj = {k: v for k, v in workload("CronJob").items() if k != "kind"}
    assert verdict_on(obj).skip is Skip.NOT_A_WORKLOAD
    verdict = verdict_on(obj, kind="CronJob")
    assert verdict.kind is WorkloadKind.CRON_JOB and verdict.judged
    assert verdict.violations.missing


@pytest.mark.parametrize("operation", [None, *Operation.__members__.values()])
def test_create_update_and_no_operation_are_judged(operation: str | None) -> None:
    verdict = verdict_on(workload("Pod"), operation=operation)
    assert verdict.judged is (operation in (None, "CREATE", "UPDATE"))


def test_a_workload_skipped_for_its_kind_or_group_is_not_a_workload_others_are() -> None:
    assert not verdict_on({"kind": "Service"}).is_workload
    assert not verdict_on({**workload("Job"), "apiVersion": "batch.volcano.sh/v1"}).is_workload
    assert verdict_on({**workload("Deployment"), "apiVersion": "extensions/v1beta1"}).is_workload
    assert verdict_on(workload("Job", gpus=None)).is_workload
    assert verdict_on(workload("Job", namespace="kube-system"), namespace="kube-system").is_workload


# --- the violations and the mode ---------------------------------------------------------


@pytest.mark.parametrize("kind", list(WorkloadKind))
def test_the_violations_are_those_of_the_pod_labels(kind: WorkloadKind) -> None:
    labels = {**WITHOUT_TEAM, ENV: "prod"}
    verdict = verdict_on(workload(kind, labels=labels))
    assert verdict.judged and verdict.kind is kind
    assert verdict.violations.missing == (TEAM,)
    assert {k: v.value for k, v in verdict.violations.invalid.items()} == {ENV: "prod"}
    assert verdict.denied


def test_a_compliant_workload_is_judged_with_no_violations() -> None:
    verdict = verdict_on(workload("Deployment", labels=COMPLETE_LABELS))
    assert verdict.judged and verdict.violations == NO_VIOLATIONS
    assert not verdict.denied and verdict.leniency is None


@pytest.mark.parametrize(
    ("cluster", "label", "mode"),
    [
        (Mode.ENFORCE, None, Mode.ENFORCE),
        (Mode.AUDIT, None, Mode.AUDIT),
        (Mode.OFF, None, Mode.OFF),
        (Mode.ENFORCE, "audit", Mode.AUDIT),
        (Mode.AUDIT, "enforce", Mode.ENFORCE),
        (Mode.ENFORCE, "off", Mode.OFF),
        (Mode.AUDIT, "lax", Mode.AUDIT),
        (Mode.OFF, "", Mode.OFF),
    ],
)
def test_the_effective_mode(cluster: Mode, label: str | None, mode: Mode) -> None:
    labels = None if label is None else {"finops.resilio.tech/mode": label}
    assert effective_mode(cluster, labels) is mode
    policy = LabelPolicy(Config(mode=cluster))
    verdict = verdict_on(workload("Pod"), policy, namespace_labels=labels)
    assert verdict.mode is mode


def test_the_mode_decides_what_violations_lead_to() -> None:
    obj = workload("Pod")
    enforce, audit, off = (verdict_on(obj, policy) for policy in (ENFORCE, AUDIT, OFF))
    assert enforce.denied and enforce.leniency is None
    assert not audit.denied and audit.leniency is Leniency.AUDIT_MODE
    assert not off.denied and off.skip is Skip.MODE_OFF
    # the labels are checked in every mode: lint reports them whatever the mode
    assert enforce.violations == audit.violations == off.violations
    assert off.violations.missing


# --- exemptions ---------------------------------------------------------------------------


@pytest.mark.parametrize("on_template", [False, True], ids=["on the object", "on the template"])
def test_the_exemption_names_the_annotation_and_its_reason(on_template: bool) -> None:
    obj = workload("Deployment")
    meta = pod_template(obj)["metadata"] if on_template else obj["metadata"]
    meta["annotations"] = {
        "finops.resilio.tech/exempt": "true",
        "finops.resilio.tech/exempt-reason": "vendor benchmark",
    }
    verdict = verdict_on(obj)
    assert verdict.exemption is not None
    assert (verdict.exemption.by, verdict.exemption.detail) == (
        ExemptBy.ANNOTATION,
        "vendor benchmark",
    )
    assert str(verdict.exemption) == "annotated finops.resilio.tech/exempt=true: vendor benchmark"
    assert verdict.violations == NO_VIOLATIONS and not verdict.inheritable


def test_the_exempt_namespace_is_the_one_given_not_the_objects() -> None:
    obj = workload("Pod", namespace="kube-system")
    verdict = verdict_on(obj, namespace="kube-system")
    assert verdict.exemption is not None and verdict.exemption.by is ExemptBy.NAMESPACE
    assert str(verdict.exemption) == "namespace kube-system is exempt by configuration"
    assert verdict_on(obj, namespace=None).judged


def test_an_exemption_comes_before_mode_off() -> None:
    obj = workload("Pod", namespace="kube-system")
    assert verdict_on(obj, OFF, namespace="kube-system").skip is Skip.EXEMPT_NAMESPACE


# --- what the namespace supplies ----------------------------------------------------------


def test_the_namespace_supplies_only_missing_cost_labels() -> None:
    obj = workload("Deployment", labels={TEAM: "search-platform", ENV: ""})
    supplied = {
        TEAM: "other-team",
        ENV: "staging",
        CC: "cc-77",
        "kubernetes.io/metadata.name": "team-a",
    }
    verdict = verdict_on(obj, namespace_labels=supplied)
    assert dict(verdict.inheritable) == {ENV: "staging", CC: "cc-77"}
    assert list(verdict.inheritable) == [ENV, CC]  # in the order of the rules


def test_an_invalid_value_is_not_replaced_by_the_namespace() -> None:
    obj = workload("Pod", labels={**COMPLETE_LABELS, ENV: "prod"})
    verdict = verdict_on(obj, namespace_labels={ENV: "staging"})
    assert not verdict.inheritable and verdict.denied


def test_nothing_is_inherited_when_the_object_is_skipped() -> None:
    obj = workload("Pod", gpus=None)
    assert not verdict_on(obj, namespace_labels={TEAM: "search-platform"}).inheritable


# --- the old object and the owner ---------------------------------------------------------


def test_an_update_that_adds_no_violation_predates_it() -> None:
    old = workload("Deployment")
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 3
    verdict = verdict_on(new, operation="UPDATE", old=old)
    assert verdict.old_violations == verdict.violations
    assert verdict.predates_update and verdict.leniency is Leniency.PREDATES_UPDATE
    assert not verdict.denied


def test_an_update_that_adds_a_violation_is_denied() -> None:
    old = workload("Deployment", labels=COMPLETE_LABELS)
    verdict = verdict_on(workload("Deployment", labels=WITHOUT_TEAM), operation="UPDATE", old=old)
    assert verdict.old_violations == NO_VIOLATIONS
    assert not verdict.predates_update and verdict.denied


def test_a_new_bad_value_for_an_old_bad_value_is_a_new_violation() -> None:
    old = workload("Pod", labels={**COMPLETE_LABELS, ENV: "prod"})
    new = workload("Pod", labels={**COMPLETE_LABELS, ENV: "qa"})
    assert verdict_on(new, operation="UPDATE", old=old).denied


def test_the_old_object_counts_only_on_an_update() -> None:
    old = workload("Pod")
    assert verdict_on(workload("Pod"), operation="CREATE", old=old).old_violations is None
    assert verdict_on(workload("Pod"), old=old).old_violations is None


def test_the_old_object_is_read_as_the_kind_given() -> None:
    old = {k: v for k, v in workload("CronJob").items() if k != "kind"}
    verdict = verdict_on(workload("CronJob"), kind="CronJob", operation="UPDATE", old=old)
    assert verdict.old_violations is not None and verdict.old_violations.missing


CONTROLLER = Requester(REPLICASET_CONTROLLER["username"], tuple(REPLICASET_CONTROLLER["groups"]))


def test_created_by_a_controller_is_lenient_before_the_old_object() -> None:
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = OWNED_BY_A_REPLICASET
    verdict = verdict_on(pod, operation="UPDATE", old=copy.deepcopy(pod), requester=CONTROLLER)
    assert verdict.created_by_controller and verdict.predates_update
    assert verdict.leniency is Leniency.CREATED_BY_CONTROLLER


@pytest.mark.parametrize(
    "requester",
    [Requester(TEAM_A_DEV["username"], tuple(TEAM_A_DEV["groups"])), Requester()],
    ids=["a namespace admin", "nobody known"],
)
def test_an_owner_claim_at_admission_counts_only_from_the_controller_manager(
    requester: Requester,
) -> None:
    # Issue 19: an untagged GPU Pod claiming a real ReplicaSet, written by its user.
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = OWNED_BY_A_REPLICASET
    verdict = verdict_on(pod, requester=requester)
    assert not verdict.created_by_controller and verdict.denied
    assert verdict_on(pod, requester=CONTROLLER).leniency is Leniency.CREATED_BY_CONTROLLER


def test_an_owner_claim_without_an_owner_cache_counts_for_nothing() -> None:
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = OWNED_BY_A_REPLICASET
    verdict = verdict_on(pod)
    assert not verdict.created_by_controller and verdict.denied


def test_audit_mode_is_the_first_leniency() -> None:
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = OWNED_BY_A_REPLICASET
    assert verdict_on(pod, AUDIT).leniency is Leniency.AUDIT_MODE


def test_an_owner_that_is_not_a_workload_controller_does_not_count() -> None:
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u", "controller": True},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u"},
    ]
    verdict = verdict_on(pod)
    assert not verdict.created_by_controller and verdict.denied


@pytest.mark.parametrize(
    "metadata",
    [{"ownerReferences": "ReplicaSet"}, {"ownerReferences": [7]}, "not a mapping"],
    ids=["a string", "a list of numbers", "metadata that is not a mapping"],
)
def test_odd_owner_references_are_not_a_controller(metadata: Any) -> None:
    pod = {**workload("Pod"), "metadata": metadata}
    assert not verdict_on(pod, namespace=None).created_by_controller

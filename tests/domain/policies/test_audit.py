"""The background audit's decision: which violations a live object's annotation should carry."""

from __future__ import annotations

import copy
import json
from typing import Any

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.domain.config import Config
from finops_operator.domain.policies.audit import (
    AuditReason,
    audit_workload,
    event_message,
    judged_state,
)
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.policies.owners import OwnerLookup, OwnerRecord
from finops_operator.domain.policies.verdict import Skip

ENFORCE = LabelPolicy(Config(mode="enforce"))
OFF_LABEL = {"finops.resilio.tech/mode": "off"}


def test_a_violating_workload_should_carry_its_violations() -> None:
    obj = workload("Deployment", labels={**COMPLETE_LABELS, "resilio.tech/environment": "prod"})
    outcome = audit_workload(obj, ENFORCE, None)
    assert outcome.reason is AuditReason.VIOLATING and outcome.skip is None
    assert outcome.desired is not None
    assert json.loads(outcome.desired) == {
        "missing": [],
        "invalid": {"resilio.tech/environment": "prod"},
    }
    assert outcome.changed
    assert "Deployment team-a/llm asks for a GPU" in event_message(obj, outcome)


def test_a_compliant_workload_carries_nothing_and_a_fixed_one_loses_its_annotation() -> None:
    obj = workload("Pod", labels=COMPLETE_LABELS)
    assert audit_workload(obj, ENFORCE, None).reason is AuditReason.COMPLIANT
    obj["metadata"]["annotations"] = {"finops.resilio.tech/violations": '{"missing":["x"]}'}
    outcome = audit_workload(obj, ENFORCE, None)
    assert outcome.desired is None and outcome.changed
    assert event_message(obj, outcome) == "Pod team-a/llm now carries its cost labels."


def test_what_is_not_judged_carries_nothing_and_says_why() -> None:
    cases = [
        (workload("Pod", gpus=None), None, Skip.NO_GPU),
        (workload("Pod", namespace="kube-system"), None, Skip.EXEMPT_NAMESPACE),
        (workload("Pod"), OFF_LABEL, Skip.MODE_OFF),
    ]
    for obj, labels, skip in cases:
        outcome = audit_workload(obj, ENFORCE, labels)
        assert (outcome.reason, outcome.skip, outcome.desired) == (
            AuditReason.NOT_JUDGED,
            skip,
            None,
        )


def _owners(kind: str, record: OwnerRecord) -> OwnerLookup:
    return lambda k, namespace, name: record if (k, name) == (kind, "r") else None


GPU_OWNER = OwnerRecord("u", asks_for_gpu=True, cost_labels=())


def test_an_object_its_owner_vouches_for_is_left_to_its_owner() -> None:
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": True}
    ]
    outcome = audit_workload(pod, ENFORCE, None, _owners("ReplicaSet", GPU_OWNER))
    assert outcome.reason is AuditReason.LEFT_TO_OWNER
    assert not outcome.violations and outcome.desired is None
    # without an owner to vouch, it is judged on its own (issue 19)
    assert audit_workload(pod, ENFORCE, None).reason is AuditReason.VIOLATING


def test_an_annotation_the_owner_copied_onto_its_replicaset_is_left_alone() -> None:
    # The Deployment controller copies a Deployment's annotations onto its ReplicaSets;
    # removing the copy would make the operator and the controller write in turn forever.
    replicaset = workload("ReplicaSet")
    replicaset["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "r", "uid": "u", "controller": True}
    ]
    copied = '{"missing":["resilio.tech/team"],"invalid":{}}'
    replicaset["metadata"]["annotations"] = {"finops.resilio.tech/violations": copied}
    outcome = audit_workload(replicaset, ENFORCE, None, _owners("Deployment", GPU_OWNER))
    assert outcome.reason is AuditReason.LEFT_TO_OWNER
    assert outcome.desired == copied and not outcome.changed


# --- judged_state: what "the same state" means for the audit writer (issue 14) ----------


def _job(**template_labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": "ml", "labels": {"app": "x"}, "generation": 1},
        "spec": {"template": {"metadata": {"labels": dict(template_labels)}, "spec": {}}},
    }


def test_a_status_update_or_an_annotation_keeps_the_judged_state() -> None:
    job = _job(team="a")
    later = copy.deepcopy(job)
    later["status"] = {"active": 1}
    later["metadata"]["annotations"] = {"finops.resilio.tech/violations": "{}"}
    later["metadata"]["resourceVersion"] = "99"
    assert judged_state(later) == judged_state(job)


def test_labels_pod_labels_or_the_generation_change_the_judged_state() -> None:
    job = _job(team="a")
    relabelled = copy.deepcopy(job)
    relabelled["metadata"]["labels"]["resilio.tech/team"] = "b"
    new_pods = _job(team="b")
    new_spec = copy.deepcopy(job)
    new_spec["metadata"]["generation"] = 2
    states = {judged_state(o) for o in (job, relabelled, new_pods, new_spec)}
    assert len(states) == 4


def test_the_judged_state_survives_odd_bodies() -> None:
    assert judged_state({}) == judged_state({"metadata": {"labels": None}})
    assert judged_state({"kind": "Pod", "metadata": {"labels": "not a map"}})

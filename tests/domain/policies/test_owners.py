"""The trust rule for owner claims: who vouches for an object that names an owner (issue 19).

At admission the writer must be the kube-controller-manager; in the audit the owner
itself must vouch: found in the cache with the claimed uid, asking for a GPU, with
the same cost labels in its template. Each way a claim fails is judged on its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, CONTROLLER_PAIRS, workload
from finops_operator.domain.config import Config
from finops_operator.domain.policies.audit import AuditReason, audit_workload
from finops_operator.domain.policies.label_check import LabelPolicy, Requester
from finops_operator.domain.policies.owners import (
    CONTROLLER_USERS,
    OwnerRecord,
    Vouch,
    owner_record,
    vouch,
    written_by_controller,
)

ENFORCE = LabelPolicy(Config(mode="enforce"))
UID = "6d8a5a1e-1f0b-4c43-9a55-5b1b3c1c2f10"
TEAM = "resilio.tech/team"


def claiming(child: dict[str, Any], owner_kind: str, uid: str = UID) -> dict[str, Any]:
    group = "batch" if owner_kind in ("Job", "CronJob") else "apps"
    child["metadata"]["ownerReferences"] = [
        {
            "apiVersion": f"{group}/v1",
            "kind": owner_kind,
            "name": "owner",
            "uid": uid,
            "controller": True,
        }
    ]
    return child


def cache_of(owner: dict[str, Any] | None) -> Any:
    """An owner cache holding `owner` (named `owner`, with uid UID) or nothing."""
    records = {}
    if owner is not None:
        owner["metadata"]["name"] = "owner"
        owner["metadata"]["uid"] = UID
        meta = owner["metadata"]
        records[(owner["kind"], meta["namespace"], meta["name"])] = owner_record(owner, ENFORCE)

    def lookup(kind: str, namespace: str, name: str) -> OwnerRecord | None:
        return records.get((kind, namespace, name))

    return lookup


@pytest.mark.parametrize(("kind", "owner_kind"), CONTROLLER_PAIRS)
def test_an_owner_with_the_uid_a_gpu_and_the_same_labels_vouches(
    kind: str, owner_kind: str
) -> None:
    labels = {TEAM: "search"}  # violating: the owner is the one reported
    owner = workload(owner_kind, labels=labels)
    child = claiming(workload(kind, labels=labels), owner_kind)
    assert vouch(child, "team-a", cache_of(owner), ENFORCE) is Vouch.VOUCHED
    outcome = audit_workload(child, ENFORCE, None, cache_of(owner))
    assert outcome.reason is AuditReason.LEFT_TO_OWNER and not outcome.violations


@pytest.mark.parametrize(("kind", "owner_kind"), CONTROLLER_PAIRS)
def test_each_failed_vouch_is_judged_on_its_own(kind: str, owner_kind: str) -> None:
    child = claiming(workload(kind), owner_kind)  # untagged, 1 GPU
    no_gpu = workload(owner_kind, gpus=None)
    labelled = workload(owner_kind, labels=COMPLETE_LABELS)
    other = claiming(workload(kind), owner_kind, uid="another-uid")
    cases = [
        (child, None, Vouch.OWNER_UNKNOWN),
        (other, workload(owner_kind), Vouch.OTHER_UID),
        (child, no_gpu, Vouch.OWNER_ASKS_NO_GPU),
        (child, labelled, Vouch.LABELS_DIFFER),
    ]
    for obj, owner, expected in cases:
        assert vouch(obj, "team-a", cache_of(owner), ENFORCE) is expected
        outcome = audit_workload(obj, ENFORCE, None, cache_of(owner))
        assert outcome.reason is AuditReason.VIOLATING, expected
        assert TEAM in outcome.violations.missing
        assert outcome.owner is expected


def test_the_cronjob_forgery_of_issue_19_is_reported() -> None:
    # A suspended, non-GPU CronJob of the user; a Job naming it (real name and uid),
    # 8 GPUs, no labels. It was left to the CronJob and never reported.
    cronjob = workload("CronJob", labels=COMPLETE_LABELS, gpus=None)
    cronjob["spec"]["suspend"] = True
    job = claiming(workload("Job", gpus=8), "CronJob")
    outcome = audit_workload(job, ENFORCE, None, cache_of(cronjob))
    assert outcome.reason is AuditReason.VIOLATING and outcome.owner is Vouch.OWNER_ASKS_NO_GPU
    assert outcome.desired is not None and outcome.changed


def test_a_label_of_the_child_may_be_the_namespaces_where_the_owner_has_none() -> None:
    # The mutating webhook fills a label the owner's template lacks from the namespace.
    owner = workload("ReplicaSet", labels={"resilio.tech/feature": "ranking"})
    child = claiming(
        workload("Pod", labels={"resilio.tech/feature": "ranking", TEAM: "a"}), "ReplicaSet"
    )
    lookup = cache_of(owner)
    assert vouch(child, "team-a", lookup, ENFORCE, {TEAM: "a"}) is Vouch.VOUCHED
    assert vouch(child, "team-a", lookup, ENFORCE, {TEAM: "b"}) is Vouch.LABELS_DIFFER
    assert vouch(child, "team-a", lookup, ENFORCE) is Vouch.LABELS_DIFFER


def test_a_child_missing_a_label_its_owner_has_is_not_vouched_for() -> None:
    owner = workload("ReplicaSet", labels={TEAM: "a"})
    child = claiming(workload("Pod"), "ReplicaSet")
    assert vouch(child, "team-a", cache_of(owner), ENFORCE) is Vouch.LABELS_DIFFER


def test_the_owner_is_looked_up_in_the_objects_namespace() -> None:
    owner = workload("ReplicaSet", namespace="team-b")
    child = claiming(workload("Pod"), "ReplicaSet")
    assert vouch(child, "team-a", cache_of(owner), ENFORCE) is Vouch.OWNER_UNKNOWN


def test_no_claim_and_no_cache() -> None:
    assert vouch(workload("Pod"), "team-a", cache_of(None), ENFORCE) is Vouch.NO_CLAIM
    child = claiming(workload("Pod"), "ReplicaSet")
    assert vouch(child, "team-a", None, ENFORCE) is Vouch.OWNER_UNKNOWN


def test_a_compliant_claimant_keeps_an_annotation_its_owner_may_have_copied() -> None:
    copied = '{"invalid":{},"missing":["resilio.tech/team"]}'
    child = claiming(workload("ReplicaSet", labels=COMPLETE_LABELS), "Deployment")
    child["metadata"]["annotations"] = {"finops.resilio.tech/violations": copied}
    outcome = audit_workload(child, ENFORCE, None, cache_of(workload("Deployment")))
    assert outcome.reason is AuditReason.COMPLIANT and not outcome.changed


@pytest.mark.parametrize(
    ("username", "trusted"),
    [
        *((user, True) for user in sorted(CONTROLLER_USERS)),
        ("system:serviceaccount:team-a:dev", False),
        ("system:serviceaccount:team-a:replicaset-controller", False),
        ("kubernetes-admin", False),
        ("", False),
    ],
)
def test_only_the_controller_manager_writes_for_an_owner_at_admission(
    username: str, trusted: bool
) -> None:
    assert written_by_controller(Requester(username)) is trusted

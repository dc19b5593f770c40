"""Owner claims on the real control plane: nobody gets GPUs by naming an owner (issue 19).

An attack round found two stealth GPUs, both by a namespace admin's ServiceAccount:
a Job naming the user's own suspended, non-GPU CronJob (real name and uid) asking
for 8 GPUs with no labels, and a bare 8-GPU Pod adopted by the user's ReplicaSet
whose template makes no pods. Both ran with no annotation, Event, PolicyReport
result or metric. Here, with the real kube-controller-manager making, adopting and
owning objects as in a cluster:

- in an `enforce` namespace both claims are refused at admission (the claim is
  written by the user, not by the kube-controller-manager), while a ReplicaSet's
  own Pods are still made;
- in an `audit` namespace both are admitted and reported: the owner asks for no
  GPU, so it does not vouch for them (annotation, Event, metric, PolicyReport),
  and the adopted Pod stays reported after the ReplicaSet took it over.
"""

from __future__ import annotations

import time
from typing import Any

import yaml

from .conftest import COMPLIANT, MODE, TEAM, Cluster, gpu_workload, wait_until
from .test_policy_reports import install_crds, report, results_by_name

ENFORCE_NS = "e2e-owners-enforce"
AUDIT_NS = "e2e-owners-audit"
VIOLATIONS = "finops.resilio.tech/violations"


def namespace_admin(cluster: Cluster, namespace: str) -> str:
    """The ServiceAccount `dev` of `namespace`, bound to the `admin` ClusterRole there."""
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "dev", "namespace": namespace},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "dev-admin", "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "dev", "namespace": namespace}],
            },
        ]
    )
    return f"system:serviceaccount:{namespace}:dev"


def as_user(
    cluster: Cluster, user: str, obj: dict[str, Any]
) -> tuple[int, str]:  # (exit code, stderr)
    proc = cluster.kubectl(
        "create", "-f", "-", f"--as={user}", input=yaml.safe_dump(obj), check=False
    )
    return proc.returncode, proc.stderr


def setting(cluster: Cluster, namespace: str, mode: str) -> tuple[str, str]:
    """The namespace admin, and the uid of their suspended CronJob that asks for no GPU."""
    cluster.namespace(namespace, {MODE: mode})
    # The ServiceAccount admission plugin refuses a Pod before any webhook sees it until
    # the controller-manager has made the namespace's default ServiceAccount.
    wait_until(
        lambda: cluster.exists("serviceaccount", "default", namespace),
        timeout=60,
        what=f"the default ServiceAccount of {namespace}",
    )
    user = namespace_admin(cluster, namespace)
    cronjob = gpu_workload("CronJob", "nightly", namespace, gpus=0)
    cronjob["spec"]["suspend"] = True
    assert as_user(cluster, user, cronjob)[0] == 0
    cronjob_uid = cluster.get("cronjob", "nightly", namespace)["metadata"]["uid"]
    return user, cronjob_uid


def stealth_job(namespace: str, cronjob_uid: str) -> dict[str, Any]:
    job = gpu_workload("Job", "stealth", namespace, gpus=8)
    job["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "nightly",
            "uid": cronjob_uid,
            "controller": True,
        }
    ]
    return job


def idle_replicaset(namespace: str, replicas: int = 1) -> dict[str, Any]:
    """A ReplicaSet whose template asks for no GPU and cannot make pods (no such account)."""
    replicaset = gpu_workload("ReplicaSet", "idle", namespace, gpus=0, replicas=replicas)
    replicaset["spec"]["template"]["spec"]["serviceAccountName"] = "does-not-exist"
    return replicaset


def squatter(namespace: str) -> dict[str, Any]:
    """A bare 8-GPU Pod with no cost labels, matching the idle ReplicaSet's selector."""
    pod = gpu_workload("Pod", "squatter", namespace, gpus=8)
    pod["metadata"]["labels"] = {"app": "idle"}
    return pod


def owned_by(obj: dict[str, Any], kind: str, name: str, uid: str) -> dict[str, Any]:
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": True}
    ]
    return obj


def test_owner_claims_by_a_namespace_admin_are_refused_in_enforce(cluster: Cluster) -> None:
    user, cronjob_uid = setting(cluster, ENFORCE_NS, "enforce")
    code, stderr = as_user(cluster, user, stealth_job(ENFORCE_NS, cronjob_uid))
    assert code != 0 and "denied" in stderr, stderr
    assert "Job e2e-owners-enforce/stealth asks for a GPU" in stderr, stderr
    assert not cluster.exists("job", "stealth", ENFORCE_NS)

    assert as_user(cluster, user, idle_replicaset(ENFORCE_NS, replicas=0))[0] == 0
    rs_uid = cluster.get("replicaset", "idle", ENFORCE_NS)["metadata"]["uid"]
    claimed = owned_by(squatter(ENFORCE_NS), "ReplicaSet", "idle", rs_uid)
    code, stderr = as_user(cluster, user, claimed)
    assert code != 0 and "Pod e2e-owners-enforce/squatter asks for a GPU" in stderr, stderr
    code, stderr = as_user(cluster, user, squatter(ENFORCE_NS))  # bare: refused as ever
    assert code != 0 and "denied" in stderr, stderr


def test_the_controller_manager_still_makes_a_replicasets_gpu_pods_in_enforce(
    cluster: Cluster,
) -> None:
    cluster.namespace(ENFORCE_NS, {MODE: "enforce"})
    made = gpu_workload("ReplicaSet", "made", ENFORCE_NS, labels=COMPLIANT, replicas=2)
    cluster.apply(made)

    def pods() -> list[Any]:
        listed = cluster.get("pods", None, ENFORCE_NS, "-l", "app=made")["items"]
        return listed if len(listed) == 2 else []

    for pod in wait_until(pods, timeout=60, what="the ReplicaSet's two GPU pods"):
        [ref] = pod["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"]) == ("ReplicaSet", "made")


def violations_of(cluster: Cluster, kind: str, name: str) -> str | None:
    annotations = cluster.get(kind, name, AUDIT_NS)["metadata"].get("annotations") or {}
    return annotations.get(VIOLATIONS)


def warning_events_of(cluster: Cluster, name: str) -> list[Any]:
    events = cluster.get("events", None, AUDIT_NS)["items"]
    return [
        e
        for e in events
        if e["involvedObject"].get("name") == name and e["reason"] == "MissingCostLabels"
    ]


def test_owner_claims_are_reported_in_audit_and_an_adopted_pod_stays_reported(
    cluster: Cluster,
) -> None:
    install_crds(cluster)
    user, cronjob_uid = setting(cluster, AUDIT_NS, "audit")
    code, stderr = as_user(cluster, user, stealth_job(AUDIT_NS, cronjob_uid))
    assert code == 0 and f"missing {TEAM}" in stderr, stderr  # admitted with warnings
    wait_until(
        lambda: violations_of(cluster, "job", "stealth"), timeout=30, what="the Job annotated"
    )
    wait_until(lambda: warning_events_of(cluster, "stealth"), timeout=30, what="its Event")
    assert cluster.metric("finops_label_violations", namespace=AUDIT_NS, kind="Job") == 1

    # The bare Pod first, then the ReplicaSet that adopts it as its one replica.
    assert as_user(cluster, user, squatter(AUDIT_NS))[0] == 0
    wait_until(
        lambda: violations_of(cluster, "pod", "squatter"), timeout=30, what="the Pod annotated"
    )
    assert as_user(cluster, user, idle_replicaset(AUDIT_NS))[0] == 0

    def adopted() -> bool:
        refs = cluster.get("pod", "squatter", AUDIT_NS)["metadata"].get("ownerReferences")
        return bool(refs) and refs[0]["name"] == "idle"

    wait_until(adopted, timeout=60, what="the ReplicaSet adopts the Pod")
    # The adoption is a watch event the audit judges again: the owner asks for no GPU,
    # so the Pod stays reported (it was left to the owner, unreported, before).
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert cluster.metric("finops_label_violations", namespace=AUDIT_NS, kind="Pod") == 1
        time.sleep(0.5)
    assert violations_of(cluster, "pod", "squatter")
    assert warning_events_of(cluster, "squatter")

    def results() -> dict[str, Any]:
        found = report(cluster, AUDIT_NS)
        by_name = results_by_name(found) if found else {}
        return by_name if {"stealth", "squatter"} <= set(by_name) else {}

    by_name = wait_until(results, timeout=60, what="both in the PolicyReport")
    assert by_name["stealth"]["result"] == "fail"
    assert by_name["squatter"]["result"] == "fail"

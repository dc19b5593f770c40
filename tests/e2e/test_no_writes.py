"""The background audit annotates what breaks the rules and never writes to anything else."""

from __future__ import annotations

import json
import time
from typing import Any

from .conftest import (
    COMPLIANT,
    MODE,
    OPERATOR_USER,
    TEAM,
    VIOLATIONS_ANNOTATION,
    Cluster,
    gpu_workload,
    wait_until,
)

NS = "e2e-audit-writes"
KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def audit_entries(cluster: Cluster) -> list[dict[str, Any]]:
    lines = cluster.audit_log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_compliant_workloads_are_never_written(cluster: Cluster) -> None:
    cluster.namespace(NS, {MODE: "audit"})
    compliant = [gpu_workload(k, f"ok-{k.lower()}", NS, COMPLIANT) for k in KINDS]
    broken = [gpu_workload(k, f"bad-{k.lower()}", NS, {TEAM: "search-platform"}) for k in KINDS]
    cluster.apply(compliant + broken)
    before = {
        (o["kind"], o["metadata"]["name"]): cluster.get(
            o["kind"].lower(), o["metadata"]["name"], NS
        )
        for o in compliant
    }

    # The audit annotates every broken workload and posts a Warning Event about it.
    def annotated() -> bool:
        for o in broken:
            live = cluster.get(o["kind"].lower(), o["metadata"]["name"], NS)
            if VIOLATIONS_ANNOTATION not in (live["metadata"].get("annotations") or {}):
                return False
        return True

    wait_until(annotated, timeout=90, what="the audit annotates the broken workloads")
    events = cluster.get("events", None, NS)["items"]
    warned = {e["involvedObject"]["name"] for e in events if e.get("type") == "Warning"}
    assert {o["metadata"]["name"] for o in broken} <= warned, warned

    for o in compliant:
        name = o["metadata"]["name"]
        live = cluster.get(o["kind"].lower(), name, NS)
        assert VIOLATIONS_ANNOTATION not in (live["metadata"].get("annotations") or {})
        managers = {m["manager"] for m in live["metadata"].get("managedFields") or []}
        assert managers <= {"kubectl-client-side-apply", "kube-controller-manager"}, (
            name,
            managers,
        )
        if o["kind"] in ("Pod", "CronJob"):
            # Nothing else changes these here (no kubelet, no schedule due): untouched.
            assert (
                live["metadata"]["resourceVersion"]
                == before[(o["kind"], name)]["metadata"]["resourceVersion"]
            ), name

    # The API server's own record: the operator wrote to no compliant object.
    names = {o["metadata"]["name"] for o in compliant}
    writes = [
        e
        for e in audit_entries(cluster)
        if e["user"]["username"] == OPERATOR_USER
        and e["verb"] in ("create", "update", "patch", "delete")
        and (e.get("objectRef") or {}).get("namespace") == NS
        and (e.get("objectRef") or {}).get("name") in names
        and (e.get("objectRef") or {}).get("resource") != "events"
    ]
    assert writes == [], writes


def test_objects_made_by_a_controller_are_left_to_it(cluster: Cluster) -> None:
    """The audit annotates a Deployment, never its ReplicaSet, and no writer fights another.

    The real Deployment controller copies the Deployment's annotations, the
    operator's violations annotation included, onto its ReplicaSets. The audit
    must leave those alone: removing the copy starts an endless patch loop with
    kube-controller-manager (kmock has no Deployment controller to show it).
    """
    ns = cluster.namespace("e2e-audit-owned", {MODE: "audit"})
    cluster.apply(gpu_workload("Deployment", "owned", ns, {TEAM: "search-platform"}))

    def deployment_annotated() -> bool:
        live = cluster.get("deployment", "owned", ns)
        return VIOLATIONS_ANNOTATION in (live["metadata"].get("annotations") or {})

    wait_until(deployment_annotated, timeout=60, what="the audit annotates the Deployment")
    rs = wait_until(
        lambda: cluster.get("replicasets", None, ns, "-l", "app=owned")["items"],
        what="the Deployment's ReplicaSet",
    )[0]
    name = rs["metadata"]["name"]
    time.sleep(5)
    first = cluster.get("replicaset", name, ns)["metadata"]["resourceVersion"]
    time.sleep(5)
    second = cluster.get("replicaset", name, ns)["metadata"]["resourceVersion"]
    patches = [
        e
        for e in audit_entries(cluster)
        if e["user"]["username"] == OPERATOR_USER
        and e["verb"] == "patch"
        and (e.get("objectRef") or {}).get("resource") == "replicasets"
        and (e.get("objectRef") or {}).get("namespace") == ns
    ]
    assert len(patches) == 0, (
        f"the operator patched the Deployment's ReplicaSet {len(patches)} times "
        f"(resourceVersion {first} -> {second} in 5s)"
    )
    assert first == second, "something keeps rewriting the ReplicaSet"

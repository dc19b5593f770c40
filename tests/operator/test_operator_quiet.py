"""A quiet cluster sees no writes but the Lease, and each violation gets exactly one Event.

The operator as a real process against the emulator, which records every write
with its User-Agent (the operator names its replica there). The cluster holds
violating, compliant and CPU-only workloads of four kinds before the operator
starts, as a cluster that predates it does. Then the events a busy cluster
sends again and again (issue 14, item 3) are sent: status updates of the
violating Jobs, and late watch events carrying the workloads as they were
before the audit annotated them (a relist or a watch-cache replay).
"""

from __future__ import annotations

import collections
import copy
import json
import time
import urllib.request
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import running_operator

VIOLATIONS = "finops.resilio.tech/violations"
KINDS = ("Deployment", "StatefulSet", "Job", "Pod")
PER_KIND = 15
NAMESPACES = 5
LEASE_SECONDS = 3
QUIET_SECONDS = 3 * LEASE_SECONDS


def fleet() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(violating workloads, every workload): violating, compliant and CPU-only of each kind."""
    violating, everything = [], []
    for kind in KINDS:
        for index in range(PER_KIND):
            namespace = f"quiet-{index % NAMESPACES}"
            bad = workload(kind, f"bad-{kind.lower()}-{index}", namespace, {"app": "x"})
            good = workload(kind, f"ok-{kind.lower()}-{index}", namespace, COMPLETE_LABELS)
            cpu = workload(kind, f"cpu-{kind.lower()}-{index}", namespace, gpus=None)
            violating.append(bad)
            everything += [bad, good, cpu]
    return violating, everything


def by_operator(cluster: KubeEmulator, since: float = 0.0) -> list[Any]:
    """The writes the operator made (the test's own come from urllib)."""
    return [
        w
        for w in cluster.writes
        if w.at >= since and w.agent.startswith("finops-operator/") and w.status < 400
    ]


def warnings_by_object(cluster: KubeEmulator) -> collections.Counter[tuple[str, str]]:
    return collections.Counter(
        (e["involvedObject"]["namespace"], e["involvedObject"]["name"])
        for e in cluster.list("Event")
        if e["reason"] == "MissingCostLabels"
    )


def reported(cluster: KubeEmulator) -> set[str]:
    """The namespaces that have the operator's PolicyReport."""
    return {r["metadata"]["namespace"] for r in cluster.list("PolicyReport")}


def annotated(cluster: KubeEmulator, obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    live = cluster.get(obj["kind"], meta["namespace"], meta["name"]) or {}
    return VIOLATIONS in ((live.get("metadata") or {}).get("annotations") or {})


def before_the_audit(cluster: KubeEmulator, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as stored (its uid, its labels), without the annotation the audit wrote."""
    meta = obj["metadata"]
    old = cluster.get(obj["kind"], meta["namespace"], meta["name"])
    old["metadata"]["annotations"].pop(VIOLATIONS)
    return dict(old)


def test_each_violation_is_written_once_and_then_only_the_lease_is(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cluster = KubeEmulator().start()
    try:
        violating, everything = fleet()
        namespaces = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"quiet-{n}"}}
            for n in range(NAMESPACES)
        ]
        cluster.preload(copy.deepcopy(namespaces + everything))
        args = ("--lease-seconds", str(LEASE_SECONDS))
        with running_operator(cluster, tmp_path_factory, {"mode": "audit"}, extra_args=args):
            eventually(lambda: all(annotated(cluster, o) for o in violating), timeout=90)
            eventually(lambda: len(warnings_by_object(cluster)) == len(violating), timeout=60)
            # Each namespace's first PolicyReport, written once its results stop moving
            # (policyReports.debounceSeconds after the audit): the last write of the start.
            eventually(lambda: reported(cluster) == {f"quiet-{n}" for n in range(NAMESPACES)})
            time.sleep(1.0)  # the last Events land
            quiet_from = time.monotonic()

            # What a busy cluster sends again and again, none of it a change of labels.
            for obj in violating:
                meta = obj["metadata"]
                if obj["kind"] == "Job":
                    status = {"status": {"active": 1, "ready": 1}}
                    cluster.patch("Job", meta["namespace"], meta["name"], status)
                cluster.replay(before_the_audit(cluster, obj))
            time.sleep(QUIET_SECONDS)

            quiet = by_operator(cluster, since=quiet_from)
            everything_written = by_operator(cluster)
            warnings = warnings_by_object(cluster)

        # Each violating workload: one annotation patch and one Warning Event, ever.
        patches = collections.Counter(w.path for w in everything_written if w.method == "PATCH")
        for obj in violating:
            meta = obj["metadata"]
            path = cluster.path(obj["kind"], meta["namespace"], meta["name"])
            assert patches[path] == 1, [w for w in everything_written if w.path == path]
            assert warnings[(meta["namespace"], meta["name"])] == 1, meta["name"]
        workload_patches = [p for p in patches if "/leases/" not in p]
        assert len(workload_patches) == len(violating)  # no compliant or CPU object
        # Once quiet: the Lease renewals, nothing else.
        assert {(w.method, w.path.rsplit("/", 2)[-2]) for w in quiet} == {("PATCH", "leases")}
        assert len(quiet) >= QUIET_SECONDS // LEASE_SECONDS * 2
    finally:
        cluster.stop()


def test_the_replay_reaches_a_watch() -> None:
    """The replay the test above relies on is delivered to a watch (so it can fail)."""
    cluster = KubeEmulator().start()
    try:
        obj = workload("Deployment", "replayed", "quiet-x")
        cluster.create(copy.deepcopy(obj))
        url = cluster.url + cluster.path("Deployment", "quiet-x") + "?watch=true"
        with urllib.request.urlopen(url, timeout=10) as stream:
            json.loads(stream.readline())  # the ADDED of the object itself
            obj["metadata"]["labels"]["marker"] = "old"
            cluster.replay(obj)
            event = json.loads(stream.readline())
        assert event["type"] == "MODIFIED"
        assert event["object"]["metadata"]["labels"]["marker"] == "old"
    finally:
        cluster.stop()

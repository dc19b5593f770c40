"""The audit's PolicyReports, from the operator as a real process against the emulator.

Every report written is checked against the upstream wg-policy CRD (the emulator
validates nothing); `policyReports.api: off` writes none. The real API server,
the OpenReports option and a missing CRD are in tests/e2e/test_policy_reports.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from tests.support.crd_schema import upstream_crd, validate_against_crd
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import running_operator

CRD = "wgpolicyk8s.io_policyreports.yaml"
VIOLATIONS = "finops.resilio.tech/violations"


def namespace(cluster: KubeEmulator, name: str) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def summary_is(cluster: KubeEmulator, ns: str, **counts: int) -> Any:
    report = cluster.get("PolicyReport", ns, "finops-labels")
    summary = (report or {}).get("summary") or {}
    return report if all(summary.get(k) == v for k, v in counts.items()) else None


def test_reports_follow_the_workloads_of_a_namespace(
    cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with running_operator(cluster, tmp_path_factory, {"mode": "audit"}):
        namespace(cluster, "reports-a")
        broken = {**COMPLETE_LABELS, "resilio.tech/environment": "prod"}
        cluster.create(workload("Job", "bad", "reports-a", labels=broken))
        cluster.create(workload("Deployment", "good", "reports-a", labels=COMPLETE_LABELS))
        cluster.create(workload("Job", "cpu-only", "reports-a", gpus=None))
        report = eventually(lambda: summary_is(cluster, "reports-a", fail=1, **{"pass": 1}))
        validate_against_crd(report, upstream_crd(CRD))
        bad = next(r for r in report["results"] if r["resources"][0]["name"] == "bad")
        assert bad["properties"] == {"invalid": "resilio.tech/environment=prod"}
        assert [r["resources"][0]["name"] for r in report["results"]] == ["good", "bad"]

        cluster.delete("Job", "reports-a", "bad")
        eventually(lambda: summary_is(cluster, "reports-a", fail=0, **{"pass": 1}))
        cluster.delete("Deployment", "reports-a", "good")
        eventually(lambda: cluster.get("PolicyReport", "reports-a", "finops-labels") is None)


@pytest.fixture
def own_cluster() -> Iterator[KubeEmulator]:
    emulator = KubeEmulator().start()
    yield emulator
    emulator.stop()


def test_off_writes_no_report(
    own_cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = {"mode": "audit", "policyReports": {"api": "off"}}
    with running_operator(own_cluster, tmp_path_factory, config):
        namespace(own_cluster, "reports-off")
        own_cluster.create(workload("Job", "bad", "reports-off", labels={}))
        eventually(
            lambda: (
                (own_cluster.get("Job", "reports-off", "bad") or {})
                .get("metadata", {})
                .get("annotations", {})
                .get(VIOLATIONS)
            )
        )
        time.sleep(3)  # more than the debounce
        path = own_cluster.path("PolicyReport", "reports-off")
        assert own_cluster.requests_to("POST", path) == []
        assert own_cluster.list("PolicyReport", "reports-off") == []

"""The audit's results as PolicyReports on the real API server, with the upstream CRDs.

The session's operator starts before these CRDs exist (scripts/e2e-cluster.sh
installs only the Prometheus Operator's): the first test shows it says so once
and writes the reports once they are installed, without a restart. Then the
reports follow deletions, two replicas write each change once (counted in the
API server's audit log), an object over etcd's limit is refused (why reports are
split), and the `openreports.io` option writes `Report`s.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.support.crd_schema import UPSTREAM_CRDS, upstream_crd

from .conftest import (
    COMPLIANT,
    MODE,
    OPERATOR_USER,
    SCRIPT,
    TEAM,
    Cluster,
    gpu_workload,
    start_second_operator,
    wait_until,
)

# From their Go modules (scripts/fetch-upstream-crds.sh), as the unit tests take them.
WGPOLICY_CRD = UPSTREAM_CRDS / "wgpolicyk8s.io_policyreports.yaml"
OPENREPORTS_CRD = UPSTREAM_CRDS / "openreports.io_reports.yaml"
NS = "e2e-policy-reports"
REPORT = "finops-labels"


def install_crds(cluster: Cluster) -> None:
    upstream_crd(WGPOLICY_CRD.name)
    upstream_crd(OPENREPORTS_CRD.name)
    for crd in (WGPOLICY_CRD, OPENREPORTS_CRD):
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
    for name in ("policyreports.wgpolicyk8s.io", "reports.openreports.io"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


def report(cluster: Cluster, namespace: str, resource: str = "policyreports") -> Any:
    if not cluster.exists(resource, REPORT, namespace):
        return None
    return cluster.get(resource, REPORT, namespace)


def results_by_name(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["resources"][0]["name"]: r for r in found.get("results") or []}


def report_writes(cluster: Cluster, namespace: str, since: int = 0) -> list[dict[str, Any]]:
    """The operator's writes to report objects in `namespace`, from the audit log."""
    data = cluster.audit_log.read_bytes()[since:].decode(errors="replace")
    found = []
    for line in data.splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (
            entry.get("user", {}).get("username") == OPERATOR_USER
            and ref.get("resource") in ("policyreports", "reports")
            and ref.get("namespace") == namespace
            and entry.get("verb") in ("create", "update", "patch", "delete")
        ):
            found.append(entry)
    return found


def test_reports_appear_once_the_crds_are_installed(cluster: Cluster) -> None:
    log_start = cluster.log_size()
    cluster.namespace(NS, {MODE: "audit"})
    broken = {TEAM: "search-platform", "resilio.tech/environment": "prod"}
    cluster.apply(
        [
            gpu_workload("Job", "untagged", NS, {}),
            gpu_workload("Deployment", "half-tagged", NS, broken),
            gpu_workload("StatefulSet", "tagged", NS, COMPLIANT),
            gpu_workload("Job", "no-gpu", NS, {}, gpus=0),
        ]
    )
    if not cluster.exists("crd", "policyreports.wgpolicyk8s.io"):
        wait_until(
            lambda: "does not serve wgpolicyk8s.io/v1alpha2" in cluster.log_since(log_start),
            timeout=60,
            what="the operator says the PolicyReport CRD is missing",
        )
        assert cluster.metric("finops_policy_reports_available") == 0
        install_crds(cluster)
    found = wait_until(
        lambda: report(cluster, NS),
        timeout=120,
        what="the operator writes the PolicyReport once the CRD is installed",
    )
    listed = cluster.kubectl("get", "policyreports", "-A").stdout
    assert NS in listed and REPORT in listed, listed
    assert found["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "finops-operator"
    assert found["summary"] == {"pass": 1, "fail": 2, "warn": 0, "error": 0, "skip": 0}
    by_name = results_by_name(found)
    assert sorted(by_name) == ["half-tagged", "tagged", "untagged"]  # no result without GPU
    assert by_name["tagged"]["result"] == "pass"
    half = by_name["half-tagged"]
    assert half["result"] == "fail" and half["source"] == "finops-operator"
    assert half["properties"]["invalid"] == "resilio.tech/environment=prod"
    assert "resilio.tech/feature" in half["properties"]["missing"]
    live = cluster.get("deployment", "half-tagged", NS)
    assert half["resources"][0]["uid"] == live["metadata"]["uid"]
    assert cluster.metric("finops_policy_reports_available") == 1
    # Said once, not once per retry.
    assert cluster.log_since(log_start).count("does not serve wgpolicyk8s.io") <= 1


def test_a_deleted_workload_loses_its_result_and_the_last_one_the_report(
    cluster: Cluster,
) -> None:
    wait_until(lambda: report(cluster, NS), timeout=60, what="the report of the first test")
    cluster.kubectl("delete", "job", "untagged", "-n", NS, "--wait=false")
    wait_until(
        lambda: "untagged" not in results_by_name(report(cluster, NS) or {}),
        timeout=60,
        what="the deleted job's result is removed",
    )
    assert report(cluster, NS)["summary"]["fail"] == 1
    cluster.kubectl("delete", "deployment,statefulset", "--all", "-n", NS, "--wait=false")
    wait_until(
        lambda: not cluster.exists("policyreports", REPORT, NS),
        timeout=60,
        what="a namespace without GPU workloads has no report",
    )


def test_an_unchanged_namespace_is_not_written_and_two_replicas_write_once(
    cluster: Cluster,
) -> None:
    namespace = "e2e-policy-reports-ha"
    b, b_port, _, b_log = start_second_operator(cluster)
    try:
        wait_until(
            lambda: b.poll() is None and cluster.metrics(b_port),
            timeout=60,
            what="the second operator serves /metrics",
        )
        since = cluster.audit_log.stat().st_size
        cluster.namespace(namespace, {MODE: "audit"})
        workloads = [
            gpu_workload("Job", f"job-{i:03d}", namespace, COMPLIANT if i % 3 else {})
            for i in range(60)
        ]
        cluster.apply(workloads)
        found = wait_until(
            lambda: (r := report(cluster, namespace)) and len(r.get("results") or []) == 60 and r,
            timeout=90,
            what="one report with the 60 jobs",
        )
        assert found["summary"]["fail"] == 20 and found["summary"]["pass"] == 40
        time.sleep(8)  # both replicas had time to write again, if they were going to
        writes = report_writes(cluster, namespace, since)
        codes = [(w["verb"], w.get("responseStatus", {}).get("code")) for w in writes]
        assert codes[0] == ("create", 201), codes
        assert all(verb == "patch" for verb, _ in codes[1:]), codes
        assert all(code is not None and code < 300 for _, code in codes), codes  # no 409
        assert len(codes) <= 2, codes  # a burst of 60 jobs: one write, two at most
        # A resync of everything (the standby elected, say) writes nothing new: every
        # job comes again with its labels as they were. A job in another namespace,
        # after them on the same watch, marks when the operator has seen them all and
        # a debounce has passed: its report is written as ours would be, if it were.
        since = cluster.audit_log.stat().st_size
        touched = copy.deepcopy(workloads)
        for job in touched:
            job["metadata"].setdefault("annotations", {})["e2e.finops.dev/touched"] = "1"
        cluster.apply(touched)
        sentinel = f"{namespace}-sentinel"
        cluster.namespace(sentinel, {MODE: "audit"})
        cluster.apply(gpu_workload("Job", "sentinel", sentinel, {}))
        wait_until(
            lambda: report(cluster, sentinel),
            timeout=60,
            what="the report of the job after the resync",
        )
        assert report_writes(cluster, namespace, since) == []
        assert cluster.metric("finops_leader", b_port) == 0
        assert b.poll() is None, b_log.read_text()
    finally:
        b.terminate()
        try:
            b.wait(timeout=20)
        except subprocess.TimeoutExpired:
            b.kill()
            b.wait()
        (Path(cluster.info["state"]) / "extra-operator-b.pid").unlink(missing_ok=True)


def test_the_api_server_refuses_one_object_with_five_thousand_results(cluster: Cluster) -> None:
    """Why big namespaces are split: 5,000 results in one object are over etcd's limit."""
    if not cluster.exists("crd", "policyreports.wgpolicyk8s.io"):
        install_crds(cluster)
    result = {
        "policy": "finops-cost-labels",
        "rule": "required-cost-labels",
        "category": "Cost allocation",
        "result": "fail",
        "scored": True,
        "source": "finops-operator",
        "message": "missing resilio.tech/cost-center",
        "properties": {"missing": "resilio.tech/cost-center"},
        "timestamp": {"seconds": 1_700_000_000, "nanos": 0},
    }
    results = [
        {
            **result,
            "resources": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "namespace": NS,
                    "name": f"job-{i:05d}",
                    "uid": f"00000000-0000-4000-8000-{i:012d}",
                }
            ],
        }
        for i in range(5000)
    ]
    big = {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "too-big", "namespace": "default"},
        "summary": {"fail": 5000},
        "results": results,
    }
    size = len(json.dumps(big, separators=(",", ":")))
    assert size > 1_572_864, size
    refused = cluster.kubectl("create", "-f", "-", input=json.dumps(big), check=False)
    assert refused.returncode != 0
    # etcd's "request is too large" (over --max-request-bytes, 1.5 MiB by default) or,
    # over 2 MiB, the API server's own gRPC client refusing to send it to etcd.
    said = (refused.stderr + refused.stdout).lower()
    assert "too large" in said or "larger than max" in said, refused.stderr
    assert not cluster.exists("policyreports", "too-big", "default")
    # Half of them, as the operator splits them (parts under 1 MB of results), is stored.
    half = {**big, "metadata": {"name": "half", "namespace": "default"}}
    half["results"], half["summary"] = results[:2200], {"fail": 2200}
    assert len(json.dumps(half, separators=(",", ":"))) < 1_000_000
    cluster.kubectl("create", "-f", "-", input=json.dumps(half))
    assert len(cluster.get("policyreports", "half", "default")["results"]) == 2200
    cluster.kubectl("delete", "policyreports", "half", "-n", "default")


def test_openreports_reports_when_configured(cluster: Cluster) -> None:
    if not cluster.exists("crd", "reports.openreports.io"):
        install_crds(cluster)
    namespace = "e2e-openreports"
    state = Path(cluster.info["state"])
    config = yaml.safe_load(Path(cluster.info["config"]).read_text()) or {}
    config["policyReports"] = {"api": "openreports.io/v1alpha1"}
    config_file = cluster.dir / "config-openreports.yaml"
    config_file.write_text(yaml.safe_dump(config))
    subprocess.run(
        ["bash", str(SCRIPT), "stop-operator", str(cluster.dir)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # The webhooks call the stopped operator's port.
    proc, metrics_port, _, log = start_second_operator(
        cluster, config_file, "openreports", webhook_port=cluster.info["webhook_port"]
    )
    try:
        wait_until(
            lambda: cluster.metric("finops_leader", metrics_port) == 1,
            timeout=90,
            what="the openreports operator leads",
        )
        cluster.namespace(namespace, {MODE: "audit"})
        cluster.apply(
            [
                gpu_workload("Job", "untagged", namespace, {}),
                gpu_workload("Job", "tagged", namespace, COMPLIANT),
            ]
        )
        found = wait_until(
            lambda: report(cluster, namespace, "reports.openreports.io"),
            timeout=90,
            what="a Report in openreports.io",
        )
        assert found["apiVersion"] == "openreports.io/v1alpha1" and found["kind"] == "Report"
        assert found["source"] == "finops-operator"
        assert found["summary"]["fail"] == 1 and found["summary"]["pass"] == 1
        listed = cluster.kubectl("get", "reports.openreports.io", "-A").stdout
        assert namespace in listed and REPORT in listed, listed
        assert not cluster.exists("policyreports", REPORT, namespace)
        # Followed as the PolicyReports are: a result removed, then the Report.
        cluster.kubectl("delete", "job", "untagged", "-n", namespace, "--wait=false")
        wait_until(
            lambda: (
                (report(cluster, namespace, "reports.openreports.io") or {})
                .get("summary", {})
                .get("fail")
                == 0
            ),
            timeout=60,
            what="the deleted job's result is removed from the Report",
        )
        cluster.kubectl("delete", "job", "tagged", "-n", namespace, "--wait=false")
        wait_until(
            lambda: not cluster.exists("reports.openreports.io", REPORT, namespace),
            timeout=60,
            what="the Report of a namespace without GPU workloads is deleted",
        )
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        (state / "extra-operator-openreports.pid").unlink(missing_ok=True)
        subprocess.run(
            ["bash", str(SCRIPT), "operator", str(cluster.dir)],
            check=True,
            capture_output=True,
            timeout=180,
        )

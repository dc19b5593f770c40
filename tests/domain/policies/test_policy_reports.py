"""The audit's results as PolicyReports: results, summary, order, comparison, size."""

from __future__ import annotations

import json
from typing import Any

import pytest

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.domain.config import Config, ReportApi, parse_config
from finops_operator.domain.policies.audit import audit_workload
from finops_operator.domain.policies.label_check import LabelPolicy, find_exemption
from finops_operator.domain.policies.owners import OwnerRecord
from finops_operator.domain.policies.policy_reports import (
    MAX_REPORT_BYTES,
    POLICY,
    SOURCE,
    ResultValue,
    WorkloadResult,
    desired_reports,
    is_part_name,
    part_name,
    report_patch,
    same_results,
    workload_result,
)
from finops_operator.errors import ConfigError
from tests.support.crd_schema import UPSTREAM_CRDS, validate_against_crd

POLICY_ENFORCE = LabelPolicy(Config(mode="enforce"))
CRDS = {
    ReportApi.WGPOLICY: UPSTREAM_CRDS / "wgpolicyk8s.io_policyreports.yaml",
    ReportApi.OPENREPORTS: UPSTREAM_CRDS / "openreports.io_reports.yaml",
}


def result_of(obj: dict[str, Any], namespace_labels: dict[str, str] | None = None) -> Any:
    obj["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}")
    outcome = audit_workload(obj, POLICY_ENFORCE, namespace_labels)
    exempt = find_exemption(obj, obj["metadata"]["namespace"], POLICY_ENFORCE.config)
    return workload_result(obj, outcome, exempt)


def test_a_violating_workload_fails_with_its_missing_and_invalid_labels_as_properties() -> None:
    labels = {**COMPLETE_LABELS, "resilio.tech/environment": "prod"}
    del labels["resilio.tech/team"], labels["resilio.tech/feature"]
    result = result_of(workload("Job", "train", labels=labels))
    assert result.result is ResultValue.FAIL
    entry = result.entry(1_700_000_000)
    assert entry["properties"] == {
        "missing": "resilio.tech/feature,resilio.tech/team",
        "invalid": "resilio.tech/environment=prod",
    }
    assert entry["resources"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "namespace": "team-a",
            "name": "train",
            "uid": "uid-train",
        }
    ]
    assert entry["policy"] == POLICY and entry["source"] == SOURCE
    assert entry["timestamp"] == {"seconds": 1_700_000_000, "nanos": 0}
    assert "missing resilio.tech/team" in entry["message"]
    assert "invalid resilio.tech/environment='prod'" in entry["message"]


def test_compliant_passes_exempt_skips_and_the_rest_has_no_result() -> None:
    assert result_of(workload("Deployment", labels=COMPLETE_LABELS)).result is ResultValue.PASS
    exempt = workload(
        "Job",
        annotations={
            "finops.resilio.tech/exempt": "true",
            "finops.resilio.tech/exempt-reason": "load test",
        },
    )
    skipped = result_of(exempt)
    assert skipped.result is ResultValue.SKIP and "load test" in skipped.message
    assert result_of(workload("Job", gpus=None)) is None  # no GPU
    assert result_of(workload("Job", namespace="kube-system")) is None  # exempt namespace
    assert result_of(workload("Job"), {"finops.resilio.tech/mode": "off"}) is None
    pod = workload("Pod")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "llm", "uid": "u", "controller": True}
    ]
    assert result_of(pod) is not None  # no owner vouches for it: judged on its own
    owner = OwnerRecord("u", asks_for_gpu=True, cost_labels=())
    outcome = audit_workload(pod, POLICY_ENFORCE, None, lambda kind, ns, name: owner)
    assert workload_result(pod, outcome, None) is None  # left to its owner, which has the result


def results(count: int, broken_every: int = 2) -> list[WorkloadResult]:
    found = []
    for i in range(count):
        labels = dict(COMPLETE_LABELS)
        if i % broken_every == 0:
            del labels["resilio.tech/cost-center"]
        found.append(result_of(workload("Job", f"job-{i:05d}", labels=labels)))
    return found


@pytest.mark.parametrize("api", [ReportApi.WGPOLICY, ReportApi.OPENREPORTS])
def test_one_report_per_namespace_sorted_with_summary_valid_against_the_upstream_crd(
    api: ReportApi,
) -> None:
    found = results(5)
    (report,) = desired_reports(api, "team-a", reversed(found), {})
    assert report["apiVersion"] == api.value and report["kind"] == api.kind
    assert report["metadata"]["name"] == "finops-labels"
    assert report["metadata"]["namespace"] == "team-a"
    assert report["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "finops-operator"}
    names = [r["resources"][0]["name"] for r in report["results"]]
    assert names == sorted(names)
    assert report["summary"] == {"pass": 2, "fail": 3, "warn": 0, "error": 0, "skip": 0}
    validate_against_crd(report, CRDS[api])


def test_no_results_no_report() -> None:
    assert desired_reports(ReportApi.WGPOLICY, "team-a", [], {}) == []


def test_timestamps_do_not_make_a_difference_but_a_changed_result_does() -> None:
    found = results(4)
    (first,) = desired_reports(ReportApi.WGPOLICY, "ns", found, {})
    later = {r.sort_key: 1_800_000_000 for r in found}
    (again,) = desired_reports(ReportApi.WGPOLICY, "ns", found, later)
    assert first != again
    assert same_results(first, again) and report_patch(first, again) is None
    changed = [*found[:-1], result_of(workload("Job", "job-00003", labels={}))]
    (third,) = desired_reports(ReportApi.WGPOLICY, "ns", changed, later)
    assert not same_results(first, third)
    patch = report_patch(first, third)
    assert patch is not None
    # the unchanged results keep the time they were first found
    assert [r["timestamp"]["seconds"] for r in patch["results"][:3]] == [0, 0, 0]
    assert patch["results"][3]["timestamp"]["seconds"] == 1_800_000_000
    assert patch["summary"]["fail"] == 3


def test_a_report_someone_relabelled_is_not_the_same() -> None:
    (report,) = desired_reports(ReportApi.WGPOLICY, "ns", results(2), {})
    edited = json.loads(json.dumps(report))
    edited["metadata"]["labels"] = {}
    assert not same_results(edited, report)


def test_five_thousand_workloads_are_split_into_parts_under_the_object_size_limit() -> None:
    found = results(5000)
    reports = desired_reports(ReportApi.WGPOLICY, "team-a", found, {})
    sizes = [len(json.dumps(r, separators=(",", ":")).encode()) for r in reports]
    assert len(reports) >= 2
    assert all(size < 1_572_864 - 100_000 for size in sizes), sizes
    assert [r["metadata"]["name"] for r in reports] == [part_name(i) for i in range(len(reports))]
    assert all(is_part_name(r["metadata"]["name"]) for r in reports)
    everything = [entry for r in reports for entry in r["results"]]
    assert len(everything) == 5000
    assert sum(r["summary"]["fail"] for r in reports) == 2500
    assert sum(r["summary"]["pass"] for r in reports) == 2500
    names = [e["resources"][0]["name"] for e in everything]
    assert names == sorted(names)
    assert MAX_REPORT_BYTES < 1_572_864


def test_part_names() -> None:
    assert not is_part_name("finops-labels-1") and not is_part_name("finops-labelsx")
    assert is_part_name("finops-labels") and is_part_name("finops-labels-12")
    assert not is_part_name("kyverno-report")


def test_the_configuration_chooses_the_api_and_names_a_bad_choice() -> None:
    assert Config().policy_reports.api is ReportApi.WGPOLICY
    chosen = parse_config({"policyReports": {"api": "openreports.io/v1alpha1"}})
    assert chosen.policy_reports.api is ReportApi.OPENREPORTS
    assert chosen.policy_reports.api.resource == ("openreports.io", "v1alpha1", "reports")
    assert ReportApi.WGPOLICY.resource == ("wgpolicyk8s.io", "v1alpha2", "policyreports")
    with pytest.raises(ConfigError, match=r"policyReports\.api"):
        parse_config({"policyReports": {"api": "wgpolicyk8s.io/v1beta1"}})

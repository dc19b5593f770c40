"""The pure parts of bench/audit_reports.py: the fleet, Kyverno's audit policy, the write tally.

The bench itself (two control planes, the operator and Kyverno's reports controller)
stays out of the suite.
"""

from __future__ import annotations

import collections

from bench.apiserver_admission import kyverno_policy
from bench.audit_reports import (
    AUDIT_LABEL,
    PODS_PER_NAMESPACE,
    Row,
    Tally,
    audit_fleet,
    audit_policy,
    delta,
    prefix_end,
    table,
    writes,
)
from bench.scale import GPUS_PER_NODE
from finops_devtools.devcluster.reviews import COMPLETE_LABELS


def test_the_fleet_is_bare_gpu_pods_one_in_ten_untagged_on_its_own_nodes() -> None:
    world, untagged = audit_fleet(1_000)
    kinds = collections.Counter(obj["kind"] for obj in world.objects)
    assert kinds == {"Pod": 1_000, "Node": 125, "Namespace": 40}
    pods = [obj for obj in world.objects if obj["kind"] == "Pod"]
    bare = [p for p in pods if not set(COMPLETE_LABELS) & set(p["metadata"]["labels"])]
    assert untagged == len(bare) == 100
    tagged = [p for p in pods if p not in bare]
    assert all(p["metadata"]["labels"].items() >= COMPLETE_LABELS.items() for p in tagged)
    assert not any("ownerReferences" in p["metadata"] for p in pods)
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert all(
        c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        for p in pods
        for c in p["spec"]["containers"]
    )
    nodes = {obj["metadata"]["name"] for obj in world.objects if obj["kind"] == "Node"}
    per_node = collections.Counter(p["spec"]["nodeName"] for p in pods)
    assert set(per_node) == nodes and max(per_node.values()) == GPUS_PER_NODE
    per_namespace = collections.Counter(p["metadata"]["namespace"] for p in pods)
    assert set(per_namespace.values()) == {PODS_PER_NAMESPACE}
    namespaces = [obj for obj in world.objects if obj["kind"] == "Namespace"]
    assert {n["metadata"]["name"] for n in namespaces} == set(per_namespace)
    assert all(n["metadata"]["labels"] == {AUDIT_LABEL: "true"} for n in namespaces)


def test_a_fleet_that_does_not_fill_its_last_namespace_still_counts_its_untagged() -> None:
    world, untagged = audit_fleet(37)
    assert untagged == 3
    assert sum(1 for obj in world.objects if obj["kind"] == "Namespace") == 2


def test_kyvernos_audit_policy_is_the_admission_rule_in_audit_on_the_fleets_namespaces() -> None:
    admission, audit = kyverno_policy(), audit_policy()
    assert audit["spec"]["validationActions"] == ["Audit"]
    assert audit["spec"]["matchConstraints"]["namespaceSelector"] == {
        "matchLabels": {AUDIT_LABEL: "true"}
    }
    assert audit["spec"]["validations"] == admission["spec"]["validations"]
    assert audit["spec"]["variables"] == admission["spec"]["variables"]
    assert "evaluation" not in audit["spec"]  # background scans on, Kyverno's default
    assert admission["spec"]["validationActions"] == ["Deny"]  # the admission bench's, untouched


METRICS = """\
# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="wgpolicyk8s.io",resource="policyreports",scope="namespace",subresource="",verb="LIST",version="v1alpha2"} 9
apiserver_request_total{code="200",component="apiserver",dry_run="",group="wgpolicyk8s.io",resource="policyreports",scope="namespace",subresource="",verb="WATCH",version="v1alpha2"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 7
# HELP apiserver_request_duration_seconds x
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_count{verb="PUT",resource="leases",group="coordination.k8s.io"} 99
"""  # noqa: E501


def test_writes_are_every_verb_but_reads_by_resource_group_and_subresource() -> None:
    assert writes(METRICS) == {
        "POST pods": 5,
        "PATCH pods/status": 4,
        "PUT leases.coordination.k8s.io": 7,
    }


def test_the_delta_keeps_what_grew_largest_first() -> None:
    before = {"POST pods": 5.0, "PUT leases": 7.0, "DELETE x": 1.0}
    after = {"POST pods": 6.0, "PUT leases": 17.0, "DELETE x": 1.0, "POST events": 3.0}
    assert list(delta(after, before).items()) == [
        ("PUT leases", 10),
        ("POST events", 3),
        ("POST pods", 1),
    ]


def test_an_etcd_prefix_range_ends_just_past_the_prefix() -> None:
    assert prefix_end("/registry/wgpolicyk8s.io/policyreports/") == (
        "/registry/wgpolicyk8s.io/policyreports0"
    )


def _report(namespace: str, name: str, fail: int, passed: int) -> dict[str, object]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "summary": {"fail": fail, "pass": passed, "skip": 0},
    }


def test_the_tally_follows_each_report_through_its_events() -> None:
    tally = Tally()
    assert tally.totals() == (0, 0, 0)
    tally.event("ADDED", _report("a", "r", 1, 3))
    tally.event("ADDED", _report("b", "r", 0, 2))
    tally.event("MODIFIED", _report("a", "r", 2, 3))
    assert tally.totals() == (2, 2, 5)
    tally.event("DELETED", _report("b", "r", 0, 2))
    assert tally.totals() == (1, 2, 3)
    tally.event("ADDED", {"metadata": {"namespace": "c", "name": "r"}})  # no summary yet
    assert tally.totals() == (2, 2, 3)


def test_the_table_has_a_row_per_side_with_its_writes_summed() -> None:
    row = Row("kyverno", 500, 50, violations_s=90.0, results_s=91.0, calm_s=96.0)
    row.writes = {"POST ephemeralreports.reports.kyverno.io": 500, "POST events": 100}
    lines = table([row]).splitlines()
    assert len(lines) == 3 and lines[0].count("|") == lines[2].count("|")
    assert "| kyverno | 500 (50) | 90 | 91 | 96 |" in lines[2]
    assert "| 600 |" in lines[2]

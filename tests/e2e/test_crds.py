"""The real API server accepts the CRDs, refuses invalid objects, and prints their columns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .conftest import Cluster

GROUP = "finops.resilio.tech"


def policy(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body = {
        "selector": {"team": "search-platform"},
        "budget": {"monthly": 20000, "currency": "USD", "thresholds": [50, 80, 100]},
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> str:
    return cluster.namespace("e2e-crds")


def test_crds_are_established_and_served(cluster: Cluster) -> None:
    for name in (f"costpolicies.{GROUP}", f"costreports.{GROUP}"):
        crd = cluster.get("customresourcedefinition", name)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NamesAccepted") == "True", conditions
        # A structural schema: the server did not flag it as non-structural.
        assert "NonStructuralSchema" not in conditions, conditions
    resources = cluster.kubectl("api-resources", "--api-group", GROUP, "-o", "name").stdout.split()
    assert sorted(resources) == [f"costpolicies.{GROUP}", f"costreports.{GROUP}"]
    # The short name and the category work through discovery.
    cluster.kubectl("get", "costpol", "-A")
    cluster.kubectl("get", "finops", "-A")


def test_a_valid_policy_is_accepted(cluster: Cluster, ns: str) -> None:
    cluster.apply(policy("valid", ns))
    assert cluster.exists("costpolicies", "valid", ns)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # OpenAPI schema
        (lambda s: s["budget"].update(monthly="a lot"), "spec.budget.monthly"),
        (lambda s: s.update(selector={"team": "-not a label value-"}), "spec.selector.team"),
        (
            lambda s: s["budget"].update(thresholds=list(range(10, 130, 10))),
            "spec.budget.thresholds",
        ),
        (lambda s: s.update(retries={"maxRestartsPerHour": 0}), "spec.retries.maxRestartsPerHour"),
        # CEL: x-kubernetes-validations
        (lambda s: s.pop("budget"), "set at least one of anomaly, budget, idle or retries"),
        (lambda s: s["budget"].update(thresholds=[80, 50]), "thresholds must be sorted"),
        (
            lambda s: s.update(alerting={"labels": {"__bad": "x"}}),
            "label names are letters, digits and _",
        ),
        (lambda s: s.update(alerting={"labels": {"team": "x"}}), "cannot be overridden"),
        (
            lambda s: s.update(alerting={"labels": {"route": "{{ $value }}"}}),
            "may not contain {{ or }}",
        ),
    ],
    ids=[
        "monthly-not-a-number",
        "bad-team-value",
        "too-many-thresholds",
        "zero-restarts",
        "cel-nothing-to-do",
        "cel-unsorted-thresholds",
        "cel-bad-alert-label",
        "cel-reserved-alert-label",
        "cel-template-in-label",
    ],
)
def test_invalid_policies_are_refused(
    cluster: Cluster, ns: str, change: Any, message: str, request: pytest.FixtureRequest
) -> None:
    name = "invalid-" + request.node.callspec.id
    obj = policy(name, ns)
    spec = copy.deepcopy(obj["spec"])
    change(spec)
    obj["spec"] = spec
    proc = cluster.apply(obj, check=False)
    assert proc.returncode != 0, f"accepted: {obj}"
    assert "is invalid" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not cluster.exists("costpolicies", name, ns)


def test_a_costreport_spec_cannot_change(cluster: Cluster) -> None:
    """CostReports are immutable once created (CEL `self == oldSelf` on spec)."""
    report = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "CostReport",
        "metadata": {"name": "e2e-immutable"},
        "spec": {"scope": "team", "team": "e2e", "period": "2024-01"},
    }
    cluster.apply(report)
    try:
        report["spec"]["team"] = "someone-else"
        proc = cluster.apply(report, check=False)
        assert proc.returncode != 0
        assert "is invalid" in proc.stderr, proc.stderr
        proc = cluster.apply(
            {**report, "spec": {"scope": "team", "period": "2024-02"}}, check=False
        )
        assert proc.returncode != 0
    finally:
        cluster.kubectl("delete", "costreport", "e2e-immutable", "--wait=false")


def test_a_team_report_names_its_team(cluster: Cluster) -> None:
    proc = cluster.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "CostReport",
            "metadata": {"name": "e2e-no-team"},
            "spec": {"scope": "team", "period": "2024-01"},
        },
        check=False,
    )
    assert proc.returncode != 0
    assert "a team report names its team" in proc.stderr, proc.stderr


def test_kubectl_get_prints_the_servers_columns(cluster: Cluster, ns: str) -> None:
    cluster.apply(policy("columns", ns))
    out = cluster.kubectl("get", "costpolicies,costreports", "-A").stdout
    lines = out.splitlines()
    headers = [
        line.split() for line in lines if line.startswith("NAMESPACE") or line.startswith("NAME ")
    ]
    # "RULES EVALUATING" is one column (two words, as kubectl prints "NOMINATED NODE").
    assert ["NAMESPACE", "NAME", "READY", "RULES", "EVALUATING", "TEAM", "RULES", "AGE"] in (
        headers
    ), out
    wide = cluster.kubectl("get", "costpolicies", "-n", ns, "-o", "wide").stdout
    assert wide.splitlines()[0].split() == [
        "NAME",
        "READY",
        "RULES",
        "EVALUATING",
        "TEAM",
        "SCOPE",
        "RULES",
        "PROMETHEUSRULE",
        "MESSAGE",
        "AGE",
    ], wide
    row = next(line for line in wide.splitlines() if line.startswith("columns "))
    assert "search-platform" in row
    # CostReports: the operator writes them (test_cost_reports); one by hand for the header.
    cluster.apply(
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "CostReport",
            "metadata": {"name": "e2e-columns"},
            "spec": {"scope": "team", "team": "e2e", "period": "2024-03"},
        }
    )
    try:
        reports = cluster.kubectl("get", "costreports", "e2e-columns", "-o", "wide").stdout
        assert reports.splitlines()[0].split() == [
            "NAME",
            "TEAM",
            "PERIOD",
            "GPU",
            "HOURS",
            "COST",
            "CURRENCY",
            "IDLE",
            "%",
            "BUDGET",
            "%",
            "FORECAST",
            "STALE",
            "DATA",
            "THROUGH",
            "AGE",
        ], reports
        assert reports.splitlines()[1].split()[:3] == ["e2e-columns", "e2e", "2024-03"], reports
    finally:
        cluster.kubectl("delete", "costreport", "e2e-columns", "--wait=false")

"""The CostPolicy CRD: a valid apiextensions/v1 object whose schema refuses what it can.

Samples go through the schema the way the API server applies it (tests/crd_schema.py)
and through the domain model, which must refuse at least everything the schema does.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from finops_operator.domain.rules.cost_policy import parse_cost_policy
from finops_operator.errors import CostPolicyError
from tests.support.crd_schema import crd_errors, served_schema, untyped_nodes
from tests.support.paths import ROOT, TESTS

CRD = ROOT / "crds" / "costpolicies.finops.resilio.tech.yaml"
GOLDEN_POLICIES = sorted((TESTS / "golden" / "policies").glob("*.yaml"))

EXAMPLE: dict[str, Any] = {
    "apiVersion": "finops.resilio.tech/v1alpha1",
    "kind": "CostPolicy",
    "metadata": {"name": "search-platform", "namespace": "finops"},
    "spec": {
        "selector": {"team": "search-platform", "environment": "production"},
        "anomaly": {"threshold": 50, "baseline": "7d", "for": "15m", "minHourlyCost": 5},
        "budget": {"monthly": 20000, "currency": "USD", "thresholds": [50, 80, 100]},
        "idle": {"maxUtilization": 10, "for": "2h"},
        "retries": {"maxRestartsPerHour": 6},
        "alerting": {"severity": "critical", "ruleLabels": {"release": "kube-prometheus-stack"}},
    },
}


def with_spec(**changes: Any) -> dict[str, Any]:
    """The example with spec paths replaced, e.g. `budget__thresholds=[80, 50]`; None deletes."""
    policy = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = policy["spec"]
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return policy


def test_the_crd_is_a_valid_apiextensions_v1_object() -> None:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    kubernetes_validate.validate(crd, "1.30.0", strict=True)
    assert crd["spec"]["group"] == "finops.resilio.tech"
    assert crd["spec"]["scope"] == "Namespaced"
    [version] = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"] for column in version["additionalPrinterColumns"]}
    assert {"Ready", "Rules Evaluating", "Rules", "Age"} <= columns


def test_the_crd_schema_is_structural_every_field_has_a_type() -> None:
    assert untyped_nodes(served_schema(CRD)) == []


def test_the_status_schema_holds_what_the_operator_reports() -> None:
    status = served_schema(CRD)["properties"]["status"]["properties"]
    assert {"conditions", "observedGeneration", "ruleName", "ruleCount", "message"} <= set(status)


@pytest.mark.parametrize("policy_file", GOLDEN_POLICIES, ids=lambda path: path.stem)
def test_every_golden_policy_is_accepted_by_the_crd(policy_file: Path) -> None:
    assert crd_errors(yaml.safe_load(policy_file.read_text(encoding="utf-8")), CRD) == []


def test_the_design_example_is_accepted_by_the_crd() -> None:
    assert crd_errors(EXAMPLE, CRD) == []


def test_status_written_by_the_operator_is_accepted() -> None:
    policy = copy.deepcopy(EXAMPLE)
    policy["status"] = {
        "observedGeneration": 3,
        "ruleName": "costpolicy-search-platform",
        "ruleCount": 8,
        "message": "8 rules in PrometheusRule finops/costpolicy-search-platform",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Rendered",
                "message": "ok",
                "lastTransitionTime": "2026-11-02T10:00:00Z",
                "observedGeneration": 3,
            }
        ],
    }
    assert crd_errors(policy, CRD) == []


REFUSED = {
    "team with PromQL": (with_spec(selector={"team": 'a"} or vector(1) #'}), "spec.selector.team"),
    "team too long": (with_spec(selector={"team": "a" * 64}), "spec.selector.team"),
    "threshold of zero": (with_spec(anomaly__threshold=0), "spec.anomaly.threshold"),
    "threshold as text": (with_spec(anomaly__threshold="50"), "spec.anomaly.threshold"),
    "duration in words": (with_spec(anomaly__for="15 minutes"), "spec.anomaly.for"),
    "negative budget": (with_spec(budget__monthly=-5), "spec.budget.monthly"),
    "budget of 1e26": (with_spec(budget__monthly=1e26), "spec.budget.monthly"),
    "budget above 1e12": (with_spec(budget__monthly=10**12 + 1), "spec.budget.monthly"),
    "minHourlyCost of 1e26": (with_spec(anomaly__minHourlyCost=1e26), "spec.anomaly.minHourlyCost"),
    "rule label value with a space": (
        with_spec(alerting__ruleLabels={"release": "kube prometheus"}),
        "spec.alerting.ruleLabels",
    ),
    "rule label key too long": (
        with_spec(alerting__ruleLabels={"a" * 318: "x"}),
        "spec.alerting.ruleLabels",
    ),
    "alert label name too long": (
        with_spec(alerting__labels={"a" * 129: "x"}),
        "spec.alerting.labels",
    ),
    "currency in lower case": (with_spec(budget__currency="usd"), "spec.budget.currency"),
    "unsorted thresholds": (with_spec(budget__thresholds=[80, 50]), "spec.budget.thresholds"),
    "repeated thresholds": (with_spec(budget__thresholds=[50, 50]), "spec.budget.thresholds"),
    "utilization over 100": (with_spec(idle__maxUtilization=150), "spec.idle.maxUtilization"),
    "fractional restarts": (
        with_spec(retries__maxRestartsPerHour=2.5),
        "spec.retries.maxRestartsPerHour",
    ),
    "unknown severity": (with_spec(alerting__severity="page"), "spec.alerting.severity"),
    "alert label overriding team": (
        with_spec(alerting__labels={"team": "other"}),
        "spec.alerting.labels",
    ),
    "alert label with a template": (
        with_spec(alerting__labels={"note": '{{ query "up" }}'}),
        "spec.alerting.labels",
    ),
    "alert label name with a dash": (
        with_spec(alerting__labels={"on-call": "x"}),
        "spec.alerting.labels",
    ),
    "nothing to alert on": (
        with_spec(anomaly=None, budget=None, idle=None, retries=None),
        "spec",
    ),
    "unknown scope": (with_spec(scope="cpu"), "spec.scope"),
    "scope in capitals": (with_spec(scope="All"), "spec.scope"),
    "unknown clusters": (with_spec(clusters="some"), "spec.clusters"),
    "idle alerts over every cluster": (with_spec(clusters="all", retries=None), "spec"),
    "retry alerts over every cluster": (with_spec(clusters="all", idle=None), "spec"),
}


ACCEPTED = {
    "untagged team": with_spec(selector={"team": "__untagged__"}),
    "untagged cost center": with_spec(selector={"team": "search", "costCenter": "__untagged__"}),
    "budget of 1e12": with_spec(budget__monthly=10**12),
    "minHourlyCost of 1e12": with_spec(anomaly__minHourlyCost=10**12),
    "scope gpu": with_spec(scope="gpu"),
    "scope tokens": with_spec(scope="tokens"),
    "scope all": with_spec(scope="all"),
    "own cluster": with_spec(clusters="own"),
    "budget and anomaly over every cluster": with_spec(clusters="all", idle=None, retries=None),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_crd_and_the_domain_accept_the_edges_the_docs_allow(case: str) -> None:
    assert crd_errors(ACCEPTED[case], CRD) == []
    parse_cost_policy(ACCEPTED[case])


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_crd_refuses_an_invalid_policy_naming_the_field(case: str) -> None:
    policy, field = REFUSED[case]
    errors = crd_errors(policy, CRD)
    assert errors, f"the CRD accepted {case}"
    assert any(error.startswith(field) for error in errors), errors


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_domain_model_refuses_whatever_the_crd_refuses(case: str) -> None:
    policy, field = REFUSED[case]
    with pytest.raises(CostPolicyError) as caught:
        parse_cost_policy(policy)
    assert any(problem.field.startswith(field) for problem in caught.value.problems), str(
        caught.value
    )

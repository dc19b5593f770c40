"""CostPolicies becoming PrometheusRules, with the operator as a real process.

Every PrometheusRule the operator writes is checked against the upstream
Prometheus Operator CRD, and every CostPolicy status against ours.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from finops_operator.domain.rules.prometheus_rule import rule_count
from tests.support.crd_schema import PROMETHEUS_RULE_CRD, validate_against_crd
from tests.support.kube_emulator import KubeEmulator, eventually
from tests.support.operator_process import OperatorProcess, running_operator
from tests.support.paths import ROOT

COSTPOLICY_CRD = ROOT / "crds" / "costpolicies.finops.resilio.tech.yaml"
RULE = "PrometheusRule"


def policy(name: str = "search-platform", namespace: str = "finops", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": spec
        or {
            "selector": {"team": "search-platform", "environment": "production"},
            "anomaly": {"threshold": 50, "baseline": "7d", "for": "15m", "minHourlyCost": 5},
            "budget": {"monthly": 20000, "currency": "USD", "thresholds": [50, 80, 100]},
            "idle": {"maxUtilization": 10, "for": "2h"},
            "alerting": {
                "severity": "critical",
                "ruleLabels": {"release": "kube-prometheus-stack"},
            },
        },
    }


@pytest.fixture(scope="module")
def operator(
    cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    # "finops": a central FinOps namespace whose policies may act on every team.
    config = {"mode": "audit", "costPolicies": {"allowedTeams": {"finops": ["*"]}}}
    with running_operator(cluster, tmp_path_factory, config) as process:
        yield process


def ready_condition(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return dict(condition)
    return None


def rule_of(cluster: KubeEmulator, namespace: str, name: str) -> Any:
    return cluster.get(RULE, namespace, f"costpolicy-{name}")


def test_the_shared_recording_rules_are_written_in_the_operator_namespace(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    rules = eventually(lambda: cluster.get(RULE, "finops-system", "finops-recording-rules"))
    validate_against_crd(rules, PROMETHEUS_RULE_CRD)
    recorded = {r.get("record") for g in rules["spec"]["groups"] for r in g["rules"]}
    assert {"finops:gpu_allocation:sum", "finops:gpu_cost_hourly:sum"} <= recorded


def test_a_policy_becomes_an_owned_prometheus_rule_with_a_truthful_status(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    created = cluster.create(policy())
    rule = eventually(lambda: rule_of(cluster, "finops", "search-platform"))
    validate_against_crd(rule, PROMETHEUS_RULE_CRD)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [owner] = rule["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "CostPolicy",
        "search-platform",
        created["metadata"]["uid"],
        True,
    )
    alerts = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"FinOpsSpendAnomaly", "FinOpsBudgetThreshold", "FinOpsGpuIdle"} <= alerts

    live = eventually(
        lambda: (
            (p := cluster.get("CostPolicy", "finops", "search-platform"))
            and ready_condition(p)
            and p
        )
    )
    validate_against_crd(live, COSTPOLICY_CRD)
    assert ready_condition(live)["status"] == "True"  # type: ignore[index]
    assert live["status"]["observedGeneration"] == 1
    assert live["status"]["ruleName"] == "costpolicy-search-platform"
    assert live["status"]["ruleCount"] == rule_count(rule)


def test_a_changed_policy_changes_its_rule(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    cluster.create(
        policy("ranking", anomaly={"threshold": 30}, alerting={"ruleLabels": {"a": "b"}})
    )
    first = eventually(lambda: rule_of(cluster, "finops", "ranking"))
    assert first["metadata"]["labels"]["a"] == "b"
    cluster.patch(
        "CostPolicy",
        "finops",
        "ranking",
        {
            "metadata": {"generation": 2},
            "spec": {
                "anomaly": {"threshold": 75},
                "alerting": {"ruleLabels": {"a": None, "c": "d"}},
            },
        },
    )

    def updated() -> Any:
        rule = rule_of(cluster, "finops", "ranking")
        return rule if rule["metadata"]["labels"].get("c") == "d" else None

    rule = eventually(updated)
    assert "a" not in rule["metadata"]["labels"]
    assert rule["spec"] != first["spec"]
    assert "75" in str(rule["spec"])
    validate_against_crd(rule, PROMETHEUS_RULE_CRD)
    eventually(
        lambda: cluster.get("CostPolicy", "finops", "ranking")["status"]["observedGeneration"] == 2
    )


def test_a_deleted_or_edited_rule_is_put_back(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    cluster.create(policy("recsys", idle={"maxUtilization": 5, "for": "1h"}))
    original = eventually(lambda: rule_of(cluster, "finops", "recsys"))
    cluster.delete(RULE, "finops", "costpolicy-recsys")
    again = eventually(lambda: rule_of(cluster, "finops", "recsys"))
    assert again["spec"] == original["spec"]

    vandalised = copy.deepcopy(again["spec"])
    vandalised["groups"][0]["rules"] = vandalised["groups"][0]["rules"][:0] or []
    cluster.patch(RULE, "finops", "costpolicy-recsys", {"spec": vandalised})
    eventually(lambda: rule_of(cluster, "finops", "recsys")["spec"] == original["spec"])


def test_an_invalid_policy_gets_ready_false_no_rule_and_a_warning_event(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    hostile = policy(
        "injector",
        selector={"team": 'x"} or vector(1) #'},
        anomaly={"threshold": 50},
    )
    cluster.create(hostile)
    condition = eventually(lambda: ready_condition(cluster.get("CostPolicy", "finops", "injector")))
    assert condition["status"] == "False"
    assert condition["reason"] == "InvalidPolicy"
    assert "spec.selector.team" in condition["message"]
    assert rule_of(cluster, "finops", "injector") is None
    live = cluster.get("CostPolicy", "finops", "injector")
    assert live["status"]["ruleCount"] == 0
    events = eventually(
        lambda: [
            e
            for e in cluster.list("Event", "finops")
            if e["involvedObject"]["name"] == "injector" and e["reason"] == "InvalidPolicy"
        ]
    )
    assert events[0]["type"] == "Warning"
    eventually(
        lambda: (
            'finops_costpolicy_ready{costpolicy="injector",namespace="finops"} 0.0'
            in operator.metrics()
        )
    )


def test_fixing_an_invalid_policy_makes_it_ready(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    cluster.create(policy("fixme", selector={"team": "Not A DNS Label"}, anomaly={"threshold": 50}))
    eventually(lambda: ready_condition(cluster.get("CostPolicy", "finops", "fixme")))
    cluster.patch("CostPolicy", "finops", "fixme", {"spec": {"selector": {"team": "fixed"}}})
    eventually(lambda: rule_of(cluster, "finops", "fixme"))
    eventually(
        lambda: ready_condition(cluster.get("CostPolicy", "finops", "fixme"))["status"] == "True"
    )


def test_a_deleted_policy_takes_its_rule_with_it(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    cluster.create(policy("shortlived", retries={"maxRestartsPerHour": 3}))
    eventually(lambda: rule_of(cluster, "finops", "shortlived"))
    cluster.delete("CostPolicy", "finops", "shortlived")
    eventually(lambda: rule_of(cluster, "finops", "shortlived") is None)


def test_an_unchanged_policy_is_not_written_again(
    cluster: KubeEmulator, operator: OperatorProcess
) -> None:
    cluster.create(policy("steady", budget={"monthly": 1000, "currency": "USD"}))
    eventually(lambda: ready_condition(cluster.get("CostPolicy", "finops", "steady")))
    path = cluster.path("CostPolicy", "finops", "steady")
    rule_path = cluster.path(RULE, "finops", "costpolicy-steady")
    writes_before = len(cluster.requests_to("PATCH", path + "/status")) + len(
        cluster.requests_to("PATCH", rule_path)
    )
    cluster.patch("CostPolicy", "finops", "steady", {"metadata": {"labels": {"touched": "yes"}}})
    time.sleep(1.5)  # room for the operator to write again, if it wrongly would
    writes_after = len(cluster.requests_to("PATCH", path + "/status")) + len(
        cluster.requests_to("PATCH", rule_path)
    )
    assert writes_after == writes_before

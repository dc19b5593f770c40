"""CostPolicies become PrometheusRules owned by them; the real garbage collector removes them."""

from __future__ import annotations

import json
from typing import Any

from .conftest import TEAM, Cluster, wait_until

NS = "e2e-policies"
NS_LABELS = {TEAM: "search-platform"}  # the lane of its policies: team search-platform


def policy(name: str, monthly: int = 20000) -> dict[str, Any]:
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"team": "search-platform"},
            "anomaly": {"threshold": 50, "baseline": "7d", "for": "15m", "minHourlyCost": 5},
            "budget": {
                "monthly": monthly,
                "currency": "USD",
                "thresholds": [50, 80, 100],
                "forecast": True,
            },
            "idle": {"maxUtilization": 10, "for": "2h"},
            "retries": {"maxRestartsPerHour": 6},
            "alerting": {"severity": "warning", "ruleLabels": {"release": "kube-prometheus-stack"}},
        },
    }


def rule(cluster: Cluster, name: str) -> Any:
    if not cluster.exists("prometheusrules", name, NS):
        return None
    return cluster.get("prometheusrules", name, NS)


def ready(cluster: Cluster, name: str) -> dict[str, Any] | None:
    body = cluster.get("costpolicies", name, NS)
    conditions = {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}
    if conditions.get("Ready", {}).get("status") == "True":
        return dict(body)
    return None


def test_the_shared_recording_rules_are_written(cluster: Cluster) -> None:
    rules = wait_until(
        lambda: cluster.get("prometheusrules", None, "finops-system")["items"],
        timeout=60,
        what="PrometheusRules in finops-system",
    )
    names = {r["metadata"]["name"] for r in rules}
    assert "finops-operator-health" in names  # from the manifests
    assert len(names) >= 2, names  # and the operator's recording rules


def test_a_policy_becomes_an_owned_rule_and_the_gc_removes_it(cluster: Cluster) -> None:
    cluster.namespace(NS, NS_LABELS)
    cluster.apply(policy("search"))
    body = wait_until(lambda: ready(cluster, "search"), timeout=60, what="CostPolicy Ready")
    name = body["status"]["ruleName"]
    assert body["status"]["ruleCount"] > 0
    assert body["status"].get("observedGeneration") in (None, body["metadata"]["generation"])
    prom = rule(cluster, name)
    owner = prom["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "CostPolicy" and owner["name"] == "search"
    assert owner["uid"] == body["metadata"]["uid"]
    assert owner.get("controller") is True
    out = cluster.kubectl("get", "costpolicies", "-n", NS).stdout
    assert "True" in out.splitlines()[1], out

    cluster.kubectl("delete", "costpolicy", "search", "-n", NS)
    wait_until(
        lambda: rule(cluster, name) is None,
        timeout=60,
        what="the garbage collector deletes the PrometheusRule",
    )


def test_an_edited_rule_is_put_back(cluster: Cluster) -> None:
    cluster.namespace(NS, NS_LABELS)
    cluster.apply(policy("edited"))
    body = wait_until(lambda: ready(cluster, "edited"), timeout=60, what="CostPolicy Ready")
    name = body["status"]["ruleName"]
    original = rule(cluster, name)["spec"]
    cluster.kubectl(
        "patch",
        "prometheusrule",
        name,
        "-n",
        NS,
        "--type=merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "groups": [
                        {"name": "hand-edit", "rules": [{"record": "x", "expr": "vector(1)"}]}
                    ]
                }
            }
        ),
    )
    wait_until(
        lambda: rule(cluster, name)["spec"] == original,
        timeout=60,
        what="the operator restores the edited rule",
    )
    cluster.kubectl("delete", "prometheusrule", name, "-n", NS)
    wait_until(
        lambda: rule(cluster, name) is not None and rule(cluster, name)["spec"] == original,
        timeout=60,
        what="the operator re-creates the deleted rule",
    )


def test_a_changed_policy_changes_its_rule(cluster: Cluster) -> None:
    cluster.namespace(NS, NS_LABELS)
    cluster.apply(policy("changed"))
    body = wait_until(lambda: ready(cluster, "changed"), timeout=60, what="CostPolicy Ready")
    name = body["status"]["ruleName"]
    before = json.dumps(rule(cluster, name)["spec"])
    cluster.apply(policy("changed", monthly=30000))
    wait_until(
        lambda: json.dumps(rule(cluster, name)["spec"]) != before,
        timeout=60,
        what="the rule follows the policy",
    )
    assert "30000" in json.dumps(rule(cluster, name)["spec"])


def test_a_policy_the_operator_cannot_render_loses_its_rule_and_says_why(cluster: Cluster) -> None:
    """The CRD accepts any currency; the operator refuses one its prices are not in."""
    cluster.namespace(NS, NS_LABELS)
    cluster.apply(policy("currency"))
    body = wait_until(lambda: ready(cluster, "currency"), timeout=60, what="CostPolicy Ready")
    name = body["status"]["ruleName"]
    euros = policy("currency")
    euros["spec"]["budget"]["currency"] = "EUR"
    cluster.apply(euros)
    wait_until(
        lambda: rule(cluster, name) is None,
        timeout=60,
        what="the operator deletes the rule it owned",
    )

    def not_ready() -> dict[str, Any] | None:
        status = cluster.get("costpolicies", "currency", NS).get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        return status if conditions.get("Ready", {}).get("status") == "False" else None

    status = wait_until(not_ready, timeout=60, what="CostPolicy Ready=False")
    assert "EUR" in json.dumps(status), status
    wide = cluster.kubectl("get", "costpolicies", "currency", "-n", NS, "-o", "wide").stdout
    assert "False" in wide and "EUR" in wide, wide

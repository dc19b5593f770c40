"""Policies stay in their lane (issue 19, item 6), on the real control plane.

A CostPolicy in team-a's namespace that selects team-b is conditioned
(Ready=False, OutOfLane, a Warning Event) and gets no PrometheusRule, so it pages
no one; one for team-a gets its rule. Two budgets for team-a: a Conflict
condition on both, naming the oldest as the one that applies.
"""

from __future__ import annotations

from typing import Any

from .conftest import TEAM, Cluster, wait_until

NS_A = "e2e-lane-a"
NS_B = "e2e-lane-b"


def policy(name: str, team: str, monthly: int = 1000) -> dict[str, Any]:
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": name, "namespace": NS_A},
        "spec": {
            "selector": {"team": team},
            "budget": {"monthly": monthly, "currency": "USD", "thresholds": [100]},
        },
    }


def condition(cluster: Cluster, name: str, type: str) -> dict[str, Any] | None:
    body = cluster.get("costpolicies", name, NS_A)
    for found in (body.get("status") or {}).get("conditions") or []:
        if found["type"] == type:
            return dict(found)
    return None


def test_a_cross_team_policy_is_conditioned_and_renders_no_rule(cluster: Cluster) -> None:
    cluster.namespace(NS_A, {TEAM: "team-a"})
    cluster.namespace(NS_B, {TEAM: "team-b"})
    cluster.apply([policy("pages-team-b", "team-b", monthly=1), policy("own", "team-a")])

    def out_of_lane() -> dict[str, Any] | None:
        ready = condition(cluster, "pages-team-b", "Ready")
        return ready if ready and ready["reason"] == "OutOfLane" else None

    ready = wait_until(out_of_lane, timeout=60, what="Ready=False OutOfLane")
    assert ready["status"] == "False" and "team-b" in ready["message"]
    wait_until(
        lambda: (condition(cluster, "own", "Ready") or {}).get("status") == "True",
        timeout=60,
        what="the in-lane policy Ready",
    )
    # The in-lane policy got its rule, written after the other was judged: no rule for team-b.
    assert cluster.exists("prometheusrules", "costpolicy-own", NS_A)
    assert not cluster.exists("prometheusrules", "costpolicy-pages-team-b", NS_A)
    for ns in (NS_A, NS_B):
        for rule in cluster.get("prometheusrules", None, ns)["items"]:
            assert 'team="team-b"' not in str(rule["spec"]), rule["metadata"]["name"]
    events = cluster.get("events", None, NS_A)["items"]
    assert any(
        e["involvedObject"]["name"] == "pages-team-b" and e["reason"] == "OutOfLane" for e in events
    )


def test_two_budgets_for_one_team_are_a_conflict_on_both(cluster: Cluster) -> None:
    wait_until(lambda: condition(cluster, "own", "Conflict"), timeout=60, what="Conflict")
    cluster.apply(policy("second", "team-a", monthly=5))

    def conflicts() -> list[dict[str, Any]] | None:
        found = [condition(cluster, name, "Conflict") for name in ("own", "second")]
        if all(c and c["status"] == "True" for c in found):
            return [c for c in found if c]
        return None

    own, second = wait_until(conflicts, timeout=60, what="Conflict=True on both")
    assert own["reason"] == second["reason"] == "BudgetConflict"
    assert "this one applies" in own["message"]
    assert f"{NS_A}/own applies" in second["message"]
    cluster.kubectl("delete", "costpolicy", "second", "-n", NS_A)
    wait_until(
        lambda: (condition(cluster, "own", "Conflict") or {}).get("status") == "False",
        timeout=60,
        what="the conflict gone with the second policy",
    )

"""A CostPolicy acts only on its lane's teams; of two budgets for one team, the oldest applies."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from finops_operator.domain.config import Config, parse_config
from finops_operator.domain.rules.policy_lanes import (
    BudgetClaim,
    budget_conflicts,
    budget_owners,
    lane_of,
    out_of_lane,
)
from finops_operator.domain.rules.policy_reconciler import plan_policy, team_budgets
from finops_operator.errors import ConfigError

TEAM = "resilio.tech/team"
NAMESPACES = {"team-a": {TEAM: "team-a"}, "team-b": {TEAM: "team-b"}, "sandbox": {}}


def lanes(config: Config) -> Any:
    return lambda namespace: lane_of(namespace, NAMESPACES.get(namespace), config)


def policy(
    namespace: str, team: str | None, name: str = "p", monthly: int = 100, created: str = ""
) -> dict[str, Any]:
    selector = {"team": team} if team else {}
    meta = {"name": name, "namespace": namespace, "creationTimestamp": created}
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": meta,
        "spec": {"selector": selector, "budget": {"monthly": monthly, "currency": "USD"}},
    }


def test_a_namespace_acts_on_its_own_team() -> None:
    lane = lane_of("team-a", NAMESPACES["team-a"], Config())
    assert out_of_lane("team-a", lane) is None
    problem = out_of_lane("team-b", lane)
    assert problem is not None and "'team-b'" in problem and "team-a" in problem


def test_a_policy_without_a_team_needs_every_team() -> None:
    problem = out_of_lane(None, lane_of("team-a", NAMESPACES["team-a"], Config()))
    assert problem is not None and "every team" in problem
    assert out_of_lane(None, lane_of("finops-system", {}, Config())) is None  # the operator's
    assert out_of_lane(None, lane_of("finops", {}, Config(), operator_namespace="finops")) is None


def test_a_namespace_without_a_team_label_acts_on_no_team() -> None:
    lane = lane_of("sandbox", {}, Config())
    assert out_of_lane("team-a", lane) is not None
    assert "no team" in lane.describe()


def test_the_configuration_grants_teams_and_every_team() -> None:
    config = parse_config(
        {"costPolicies": {"allowedTeams": {"platform": ["team-a", "team-b"], "finops": ["*"]}}}
    )
    platform = lane_of("platform", {}, config)
    assert out_of_lane("team-b", platform) is None and out_of_lane("team-c", platform) is not None
    assert out_of_lane("team-c", lane_of("finops", {}, config)) is None


@pytest.mark.parametrize(
    "allowed", [{"Not_A_Namespace": ["a"]}, {"ok": ["not a team!"]}, {"ok": "*"}]
)
def test_a_bad_grant_is_refused(allowed: Any) -> None:
    with pytest.raises(ConfigError, match=r"costPolicies\.allowedTeams"):
        parse_config({"costPolicies": {"allowedTeams": allowed}})


def test_a_cross_team_policy_renders_no_rule() -> None:
    plan = plan_policy(policy("team-a", "team-b"), Config(), lanes(Config()))
    assert plan.rule is None and plan.problem is None
    assert plan.out_of_lane is not None and "team-b" in plan.out_of_lane
    assert plan_policy(policy("team-a", "team-a"), Config(), lanes(Config())).valid
    # `render` checks no lane: it has no namespace index.
    assert plan_policy(policy("team-a", "team-b"), Config()).valid


def test_a_cross_team_budget_never_reaches_a_cost_report() -> None:
    policies = [policy("team-a", "team-b", monthly=1), policy("team-b", "team-b", "q", 5000)]
    assert team_budgets(policies, Config(), lanes(Config())) == {"team-b": 5000}


def test_the_oldest_budget_applies_whatever_the_order_seen() -> None:
    older = policy("team-a", "team-a", "newer-name", 100, "2026-01-01T00:00:00Z")
    newer = policy("team-a", "team-a", "a-first-by-name", 900, "2026-02-01T00:00:00Z")
    for order in itertools.permutations([older, newer]):
        assert team_budgets(order, Config(), lanes(Config())) == {"team-a": 100}


def test_same_age_falls_back_to_namespace_then_name() -> None:
    claims = [
        BudgetClaim(("team-a", "b"), "t", "2026-01-01T00:00:00Z"),
        BudgetClaim(("team-a", "a"), "t", "2026-01-01T00:00:00Z"),
    ]
    assert budget_owners(claims) == {"t": ("team-a", "a")}


def test_both_conflicting_policies_are_told_which_applies() -> None:
    claims = [
        BudgetClaim(("team-a", "new"), "team-a", "2026-02-01T00:00:00Z"),
        BudgetClaim(("team-a", "old"), "team-a", "2026-01-01T00:00:00Z"),
        BudgetClaim(("team-b", "alone"), "team-b", "2026-01-01T00:00:00Z"),
    ]
    messages = budget_conflicts(claims)
    assert set(messages) == {("team-a", "new"), ("team-a", "old")}
    assert "this one applies" in messages[("team-a", "old")]
    assert "team-a/old applies" in messages[("team-a", "new")]

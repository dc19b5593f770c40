"""What a CostPolicy's PrometheusRule and status should be, as plain data.

The operator's handlers fetch and write; this module decides: the desired
rule (or the reason there is none), the merge patch that brings an existing
rule back to it, and the status with its conditions. Conditions keep their
`lastTransitionTime` until their status really changes, so reconciling an
unchanged policy writes nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.conditions import by_type, condition
from finops_operator.domain.config import Config
from finops_operator.domain.merge_patch import Compare, Wanted, merge_patch
from finops_operator.domain.rules.alert_rules import AlertOptions
from finops_operator.domain.rules.cost_policy import parse_cost_policy
from finops_operator.domain.rules.policy_lanes import (
    BudgetClaim,
    Lane,
    PolicyKey,
    budget_owners,
    out_of_lane,
)
from finops_operator.domain.rules.prometheus_rule import render_policy, rule_count
from finops_operator.errors import CostPolicyError

READY = "Ready"
INVALID = "Invalid"
RULES_EVALUATING = conventions.CONDITION_RULES_EVALUATING
REASON_APPLIED = "RulesApplied"
REASON_INVALID = "InvalidPolicy"
REASON_APPLY_FAILED = "ApplyFailed"
REASON_CONFLICT = "RuleConflict"  # the rule's name is taken by another policy or by hand
REASON_OUT_OF_LANE = "OutOfLane"  # the selector names a team the namespace may not act on
# Conflict: does another policy set the same team's budget? (policy_lanes)
CONFLICT = "Conflict"
REASON_BUDGET_CONFLICT = "BudgetConflict"
REASON_NO_CONFLICT = "NoConflict"
# RulesEvaluating: is Prometheus evaluating the shared recording rules?
REASON_HEARTBEAT = "HeartbeatFound"
REASON_NOT_EVALUATED = "RecordingRulesNotEvaluated"
REASON_UNREACHABLE = "PrometheusUnreachable"
REASON_NOT_CHECKED = "NotCheckedYet"
# The query that answers it: the heartbeat series exists only where the group runs.
HEARTBEAT_QUERY = f"count({conventions.RULE_HEARTBEAT})"


@dataclass(frozen=True)
class RulesEvaluation:
    """What Prometheus says about the shared recording rules: True, False or None (Unknown)."""

    evaluating: bool | None
    reason: str
    message: str


NOT_CHECKED = RulesEvaluation(
    None, REASON_NOT_CHECKED, "Prometheus has not been asked yet whether the rules are evaluated"
)


def rules_evaluation(
    answer: list[dict[str, Any]] | None,
    *,
    error: str | None,
    rule_labels: Mapping[str, str],
    namespace: str,
    prometheus_url: str,
) -> RulesEvaluation:
    """Judge the answer to HEARTBEAT_QUERY (or the error that replaced it).

    False names what to check: the labels the operator put on its PrometheusRules
    (config `ruleLabels`), which the Prometheus `ruleSelector` must select, and the
    namespace its `ruleNamespaceSelector` must include.
    """
    where = f"{namespace}/{conventions.RECORDING_RULES_NAME}"
    if error is not None:
        return RulesEvaluation(
            None,
            REASON_UNREACHABLE,
            f"cannot ask Prometheus at {prometheus_url} whether PrometheusRule {where} is "
            f"evaluated: {error}",
        )
    if answer:
        return RulesEvaluation(
            True,
            REASON_HEARTBEAT,
            f"Prometheus evaluates the shared recording rules ({conventions.RULE_HEARTBEAT} "
            "exists)",
        )
    labels = ", ".join(f"{k}={v}" for k, v in sorted(rule_labels.items())) or "(none)"
    return RulesEvaluation(
        False,
        REASON_NOT_EVALUATED,
        f"Prometheus at {prometheus_url} has no {conventions.RULE_HEARTBEAT} series: it does "
        f"not evaluate PrometheusRule {where}, so no budget, forecast or anomaly alert can "
        f"fire. The operator labels its PrometheusRules {labels} (config ruleLabels); make "
        "the Prometheus resource's ruleSelector match these labels (kube-prometheus-stack "
        "selects release=<its release name>) and its ruleNamespaceSelector include "
        f"{namespace}.",
    )


@dataclass(frozen=True)
class PolicyPlan:
    rule: dict[str, Any] | None
    problem: str | None  # why the policy is invalid
    out_of_lane: str | None = None  # why a valid policy may not act (no rule either)
    team: str | None = None  # its selector's team, when valid
    # its monthly budget and what spend it counts (scope or all-in), when valid and set
    budget: tuple[Decimal, str] | None = None

    @property
    def valid(self) -> bool:
        """Renders a rule: valid and in its lane."""
        return self.rule is not None


# Where a policy's namespace may act; None: lanes are not checked (`render`).
Lanes = Callable[[str], Lane] | None


def policy_key(body: Mapping[str, Any]) -> PolicyKey:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def budget_claim(body: Mapping[str, Any], plan: PolicyPlan) -> BudgetClaim | None:
    """The claim of a policy planned as `plan` on its team's budget, if it makes one."""
    if not (plan.valid and plan.team and plan.budget is not None):
        return None
    created = str((body.get("metadata") or {}).get("creationTimestamp") or "")
    return BudgetClaim(policy_key(body), plan.team, created)


def budget_claims(
    policies: Iterable[Mapping[str, Any]], config: Config, lanes: Lanes = None
) -> list[BudgetClaim]:
    """The valid policies in their lanes that set a team's monthly budget."""
    claims = (budget_claim(body, plan_policy(body, config, lanes)) for body in policies)
    return [claim for claim in claims if claim is not None]


def team_budgets(
    policies: Iterable[Mapping[str, Any]], config: Config, lanes: Lanes = None
) -> dict[str, Decimal]:
    """Monthly budgets by team, from the policies that are valid and name a team.

    Valid exactly as `plan_policy` judges it (the configured label rules and the
    pricing currency): the budget of a policy whose status says Invalid is never
    applied to a CostReport.
    """
    scopes = team_budget_scopes(policies, config, lanes)
    return {team: budget for team, (budget, _) in scopes.items()}


def team_budget_scopes(
    policies: Iterable[Mapping[str, Any]], config: Config, lanes: Lanes = None
) -> dict[str, tuple[Decimal, str]]:
    """Monthly budgets by team with the spend their CostReport counts: the policy's
    `scope`, or `all-in` when the budget's `basis` says so.

    Only policies in their lanes count; of two for one team, the oldest applies
    (`policy_lanes.budget_owners`), whatever order they come in.
    """
    bodies = {policy_key(body): body for body in policies}
    owners = budget_owners(budget_claims(bodies.values(), config, lanes))
    budgets: dict[str, tuple[Decimal, str]] = {}
    for team, key in owners.items():
        budget = plan_policy(bodies[key], config, lanes).budget
        if budget is not None:
            budgets[team] = budget
    return budgets


def plan_policy(body: Mapping[str, Any], config: Config, lanes: Lanes = None) -> PolicyPlan:
    """The PrometheusRule a policy becomes, or the one-line reason it cannot."""
    try:
        policy = parse_cost_policy(
            body, label_rules=config.labels, currency=config.pricing.currency
        )
        rule = render_policy(
            body,
            AlertOptions.from_config(config),
            label_rules=config.labels,
        )
    except CostPolicyError as err:
        return PolicyPlan(None, err.one_line())
    team = policy.spec.selector.team
    budget = policy.spec.budget
    basis = "all-in" if budget is not None and budget.basis == "all-in" else policy.spec.scope
    monthly = (budget.monthly, basis) if budget is not None else None
    if lanes is not None:
        outside = out_of_lane(team, lanes(policy_key(body)[0]))
        if outside is not None:
            return PolicyPlan(None, None, outside, team, monthly)
    return PolicyPlan(rule, None, None, team, monthly)


# The operator owns its PrometheusRules: labels and spec are exactly what it renders.
_KEPT: Final = (
    Wanted(("metadata", "labels"), Compare.EXACT, prune=True),
    Wanted(("metadata", "ownerReferences"), Compare.EXACT),
    Wanted(("spec",), Compare.EXACT),
)


def rule_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch making `current` carry `desired`'s labels, owner and spec; None if it does."""
    return merge_patch(current, desired, _KEPT)


def policy_status(
    current: Mapping[str, Any] | None,
    *,
    generation: int | None,
    plan: PolicyPlan,
    apply_error: str | None,
    now: datetime.datetime,
    conflict: str | None = None,
    rules: RulesEvaluation = NOT_CHECKED,
    budget_conflict: str | None = None,
) -> dict[str, Any]:
    """The whole status a policy should show after this reconciliation.

    `conflict` says why the PrometheusRule the policy would write is someone
    else's (`prometheus_rule.rule_conflict`): Ready=False, reason RuleConflict.
    `rules` is whether Prometheus evaluates the shared recording rules: when it
    certainly does not, Ready is False too (reason RecordingRulesNotEvaluated),
    since none of the policy's spend alerts can fire; when Prometheus cannot be
    asked (Unknown), Ready keeps what applying the rule says (docs/costpolicy.md).
    """
    earlier = by_type((current or {}).get("conditions"))
    if plan.out_of_lane is not None:
        ready, reason, message = False, REASON_OUT_OF_LANE, plan.out_of_lane
    elif plan.rule is None:
        ready, reason, message = False, REASON_INVALID, f"invalid policy: {plan.problem}"
    elif conflict is not None:
        ready, reason, message = False, REASON_CONFLICT, conflict
    elif apply_error is not None:
        ready, reason, message = False, REASON_APPLY_FAILED, apply_error
    elif rules.evaluating is False:
        ready, reason, message = False, REASON_NOT_EVALUATED, rules.message
    else:
        count = rule_count(plan.rule)
        name = plan.rule["metadata"]["name"]
        ready, reason = True, REASON_APPLIED
        message = f"{count} alert rule(s) in PrometheusRule {name}"
    applied = plan.rule is not None and conflict is None and apply_error is None
    invalid_message = plan.problem or "the policy is valid"
    return {
        "observedGeneration": generation,
        "ruleName": plan.rule["metadata"]["name"] if plan.rule and applied else None,
        "ruleCount": rule_count(plan.rule) if plan.rule and applied else 0,
        "message": message,
        "conditions": [
            condition(earlier.get(READY), READY, ready, reason, message, now, generation),
            condition(
                earlier.get(INVALID),
                INVALID,
                plan.problem is not None,
                REASON_INVALID if plan.problem is not None else "Valid",
                invalid_message,
                now,
                generation,
            ),
            condition(
                earlier.get(RULES_EVALUATING),
                RULES_EVALUATING,
                rules.evaluating,
                rules.reason,
                rules.message,
                now,
                generation,
            ),
            condition(
                earlier.get(CONFLICT),
                CONFLICT,
                budget_conflict is not None,
                REASON_BUDGET_CONFLICT if budget_conflict is not None else REASON_NO_CONFLICT,
                budget_conflict or "no other CostPolicy sets the same team's budget",
                now,
                generation,
            ),
        ],
    }


def status_patch(
    current: Mapping[str, Any] | None, desired: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The status merge patch, or None when the status already says all of it."""
    now = dict(current or {})
    if all(now.get(key) == value for key, value in desired.items()):
        return None
    return {"status": dict(desired)}

"""A CostPolicy's desired rule, the patch back to it, and its status, as pure data."""

from __future__ import annotations

import datetime
from typing import Any

from finops_operator.domain.config import Config
from finops_operator.domain.rules.policy_reconciler import (
    NOT_CHECKED,
    RulesEvaluation,
    plan_policy,
    policy_status,
    rule_patch,
    rules_evaluation,
    status_patch,
)
from finops_operator.domain.rules.prometheus_rule import (
    legacy_rule_names,
    rule_conflict,
    rule_name_for,
)

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(hours=1)


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": "p", "namespace": "finops", "uid": "u-1", "generation": 4},
        "spec": spec or {"anomaly": {"threshold": 50}, "alerting": {"ruleLabels": {"x": "y"}}},
    }


def test_a_valid_policy_plans_a_rule_and_an_invalid_one_plans_a_reason() -> None:
    assert plan_policy(body(), Config()).rule is not None
    bad = plan_policy(body(selector={"team": "UPPER"}, anomaly={"threshold": 5}), Config())
    assert bad.rule is None
    assert bad.problem is not None and "spec.selector.team" in bad.problem


def test_a_rule_in_step_needs_no_patch() -> None:
    desired = plan_policy(body(), Config()).rule
    assert desired is not None
    assert rule_patch(desired, desired) is None


def test_a_rule_with_a_foreign_label_and_an_edited_spec_is_patched_back() -> None:
    desired = plan_policy(body(), Config()).rule
    assert desired is not None
    current = {
        "metadata": {**desired["metadata"], "labels": {**desired["metadata"]["labels"], "z": "1"}},
        "spec": {"groups": []},
    }
    patch = rule_patch(current, desired)
    assert patch is not None
    assert patch["metadata"]["labels"]["z"] is None
    assert patch["metadata"]["labels"]["x"] == "y"
    assert patch["spec"] == desired["spec"]


def test_a_ready_status_names_the_rule_and_counts_its_rules() -> None:
    plan = plan_policy(body(), Config())
    status = policy_status(None, generation=4, plan=plan, apply_error=None, now=NOW)
    assert status["observedGeneration"] == 4
    assert status["ruleName"] == "costpolicy-p"
    assert status["ruleCount"] >= 1
    ready, invalid, _, _ = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "RulesApplied")
    assert (invalid["type"], invalid["status"]) == ("Invalid", "False")
    assert ready["lastTransitionTime"] == "2026-11-27T12:00:00Z"


def test_an_invalid_policy_is_not_ready_and_has_no_rule() -> None:
    plan = plan_policy(body(selector={"team": "UPPER"}, anomaly={"threshold": 5}), Config())
    status = policy_status(None, generation=4, plan=plan, apply_error=None, now=NOW)
    ready, invalid, _, _ = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidPolicy")
    assert invalid["status"] == "True"
    assert status["ruleName"] is None and status["ruleCount"] == 0
    assert "spec.selector.team" in status["message"]


def test_a_write_failure_is_not_ready_but_not_invalid() -> None:
    plan = plan_policy(body(), Config())
    status = policy_status(None, generation=4, plan=plan, apply_error="403 forbidden", now=NOW)
    ready, invalid, _, _ = status["conditions"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "ApplyFailed",
        "403 forbidden",
    )
    assert invalid["status"] == "False"


def test_an_unchanged_reconciliation_keeps_transition_times_and_writes_nothing() -> None:
    plan = plan_policy(body(), Config())
    first = policy_status(None, generation=4, plan=plan, apply_error=None, now=NOW)
    second = policy_status(first, generation=4, plan=plan, apply_error=None, now=LATER)
    assert second == first
    assert status_patch(first, second) is None


def test_a_transition_moves_the_time_and_is_written() -> None:
    plan = plan_policy(body(), Config())
    first = policy_status(None, generation=4, plan=plan, apply_error=None, now=NOW)
    failed = policy_status(first, generation=4, plan=plan, apply_error="boom", now=LATER)
    assert failed["conditions"][0]["lastTransitionTime"] == "2026-11-27T13:00:00Z"
    assert failed["conditions"][1]["lastTransitionTime"] == "2026-11-27T12:00:00Z"
    assert status_patch(first, failed) == {"status": failed}


# --- issue 13, item 9: a rule's name is never another policy's, and never taken over -----


def test_a_policy_named_like_another_policys_shortened_rule_name_gets_its_own() -> None:
    long_name = "search-platform-" + "x" * 60
    taken = rule_name_for(long_name)
    impostor = taken.removeprefix("costpolicy-")  # 52 characters, ending in the hash
    assert rule_name_for(impostor) != taken
    assert len(rule_name_for(impostor)) <= 63


def test_rule_names_are_collision_free_over_awkward_policy_names() -> None:
    names = ["a", "a-deadbeef", "budget-20250101", "x" * 52, "x" * 53, "x" * 90, "x" * 91]
    names += [rule_name_for(n).removeprefix("costpolicy-") for n in list(names)]
    rules = {n: rule_name_for(n) for n in names}
    assert len(set(rules.values())) == len(rules)
    assert legacy_rule_names("budget-20250101") == ("costpolicy-budget-20250101",)
    assert legacy_rule_names("search") == ()


def test_a_rule_owned_by_another_policy_is_a_conflict_and_is_not_taken_over() -> None:
    plan = plan_policy(body(), Config())
    assert plan.rule is not None
    theirs = {
        "metadata": {
            "name": plan.rule["metadata"]["name"],
            "labels": plan.rule["metadata"]["labels"],
            "ownerReferences": [
                {"kind": "CostPolicy", "name": "other", "uid": "u-9", "controller": True}
            ],
        },
        "spec": {"groups": []},
    }
    conflict = rule_conflict(theirs, plan.rule)
    assert conflict is not None and "CostPolicy other" in conflict
    status = policy_status(
        None, generation=4, plan=plan, apply_error=None, now=NOW, conflict=conflict
    )
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "RuleConflict")
    assert status["ruleName"] is None


def test_a_hand_written_rule_with_the_name_is_a_conflict() -> None:
    plan = plan_policy(body(), Config())
    assert plan.rule is not None
    by_hand = {"metadata": {"name": plan.rule["metadata"]["name"]}, "spec": {"groups": []}}
    assert rule_conflict(by_hand, plan.rule) is not None


def test_the_policys_own_rule_and_its_earlier_incarnations_are_not_conflicts() -> None:
    plan = plan_policy(body(), Config())
    assert plan.rule is not None
    mine = {"metadata": dict(plan.rule["metadata"]), "spec": {}}
    assert rule_conflict(mine, plan.rule) is None
    recreated = {
        "metadata": {
            **plan.rule["metadata"],
            "ownerReferences": [
                {"kind": "CostPolicy", "name": "p", "uid": "old", "controller": True}
            ],
        }
    }
    assert rule_conflict(recreated, plan.rule) is None
    unowned = {"metadata": {**plan.rule["metadata"], "ownerReferences": []}}
    assert rule_conflict(unowned, plan.rule) is None


# --- RulesEvaluating ----------------------------------------------------------------


def _judged(answer: list[dict[str, Any]] | None, error: str | None = None) -> RulesEvaluation:
    return rules_evaluation(
        answer,
        error=error,
        rule_labels={"release": "prom", "tier": "x"},
        namespace="finops-system",
        prometheus_url="http://prom:9090",
    )


def test_no_heartbeat_says_the_rules_are_not_evaluated_and_names_labels_and_selector() -> None:
    judged = _judged([])
    assert (judged.evaluating, judged.reason) == (False, "RecordingRulesNotEvaluated")
    for part in ("release=prom, tier=x", "ruleSelector", "ruleNamespaceSelector",
                 "finops-system/finops-recording-rules", "http://prom:9090"):  # fmt: skip
        assert part in judged.message


def test_a_heartbeat_says_true_and_an_error_says_unknown() -> None:
    assert _judged([{"metric": {}, "value": [0, "1"]}]).evaluating is True
    unknown = _judged(None, "connection refused")
    assert (unknown.evaluating, unknown.reason) == (None, "PrometheusUnreachable")
    assert "connection refused" in unknown.message


def test_rules_not_evaluated_make_ready_false_but_keep_the_rule_in_the_status() -> None:
    plan = plan_policy(body(), Config())
    status = policy_status(
        None, generation=4, plan=plan, apply_error=None, now=NOW, rules=_judged([])
    )
    ready, _, evaluating, _ = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "RecordingRulesNotEvaluated")
    assert (evaluating["type"], evaluating["status"]) == ("RulesEvaluating", "False")
    assert status["ruleName"] == "costpolicy-p" and status["ruleCount"] >= 1


def test_an_unknown_answer_leaves_ready_true() -> None:
    plan = plan_policy(body(), Config())
    for rules in (NOT_CHECKED, _judged(None, "timeout")):
        status = policy_status(
            None, generation=4, plan=plan, apply_error=None, now=NOW, rules=rules
        )
        ready, _, evaluating, _ = status["conditions"]
        assert (ready["status"], evaluating["status"]) == ("True", "Unknown")


def test_an_invalid_policy_stays_invalid_whatever_prometheus_says() -> None:
    plan = plan_policy(body(selector={"team": "UPPER"}, anomaly={"threshold": 5}), Config())
    status = policy_status(
        None, generation=4, plan=plan, apply_error=None, now=NOW, rules=_judged([])
    )
    assert status["conditions"][0]["reason"] == "InvalidPolicy"

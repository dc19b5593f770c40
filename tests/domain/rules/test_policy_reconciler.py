"""A CostPolicy's desired rule, the patch back to it, and its status, as pure data."""

from __future__ import annotations

import datetime
from typing import Any

from finops_operator.domain.config import Config
from finops_operator.domain.rules.policy_reconciler import (
    plan_policy,
    policy_status,
    rule_patch,
    status_patch,
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
    ready, invalid = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "RulesApplied")
    assert (invalid["type"], invalid["status"]) == ("Invalid", "False")
    assert ready["lastTransitionTime"] == "2026-11-27T12:00:00Z"


def test_an_invalid_policy_is_not_ready_and_has_no_rule() -> None:
    plan = plan_policy(body(selector={"team": "UPPER"}, anomaly={"threshold": 5}), Config())
    status = policy_status(None, generation=4, plan=plan, apply_error=None, now=NOW)
    ready, invalid = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidPolicy")
    assert invalid["status"] == "True"
    assert status["ruleName"] is None and status["ruleCount"] == 0
    assert "spec.selector.team" in status["message"]


def test_a_write_failure_is_not_ready_but_not_invalid() -> None:
    plan = plan_policy(body(), Config())
    status = policy_status(None, generation=4, plan=plan, apply_error="403 forbidden", now=NOW)
    ready, invalid = status["conditions"]
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

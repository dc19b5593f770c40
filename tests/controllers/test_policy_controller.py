"""PolicyController against the in-memory API: rules, status, Events and metrics."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from finops_operator.controllers.policy_controller import (
    POLICIES,
    RULES,
    PolicyController,
    PolicyKey,
    event_poster,
)
from finops_operator.domain.config import Config, parse_config
from finops_operator.domain.rules.policy_reconciler import HEARTBEAT_QUERY, plan_policy
from finops_operator.domain.rules.prometheus_rule import recording_rules_prometheus_rule
from tests.support.fakes import FakeEventPoster, FakeKube, FakeMetrics, FakePrometheus

NAMESPACE = "finops-system"
KEY: PolicyKey = ("team-a", "p")
RULE_NAME = "costpolicy-p"


def policy(uid: str = "u-1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": "p", "namespace": "team-a", "uid": uid, "generation": 2},
        "spec": spec or {"anomaly": {"threshold": 50}},
    }


INVALID = {"selector": {"team": "UPPER"}, "anomaly": {"threshold": 5}}
# team-a's policies may act on every team here; the lanes have tests of their own below.
EVERY_TEAM = {"costPolicies": {"allowedTeams": {"team-a": ["*"]}}}


def desired_rule(body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    rule = plan_policy(body or policy(), Config()).rule
    assert rule is not None
    return rule


class World:
    """A controller over a FakeKube holding the policy, with leadership switchable."""

    def __init__(self, body: dict[str, Any] | None = None, leading: bool = True) -> None:
        self.kube = FakeKube()
        self.metrics = FakeMetrics()
        self.events = FakeEventPoster()
        self.leading = leading
        self.controller = PolicyController(
            config=parse_config(EVERY_TEAM),
            namespace=NAMESPACE,
            kube=self.kube,
            leading=lambda: self.leading,
            post_event=self.events,
            metrics=self.metrics,
        )
        self.body = body or policy()
        self.kube.put(POLICIES, self.body)
        self.key = self.controller.remember(self.body)

    def rule(self) -> dict[str, Any] | None:
        return self.kube.stored(RULES, "team-a", RULE_NAME)

    def status(self) -> dict[str, Any]:
        stored = self.kube.stored(POLICIES, "team-a", "p")
        assert stored is not None
        return dict(stored.get("status") or {})

    def ready(self) -> tuple[str, str]:
        condition = self.status()["conditions"][0]
        assert condition["type"] == "Ready"
        return condition["status"], condition["reason"]


# --- the policy's rule -------------------------------------------------------------------


async def test_an_absent_rule_is_created_owned_by_the_policy_and_the_policy_is_ready() -> None:
    world = World()
    await world.controller.reconcile(KEY)
    rule = world.rule()
    assert rule is not None and rule["spec"] == desired_rule()["spec"]
    assert rule["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert [(c.verb, c.resource) for c in world.kube.writes] == [
        ("create", "prometheusrules"),
        ("patch_status", "costpolicies"),
    ]
    assert world.ready() == ("True", "RulesApplied")
    assert world.metrics.ready == {KEY: True}
    assert world.events.posted == []  # ready from the start: nothing to announce
    assert world.controller.policies[KEY]["status"] == world.status()


async def test_a_second_reconcile_of_a_policy_in_step_writes_nothing() -> None:
    world = World()
    await world.controller.reconcile(KEY)
    before = len(world.kube.writes)
    await world.controller.reconcile(KEY)
    assert len(world.kube.writes) == before
    assert world.kube.calls[-1].verb == "get"  # it only looked at the rule


async def test_an_edited_rule_is_patched_back_and_only_the_rule_is_written() -> None:
    world = World()
    await world.controller.reconcile(KEY)
    edited = copy.deepcopy(world.rule())
    assert edited is not None
    edited["spec"] = {"groups": []}
    world.kube.put(RULES, edited)
    world.kube.calls.clear()
    await world.controller.reconcile(KEY, edited)
    assert world.kube.verbs() == ["patch"]  # the rule from the watch spares the read
    assert world.kube.calls[0].body == {"spec": desired_rule()["spec"]}
    rule = world.rule()
    assert rule is not None and rule["spec"] == desired_rule()["spec"]


async def test_losing_the_race_to_create_the_rule_patches_the_winners() -> None:
    world = World()
    theirs = desired_rule()
    theirs["spec"] = {"groups": []}
    original_create = world.kube.create

    async def someone_else_first(*args: Any) -> dict[str, Any]:
        world.kube.put(RULES, theirs)
        return await original_create(*args)

    world.kube.create = someone_else_first  # type: ignore[method-assign]
    await world.controller.reconcile(KEY)
    assert [c.verb for c in world.kube.calls][:4] == ["get", "create", "get", "patch"]
    assert world.kube.calls[1].error == 409
    rule = world.rule()
    assert rule is not None and rule["spec"] == desired_rule()["spec"]
    assert world.ready() == ("True", "RulesApplied")


@pytest.mark.parametrize("status", [0, 403, 500])
async def test_a_rule_that_cannot_be_written_leaves_the_policy_not_ready(status: int) -> None:
    world = World()
    world.kube.fail_next(status, on="create")
    await world.controller.reconcile(KEY)
    assert world.rule() is None
    assert world.ready() == ("False", "ApplyFailed")
    assert "cannot write the PrometheusRule" in world.status()["message"]
    assert world.metrics.ready == {KEY: False}
    assert world.metrics.policy_failures == {("team-a", "ApplyFailed"): 1}
    [(type_, reason, _)] = world.events.posted
    assert (type_, reason) == ("Warning", "ApplyFailed")


async def test_after_a_failure_the_next_good_reconcile_announces_the_recovery() -> None:
    world = World()
    world.kube.fail_next(500, on="create")
    await world.controller.reconcile(KEY)
    await world.controller.reconcile(KEY)
    assert world.rule() is not None
    assert world.ready() == ("True", "RulesApplied")
    assert [e[:2] for e in world.events.posted] == [
        ("Warning", "ApplyFailed"),
        ("Normal", "RulesApplied"),
    ]
    assert world.metrics.ready == {KEY: True}


async def test_an_outage_writes_nothing_and_the_status_is_retried_later() -> None:
    world = World()
    world.kube.outage = True
    await world.controller.reconcile(KEY)
    assert world.kube.writes == []
    assert world.kube.verbs() == ["get", "patch_status"]  # both tried, both refused
    assert "status" not in world.controller.policies[KEY]  # not remembered as written
    assert world.metrics.ready == {KEY: False}
    world.kube.outage = False
    await world.controller.reconcile(KEY)
    assert world.rule() is not None and world.ready() == ("True", "RulesApplied")


async def test_a_replica_that_does_not_lead_neither_reads_nor_writes() -> None:
    world = World(leading=False)
    await world.controller.reconcile(KEY)
    await world.controller.ensure_recording_rules()
    assert world.kube.calls == []
    assert world.metrics.ready == {} and world.events.posted == []


async def test_a_forgotten_policy_is_not_reconciled_and_its_series_goes() -> None:
    world = World()
    await world.controller.reconcile(KEY)
    world.controller.forget(KEY)
    world.kube.calls.clear()
    await world.controller.reconcile(KEY)
    assert world.kube.calls == []
    assert world.metrics.ready == {}
    assert KEY not in world.controller.policies


# --- invalid policies and deletion -------------------------------------------------------


async def test_an_invalid_policy_removes_the_rule_it_owns() -> None:
    world = World(policy(**INVALID))
    world.kube.put(RULES, desired_rule())  # owned by uid u-1, as this policy
    await world.controller.reconcile(KEY)
    assert world.rule() is None
    assert ("delete", "prometheusrules") in [(c.verb, c.resource) for c in world.kube.writes]
    assert world.ready() == ("False", "InvalidPolicy")
    assert world.metrics.policy_failures == {("team-a", "InvalidPolicy"): 1}


async def test_a_rule_owned_by_another_policy_of_that_name_is_left_alone() -> None:
    world = World(policy(uid="u-2", **INVALID))
    world.kube.put(RULES, desired_rule())  # owned by u-1: an earlier policy of that name
    await world.controller.delete_owned_rule(world.body)
    assert world.rule() is not None
    assert world.kube.writes == []


async def test_deleting_the_rule_of_a_policy_without_one_is_harmless() -> None:
    world = World()
    await world.controller.delete_owned_rule(world.body)
    assert world.kube.verbs() == ["get"]


# --- the shared recording rules ----------------------------------------------------------


def recording_rules() -> dict[str, Any]:
    return recording_rules_prometheus_rule(NAMESPACE)


async def test_the_recording_rules_are_created_when_absent() -> None:
    world = World()
    await world.controller.ensure_recording_rules()
    stored = world.kube.stored(RULES, NAMESPACE, "finops-recording-rules")
    assert stored is not None and stored["spec"] == recording_rules()["spec"]
    assert world.kube.verbs() == ["get", "create"]


async def test_recording_rules_in_step_are_not_written() -> None:
    world = World()
    world.kube.put(RULES, recording_rules())
    await world.controller.ensure_recording_rules()
    assert world.kube.writes == []


async def test_edited_recording_rules_are_patched_back() -> None:
    world = World()
    edited = recording_rules()
    edited["spec"] = {"groups": []}
    world.kube.put(RULES, edited)
    await world.controller.ensure_recording_rules(edited)
    [write] = world.kube.writes
    assert write.verb == "patch" and write.body == {"spec": recording_rules()["spec"]}


async def test_recording_rules_that_cannot_be_written_are_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    world.kube.fail_next(404, on="create")  # e.g. the Prometheus Operator CRDs are missing
    await world.controller.ensure_recording_rules()
    assert world.kube.writes == []
    assert "Prometheus Operator CRDs" in caplog.text


async def test_catching_up_writes_the_recording_rules_and_every_policy() -> None:
    world = World()
    await world.controller.catch_up()
    await world.controller.check_rules_evaluating()
    assert world.kube.stored(RULES, NAMESPACE, "finops-recording-rules") is not None
    assert world.rule() is not None
    assert world.ready() == ("True", "RulesApplied")


def test_a_rule_names_its_policy_or_is_the_recording_rules() -> None:
    world = World()
    assert world.controller.owner_of(desired_rule()) == KEY
    assert world.controller.owner_of(recording_rules()) is None
    assert world.controller.is_recording_rules(recording_rules())
    assert not world.controller.is_recording_rules(desired_rule())


# --- the API lost its state (issue 13, item 10) -------------------------------------------


async def test_a_rule_the_api_lost_is_created_again_though_the_watch_had_it() -> None:
    world = World()
    await world.controller.reconcile(world.key)
    seen = world.rule()
    world.kube.objects.pop((*RULES, "team-a", RULE_NAME))
    changed = {**world.body, "spec": {**world.body["spec"], "budget": {"monthly": 999}}}
    world.controller.remember(changed)
    await world.controller.reconcile(world.key, seen)  # the cached rule: patch, 404
    assert world.rule() is not None
    assert world.ready() == ("True", "RulesApplied")


async def test_catching_up_after_the_api_came_back_empty() -> None:
    """The recording rules come back, and a policy the API no longer has is forgotten."""
    world = World()
    await world.controller.catch_up()
    await world.controller.check_rules_evaluating()
    world.kube.objects.clear()
    await world.controller.catch_up()
    await world.controller.check_rules_evaluating()
    assert world.kube.stored(RULES, NAMESPACE, "finops-recording-rules") is not None
    assert world.rule() is None  # no rule for a policy that is gone
    assert world.controller.policies == {}


# --- RulesEvaluating: does Prometheus evaluate the shared recording rules? -------------

HEARTBEAT = [{"metric": {}, "value": [0, "1"]}]


def evaluating(world: World) -> dict[str, Any]:
    [condition] = [c for c in world.status()["conditions"] if c["type"] == "RulesEvaluating"]
    return condition


def watched(world: World, prometheus: FakePrometheus) -> World:
    world.controller.prometheus = prometheus
    return world


async def test_rules_prometheus_does_not_evaluate_make_the_policy_not_ready_and_say_why() -> None:
    world = watched(World(), FakePrometheus(answers={HEARTBEAT_QUERY: []}))
    await world.controller.catch_up()
    await world.controller.check_rules_evaluating()
    condition = evaluating(world)
    assert condition["status"] == "False"
    assert condition["reason"] == "RecordingRulesNotEvaluated"
    # It points at the labels to select and where the rules live.
    assert "release=kube-prometheus-stack" in condition["message"]
    assert "ruleSelector" in condition["message"]
    assert f"{NAMESPACE}/finops-recording-rules" in condition["message"]
    assert world.ready() == ("False", "RecordingRulesNotEvaluated")
    assert world.metrics.ready == {KEY: False}
    assert world.events.posted[-1][:2] == ("Warning", "RecordingRulesNotEvaluated")
    # The rule itself was written, and the status still names it.
    assert world.rule() is not None and world.status()["ruleName"] == RULE_NAME


async def test_once_prometheus_evaluates_the_rules_the_policy_turns_ready() -> None:
    prometheus = FakePrometheus(answers={HEARTBEAT_QUERY: []})
    world = watched(World(), prometheus)
    await world.controller.catch_up()
    await world.controller.check_rules_evaluating()
    assert evaluating(world)["status"] == "False"
    prometheus.answers[HEARTBEAT_QUERY] = HEARTBEAT
    await world.controller.check_rules_evaluating()
    assert evaluating(world)["status"] == "True"
    assert evaluating(world)["reason"] == "HeartbeatFound"
    assert world.ready() == ("True", "RulesApplied")
    assert world.events.posted[-1][:2] == ("Normal", "RulesApplied")  # the recovery, announced


async def test_an_unreachable_prometheus_is_unknown_and_leaves_ready_alone() -> None:
    prometheus = FakePrometheus(answers={HEARTBEAT_QUERY: HEARTBEAT})
    world = watched(World(), prometheus)
    await world.controller.catch_up()
    await world.controller.check_rules_evaluating()
    assert world.ready() == ("True", "RulesApplied")
    prometheus.outage = True
    await world.controller.check_rules_evaluating()
    condition = evaluating(world)
    assert condition["status"] == "Unknown" and condition["reason"] == "PrometheusUnreachable"
    assert "http://prometheus.test:9090" in condition["message"]
    assert world.ready() == ("True", "RulesApplied")


async def test_an_unchanged_answer_writes_nothing() -> None:
    world = watched(World(), FakePrometheus(answers={HEARTBEAT_QUERY: HEARTBEAT}))
    await world.controller.catch_up()
    await world.controller.check_rules_evaluating()
    before = len(world.kube.writes)
    await world.controller.check_rules_evaluating()
    await world.controller.check_rules_evaluating()
    assert len(world.kube.writes) == before


async def test_a_standby_replica_does_not_ask_prometheus() -> None:
    prometheus = FakePrometheus(answers={HEARTBEAT_QUERY: []})
    world = watched(World(leading=False), prometheus)
    await world.controller.check_rules_evaluating()
    assert prometheus.log == [] and world.kube.writes == []


async def test_the_configured_rule_labels_are_named_in_the_message() -> None:
    world = watched(World(), FakePrometheus(answers={HEARTBEAT_QUERY: []}))
    world.controller.config = parse_config({"ruleLabels": {"release": "prom"}, **EVERY_TEAM})
    await world.controller.catch_up()
    await world.controller.check_rules_evaluating()
    assert "release=prom" in evaluating(world)["message"]
    stored = world.kube.stored(RULES, NAMESPACE, "finops-recording-rules")
    assert stored is not None and stored["metadata"]["labels"]["release"] == "prom"


# --- the watch events kopf hands over ----------------------------------------------------


async def test_a_policy_event_reconciles_and_a_delete_removes_its_rule_and_series() -> None:
    world = World()
    await world.controller.on_policy_event("ADDED", world.body)
    assert world.rule() is not None and world.metrics.ready == {KEY: True}
    await world.controller.on_policy_event("DELETED", world.body)
    assert world.rule() is None
    assert KEY not in world.controller.policies and world.metrics.ready == {}


async def test_a_standby_forgets_a_deleted_policy_without_touching_its_rule() -> None:
    world = World()
    await world.controller.reconcile(KEY)
    world.leading = False
    await world.controller.on_policy_event("DELETED", world.body)
    assert world.rule() is not None and KEY not in world.controller.policies


async def test_a_rule_that_cannot_be_deleted_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    await world.controller.reconcile(KEY)
    world.kube.fail_next(500)
    await world.controller.on_policy_event("DELETED", world.body)
    assert "Cannot delete the rule of a deleted CostPolicy" in caplog.text


async def test_an_edited_or_deleted_rule_event_puts_the_rule_of_its_policy_back() -> None:
    world = World()
    await world.controller.reconcile(KEY)
    rule = world.rule()
    assert rule is not None
    await world.kube.delete(*RULES, "team-a", RULE_NAME)
    await world.controller.on_rule_event("DELETED", rule)
    assert world.rule() is not None
    recording = recording_rules_prometheus_rule(NAMESPACE)
    await world.controller.on_rule_event("DELETED", recording)
    assert world.kube.stored(RULES, NAMESPACE, recording["metadata"]["name"]) is not None


async def test_the_event_poster_posts_as_its_reporter_and_logs_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube()
    post = event_poster(kube, "replica-1")
    await post(policy(), "Warning", "Invalid", "bad selector")
    [event] = kube.events
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "Invalid",
        "bad selector",
    )
    assert event["involvedObject"]["name"] == "p"
    kube.fail_next(500)
    await post(policy(), "Normal", "Fixed", "ok")
    assert len(kube.events) == 1 and "Cannot post an Event about CostPolicy p" in caplog.text


# --- lanes and budget conflicts (policy_lanes) ---------------------------------------------

TEAM_A = {"team-a": {"resilio.tech/team": "team-a"}}


def in_lanes(world: World) -> World:
    """The default configuration: team-a's policies act on team-a alone."""
    world.controller.config = Config()
    world.controller.namespaces = TEAM_A
    return world


def condition_of(world: World, type: str, namespace: str = "team-a", name: str = "p") -> Any:
    stored = world.kube.stored(POLICIES, namespace, name) or {}
    conditions = (stored.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type), None)


async def test_a_policy_for_another_team_is_out_of_lane_and_renders_no_rule() -> None:
    world = in_lanes(World(policy(selector={"team": "team-b"}, budget={"monthly": 1})))
    await world.controller.reconcile(KEY)
    assert world.rule() is None
    assert world.ready() == ("False", "OutOfLane")
    assert "team-b" in condition_of(world, "Ready")["message"]
    assert condition_of(world, "Invalid")["status"] == "False"  # valid, only not its lane
    assert world.metrics.ready[KEY] is False
    assert world.events.posted[0][:2] == ("Warning", "OutOfLane")


async def test_a_rule_written_before_the_lane_is_deleted() -> None:
    world = World(policy(selector={"team": "team-b"}, anomaly={"threshold": 50}))
    await world.controller.reconcile(KEY)
    assert world.rule() is not None  # every team allowed
    in_lanes(world)
    await world.controller.reconcile(KEY)
    assert world.rule() is None


async def test_a_policy_for_its_own_team_is_ready() -> None:
    world = in_lanes(World(policy(selector={"team": "team-a"}, anomaly={"threshold": 50})))
    await world.controller.reconcile(KEY)
    assert world.rule() is not None and world.ready() == ("True", "RulesApplied")
    assert condition_of(world, "Conflict")["status"] == "False"


async def test_a_team_label_given_later_brings_the_policy_into_its_lane() -> None:
    world = World(policy(selector={"team": "team-a"}, anomaly={"threshold": 50}))
    world.controller.config = Config()
    namespaces: dict[str, dict[str, str]] = {"team-a": {}}
    world.controller.namespaces = namespaces
    await world.controller.reconcile(KEY)
    assert world.ready() == ("False", "OutOfLane")
    namespaces["team-a"] = TEAM_A["team-a"]
    await world.controller.on_namespace_changed("team-a")
    assert world.ready() == ("True", "RulesApplied")


def budget_policy(name: str, created: str, monthly: int) -> dict[str, Any]:
    body = policy(selector={"team": "team-a"}, budget={"monthly": monthly, "currency": "USD"})
    body["metadata"] = {**body["metadata"], "name": name, "uid": f"u-{name}"}
    body["metadata"]["creationTimestamp"] = created
    return body


async def test_two_budgets_for_one_team_put_a_conflict_on_both() -> None:
    world = in_lanes(World(budget_policy("p", "2026-01-01T00:00:00Z", 100)))
    await world.controller.reconcile(KEY)
    assert condition_of(world, "Conflict")["status"] == "False"
    newer = budget_policy("q", "2026-02-01T00:00:00Z", 900)
    world.kube.put(POLICIES, newer)
    await world.controller.on_policy_event("ADDED", newer)

    older_says, newer_says = (
        condition_of(world, "Conflict"),
        condition_of(world, "Conflict", name="q"),
    )
    assert (older_says["status"], older_says["reason"]) == ("True", "BudgetConflict")
    assert newer_says["status"] == "True"
    assert "this one applies" in older_says["message"]
    assert "team-a/p applies" in newer_says["message"]

    await world.kube.delete(*POLICIES, "team-a", "q")
    await world.controller.on_policy_event("DELETED", newer)
    assert condition_of(world, "Conflict")["status"] == "False"

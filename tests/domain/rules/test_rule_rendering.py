"""Rule rendering step by step: recording rules, each alert, and the PrometheusRule wrapping."""

from __future__ import annotations

import re
from typing import Any

import pytest

from finops_operator.domain import conventions
from finops_operator.domain.config import parse_config
from finops_operator.domain.rules.alert_rules import AlertOptions, render_alert_groups
from finops_operator.domain.rules.cost_policy import CostPolicy, Selector, parse_cost_policy
from finops_operator.domain.rules.prometheus_rule import (
    policy_prometheus_rule,
    recording_rules_prometheus_rule,
    render_policy,
    rule_count,
    rule_name_for,
)
from finops_operator.domain.rules.recording_rules import render_recording_rules
from tests.install.test_costpolicy_crd import EXAMPLE, with_spec
from tests.support.crd_schema import PROMETHEUS_RULE_CRD, validate_against_crd


def alerts(policy: dict[str, Any], options: AlertOptions | None = None) -> list[dict[str, Any]]:
    groups = render_alert_groups(parse_cost_policy(policy), options)
    return [rule for group in groups for rule in group["rules"]]


def only(rules: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [rule for rule in rules if rule.get("alert") == name]


# --- recording rules ------------------------------------------------------------------


def test_the_recording_rules_have_the_contract_names() -> None:
    records = [rule["record"] for group in render_recording_rules() for rule in group["rules"]]
    assert conventions.RULE_GPU_ALLOCATION in records
    assert conventions.RULE_GPU_COST_HOURLY in records
    assert records.index(conventions.RULE_GPU_COST_HOURLY) < records.index(
        conventions.RULE_GPU_COST_LAST_HOUR
    )


def test_allocation_and_cost_are_summed_by_the_five_cost_labels() -> None:
    rules = {rule["record"]: rule["expr"] for rule in render_recording_rules()[0]["rules"]}
    by_five = "sum by (cluster, team, feature, environment, workload_type, cost_center) ("
    assert rules[conventions.RULE_GPU_ALLOCATION].startswith(by_five)
    assert rules[conventions.RULE_GPU_COST_HOURLY].startswith(by_five)


def test_replicas_and_target_labels_are_collapsed_before_anything_is_summed_or_joined() -> None:
    cost = render_recording_rules()[0]["rules"][2]["expr"]
    assert "finops_pod_gpu_allocation)" in cost
    for line in cost.splitlines():
        if "(finops_pod_gpu_allocation)" in line:
            assert line.strip().startswith(
                "max by (cluster, namespace, pod, node, resource, gpu_model,"
            )
    assert "max by (cluster, gpu_model) (finops_gpu_hourly_price)" in cost
    assert "* on (cluster, gpu_model) group_left ()" in cost
    assert "job" not in cost and "instance" not in cost


def test_month_to_date_is_recorded_in_a_group_slower_than_every_minute_but_inside_lookback() -> (
    None
):
    monthly = render_recording_rules()[1]
    assert monthly["name"] == conventions.RECORDING_RULE_MONTHLY_GROUP
    assert monthly["interval"] == "2m"
    assert [rule["record"] for rule in monthly["rules"]] == [
        conventions.RULE_GPU_COST_MONTH_TO_DATE,
        conventions.RULE_GPU_COST_LAST_DAY,
        conventions.RULE_TOKEN_COST_MONTH_TO_DATE,
        conventions.RULE_TOKEN_COST_LAST_DAY,
    ]


# --- alerts ---------------------------------------------------------------------------


def test_the_policy_renders_one_group_per_concern_with_its_own_name() -> None:
    groups = render_alert_groups(parse_cost_policy(EXAMPLE))
    assert [group["name"] for group in groups] == [
        f"finops-costpolicy/finops/search-platform/{concern}"
        for concern in ("anomaly", "budget", "idle", "retries")
    ]


def test_every_alert_carries_costpolicy_severity_and_the_policy_labels() -> None:
    policy = with_spec(alerting__labels={"route": "oncall"})
    for rule in alerts(policy):
        assert rule["labels"]["costpolicy"] == "finops/search-platform"
        assert rule["labels"]["severity"] == "critical"
        assert rule["labels"]["route"] == "oncall"
        assert "{{ $labels.team }}" in rule["annotations"]["description"]
        assert "CostPolicy finops/search-platform" in rule["annotations"]["description"]


@pytest.mark.parametrize("selector", [{}, {"environment": "production"}, {"team": "search"}])
def test_every_alert_is_grouped_by_team_whatever_the_selector(selector: dict[str, str]) -> None:
    for rule in alerts(with_spec(selector=selector)):
        assert "by (team)" in rule["expr"] or "team) (" in rule["expr"], rule["expr"]


def test_an_empty_selector_puts_no_matchers_in_the_expressions() -> None:
    for rule in alerts(with_spec(selector={}, budget__forecast=True)):
        for series in ("avg1h", "month_to_date:sum", "avg24h", "finops_pod_gpu_allocation"):
            assert f"{series}{{" not in rule["expr"]


def test_the_anomaly_compares_the_hour_with_an_offset_baseline_and_guards_it() -> None:
    [rule] = only(alerts(EXAMPLE), conventions.ALERT_SPEND_ANOMALY)
    expr = rule["expr"]
    assert "[7d:1h] offset 1h" in expr
    assert "> 0)" in expr  # a zero baseline is dropped, never divided by
    assert "> 5)" in expr  # the minimum hourly cost
    assert "count_over_time(" in expr and ">= 24" in expr  # a day of history
    assert "> 50" in expr and rule["for"] == "15m"
    assert "finops_pod_gpu_allocation" not in expr  # only recorded series


def test_the_budget_thresholds_each_fire_between_their_threshold_and_the_next() -> None:
    rules = only(alerts(EXAMPLE), conventions.ALERT_BUDGET_THRESHOLD)
    assert [rule["labels"]["threshold"] for rule in rules] == ["50", "80", "100"]
    assert rules[0]["expr"].endswith(">= 10000) < 16000")
    assert rules[1]["expr"].endswith(">= 16000) < 20000")
    assert rules[2]["expr"].endswith(">= 20000")
    assert "10000.00 USD" in rules[0]["annotations"]["description"]


def test_the_forecast_adds_the_run_rate_for_the_hours_left_in_the_month() -> None:
    [rule] = only(alerts(EXAMPLE), conventions.ALERT_BUDGET_FORECAST)
    assert conventions.RULE_GPU_COST_LAST_DAY in rule["expr"]
    assert "days_in_month() - day_of_month()" in rule["expr"]
    assert rule["expr"].endswith("> 20000") and rule["for"] == "1h"


def test_no_forecast_when_the_policy_turns_it_off() -> None:
    assert only(alerts(with_spec(budget__forecast=False)), conventions.ALERT_BUDGET_FORECAST) == []


def test_the_idle_alert_joins_utilization_to_gpu_pods_on_namespace_and_pod() -> None:
    [rule] = only(alerts(EXAMPLE), conventions.ALERT_GPU_IDLE)
    assert "on (namespace, pod) group_left ()" in rule["expr"]
    assert "DCGM_FI_DEV_GPU_UTIL[5m]" in rule["expr"]
    assert rule["expr"].endswith("< 10)") and rule["for"] == "2h"


def test_the_idle_alert_reads_the_gpu_operators_exported_labels_and_mig_by_default() -> None:
    [rule] = only(alerts(EXAMPLE), conventions.ALERT_GPU_IDLE)
    expr = rule["expr"]
    # The GPU Operator's ServiceMonitor (honorLabels: false) renames the pod's labels.
    assert '"namespace", "$1", "exported_namespace", "(.+)"' in expr
    assert '"pod", "$1", "exported_pod", "(.+)"' in expr
    # MIG slices are read from the engine-active ratio, whole GPUs from the percentage.
    assert 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU_I_ID!=""}[5m]' in expr
    assert "/ 100" in expr and expr.index("DCGM_FI_PROF_GR_ENGINE_ACTIVE") < expr.index(
        "DCGM_FI_DEV_GPU_UTIL"
    )


def test_the_dcgm_exporter_preset_keeps_namespace_and_pod() -> None:
    options = AlertOptions.from_config(parse_config({"gpuMetrics": {"preset": "dcgm-exporter"}}))
    [rule] = only(alerts(EXAMPLE, options), conventions.ALERT_GPU_IDLE)
    assert "exported_" not in rule["expr"] and "label_replace" not in rule["expr"]


def test_a_utilization_metric_read_as_a_fraction_is_scaled_to_percent() -> None:
    config = parse_config(
        {
            "gpuMetrics": {
                "utilizationMetric": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                "utilizationScale": 1,
                "migUtilizationMetric": "",
            }
        }
    )
    [rule] = only(alerts(EXAMPLE, AlertOptions.from_config(config)), conventions.ALERT_GPU_IDLE)
    assert "(100 * (\n  avg by (namespace, pod) (" in rule["expr"]
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE[5m]" in rule["expr"]
    assert "/ 1\n" not in rule["expr"] and "GPU_I_ID" not in rule["expr"]


def test_retry_loops_count_container_restarts_and_failed_job_pods() -> None:
    restarts, failures = only(alerts(EXAMPLE), conventions.ALERT_GPU_RETRY_LOOP)
    assert restarts["labels"]["reason"] == "container-restarts"
    assert "increase(kube_pod_container_status_restarts_total[1h])" in restarts["expr"]
    assert failures["labels"]["reason"] == "job-failures"
    assert 'kube_pod_owner{owner_kind="Job"}' in failures["expr"]
    assert "increase(kube_job_status_failed[1h])" in failures["expr"]
    assert "for" not in restarts


def test_a_hostile_value_that_slipped_past_validation_is_still_escaped() -> None:
    valid = parse_cost_policy(EXAMPLE)
    hostile = CostPolicy(
        name=valid.name,
        namespace=valid.namespace,
        spec=valid.spec.model_copy(
            update={"selector": Selector.model_construct(team='x"} or vector(1) #')}
        ),
    )
    for group in render_alert_groups(hostile):
        for rule in group["rules"]:
            assert 'team="x\\"} or vector(1) #"' in rule["expr"]


# --- wrapping -------------------------------------------------------------------------


def test_the_policy_becomes_a_prometheus_rule_in_its_namespace_with_its_rule_labels() -> None:
    rule = render_policy(EXAMPLE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"] == "costpolicy-search-platform"
    assert rule["metadata"]["namespace"] == "finops"
    assert rule["metadata"]["labels"] == {
        "release": "kube-prometheus-stack",
        "app.kubernetes.io/managed-by": "finops-operator",
        "finops.resilio.tech/costpolicy": "search-platform",
    }
    assert "ownerReferences" not in rule["metadata"]
    assert rule_count(rule) == 8


def test_a_policy_from_the_api_owns_its_prometheus_rule() -> None:
    policy = dict(EXAMPLE, metadata={**EXAMPLE["metadata"], "uid": "1234"})
    [owner] = render_policy(policy)["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "name": "search-platform",
        "uid": "1234",
        "controller": True,
    }
    # No blockOwnerDeletion: with OwnerReferencesPermissionEnforcement (OpenShift's
    # default) it needs `update` on costpolicies/finalizers, and the garbage collector
    # removes the rule after its policy either way (tests/e2e/test_prometheus_rules.py).
    assert "blockOwnerDeletion" not in owner


def test_a_long_policy_name_gives_a_short_stable_rule_name() -> None:
    long_name = "a" * 100
    assert rule_name_for(long_name) == rule_name_for(long_name)
    assert len(rule_name_for(long_name)) <= 63
    assert rule_name_for("a" * 99) != rule_name_for(long_name)


def test_the_recording_rules_live_in_the_operators_namespace() -> None:
    rule = recording_rules_prometheus_rule(labels={"release": "kube-prometheus-stack"})
    assert rule["metadata"]["name"] == "finops-recording-rules"
    assert rule["metadata"]["namespace"] == "finops-system"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert recording_rules_prometheus_rule("monitoring")["metadata"]["namespace"] == "monitoring"


RENDERED = {
    "design example": lambda: render_policy(EXAMPLE),
    "owned, every team": lambda: policy_prometheus_rule(
        parse_cost_policy(
            with_spec(selector={}, alerting__labels={"route": "x"}),
        )
    ),
    "recording rules": lambda: recording_rules_prometheus_rule(labels={"release": "kps"}),
}


@pytest.mark.parametrize("case", sorted(RENDERED))
def test_every_rendered_prometheus_rule_is_valid_under_the_upstream_crd(case: str) -> None:
    validate_against_crd(RENDERED[case](), PROMETHEUS_RULE_CRD)


def test_the_upstream_crd_check_refuses_a_broken_prometheus_rule() -> None:
    rule = render_policy(EXAMPLE)
    rule["spec"]["groups"][0]["rules"][0]["for"] = "15 minutes"
    rule["metadata"]["labels"]["bad key!"] = "x"
    with pytest.raises(AssertionError) as caught:
        validate_against_crd(rule, PROMETHEUS_RULE_CRD)
    assert "spec.groups[0].rules[0].for" in str(caught.value)
    assert "metadata.labels" in str(caught.value)


# --- issue 9: rule labels, token spend and scope ------------------------------------


def test_both_kinds_of_prometheus_rule_carry_the_configured_rule_labels() -> None:
    config = parse_config({"ruleLabels": {"release": "monitoring", "team": "platform"}})
    options = AlertOptions.from_config(config)
    without_own = with_spec(alerting__ruleLabels=None)
    policy_rule = render_policy(without_own, options)
    shared = recording_rules_prometheus_rule(labels=config.rule_labels)
    for rule in (policy_rule, shared):
        assert rule["metadata"]["labels"]["release"] == "monitoring"
        assert rule["metadata"]["labels"]["team"] == "platform"
    # The defaults match kube-prometheus-stack's default ruleSelector.
    assert recording_rules_prometheus_rule()["metadata"]["labels"]["release"] == (
        "kube-prometheus-stack"
    )
    assert render_policy(without_own)["metadata"]["labels"]["release"] == ("kube-prometheus-stack")


def test_a_policys_own_rule_labels_win_over_the_configured_ones() -> None:
    policy = with_spec(alerting__ruleLabels={"release": "other"})
    rule = render_policy(policy, AlertOptions.from_config(parse_config({})))
    assert rule["metadata"]["labels"]["release"] == "other"


@pytest.mark.parametrize(
    ("scope", "gpu", "tokens"),
    [("gpu", True, False), ("tokens", False, True), ("all", True, True), (None, True, True)],
)
def test_the_scope_picks_which_recorded_spend_budget_forecast_and_anomaly_read(
    scope: str | None, gpu: bool, tokens: bool
) -> None:
    spec: dict[str, Any] = {"scope": scope} if scope else {}
    policy = with_spec(**spec)
    rendered = alerts(policy)
    for name in (
        conventions.ALERT_SPEND_ANOMALY,
        conventions.ALERT_BUDGET_THRESHOLD,
        conventions.ALERT_BUDGET_FORECAST,
    ):
        for rule in only(rendered, name):
            assert ("finops:gpu_cost" in rule["expr"]) is gpu, (name, rule["expr"])
            assert ("finops:token_cost" in rule["expr"]) is tokens, (name, rule["expr"])
    # Idle and retry alerts are about GPU pods, whatever the scope.
    [idle] = only(rendered, conventions.ALERT_GPU_IDLE)
    assert "finops:token_cost" not in idle["expr"]


def test_token_cost_is_recorded_by_team_from_the_configured_team_label() -> None:
    groups = render_recording_rules(parse_config({}).llm_gateway)
    [token] = [r for r in groups[0]["rules"] if r["record"] == conventions.RULE_TOKEN_COST_HOURLY]
    expr = token["expr"]
    assert '"team", "$1", "team_alias", "(.+)"' in expr
    assert "litellm_input_tokens_metric_total" in expr
    assert "litellm_output_tokens_metric_total" in expr
    assert 'finops_token_price_per_1k{direction="output"}' in expr
    assert expr.startswith("3600 * sum by (cluster, team) (")

    by_id = render_recording_rules(parse_config({"llmGateway": {"teamLabel": "team"}}).llm_gateway)
    [token] = [r for r in by_id[0]["rules"] if r["record"] == conventions.RULE_TOKEN_COST_HOURLY]
    assert "team_alias" not in token["expr"]


def test_the_spend_metric_replaces_token_prices_when_configured() -> None:
    gateway = parse_config({"llmGateway": {"costSource": "spend_metric"}}).llm_gateway
    [token] = [
        r
        for r in render_recording_rules(gateway)[0]["rules"]
        if r["record"] == conventions.RULE_TOKEN_COST_HOURLY
    ]
    assert "litellm_spend_metric_total[15m]" in token["expr"]
    assert "finops_token_price_per_1k" not in token["expr"]


# ---------------------------------------------------------------- clusters (issue 22)

FLEET = with_spec(clusters="all", idle=None, retries=None, alerting__ruleLabels=None)


def _budget_exprs(policy: dict[str, Any], options: AlertOptions) -> list[str]:
    return [rule["expr"] for rule in only(alerts(policy, options), "FinOpsBudgetThreshold")]


def test_a_cluster_policy_counts_only_its_clusters_spend_when_the_cluster_is_named() -> None:
    named = AlertOptions.from_config(parse_config({"cluster": {"name": "eu-1"}}))
    for expr in _budget_exprs(EXAMPLE, named):
        assert expr.count('cluster=~"eu-1|"') == 2, expr  # GPU and token spend
    assert "cluster" not in "".join(_budget_exprs(EXAMPLE, AlertOptions()))


def test_a_fleet_policy_sums_every_cluster_with_each_ha_pair_once() -> None:
    named = AlertOptions.from_config(parse_config({"cluster": {"name": "eu-1"}}))
    exprs = _budget_exprs(FLEET, named) + [
        rule["expr"] for rule in only(alerts(FLEET, named), "FinOpsSpendAnomaly")
    ]
    for expr in exprs:
        assert "cluster=~" not in expr
        assert "sum by (team) (max without (prometheus_replica, replica) (" in expr


def test_a_fleet_policys_rule_carries_the_thanos_ruler_labels_not_the_prometheus_ones() -> None:
    config = parse_config({"cluster": {"fleetRuleLabels": {"role": "fleet"}}})
    rule = render_policy(FLEET, AlertOptions.from_config(config))
    labels = rule["metadata"]["labels"]
    assert labels["role"] == "fleet" and "release" not in labels
    own = render_policy(EXAMPLE, AlertOptions.from_config(config))["metadata"]["labels"]
    assert own["release"] == "kube-prometheus-stack" and "role" not in own
    default = render_policy(FLEET)["metadata"]["labels"]
    assert default["finops.resilio.tech/rule-evaluator"] == "thanos-ruler"


def test_the_recording_rules_keep_the_configured_cluster_label() -> None:
    for group in render_recording_rules(cluster="k8s_cluster"):
        for rule in group["rules"]:
            for grouping in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
                if grouping:  # `on ()` joins the label-less heartbeat
                    assert grouping.startswith("k8s_cluster"), (rule["record"], grouping)

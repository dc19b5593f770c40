"""The CostPolicy domain model: what it accepts, its defaults, and how it names what is wrong."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

from finops_operator.domain.config import DEFAULT_LABEL_RULES, LabelRule
from finops_operator.domain.promql import Duration
from finops_operator.domain.rules.cost_policy import parse_cost_policy
from finops_operator.errors import CostPolicyError
from tests.install.test_costpolicy_crd import EXAMPLE, with_spec


def refused(policy: Any, **kwargs: Any) -> CostPolicyError:
    with pytest.raises(CostPolicyError) as caught:
        parse_cost_policy(policy, **kwargs)
    return caught.value


def test_the_design_example_is_read_with_its_values() -> None:
    policy = parse_cost_policy(EXAMPLE)
    assert policy.key == "finops/search-platform"
    spec = policy.spec
    assert spec.selector.metric_labels() == {"team": "search-platform", "environment": "production"}
    assert spec.anomaly is not None and spec.anomaly.threshold == Decimal(50)
    assert spec.anomaly.baseline == Duration.of(days=7)
    assert spec.anomaly.min_hourly_cost == Decimal(5)
    assert spec.budget is not None and spec.budget.monthly == Decimal(20000)
    assert spec.budget.thresholds == (Decimal(50), Decimal(80), Decimal(100))
    assert spec.alerting.rule_labels == {"release": "kube-prometheus-stack"}


def test_left_out_values_take_their_documented_defaults() -> None:
    policy = parse_cost_policy(
        with_spec(
            anomaly={"threshold": 30},
            budget={"monthly": 100},
            idle={"maxUtilization": 5},
            retries={"maxRestartsPerHour": 3},
            alerting=None,
            selector=None,
        )
    )
    anomaly, budget = policy.spec.anomaly, policy.spec.budget
    assert anomaly is not None and budget is not None and policy.spec.idle is not None
    assert (str(anomaly.baseline), str(anomaly.for_), anomaly.min_hourly_cost) == ("7d", "15m", 0)
    assert str(anomaly.required_history) == "1d" and str(anomaly.baseline_offset) == "1h"
    assert budget.currency == "USD" and budget.forecast is True
    assert budget.thresholds == (50, 80, 100)
    assert str(policy.spec.idle.for_) == "2h"
    assert policy.spec.alerting.severity == "warning"
    assert policy.spec.selector.metric_labels() == {}


def test_money_may_have_cents_and_stays_exact() -> None:
    policy = parse_cost_policy(with_spec(anomaly__minHourlyCost=0.1, budget__monthly=1234.56))
    assert policy.spec.anomaly is not None and policy.spec.budget is not None
    assert policy.spec.anomaly.min_hourly_cost == Decimal("0.1")
    assert policy.spec.budget.monthly == Decimal("1234.56")


@pytest.mark.parametrize(
    "team",
    [
        'search"} or vector(1) #',
        "search\\",
        "search\nplatform",
        '{{ query "up" }}',
        "search platform",
        "",
    ],
)
def test_a_team_name_with_promql_or_templates_is_refused(team: str) -> None:
    error = refused(with_spec(selector={"team": team}))
    assert error.field == "spec.selector.team"
    assert "spec.selector.team:" in str(error)


def test_a_selector_value_outside_the_label_rules_is_refused_with_the_rule() -> None:
    error = refused(with_spec(selector={"environment": "prod"}))
    assert str(error) == (
        "spec.selector.environment: 'prod' must be one of production, staging, development"
    )


def test_the_configured_label_rules_decide_what_a_selector_may_name() -> None:
    rules = dict(DEFAULT_LABEL_RULES)
    rules["resilio.tech/environment"] = LabelRule(values=("prod", "dev"))
    policy = parse_cost_policy(with_spec(selector={"environment": "prod"}), label_rules=rules)
    assert policy.spec.selector.metric_labels() == {"environment": "prod"}


def test_an_unknown_selector_key_is_named() -> None:
    error = refused(with_spec(selector={"squad": "a"}))
    assert error.field == "spec.selector.squad"
    assert "unknown field" in str(error)


def test_every_problem_is_reported_each_with_its_field() -> None:
    error = refused(
        with_spec(
            selector={"team": "Bad Team"},
            anomaly__for="soon",
            budget__thresholds=[100, 50],
            retries__maxRestartsPerHour=0,
        )
    )
    fields = [problem.field for problem in error.problems]
    assert fields == [
        "spec.anomaly.for",
        "spec.budget.thresholds",
        "spec.retries.maxRestartsPerHour",
        "spec.selector.team",
    ]
    assert "\n" not in error.one_line() and error.one_line().count("; spec.") == 3


def test_a_baseline_must_be_whole_hours() -> None:
    error = refused(with_spec(anomaly__baseline="90m"))
    assert error.field == "spec.anomaly.baseline"
    assert "whole number of hours" in str(error)


def test_min_history_longer_than_the_baseline_is_refused() -> None:
    error = refused(with_spec(anomaly__baseline="1d", anomaly__minHistory="2d"))
    assert error.field == "spec.anomaly"
    assert "minHistory (2d) is longer than baseline (1d)" in str(error)


def test_the_baseline_ends_past_a_long_pending_spike() -> None:
    policy = parse_cost_policy(with_spec(anomaly__for="3h"))
    assert policy.spec.anomaly is not None
    assert policy.spec.anomaly.baseline_offset == Duration.of(hours=3)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"team": "x"}, "cannot be overridden"),
        ({"costpolicy": "x"}, "cannot be overridden"),
        ({"severity": "x"}, "cannot be overridden"),
        ({"__name__": "x"}, "not a Prometheus label name"),
        ({"note": "{{ $value }}"}, "template"),
    ],
)
def test_alerting_labels_cannot_override_the_rules_or_run_templates(
    labels: dict[str, str], message: str
) -> None:
    error = refused(with_spec(alerting__labels=labels))
    assert error.field == "spec.alerting.labels"
    assert message in str(error)


def test_rule_labels_must_be_kubernetes_labels_and_leave_ours_alone() -> None:
    error = refused(with_spec(alerting__ruleLabels={"app.kubernetes.io/managed-by": "me"}))
    assert error.field == "spec.alerting.ruleLabels"
    error = refused(with_spec(alerting__ruleLabels={"release": "kube prometheus"}))
    assert "not a Kubernetes label value" in str(error)


def test_a_budget_in_another_currency_than_the_prices_is_refused() -> None:
    error = refused(with_spec(budget__currency="EUR"), currency="USD")
    assert error.field == "spec.budget.currency"
    assert "write the budget in USD" in str(error)


@pytest.mark.parametrize("value", ["20000", True, None, [1]])
def test_money_must_be_a_number(value: Any) -> None:
    assert refused(with_spec(budget__monthly=value)).field == "spec.budget.monthly"


def test_a_policy_with_nothing_to_alert_on_is_refused() -> None:
    error = refused(with_spec(anomaly=None, budget=None, idle=None, retries=None))
    assert str(error) == "spec: set at least one of anomaly, budget, idle or retries"


def test_kind_api_version_and_metadata_are_checked() -> None:
    error = refused({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "spec": {}})
    fields = [problem.field for problem in error.problems]
    assert fields[:3] == ["apiVersion", "kind", "metadata.name"]


def test_something_that_is_not_a_mapping_is_refused() -> None:
    assert refused(["a", "list"]).field == "(top level)"


def test_a_policy_without_a_namespace_lands_in_the_default_one() -> None:
    policy = dict(EXAMPLE, metadata={"name": "p"})
    assert parse_cost_policy(policy).namespace == "default"
    assert parse_cost_policy(policy, default_namespace="ml").namespace == "ml"


def test_uid_and_generation_are_kept_for_the_operator() -> None:
    policy = dict(EXAMPLE, metadata={**EXAMPLE["metadata"], "uid": "u-1", "generation": 4})
    parsed = parse_cost_policy(policy)
    assert (parsed.uid, parsed.generation) == ("u-1", 4)


def test_the_source_prefixes_the_message() -> None:
    error = refused(with_spec(selector={"team": "Bad"}), source="policy.yaml")
    assert str(error).startswith("policy.yaml: spec.selector.team:")


class _ReadOnly(Mapping[str, Any]):
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return _ReadOnly(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_a_read_only_mapping_such_as_a_kopf_body_is_accepted() -> None:
    assert parse_cost_policy(_ReadOnly(EXAMPLE)).key == "finops/search-platform"


@pytest.mark.parametrize("field", ["team", "feature", "environment", "workloadType", "costCenter"])
def test_untagged_is_accepted_as_a_selector_value_as_the_docs_allow(field: str) -> None:
    # issue 13, item 11: `__untagged__` was refused as not a Kubernetes label value.
    policy = {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": "untagged-spend", "namespace": "finops"},
        "spec": {"selector": {field: "__untagged__"}, "budget": {"monthly": 100}},
    }
    assert parse_cost_policy(policy).spec.selector.by_short_name() == {field: "__untagged__"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"budget": {"monthly": 10**26}}, "spec.budget.monthly"),
        ({"budget": {"monthly": 1e26}}, "spec.budget.monthly"),
        ({"budget": {"monthly": 10**5000}}, "spec.budget.monthly"),
        ({"anomaly": {"threshold": 5, "minHourlyCost": 1e26}}, "spec.anomaly.minHourlyCost"),
        ({"anomaly": {"threshold": 1e400}}, "spec.anomaly.threshold"),
    ],
)
def test_absurd_amounts_are_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    policy = {
        "apiVersion": "finops.resilio.tech/v1alpha1",
        "kind": "CostPolicy",
        "metadata": {"name": "big", "namespace": "finops"},
        "spec": {"selector": {"team": "search"}, **spec},
    }
    with pytest.raises(CostPolicyError) as caught:
        parse_cost_policy(policy)
    assert caught.value.field == field

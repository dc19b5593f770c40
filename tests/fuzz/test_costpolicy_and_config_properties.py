"""Properties of CostPolicy rendering and configuration parsing, over hostile input.

Rendering a CostPolicy either gives a PrometheusRule or raises CostPolicyError
naming fields; parsing a configuration either gives a Config or raises ConfigError.
Nothing else escapes: no decimal.Overflow, no TypeError, no RecursionError.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given

from finops_operator.domain.config import parse_config
from finops_operator.domain.rules.policy_reconciler import plan_policy, team_budgets
from finops_operator.domain.rules.prometheus_rule import render_policy, rule_count
from finops_operator.errors import ConfigError, CostPolicyError
from tests.fuzz.strategies import configs, cost_policies


@given(cost_policies())
def test_render_succeeds_or_raises_cost_policy_error(policy: Any) -> None:
    try:
        rule = render_policy(policy)
    except CostPolicyError as err:
        assert err.problems
        assert all(problem.field for problem in err.problems)
        return
    json.dumps(rule, allow_nan=False)
    assert rule_count(rule) >= 1
    assert len(rule["metadata"]["name"]) <= 63


@given(cost_policies())
def test_the_operator_plans_every_policy_and_takes_budgets_of_valid_ones_only(policy: Any) -> None:
    config = parse_config(None)
    plan = plan_policy(policy, config)
    budgets = team_budgets([policy], config)
    if not plan.valid:
        assert budgets == {}
    for amount in budgets.values():
        assert 0 < amount <= 10**12


@given(configs())
def test_config_parsing_raises_only_config_error(data: Any) -> None:
    try:
        config = parse_config(data, "fuzz.yaml")
    except ConfigError as err:
        assert str(err).startswith("fuzz.yaml:")
        return
    tokens = [
        p for both in config.pricing.tokens_per_1k.values() for p in (both.input, both.output)
    ]
    for price in [*config.pricing.gpu_hourly.values(), *tokens]:
        assert price.is_finite() and 0 <= price <= 10**12
    assert config.pricing.shared_monthly <= 10**12

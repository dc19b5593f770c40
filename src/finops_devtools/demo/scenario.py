"""The demo's simulated cluster and what follows from it: the node pools, the window
of simulated days, the operator's configuration over it, and the months it reports."""

from __future__ import annotations

import argparse
import datetime
from typing import Any, Final

from finops_devtools.demo.workloads import ENFORCED_NAMESPACE, POLICY_TEAM
from finops_devtools.simulator.generation import NodePool, ScenarioParams
from finops_devtools.simulator.world import (
    A100,
    H100,
    MI300X,
    RESOURCE_AMD,
    RESOURCE_MIG_1G,
    RESOURCE_SHARED,
    Scenario,
)

NODE_POOLS: Final = (
    NodePool(H100, count=3),
    NodePool(A100, count=1),
    NodePool(A100, RESOURCE_MIG_1G, count=1, gpus=4, units_per_gpu=7),
    NodePool(A100, RESOURCE_SHARED, count=1, gpus=4, units_per_gpu=4),
    NodePool(MI300X, RESOURCE_AMD, count=1),
)


def simulated_window(
    days: int, now: datetime.datetime
) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end): `days` days up to the last full hour before `now`."""
    end = now.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    return end - datetime.timedelta(days=days), end


def scenario_params(args: argparse.Namespace, now: datetime.datetime) -> ScenarioParams:
    start, end = simulated_window(args.days, now)
    return ScenarioParams(
        start=start, end=end, seed=args.seed, teams=args.teams, node_pools=NODE_POOLS
    )


def operator_config(prometheus_url: str, scenario: Scenario) -> dict[str, Any]:
    return {
        "mode": "enforce",
        # Ask often whether Prometheus evaluates the rules: the demo loads them live.
        "prometheus": {"url": prometheus_url, "rulesCheckSeconds": 2},
        "pricing": scenario.pricing.as_file(),
        "reports": {"intervalSeconds": 5},
        # The sample CostPolicy lives in a namespace without a team label: its lane is
        # granted here, as a platform team would (docs/costpolicy.md, lanes).
        "costPolicies": {"allowedTeams": {ENFORCED_NAMESPACE: [POLICY_TEAM]}},
    }


def refreshed_periods(start: datetime.datetime, end: datetime.datetime) -> list[str]:
    """The months of the data that the operator reports (the current and the previous)."""
    current = end.strftime("%Y-%m")
    first_of_month = end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous = (first_of_month - datetime.timedelta(days=1)).strftime("%Y-%m")
    periods = [current]
    if start < first_of_month:
        periods.append(previous)
    return periods

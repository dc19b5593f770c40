"""The reports step: a CostPolicy becomes a PrometheusRule, the CostReports, the showback.

The operator writes CostReports from Prometheus in the background; this step waits
for them, applies a sample CostPolicy with a budget set from the team's spend,
prints the PrometheusRule and status it became and `kubectl get costreports`, and
writes the HTML showback page.
"""

from __future__ import annotations

import datetime
import math
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from finops_devtools.demo import workloads as demo_workloads
from finops_devtools.demo.kubectl_tables import (
    abbreviated_rule,
    costpolicies_table,
    costreports_table,
    to_yaml,
)
from finops_devtools.demo.terminal import Printer
from finops_devtools.demo.waiting import wait_for
from finops_operator.domain import conventions
from finops_operator.views.showback_html import render_showback

if TYPE_CHECKING:
    from finops_devtools.devcluster.emulator import KubeEmulator

COSTREPORTS: Final = "CostReport"


def budget_for(gpu_cost: Decimal) -> Decimal:
    """A round monthly budget that the month-to-date GPU cost uses about 80 % of."""
    wanted = gpu_cost * Decimal("1.25")
    return Decimal(max(100, math.ceil(wanted / 100) * 100))


def report_of(reports: list[Any], team: str, period: str) -> Any:
    for report in reports:
        spec = report.get("spec") or {}
        if spec.get("team") == team and spec.get("period") == period and report.get("status"):
            return report
    return None


def wait_for_reports(
    cluster: KubeEmulator, periods: list[str], timeout: float, with_budget_of: str | None = None
) -> list[Any]:
    """The CostReports once the cluster's of every period (and, if asked, the team's
    with its budget use) have figures."""

    def ready() -> list[Any] | None:
        reports = [r for r in cluster.list(COSTREPORTS) if r.get("status")]
        have = {r["metadata"]["name"] for r in reports}
        if not all(f"cluster-{p}" in have for p in periods):
            return None
        if with_budget_of is not None:
            team = report_of(reports, with_budget_of, periods[0])
            if team is None or "budgetUsedPercent" not in team["status"]:
                return None
        return reports

    result: list[Any] = wait_for(
        f"the CostReports of {', '.join(periods)}", ready, timeout, interval=0.5
    )
    return result


def apply_policy(
    p: Printer, cluster: KubeEmulator, workdir: Path, periods: list[str], timeout: float
) -> None:
    """A CostPolicy with a budget the team uses about 80 % of, the PrometheusRule it
    became, and its status."""
    p.step("A CostPolicy becomes a PrometheusRule")
    first = wait_for_reports(cluster, periods, timeout)
    team = report_of(first, demo_workloads.POLICY_TEAM, periods[0])
    spent = Decimal(str(team["status"]["gpuCost"])) if team else Decimal(0)
    policy = demo_workloads.sample_policy(budget_for(spent))
    meta = policy["metadata"]
    path = workdir / "manifests" / meta["namespace"] / f"costpolicy-{meta['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(policy))
    p.command(f"cat {path.relative_to(workdir)}")
    p.block(to_yaml(policy), "  ")
    p.command(f"kubectl apply -f {path.relative_to(workdir)}")
    cluster.create(policy)
    p.line(f"  costpolicy.{conventions.API_GROUP}/{meta['name']} created")
    rule_name = conventions.COSTPOLICY_RULE_PREFIX + meta["name"]
    rule = wait_for(
        f"PrometheusRule {meta['namespace']}/{rule_name}",
        lambda: cluster.get("PrometheusRule", meta["namespace"], rule_name),
        timeout=30,
    )
    full = workdir / f"prometheusrule-{rule_name}.yaml"
    full.write_text(to_yaml(rule))
    p.line()
    p.command(f"kubectl get prometheusrule {rule_name} -n {meta['namespace']} -o yaml")
    p.block(abbreviated_rule(rule), "  ")
    p.line(f"  # (the whole rule: {full})")

    def evaluated(policy: Any) -> bool:
        # Ready, and Prometheus evaluates the recording rules (the demo loaded them).
        conditions = {
            c.get("type"): c for c in (policy.get("status") or {}).get("conditions") or []
        }
        return all(
            (conditions.get(kind) or {}).get("status") == "True"
            for kind in ("Ready", conventions.CONDITION_RULES_EVALUATING)
        )

    stored = wait_for(
        "the CostPolicy's status (Ready, RulesEvaluating)",
        lambda: (
            (p := cluster.get("CostPolicy", meta["namespace"], meta["name"])) and evaluated(p) and p
        ),
        timeout=30,
    )
    p.line()
    p.command(f"kubectl get costpolicies -n {meta['namespace']}")
    p.block(costpolicies_table([stored], datetime.datetime.now(datetime.UTC)), "  ")
    p.command(
        f"kubectl get costpolicy {meta['name']} -n {meta['namespace']} -o jsonpath='{{.status}}'"
    )
    p.block(to_yaml(stored.get("status")), "  ")
    recording = cluster.get(
        "PrometheusRule", conventions.OPERATOR_NAMESPACE, conventions.RECORDING_RULES_NAME
    )
    if recording:
        count = sum(len(g.get("rules") or []) for g in recording["spec"]["groups"])
        p.line(
            f"  # its alerts build on {count} shared recording rules in prometheusrule/"
            f"{conventions.RECORDING_RULES_NAME} -n {conventions.OPERATOR_NAMESPACE}"
        )


def show_reports(
    p: Printer, cluster: KubeEmulator, periods: list[str], timeout: float
) -> list[Any]:
    p.step("CostReports, written by the operator from Prometheus")
    reports = wait_for_reports(cluster, periods, timeout, with_budget_of=demo_workloads.POLICY_TEAM)
    p.command("kubectl get costreports")
    p.block(costreports_table(reports, datetime.datetime.now(datetime.UTC)), "  ")
    return reports


def write_showback(p: Printer, reports: list[Any], output: Path) -> Path:
    p.step("A showback report for people")
    output.mkdir(parents=True, exist_ok=True)
    path = output / "showback.html"
    page = render_showback(
        reports,
        datetime.datetime.now(datetime.UTC),
        title="GPU showback",
        note="Simulated data: made by `finops-operator demo`.",
    )
    path.write_text(page, encoding="utf-8")
    p.line(f"  {path.resolve()}  (open it in a browser; one file, no external assets)")
    return path

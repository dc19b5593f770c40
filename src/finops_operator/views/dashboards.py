"""The two showback dashboards, leadership and engineering, as Grafana sidecar ConfigMaps.

`finops-operator render --dashboards` writes them from the user's configuration
(the currency of every money panel, where GPU utilization is read, which LLM
gateway's token series are drawn); the repository's copies in manifests/dashboards/
and the Helm chart are this view's output for the built-in configuration
(docs/dashboards.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finops_operator.domain import config as cfg
from finops_operator.domain import conventions
from finops_operator.domain.token_sources import TokenSource
from finops_operator.views.dashboard_queries import (
    ALLOCATION,
    CAPACITY,
    COST_RATE,
    HOURLY,
    MONTH_TO_DATE,
    POD,
    POD_IDS,
    RUN_RATE,
    TOKEN_HOURLY,
    TOKEN_MONTH_TO_DATE,
    TOKEN_RUN_RATE,
    UNTAGGED,
    any_label_untagged,
    by,
    by_job,
    idle_gpus,
    indent,
    node_capacity,
    on,
    pod_allocation,
    pod_gpu_hours,
    pod_utilization,
    priced,
    selector,
    spend_in_range,
    token_spend,
    tokens_per_hour_by_model,
    utilization_weighted,
)
from finops_operator.views.grafana import (
    Layout,
    bar_gauge,
    config_map,
    custom_variable,
    dashboard,
    datasource_variable,
    label_variable,
    money_unit,
    panel,
    row,
    table_merge,
    target,
    text_panel,
)

# ---------------------------------------------------------------- leadership


def leadership(pricing: cfg.PricingConfig, tokens: TokenSource) -> dict[str, Any]:
    """AI spend by cost center and team, top features, trend, token volumes, budget burn."""
    money = money_unit(pricing.currency)
    layout = Layout()
    # Token series carry only `team`: `cost_center=~".*"` (All) matches them, a chosen
    # cost center leaves them out (token spend has no cost center).
    gpu = selector('team=~"$team"', 'cost_center=~"$cost_center"')
    panels: list[dict[str, Any]] = []
    add = panels.append

    def mtd(labels: Sequence[str]) -> str:
        """AI spend (GPU + tokens) this month, as the budget alerts of `scope: all` read it."""
        grouping = f"sum {by(labels)}" if labels else "sum"
        return f"{grouping} ({MONTH_TO_DATE}{gpu} or {TOKEN_MONTH_TO_DATE}{gpu})"

    def forecast(labels: Sequence[str]) -> str:
        grouping = f"sum {by(labels)}" if labels else "sum"
        rate = f"{grouping} ({RUN_RATE}{gpu} or {TOKEN_RUN_RATE}{gpu})"
        return (
            f"(\n  {mtd(labels)}\n  or 0 * {rate}\n)\n"
            f"+ {rate}\n"
            f"  * on () group_left ()\n"
            f"    ((days_in_month() - day_of_month() + 1) * 24 - hour())"
        )

    add(row(layout, "Spend in the selected period"))
    add(
        panel(
            layout, "stat", "GPU spend",
            "GPU cost of the selected period: allocated GPU hours x hourly price of the GPU "
            "model, summed from the hourly buckets of finops:gpu_cost_hourly:avg1h.",
            [target("A", spend_in_range(gpu, ()), instant=True)],
            6, 4, money,
        )
    )  # fmt: skip
    add(
        panel(
            layout, "stat", "Token spend",
            "LLM gateway spend (LiteLLM or OpenTelemetry GenAI: config llmGateway.preset) "
            "of the selected period: input and output tokens x "
            "their price per 1,000 (finops_token_price_per_1k, the prices the operator "
            "exports), from finops:token_cost_hourly:sum. Token spend has a team but no "
            "cost center.",
            [target("A", token_spend(gpu, ()), instant=True)],
            6, 4, money,
        )
    )  # fmt: skip
    add(
        panel(
            layout, "stat", "AI spend, month to date",
            "GPU + token spend of the calendar month (UTC) through the last full hour, "
            "whatever period is selected: finops:gpu_cost_month_to_date:sum + "
            "finops:token_cost_month_to_date:sum.",
            [target("A", mtd(()), instant=True)],
            6, 4, money,
        )
    )  # fmt: skip
    add(
        panel(
            layout, "stat", "AI spend, month-end forecast",
            "Month to date + the last 24 hours' mean hourly GPU + token spend x the hours "
            "left in the month: the projection the FinOpsBudgetForecast alert of a policy "
            "with scope all (the default) compares with budgets.",
            [target("A", forecast(()), instant=True)],
            6, 4, money,
        )
    )  # fmt: skip

    add(row(layout, "Who spends"))
    add(
        panel(
            layout, "bargauge", "GPU spend by cost center",
            "GPU cost of the selected period by the resilio.tech/cost-center label "
            "(__untagged__: pods without one).",
            [target("A", spend_in_range(gpu, ("cost_center",)), "{{cost_center}}",
                    instant=True)],
            8, 9, money,
            options=bar_gauge(show_unfilled=True),
        )
    )  # fmt: skip
    add(
        panel(
            layout, "table", "AI spend by team",
            "GPU cost and token cost of the selected period by team, and their total.",
            [
                target("A", spend_in_range(gpu, ("team",)), instant=True, table=True),
                target("B", token_spend(gpu, ("team",)), instant=True, table=True),
            ],
            8, 9, money,
            transformations=[
                *table_merge({"team": "Team", "Value #A": "GPU cost",
                              "Value #B": "Token cost"}),
                {"id": "calculateField",
                 "options": {"mode": "reduceRow", "alias": "Total",
                             "reduce": {"reducer": "sum", "include": ["GPU cost", "Token cost"]},
                             "replaceFields": False}},
                {"id": "sortBy", "options": {"sort": [{"field": "Total", "desc": True}]}},
            ],
        )
    )  # fmt: skip
    add(
        panel(
            layout, "bargauge", "Top cost-driving features",
            "The ten features (resilio.tech/feature, with their team) with the highest GPU "
            "cost in the selected period.",
            [target("A", f"topk(10,\n  {spend_in_range(gpu, ('feature', 'team'))}\n)",
                    "{{feature}} ({{team}})", instant=True)],
            8, 9, money,
            options=bar_gauge(show_unfilled=True),
        )
    )  # fmt: skip

    add(row(layout, "Trend"))
    add(
        panel(
            layout, "timeseries", "Hourly AI spend by team",
            "Money spent in the trailing hour: GPU (finops:gpu_cost_hourly:avg1h, minutes "
            "without spend count as zero) and tokens (finops:token_cost_hourly:avg1h).",
            [
                target("A", f"sum by (team) ({HOURLY}{gpu})", "{{team}} GPU"),
                target("B", f"sum by (team) ({TOKEN_HOURLY}{gpu})", "{{team}} tokens"),
            ],
            12, 9, money,
            defaults={"custom": {"fillOpacity": 10, "showPoints": "never"}},
        )
    )  # fmt: skip
    add(
        panel(
            layout, "timeseries", "Daily AI spend by team",
            "One bar per UTC day (drawn at the midnight that ends it): the day's 24 hourly "
            "GPU buckets and the day's token cost, stacked by team.",
            [
                target("A", spend_in_range(gpu, ("team",), "1d"), "{{team}} GPU"),
                target("B", token_spend(gpu, ("team",), "1d"), "{{team}} tokens"),
            ],
            12, 9, money,
            interval="1d",
            defaults={"custom": {"drawStyle": "bars", "fillOpacity": 80,
                                 "stacking": {"mode": "normal", "group": "A"}}},
        )
    )  # fmt: skip

    add(
        panel(
            layout, "timeseries", "Tokens per hour by model",
            f"Input and output tokens per hour by model, read from the LLM gateway's own "
            f"series ({tokens.described}; config llmGateway.preset: {tokens.preset}), "
            f"every gateway replica summed. Volumes, not money: the token panels above are "
            f"priced by the recording rules.",
            [
                target("A", tokens_per_hour_by_model(tokens, "input"), "{{model}} input"),
                target("B", tokens_per_hour_by_model(tokens, "output"), "{{model}} output"),
            ],
            24, 8, "short",
            defaults={"custom": {"showPoints": "never"}},
        )
    )  # fmt: skip

    add(row(layout, "Budget burn"))
    add(
        panel(
            layout, "timeseries", "Month-to-date AI spend and forecast by team",
            "Solid: month-to-date GPU + token spend (UTC calendar month). Dashed: the month-end "
            "forecast at each moment. Budgets are set in CostPolicies; compare with the "
            "FinOpsBudgetThreshold / FinOpsBudgetForecast alerts and the CostReports.",
            [
                target("A", mtd(("team",)), "{{team}} month to date"),
                target("B", forecast(("team",)), "{{team}} forecast"),
            ],
            16, 10, money,
            defaults={"custom": {"showPoints": "never"}},
            overrides=[{
                "matcher": {"id": "byFrameRefID", "options": "B"},
                "properties": [{"id": "custom.lineStyle",
                                "value": {"fill": "dash", "dash": [10, 10]}}],
            }],
        )
    )  # fmt: skip
    add(
        text_panel(
            layout, "Where the budgets are",
            "Budgets live in **CostPolicies** (`spec.budget.monthly`), not in Prometheus, "
            "so they are not drawn here.\n\n"
            "- `FinOpsBudgetThreshold` fires at each threshold of month-to-date spend;\n"
            "- `FinOpsBudgetForecast` fires when the forecast on the left passes the budget;\n"
            "- `kubectl get costreports` shows each team's budget used (%).\n\n"
            "Month to date and the forecast here are the very series those alerts read.",
            8, 10,
        )
    )  # fmt: skip

    return dashboard(
        "finops-leadership",
        "FinOps / AI spend (leadership)",
        "Monthly AI spend by cost center and team (GPU and LLM tokens), top features, "
        "trend and budget burn. Generated by finops-operator render --dashboards.",
        panels,
        [
            datasource_variable(),
            label_variable("team", "team", conventions.RULE_GPU_COST_HOURLY, "Team"),
            label_variable(
                "cost_center", "cost_center", conventions.RULE_GPU_COST_HOURLY, "Cost center"
            ),
        ],
        "now/M",
    )


# ---------------------------------------------------------------- engineering


def engineering(pricing: cfg.PricingConfig, source: cfg.GpuUtilization) -> dict[str, Any]:
    """GPU utilization, idle capacity, cost per training run, untagged spend."""
    money = money_unit(pricing.currency)
    layout = Layout()
    cluster = 'cluster=~"$cluster"'
    team = 'team=~"$team"'
    alloc = selector(cluster, team)
    util = selector(cluster)
    panels: list[dict[str, Any]] = []
    add = panels.append
    all_pods = pod_allocation(util)

    def cluster_named(expr: str) -> str:
        # On a single Prometheus the series have no `cluster`: call it "default".
        return f'label_replace(\n{indent(expr)}\n, "cluster", "default", "cluster", "")'

    add(row(layout, "GPU utilization"))
    add(
        panel(
            layout, "timeseries", "GPU utilization by cluster",
            "Allocated: mean DCGM utilization of the GPUs pods hold, weighted by the GPUs "
            "each pod holds (dcgm-exporter series joined to finops_pod_gpu_allocation on "
            "namespace and pod). Capacity: busy GPUs over every GPU the nodes offer.",
            [
                target("A", cluster_named(utilization_weighted(source, ("cluster",), alloc, util)),
                       "{{cluster}} allocated"),
                target("B", cluster_named(
                    f"100 * sum by (cluster) (\n"
                    f"{indent(pod_allocation(alloc), '    ')}\n"
                    f"  * {on(POD)} group_left ()\n"
                    f"    clamp({pod_utilization(source, util)} / 100, 0, 1)\n"
                    f")\n/\nsum by (cluster) ({node_capacity(util)})"),
                    "{{cluster}} of capacity"),
            ],
            12, 9, "percent",
            defaults={"min": 0, "max": 100, "custom": {"showPoints": "never"}},
        )
    )  # fmt: skip
    add(
        panel(
            layout, "timeseries", "GPU utilization by team",
            "Mean utilization of each team's allocated GPUs, weighted by GPUs held.",
            [target("A", utilization_weighted(source, ("team",), alloc, util), "{{team}}")],
            12, 9, "percent",
            defaults={"min": 0, "max": 100, "custom": {"showPoints": "never"}},
        )
    )  # fmt: skip

    add(row(layout, "Idle reserved capacity"))
    idle = idle_gpus(source, (), alloc, util)
    add(
        panel(
            layout, "timeseries", "GPUs: busy, allocated but idle, unallocated",
            "Stacked, in GPUs. Idle = allocation x (1 - utilization); busy = the rest of "
            "the allocation (pods without utilization series count as busy). Unallocated = "
            "node capacity - allocation of every team (the team filter does not apply).",
            [
                target("A", f"sum ({pod_allocation(alloc)})\n- ({idle} or vector(0))",
                       "allocated, busy"),
                target("B", idle, "allocated, idle"),
                target("C", f"sum ({node_capacity(util)})\n- sum ({all_pods})",
                       "unallocated"),
            ],
            12, 9, "none",
            defaults={"min": 0, "custom": {"fillOpacity": 40, "showPoints": "never",
                                           "stacking": {"mode": "normal", "group": "A"}}},
        )
    )  # fmt: skip
    add(
        panel(
            layout, "bargauge", "Idle GPUs by team, now",
            "GPUs allocated but unused (allocation x (1 - utilization)) per team.",
            [target("A", idle_gpus(source, ("team",), alloc, util), "{{team}}", instant=True)],
            6, 9, "none",
            options=bar_gauge(),
        )
    )  # fmt: skip
    by_model = f"sum by (cluster, gpu_model) ({node_capacity(util)})"
    add(
        panel(
            layout, "bargauge", "Unallocated GPUs by model, now",
            "GPUs the nodes offer that no pod holds, by GPU model.",
            [target("A", cluster_named(
                f"{by_model}\n- (\n"
                f"    sum by (cluster, gpu_model) (max {by(POD_IDS)} ({ALLOCATION}{util}))\n"
                f"  or 0 * {by_model}\n)"),
                "{{gpu_model}} ({{cluster}})", instant=True)],
            6, 9, "none",
            options=bar_gauge(),
        )
    )  # fmt: skip
    idle_util = f"{pod_utilization(source, util, '1h')} < $idle_threshold"
    add(
        panel(
            layout, "table", "Allocated but idle pods",
            "Pods holding GPUs whose mean utilization over the last hour is below "
            "$idle_threshold %: what the FinOpsGpuIdle alert looks for.",
            [
                target("A", f"{pod_allocation(alloc)}\nand {on(POD)}\n({idle_util})",
                       instant=True, table=True),
                target("B", f"0 * {pod_allocation(alloc)}\n+ {on(POD)} group_left ()\n"
                            f"({idle_util})", instant=True, table=True),
            ],
            24, 8, "none",
            transformations=table_merge({"cluster": "Cluster", "namespace": "Namespace",
                                         "pod": "Pod", "team": "Team",
                                         "Value #A": "GPUs", "Value #B": "Utilization (%)"}),
        )
    )  # fmt: skip

    add(row(layout, "Cost per training run"))
    hours = pod_gpu_hours(f"sum_over_time({ALLOCATION}{alloc}[$__range])")
    job_cost = by_job(priced(hours), f", {cluster}")
    job_hours = by_job(hours, f", {cluster}")
    top = f"topk(25,\n{indent(job_cost)}\n)"
    add(
        panel(
            layout, "table", "Cost per training run (Job)",
            "The 25 Jobs with the highest GPU cost in the selected period: every attempt's "
            "GPU hours (pods owned by the Job, via kube-state-metrics' kube_pod_owner) x the "
            "hourly price of their GPU model. As the report computes it.",
            [
                target("A", top, instant=True, table=True),
                target("B", f"{job_hours}\nand on (cluster, namespace, owner_name, team)\n{top}",
                       instant=True, table=True),
            ],
            24, 9, money,
            transformations=[
                *table_merge({"cluster": "Cluster", "namespace": "Namespace",
                              "owner_name": "Job", "team": "Team", "Value #A": "GPU cost",
                              "Value #B": "GPU hours"}),
                {"id": "sortBy", "options": {"sort": [{"field": "GPU cost", "desc": True}]}},
            ],
            overrides=[{"matcher": {"id": "byName", "options": "GPU hours"},
                        "properties": [{"id": "unit", "value": "none"},
                                       {"id": "decimals", "value": 1}]}],
        )
    )  # fmt: skip

    add(row(layout, "Untagged spend"))
    recorded = selector(cluster)
    untagged_team = selector(cluster, f"team={UNTAGGED}")
    add(
        panel(
            layout, "stat", "Spend without a team",
            "GPU cost of the selected period of pods without resilio.tech/team "
            '(team="__untagged__").',
            [target("A", spend_in_range(untagged_team, (), heartbeat=recorded), instant=True)],
            6, 4, money,
        )
    )  # fmt: skip
    add(
        panel(
            layout, "stat", "Share of GPU spend with a cost label missing",
            "GPU cost of pods missing any of the five cost labels, as a share of all GPU "
            "cost in the selected period.",
            [target("A",
                    f"sum (\n  "
                    f"{any_label_untagged(COST_RATE, [cluster], 'sum_over_time({}[$__range])')}"
                    f"\n)\n/\nsum (sum_over_time({COST_RATE}{recorded}[$__range]))",
                    instant=True)],
            6, 4, "percentunit",
        )
    )  # fmt: skip
    add(
        panel(
            layout, "timeseries", "Untagged spend per hour",
            "Hourly GPU spend of pods without a team, and of pods missing any cost label.",
            [
                target("A", f"sum by (team) ({HOURLY}{untagged_team})", "{{team}}"),
                target("B", f"sum (\n  {any_label_untagged(HOURLY, [cluster])}\n)",
                       "any cost label missing"),
            ],
            12, 8, money,
            defaults={"custom": {"showPoints": "never"}},
        )
    )  # fmt: skip
    untagged_hours = pod_gpu_hours(
        "(\n      "
        + any_label_untagged(ALLOCATION, [cluster], "sum_over_time({}[$__range])").replace(
            "\n", "\n    "
        )
        + "\n    )"
    )
    add(
        panel(
            layout, "table", "Untagged GPU pods in the period",
            "Pods that held GPUs in the selected period with at least one cost label "
            "missing (__untagged__), with their GPU hours: who to ask to add labels.",
            [target("A", f"sort_desc(\n{indent(untagged_hours)}\n)", instant=True,
                    table=True)],
            24, 9, "none",
            transformations=table_merge(
                {"Value": "GPU hours"}, hidden=("Time", "node", "resource")
            ),
        )
    )  # fmt: skip

    return dashboard(
        "finops-engineering",
        "FinOps / GPU efficiency (engineering)",
        "GPU utilization by cluster and team, idle reserved capacity, cost per training "
        "run and untagged spend. Generated by finops-operator render --dashboards.",
        panels,
        [
            datasource_variable(),
            label_variable("cluster", "cluster", CAPACITY, "Cluster"),
            label_variable("team", "team", ALLOCATION, "Team"),
            custom_variable("idle_threshold", "Idle below (%)", ["5", "10", "20", "30"], "10"),
        ],
        "now-24h",
    )


KUSTOMIZATION_FILE = "kustomization.yaml"
KUSTOMIZATION = """\
# The showback dashboards (docs/dashboards.md). Generated by finops-operator render --dashboards.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - leadership.yaml
  - engineering.yaml
"""


def render(config: cfg.Config) -> dict[str, str]:
    """File name -> content: the two dashboards' ConfigMaps and their kustomization."""
    pricing = config.pricing
    tokens = TokenSource.of(config.llm_gateway)
    return {
        "leadership.yaml": config_map("leadership", leadership(pricing, tokens)),
        "engineering.yaml": config_map(
            "engineering", engineering(pricing, config.gpu_metrics.source())
        ),
        KUSTOMIZATION_FILE: KUSTOMIZATION,
    }

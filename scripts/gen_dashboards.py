"""Writes the showback dashboards: manifests/dashboards/{leadership,engineering}.yaml.

(And their copies in the Helm chart, charts/finops-operator/files/dashboards/.)

Each dashboard is Grafana dashboard JSON inside a ConfigMap labelled
`grafana_dashboard: "1"`, which kube-prometheus-stack's Grafana sidecar loads
(docs/dashboards.md). The PromQL lives here, one function per fragment, so that
the two dashboards read the operator's series the same way the recording rules
and the report do:

- every raw `finops_*` series is first reduced with `max by (<the labels that
  identify it>)`: that drops target labels (`job`, `instance`, ...) and counts
  the two operator replicas once;
- money comes from the recorded series (`finops:gpu_cost_hourly:sum` and the
  rule heartbeat for a period's spend, `...:avg1h` for the trailing hour,
  `finops:gpu_cost_month_to_date:sum` and `...:avg24h` for budget burn), one
  series per label combination, never a scan of pod series (except where a pod
  or a Job is the subject: cost per training run, untagged pods);
- `cluster` is in every `by` and `on`: absent on a single Prometheus (the
  grouping is then a no-op), an external label under Thanos or Mimir, where it
  keeps pods of the same name in two clusters apart.

- token money comes from the recorded `finops:token_cost_*` series, priced by the
  recording rules from `finops_token_price_per_1k` (the prices the operator
  exports), so no price is baked into a dashboard; "AI spend" is GPU + tokens,
  the definition of the CostPolicies' default `scope: all` and of the CostReports;
- GPU utilization is read as the configuration's `gpuMetrics` says (the GPU
  Operator's `exported_*` labels, MIG from the engine-active ratio), through the
  same fragment as the idle alert and the report.

The configuration decides the currency unit and where utilization is read;
regenerate with your own configuration:

    .venv/bin/python scripts/gen_dashboards.py --config finops.yaml

`--check` exits 1 when the committed files differ from what would be written
(tests/install/test_dashboards.py runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from finops_operator.adapters.config_file import load_config
from finops_operator.domain import config as cfg
from finops_operator.domain import conventions
from finops_operator.domain.gpus import utilization as gpu_utilization
from finops_operator.domain.promql import check_expression, string_literal

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "manifests" / "dashboards"
# The Helm chart carries copies (tests/install/test_helm_chart.py checks they are equal).
CHART_COPY = ROOT / "charts" / "finops-operator" / "files" / "dashboards"

NAMESPACE = conventions.OPERATOR_NAMESPACE
FOLDER = "FinOps"
SIDECAR_LABEL = "grafana_dashboard"
FOLDER_ANNOTATION = "grafana_folder"
SCHEMA_VERSION = 39

UNTAGGED = string_literal(conventions.UNTAGGED)
COST_LABELS = tuple(conventions.METRIC_LABEL_FOR[key] for key in conventions.COST_LABELS)
POD_IDS = ("cluster", "namespace", "pod", "node", "resource", "gpu_model", *COST_LABELS)
POD = ("cluster", "namespace", "pod")
NODE_IDS = ("cluster", "node", "gpu_model", "resource")
TARGET_IDS = ("cluster", "job", "instance")

ALLOCATION = conventions.METRIC_POD_GPU_ALLOCATION
CAPACITY = conventions.METRIC_NODE_GPU_CAPACITY
PRICE = conventions.METRIC_GPU_HOURLY_PRICE
POD_OWNER = conventions.METRIC_POD_OWNER
HOURLY = conventions.RULE_GPU_COST_LAST_HOUR  # finops:gpu_cost_hourly:avg1h
TOKEN_RATE = conventions.RULE_TOKEN_COST_HOURLY  # finops:token_cost_hourly:sum
TOKEN_HOURLY = conventions.RULE_TOKEN_COST_LAST_HOUR  # finops:token_cost_hourly:avg1h
TOKEN_MONTH_TO_DATE = conventions.RULE_TOKEN_COST_MONTH_TO_DATE
TOKEN_RUN_RATE = conventions.RULE_TOKEN_COST_LAST_DAY
COST_RATE = conventions.RULE_GPU_COST_HOURLY  # finops:gpu_cost_hourly:sum
HEARTBEAT = conventions.RULE_HEARTBEAT
MONTH_TO_DATE = conventions.RULE_GPU_COST_MONTH_TO_DATE
RUN_RATE = conventions.RULE_GPU_COST_LAST_DAY  # finops:gpu_cost_hourly:avg24h

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def by(labels: Sequence[str]) -> str:
    return "by (" + ", ".join(labels) + ")"


def on(labels: Sequence[str]) -> str:
    return "on (" + ", ".join(labels) + ")"


def indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


# ---------------------------------------------------------------- PromQL fragments


def selector(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}" if matchers else ""


def spend_in_range(
    filters: str,
    labels: Sequence[str],
    window: str = "$__range",
    heartbeat: str = "",
    rate: str = COST_RATE,
) -> str:
    """GPU money spent in the window, by `labels`.

    The mean of the hourly cost rate over the rule evaluations in the window (the
    sum of `finops:gpu_cost_hourly:sum` over the heartbeat's count, so evaluations
    without spend count as zero) x the window's hours. Unlike a sum of hourly
    buckets (`[W:1h]`), it counts the same whatever Prometheus version: Prometheus 2
    selects both ends of a range, so a bucket subquery over a range aligned on the
    hour holds 25 buckets in a day, Prometheus 3 holds 24.
    """
    hours = "$__range_s / 3600" if window == "$__range" else hours_of(window)
    outer = f"sum {by(labels)}" if labels else "sum"
    return (
        f"{outer} (\n"
        f"    sum {by(('cluster', *labels))} (sum_over_time({rate}{filters}[{window}]))\n"
        f"  / on (cluster) group_left ()\n"
        f"    max by (cluster) (count_over_time({HEARTBEAT}{heartbeat}[{window}]))\n"
        f")\n"
        f"* {hours}"
    )


def hours_of(window: str) -> str:
    units = {"h": 1, "d": 24}
    return str(int(window[:-1]) * units[window[-1]])


def token_spend(filters: str, labels: Sequence[str], window: str = "$__range") -> str:
    """Token money in the window by `labels` (team at most): the recorded token rate,
    integrated like GPU spend. Priced by the recording rules from the exported
    `finops_token_price_per_1k` (or LiteLLM's spend metric), never here."""
    return spend_in_range(filters, labels, window, rate=TOKEN_RATE)


def ai_spend(gpu: str, tokens: str) -> str:
    """GPU + token money of the same grouping: `or` keeps each side where the other has
    no series (their label sets never coincide); a plain `+` would drop a team with
    only one kind of spend."""
    return f"sum (\n{indent(gpu)}\nor\n{indent(tokens)}\n)"


def pod_allocation(filters: str) -> str:
    """GPUs each pod holds now, once whatever the replicas, by cluster, namespace, pod, team."""
    return (
        f"sum by (cluster, namespace, pod, team) (\n  max {by(POD_IDS)} ({ALLOCATION}{filters})\n)"
    )


# Where utilization is read (config `gpuMetrics`); set by `render` before the boards are built.
UTILIZATION_SOURCE: cfg.GpuUtilization = cfg.GPU_OPERATOR


def pod_utilization(filters: str, window: str = "$__rate_interval") -> str:
    """Each pod's mean utilization (0-100) over its devices and the window.

    `filters` is a selector such as `{cluster=~"$cluster"}`; the fragment is the one
    the idle alert and the report use (exported_* labels renamed, MIG read apart)."""
    matchers = [part.strip() for part in filters.strip("{}").split(",") if part.strip()]
    fraction = gpu_utilization.pod_utilization(
        UTILIZATION_SOURCE, window, group=POD, matchers=matchers
    )
    return f"(100 * {fraction})"


def utilization_weighted(labels: Sequence[str], alloc_filters: str, util_filters: str) -> str:
    """Utilization of allocated GPUs (%), weighted by the GPUs each pod holds."""
    alloc = pod_allocation(alloc_filters)
    util = pod_utilization(util_filters)
    return (
        f"sum {by(labels)} (\n"
        f"{indent(alloc, '    ')}\n"
        f"  * {on(POD)} group_left ()\n"
        f"    {util}\n"
        f")\n"
        f"/\n"
        f"sum {by(labels)} (\n"
        f"{indent(alloc, '    ')}\n"
        f"  and {on(POD)}\n"
        f"    {util}\n"
        f")"
    )


def idle_gpus(labels: Sequence[str], alloc_filters: str, util_filters: str) -> str:
    """GPUs allocated but unused: allocation x (1 - utilization), by `labels`."""
    grouping = f"sum {by(labels)}" if labels else "sum"
    return (
        f"{grouping} (\n"
        f"{indent(pod_allocation(alloc_filters), '    ')}\n"
        f"  * {on(POD)} group_left ()\n"
        f"    (1 - clamp({pod_utilization(util_filters)} / 100, 0, 1))\n"
        f")"
    )


def node_capacity(filters: str) -> str:
    return f"max {by(NODE_IDS)} ({CAPACITY}{filters})"


def samples_per_hour() -> str:
    """Samples each operator target takes per hour, measured on its price series.

    As in the report (docs/report.md), over the fullest hour of the last day, so
    no scrape interval is assumed. The inner range is 1h - 1ms so that samples on
    an exact grid are not counted at both ends.
    """
    return (
        f"max {by(TARGET_IDS)} (\n  max_over_time(count_over_time({PRICE}[59m59s999ms])[1d:1h])\n)"
    )


def pod_gpu_hours(integrated: str) -> str:
    """GPU hours of each pod from `sum_over_time` of its allocation, replicas once."""
    return (
        f"max {by(POD_IDS)} (\n"
        f"    {integrated}\n"
        f"  / {on(TARGET_IDS)} group_left ()\n"
        f"{indent(samples_per_hour(), '    ')}\n"
        f")"
    )


def priced(hours: str) -> str:
    """GPU hours x the hourly price of their GPU model, `default` for models without one."""
    price = f"max by (cluster, gpu_model) ({PRICE})"
    default = string_literal(conventions.DEFAULT_PRICE_MODEL)
    return (
        f"(\n"
        f"{indent(hours, '    ')}\n"
        f"  * on (cluster, gpu_model) group_left ()\n"
        f"    {price}\n"
        f"or\n"
        f"    (\n{indent(hours, '      ')}\n"
        f"      unless on (cluster, gpu_model)\n"
        f"      {price}\n"
        f"    )\n"
        f"  * on (cluster) group_left ()\n"
        f"    max by (cluster) ({PRICE}{{gpu_model={default}}})\n"
        f")"
    )


def by_job(per_pod: str, cluster_filter: str) -> str:
    """Per-pod figures summed per Job (training run), through kube_pod_owner."""
    owner = f'max_over_time({POD_OWNER}{{owner_kind="Job"{cluster_filter}}}[$__range])'
    return (
        f"sum by (cluster, namespace, owner_name, team) (\n"
        f"{indent(per_pod, '    ')}\n"
        f"  * {on(POD)} group_left (owner_name)\n"
        f"    max by (cluster, namespace, pod, owner_name) ({owner})\n"
        f")"
    )


def any_label_untagged(metric: str, filters: Sequence[str], wrap: str = "{}") -> str:
    """The series of `metric` with at least one cost label missing (`or` keeps each once)."""
    return "\n  or ".join(
        wrap.format(metric + selector(*filters, f"{name}={UNTAGGED}")) for name in COST_LABELS
    )


# ---------------------------------------------------------------- Grafana JSON


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> dict[str, int]:
        if self.x + width > 24:
            self.newline()
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def target(
    ref: str, expr: str, legend: str = "", instant: bool = False, table: bool = False
) -> dict[str, Any]:
    check_expression(grafana_free(expr))
    return {
        "datasource": DATASOURCE,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "instant": instant,
        "range": not instant,
        "format": "table" if table else "time_series",
        "editorMode": "code",
    }


def grafana_free(expr: str) -> str:
    """The expression with Grafana's variables replaced, to check it parses while generating."""
    for name, value in (
        ("$__rate_interval", "5m"),
        ("$__interval", "5m"),
        ("$__range_s", "86400"),
        ("$__range", "1d"),
        ("$idle_threshold", "10"),
        ("$team", ".*"),
        ("$cost_center", ".*"),
        ("$cluster", ".*"),
    ):
        expr = expr.replace(name, value)
    return expr


def panel(
    layout: Layout,
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    width: int,
    height: int,
    unit: str = "",
    **extra: Any,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit} if unit else {}
    defaults |= extra.pop("defaults", {})
    result: dict[str, Any] = {
        "id": layout.id(),
        "type": kind,
        "title": title,
        "description": description,
        "gridPos": layout.place(width, height),
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
        "options": extra.pop("options", {}),
    }
    result |= extra
    return result


def text_panel(layout: Layout, title: str, content: str, width: int, height: int) -> dict[str, Any]:
    return {
        "id": layout.id(),
        "type": "text",
        "title": title,
        "gridPos": layout.place(width, height),
        "options": {"mode": "markdown", "content": content},
    }


def row(layout: Layout, title: str) -> dict[str, Any]:
    layout.newline()
    result = {
        "id": layout.id(),
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": layout.y},
        "panels": [],
    }
    layout.y += 1
    return result


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def label_variable(name: str, label: str, metric: str, title: str) -> dict[str, Any]:
    query = f"label_values({metric}, {label})"
    return {
        "name": name,
        "label": title,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "options": [],
    }


def custom_variable(name: str, title: str, values: Sequence[str], current: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": title,
        "type": "custom",
        "query": ",".join(values),
        "current": {"selected": True, "text": current, "value": current},
        "options": [
            {"selected": value == current, "text": value, "value": value} for value in values
        ],
        "hide": 0,
        "multi": False,
        "includeAll": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    time_from: str,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["finops", "gpu", "showback"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "timezone": "utc",
        "refresh": "",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables},
        "panels": panels,
    }


def money_unit(currency: str) -> str:
    return {"USD": "currencyUSD", "EUR": "currencyEUR", "GBP": "currencyGBP"}.get(
        currency, f"suffix: {currency}"
    )


def table_merge(names: dict[str, str], hidden: Sequence[str] = ("Time",)) -> list[dict[str, Any]]:
    """Grafana transformations: join the table queries on their labels, name the values."""
    return [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": dict.fromkeys(hidden, True),
                "renameByName": names,
            },
        },
    ]


# ---------------------------------------------------------------- leadership


def leadership(pricing: cfg.PricingConfig) -> dict[str, Any]:
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
            options={"orientation": "horizontal", "displayMode": "gradient",
                     "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "showUnfilled": True},
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
            options={"orientation": "horizontal", "displayMode": "gradient",
                     "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "showUnfilled": True},
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
        "trend and budget burn. Generated by scripts/gen_dashboards.py.",
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


def engineering(pricing: cfg.PricingConfig) -> dict[str, Any]:
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
                target("A", cluster_named(utilization_weighted(("cluster",), alloc, util)),
                       "{{cluster}} allocated"),
                target("B", cluster_named(
                    f"100 * sum by (cluster) (\n"
                    f"{indent(pod_allocation(alloc), '    ')}\n"
                    f"  * {on(POD)} group_left ()\n"
                    f"    clamp({pod_utilization(util)} / 100, 0, 1)\n"
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
            [target("A", utilization_weighted(("team",), alloc, util), "{{team}}")],
            12, 9, "percent",
            defaults={"min": 0, "max": 100, "custom": {"showPoints": "never"}},
        )
    )  # fmt: skip

    add(row(layout, "Idle reserved capacity"))
    add(
        panel(
            layout, "timeseries", "GPUs: busy, allocated but idle, unallocated",
            "Stacked, in GPUs. Idle = allocation x (1 - utilization); busy = the rest of "
            "the allocation (pods without utilization series count as busy). Unallocated = "
            "node capacity - allocation of every team (the team filter does not apply).",
            [
                target("A", f"sum ({pod_allocation(alloc)})\n- ({idle_gpus((), alloc, util)} "
                            f"or vector(0))", "allocated, busy"),
                target("B", idle_gpus((), alloc, util), "allocated, idle"),
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
            [target("A", idle_gpus(("team",), alloc, util), "{{team}}", instant=True)],
            6, 9, "none",
            options={"orientation": "horizontal", "displayMode": "gradient",
                     "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
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
            options={"orientation": "horizontal", "displayMode": "gradient",
                     "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        )
    )  # fmt: skip
    idle_util = f"{pod_utilization(util, '1h')} < $idle_threshold"
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
        "run and untagged spend. Generated by scripts/gen_dashboards.py.",
        panels,
        [
            datasource_variable(),
            label_variable("cluster", "cluster", CAPACITY, "Cluster"),
            label_variable("team", "team", ALLOCATION, "Team"),
            custom_variable("idle_threshold", "Idle below (%)", ["5", "10", "20", "30"], "10"),
        ],
        "now-24h",
    )


# ---------------------------------------------------------------- ConfigMaps


class _Block(str):
    """A string written as a YAML literal block."""


def _block(dumper: yaml.SafeDumper, value: _Block) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


yaml.SafeDumper.add_representer(_Block, _block)


def config_map(name: str, board: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"finops-dashboard-{name}",
            "namespace": NAMESPACE,
            "labels": {
                SIDECAR_LABEL: "1",
                "app.kubernetes.io/name": "finops-operator",
                "app.kubernetes.io/component": "dashboards",
            },
            "annotations": {FOLDER_ANNOTATION: FOLDER},
        },
        "data": {f"finops-{name}.json": _Block(json.dumps(board, indent=2) + "\n")},
    }
    header = (
        f"# Grafana dashboard '{board['title']}', for kube-prometheus-stack's sidecar.\n"
        "# Generated by scripts/gen_dashboards.py; do not edit (docs/dashboards.md).\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, width=1000)


KUSTOMIZATION = """\
# The showback dashboards (docs/dashboards.md). Generated by scripts/gen_dashboards.py.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - leadership.yaml
  - engineering.yaml
"""


def render(config: cfg.Config) -> dict[str, str]:
    """File name -> content of everything written to manifests/dashboards/."""
    global UTILIZATION_SOURCE
    UTILIZATION_SOURCE = config.gpu_metrics.source()
    pricing = config.pricing
    return {
        "leadership.yaml": config_map("leadership", leadership(pricing)),
        "engineering.yaml": config_map("engineering", engineering(pricing)),
        "kustomization.yaml": KUSTOMIZATION,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="configuration file (currency, gpuMetrics)")
    parser.add_argument("--output", type=Path, default=TARGET, help="folder to write")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ")
    args = parser.parse_args(argv)
    config = load_config(args.config) if args.config else cfg.Config()
    files = render(config)
    if args.check:
        stale = [
            name
            for name, content in files.items()
            if not (args.output / name).is_file()
            or (args.output / name).read_text(encoding="utf-8") != content
        ]
        for name in stale:
            print(f"{args.output / name} is out of date: run scripts/gen_dashboards.py")
        return 1 if stale else 0
    args.output.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (args.output / name).write_text(content, encoding="utf-8")
        if args.output == TARGET and name != "kustomization.yaml":
            (CHART_COPY / name).write_text(content, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The alerts a CostPolicy asks for, as Prometheus rule groups: where the PromQL lives.

One function per alert builds its expression from the shared recording rules
(recording_rules.py) and the policy's validated values; docs/rules.md explains
each expression. Every user value reaches PromQL through promql.py (escaped
string literals, canonical numbers and durations), and every alert carries
`team`, `costpolicy` and `severity` plus the policy's `alerting.labels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from finops_operator.domain import conventions
from finops_operator.domain.config import (
    DEFAULT_FLEET_RULE_LABELS,
    DEFAULT_RULE_LABELS,
    GPU_OPERATOR,
    Config,
    GpuUtilization,
)
from finops_operator.domain.gpus.utilization import pod_utilization
from finops_operator.domain.promql import (
    Duration,
    check_expression,
    matchers,
    number,
    own_cluster_pattern,
    string_literal,
    without_replicas,
)
from finops_operator.domain.rules.cost_policy import Anomaly, Budget, CostPolicy, Idle, Retries

# Window the forecast's run rate is measured over (recording_rules.last_day_rate_expr).
FORECAST_RATE_WINDOW_HOURS = 24
FORECAST_FOR = Duration.of(hours=1)
# Utilization is smoothed over this window so one busy sample does not end an idle spell.
UTILIZATION_SMOOTHING = Duration.of(minutes=5)
RETRY_WINDOW = Duration.of(hours=1)


@dataclass(frozen=True)
class AlertOptions:
    """What rendering needs from the operator's configuration rather than the policy."""

    currency: str = "USD"
    # Where utilization is read (config `gpuMetrics`): metric, scale, pod labels, MIG.
    utilization: GpuUtilization = GPU_OPERATOR
    # Labels on the PrometheusRule (config `ruleLabels`), under the policy's own ruleLabels.
    rule_labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RULE_LABELS))
    # Config `cluster.*`: a policy of this cluster (`clusters: own`) counts only the
    # spend of `cluster_name` (when set); a fleet policy (`clusters: all`) takes the
    # maximum over the replica labels, then sums every cluster, and its PrometheusRule
    # carries `fleet_rule_labels` instead of `rule_labels`, for Thanos Ruler.
    cluster_label: str = "cluster"
    cluster_name: str | None = None
    replica_labels: tuple[str, ...] = ("prometheus_replica", "replica")
    fleet_rule_labels: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_FLEET_RULE_LABELS)
    )

    @classmethod
    def from_config(cls, config: Config) -> AlertOptions:
        return cls(
            currency=config.pricing.currency,
            utilization=config.gpu_metrics.source(),
            rule_labels=dict(config.rule_labels),
            cluster_label=config.cluster.label,
            cluster_name=config.cluster.name,
            replica_labels=config.cluster.replica_labels,
            fleet_rule_labels=dict(config.cluster.fleet_rule_labels),
        )


# The recorded spend series of each scope: (GPU series, token series) per figure.
_LAST_HOUR = (conventions.RULE_GPU_COST_LAST_HOUR, conventions.RULE_TOKEN_COST_LAST_HOUR)
_MONTH_TO_DATE = (
    conventions.RULE_GPU_COST_MONTH_TO_DATE,
    conventions.RULE_TOKEN_COST_MONTH_TO_DATE,
)
_LAST_DAY = (conventions.RULE_GPU_COST_LAST_DAY, conventions.RULE_TOKEN_COST_LAST_DAY)
# How the alerts name each scope's spend: as an adjective, and as what it was spent on.
_SPEND_KIND = {"gpu": "GPU", "tokens": "LLM token", "all": "AI"}
_SPENT_ON = {"gpu": "on GPUs", "tokens": "on LLM tokens", "all": "on AI (GPUs and LLM tokens)"}


def _spend(policy: CostPolicy, series: tuple[str, str], options: AlertOptions) -> str:
    """The policy's spend by team in one recorded figure, for its scope.

    GPU series carry the five cost labels, token series only `team`: their label
    sets never coincide, so `or` keeps both and the sum adds them. A selector on a
    label other than the team matches no token series (the gateway knows none).
    A policy of one cluster reads that cluster's series only (`cluster=~"name|"`);
    a fleet policy sums every cluster, each HA pair once (`max without` replicas).
    """
    labels = [matchers(policy.spec.selector.metric_labels())[1:-1]]
    fleet = policy.spec.clusters == "all"
    if not fleet and options.cluster_name is not None:
        labels.append(f"{options.cluster_label}=~{own_cluster_pattern(options.cluster_name)}")
    selector = "{" + ",".join(label for label in labels if label) + "}"
    gpu, tokens = (f"{name}{selector if selector != '{}' else ''}" for name in series)
    scope = policy.spec.scope
    inner = gpu if scope == "gpu" else tokens if scope == "tokens" else f"{gpu} or {tokens}"
    if fleet:
        inner = without_replicas(inner, options.replica_labels)
    return f"sum by (team) ({inner})"


def _team_cost_last_hour(policy: CostPolicy, options: AlertOptions) -> str:
    return _spend(policy, _LAST_HOUR, options)


def _pod_allocation(policy: CostPolicy, *, remember: Duration | None = None) -> str:
    selector = matchers(policy.spec.selector.metric_labels())
    series = f"{conventions.METRIC_POD_GPU_ALLOCATION}{selector}"
    if remember is not None:
        series = f"max_over_time({series}[{remember}])"
    return f"max by (namespace, pod, team) ({series})"


def _scope(policy: CostPolicy) -> str:
    labels = policy.spec.selector.by_short_name()
    fleet = ", every cluster" if policy.spec.clusters == "all" else ""
    if not labels:
        return "every team" + fleet
    return ", ".join(f"{key}={value}" for key, value in labels.items()) + fleet


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount.quantize(Decimal('0.01'))} {currency}"


def anomaly_expr(policy: CostPolicy, anomaly: Anomaly, options: AlertOptions) -> str:
    cost = _team_cost_last_hour(policy, options)
    window = f"({cost})[{anomaly.baseline}:1h] offset {anomaly.baseline_offset}"
    return (
        f"(\n"
        f"    ({cost} > {number(anomaly.min_hourly_cost)})\n"
        f"  / on (team)\n"
        f"    (avg_over_time({window}) > 0)\n"
        f"  - 1\n"
        f") * 100 > {number(anomaly.threshold)}\n"
        f"and on (team)\n"
        f"  count_over_time({window}) >= {number(anomaly.required_history.hours)}"
    )


def month_to_date_expr(policy: CostPolicy, options: AlertOptions) -> str:
    """Spend since the 1st of the month (UTC), through the last full hour, by team."""
    return _spend(policy, _MONTH_TO_DATE, options)


def budget_threshold_exprs(
    policy: CostPolicy, budget: Budget, options: AlertOptions
) -> list[tuple[Decimal, str]]:
    """(threshold, expr) pairs; each fires only between its threshold and the next one."""
    mtd = month_to_date_expr(policy, options)
    exprs = []
    for index, percent in enumerate(budget.thresholds):
        expr = f"{mtd} >= {number(budget.monthly * percent / 100)}"
        if index + 1 < len(budget.thresholds):
            upper = budget.monthly * budget.thresholds[index + 1] / 100
            expr = f"({expr}) < {number(upper)}"
        exprs.append((percent, expr))
    return exprs


def budget_forecast_expr(policy: CostPolicy, budget: Budget, options: AlertOptions) -> str:
    mtd = month_to_date_expr(policy, options)
    run_rate = _spend(policy, _LAST_DAY, options)
    # Hours from the last full hour (where month-to-date stops) to the end of the month.
    hours_left = "(days_in_month() - day_of_month() + 1) * 24 - hour()"
    return (
        f"(\n"
        f"    ({mtd} or 0 * {run_rate})\n"
        f"  + {run_rate} * on () group_left () ({hours_left})\n"
        f") > {number(budget.monthly)}"
    )


def _on_gpu_pods(policy: CostPolicy, condition: str) -> str:
    """`condition` per (namespace, pod), kept only for the policy's GPU pods, with their labels."""
    return f"0 * {_pod_allocation(policy)}\n+ on (namespace, pod) group_left ()\n({condition})"


def idle_expr(policy: CostPolicy, idle: Idle, options: AlertOptions) -> str:
    """Pods whose mean utilization (in %, MIG slices read from the MIG metric) is low."""
    fraction = pod_utilization(options.utilization, str(UTILIZATION_SMOOTHING))
    return _on_gpu_pods(policy, f"100 * {fraction} < {number(idle.max_utilization)}")


def restarts_expr(policy: CostPolicy, retries: Retries) -> str:
    restarts = (
        f"sum by (namespace, pod) (max by (namespace, pod, container) "
        f"(increase({conventions.METRIC_CONTAINER_RESTARTS}[{RETRY_WINDOW}])))"
    )
    return _on_gpu_pods(policy, f"{restarts} > {retries.max_restarts_per_hour}")


def job_failures_expr(policy: CostPolicy, retries: Retries) -> str:
    # A failed Job pod stops being exported at once, so GPU pods of the last hour count.
    owners = (
        f"max by (namespace, pod, owner_name) "
        f"({conventions.METRIC_POD_OWNER}{{owner_kind={string_literal('Job')}}})"
    )
    gpu_pods = _pod_allocation(policy, remember=RETRY_WINDOW)
    gpu_jobs = (
        f"max by (namespace, job_name, team) (label_replace(\n"
        f"  {gpu_pods} * on (namespace, pod) group_left (owner_name) {owners},\n"
        f'  "job_name", "$1", "owner_name", "(.+)"\n'
        f"))"
    )
    failures = (
        f"sum by (namespace, job_name) (max by (namespace, job_name, reason) "
        f"(increase({conventions.METRIC_JOB_FAILED}[{RETRY_WINDOW}])))"
    )
    return (
        f"0 * {gpu_jobs}\n"
        f"+ on (namespace, job_name) group_left ()\n"
        f"({failures} > {retries.max_restarts_per_hour})"
    )


def _labels(policy: CostPolicy, **extra: str) -> dict[str, str]:
    labels = dict(sorted(policy.spec.alerting.labels.items()))
    labels[conventions.ALERT_LABEL_COSTPOLICY] = policy.key
    labels[conventions.ALERT_LABEL_SEVERITY] = policy.spec.alerting.severity
    labels.update(extra)
    return labels


def _alert(
    name: str,
    expr: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    duration: Duration | None = None,
) -> dict[str, Any]:
    check_expression(expr)
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if duration is not None and duration.seconds:
        rule["for"] = str(duration)
    rule["labels"] = labels
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def _group(policy: CostPolicy, concern: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    name = f"{conventions.COSTPOLICY_GROUP_PREFIX}/{policy.namespace}/{policy.name}/{concern}"
    return {"name": name, "rules": rules}


def anomaly_group(policy: CostPolicy, anomaly: Anomaly, options: AlertOptions) -> dict[str, Any]:
    kind, spent_on = _SPEND_KIND[policy.spec.scope], _SPENT_ON[policy.spec.scope]
    currency = policy.spec.budget.currency if policy.spec.budget else options.currency
    rule = _alert(
        conventions.ALERT_SPEND_ANOMALY,
        anomaly_expr(policy, anomaly, options),
        _labels(policy),
        summary=(
            f"{kind} spend of team {{{{ $labels.team }}}} is "
            '{{ printf "%.0f" $value }}% above '
            f"its {anomaly.baseline} baseline"
        ),
        description=(
            'Team {{ $labels.team }} spent {{ printf "%.0f" $value }}% more '
            f"{spent_on} in the last hour than its mean hourly spend over the "
            f"{anomaly.baseline} before the last "
            f"{anomaly.baseline_offset} (threshold {number(anomaly.threshold)}%, for "
            f"{anomaly.for_}; only above {_money(anomaly.min_hourly_cost, currency)} per hour "
            f"and with at least {anomaly.required_history} of history). Scope: "
            f"{_scope(policy)}; CostPolicy {policy.key}."
        ),
        duration=anomaly.for_,
    )
    return _group(policy, "anomaly", [rule])


def budget_group(policy: CostPolicy, budget: Budget, options: AlertOptions) -> dict[str, Any]:
    kind, spent_on = _SPEND_KIND[policy.spec.scope], _SPENT_ON[policy.spec.scope]
    monthly = _money(budget.monthly, budget.currency)
    rules = []
    for percent, expr in budget_threshold_exprs(policy, budget, options):
        amount = _money(budget.monthly * percent / 100, budget.currency)
        rules.append(
            _alert(
                conventions.ALERT_BUDGET_THRESHOLD,
                expr,
                _labels(policy, **{conventions.ALERT_LABEL_THRESHOLD: number(percent)}),
                summary=(
                    "Team {{ $labels.team }} has used "
                    f"{number(percent)}% of its monthly {kind} budget"
                ),
                description=(
                    'Team {{ $labels.team }} has spent {{ printf "%.2f" $value }} '
                    f"{budget.currency} {spent_on} this month (UTC, through the last full hour), "
                    f"past {number(percent)}% ({amount}) of its {monthly} monthly budget. "
                    f"Scope: {_scope(policy)}; CostPolicy {policy.key}."
                ),
            )
        )
    if budget.forecast:
        rules.append(
            _alert(
                conventions.ALERT_BUDGET_FORECAST,
                budget_forecast_expr(policy, budget, options),
                _labels(policy),
                summary=(
                    f"Team {{{{ $labels.team }}}} is on course to overrun its monthly {kind} budget"
                ),
                description=(
                    f"At the {kind} spend rate of the last "
                    f"{FORECAST_RATE_WINDOW_HOURS}h, team {{{{ $labels.team }}}} will have "
                    'spent {{ printf "%.2f" $value }} '
                    f"{budget.currency} by the end of the month, over its {monthly} monthly "
                    f"budget. Scope: {_scope(policy)}; CostPolicy {policy.key}."
                ),
                duration=FORECAST_FOR,
            )
        )
    return _group(policy, "budget", rules)


def idle_group(policy: CostPolicy, idle: Idle, options: AlertOptions) -> dict[str, Any]:
    rule = _alert(
        conventions.ALERT_GPU_IDLE,
        idle_expr(policy, idle, options),
        _labels(policy),
        summary="Pod {{ $labels.namespace }}/{{ $labels.pod }} holds GPUs it does not use",
        description=(
            "Pod {{ $labels.namespace }}/{{ $labels.pod }} of team {{ $labels.team }} has GPUs "
            'allocated but has used them at {{ printf "%.1f" $value }}% '
            f"(below {number(idle.max_utilization)}%) for more than {idle.for_}. "
            f"CostPolicy {policy.key}."
        ),
        duration=idle.for_,
    )
    return _group(policy, "idle", [rule])


def retries_group(policy: CostPolicy, retries: Retries) -> dict[str, Any]:
    bound = retries.max_restarts_per_hour
    restarts = _alert(
        conventions.ALERT_GPU_RETRY_LOOP,
        restarts_expr(policy, retries),
        _labels(policy, **{conventions.ALERT_LABEL_REASON: "container-restarts"}),
        summary="GPU pod {{ $labels.namespace }}/{{ $labels.pod }} is restarting in a loop",
        description=(
            "Containers of GPU pod {{ $labels.namespace }}/{{ $labels.pod }} of team "
            '{{ $labels.team }} restarted {{ printf "%.0f" $value }} times in the last '
            f"hour (bound {bound}), holding GPUs while doing no work. CostPolicy {policy.key}."
        ),
        duration=retries.for_,
    )
    failures = _alert(
        conventions.ALERT_GPU_RETRY_LOOP,
        job_failures_expr(policy, retries),
        _labels(policy, **{conventions.ALERT_LABEL_REASON: "job-failures"}),
        summary="GPU Job {{ $labels.namespace }}/{{ $labels.job_name }} keeps failing",
        description=(
            "GPU Job {{ $labels.namespace }}/{{ $labels.job_name }} of team "
            '{{ $labels.team }} had {{ printf "%.0f" $value }} failed pods in the last hour '
            f"(bound {bound}), each retry burning GPU hours. CostPolicy {policy.key}."
        ),
        duration=retries.for_,
    )
    return _group(policy, "retries", [restarts, failures])


def render_alert_groups(
    policy: CostPolicy, options: AlertOptions | None = None
) -> list[dict[str, Any]]:
    """The rule groups of one policy's alerts, in a fixed order: anomaly, budget, idle, retries."""
    options = options or AlertOptions()
    spec = policy.spec
    groups = []
    if spec.anomaly is not None:
        groups.append(anomaly_group(policy, spec.anomaly, options))
    if spec.budget is not None:
        groups.append(budget_group(policy, spec.budget, options))
    if spec.idle is not None:
        groups.append(idle_group(policy, spec.idle, options))
    if spec.retries is not None:
        groups.append(retries_group(policy, spec.retries))
    return groups

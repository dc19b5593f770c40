"""The shared recording rules: GPU allocation and cost by the five cost labels.

Every CostPolicy's alerts read these series instead of raw pod series, so a
7-day baseline or a month-to-date sum is a cheap range over a few series per
team. They live in one operator-owned PrometheusRule (see prometheus_rule.py).

Two facts shape the PromQL (docs/rules.md explains them in full):

- Scraped series carry target labels (`job`, `instance`, ...) and two operator
  replicas export the same series. Each input is first reduced with
  `max by (<the labels that identify it>)`, which drops target labels and
  collapses replicas into one series, so nothing is counted twice and the price
  join is always many-to-one.
- `finops:gpu_cost_hourly:avg1h` is the money spent in the trailing hour: the
  sum of the hourly rate over the hour divided by the number of evaluations in
  that hour (counted on a heartbeat series), so minutes with no spend count as
  zero whatever the evaluation interval is.
- Month-to-date spend and the 24h run rate are sums of those hourly buckets,
  recorded once for every label combination in a slower group; a policy sums
  them by team (sums commute), so no policy runs a month-long subquery.
- Token spend through the LLM gateway gets the same four series,
  `finops:token_cost_*`, by `team` only: the gateway knows no other cost label.
  Its hourly rate is either input and output tokens x `finops_token_price_per_1k`
  (the operator exports the configured prices, `default` for unlisted models) or
  LiteLLM's own `litellm_spend_metric` (config `llmGateway.costSource`). The token
  series, team and model labels are the configured source's (`token_sources`:
  LiteLLM, or OpenTelemetry GenAI's `gen_ai_client_token_usage_sum`). "AI spend"
  is GPU plus token spend: a policy's `scope` picks one or both.
- Every aggregation and join keeps the cluster label (config `cluster.label`). In
  the cluster's own Prometheus the series carry none (external labels are added on
  the way out, to a Thanos sidecar or a remote write), so nothing changes there;
  where one evaluator sees several clusters (a Prometheus scraping several, a
  central Mimir ruler) a cluster's spend is never merged with another's, and its
  prices join only its own pods.
"""

from __future__ import annotations

from typing import Any

from finops_operator.domain import conventions
from finops_operator.domain.config import TOKEN_DIRECTIONS, LlmGatewayConfig, TokenDirection
from finops_operator.domain.promql import Duration, check_expression, string_literal
from finops_operator.domain.token_sources import TokenSource, token_series

# Budget sums reach back at most one month; 31d covers the longest month.
MONTH_WINDOW = "31d"
# Month-to-date figures move by the hour, so they need not be evaluated every
# interval; but alerts in other groups read them, and a sample older than the
# 5m lookback would vanish, so the interval stays well inside it.
MONTHLY_GROUP_INTERVAL = Duration.of(minutes=2)

COST_LABELS = tuple(conventions.METRIC_LABEL_FOR[key] for key in conventions.COST_LABELS)
# Counters are read as rates over this window: at least three scrapes even at 5m.
TOKEN_RATE_WINDOW = Duration.of(minutes=15)
# What identifies one pod's allocation of one GPU resource, target labels excluded.
POD_ALLOCATION_LABELS = ("namespace", "pod", "node", "resource", "gpu_model", *COST_LABELS)
# The default cluster label (config `cluster.label`).
CLUSTER_LABEL = "cluster"


def by(labels: tuple[str, ...] | list[str]) -> str:
    return "by (" + ", ".join(labels) + ")"


def pod_allocation(cluster: str = CLUSTER_LABEL) -> str:
    """Each pod's GPUs once, whatever the number of operator replicas or target labels."""
    labels = (cluster, *POD_ALLOCATION_LABELS)
    return f"max {by(labels)} ({conventions.METRIC_POD_GPU_ALLOCATION})"


def gpu_prices(cluster: str = CLUSTER_LABEL) -> str:
    """One hourly price per GPU model, whatever the number of operator replicas."""
    return f"max by ({cluster}, gpu_model) ({conventions.METRIC_GPU_HOURLY_PRICE})"


def allocation_expr(cluster: str = CLUSTER_LABEL) -> str:
    return f"sum {by((cluster, *COST_LABELS))} (\n  {pod_allocation(cluster)}\n)"


def cost_expr(cluster: str = CLUSTER_LABEL) -> str:
    default = string_literal(conventions.DEFAULT_PRICE_MODEL)
    return (
        f"sum {by((cluster, *COST_LABELS))} (\n"
        f"    {pod_allocation(cluster)}\n"
        f"  * on ({cluster}, gpu_model) group_left ()\n"
        f"    {gpu_prices(cluster)}\n"
        f"  or\n"
        f"    (\n"
        f"      {pod_allocation(cluster)}\n"
        f"      unless on ({cluster}, gpu_model)\n"
        f"      {conventions.METRIC_GPU_HOURLY_PRICE}\n"
        f"    )\n"
        f"  * on ({cluster}) group_left ()\n"
        f"    max by ({cluster}) ({conventions.METRIC_GPU_HOURLY_PRICE}{{gpu_model={default}}})\n"
        f")"
    )


def last_hour_cost_expr(hourly: str = conventions.RULE_GPU_COST_HOURLY) -> str:
    return (
        f"sum_over_time({hourly}[1h])\n"
        f"/ on () group_left ()\n"
        f"count_over_time({conventions.RULE_HEARTBEAT}[1h])"
    )


def _by_team(
    counter: str,
    gateway: LlmGatewayConfig,
    keep: tuple[str, ...] = (),
    cluster: str = CLUSTER_LABEL,
) -> str:
    """Per-second rate of a LiteLLM counter by team (and `keep`), gateway replicas summed.

    The team is the configured label copied to `team`; a request without one
    counts as `__untagged__`, like a pod without a team label.
    """
    rate = f"rate({counter}[{TOKEN_RATE_WINDOW}])"
    if gateway.team != "team":
        rate = f'label_replace({rate}, "team", "$1", {string_literal(gateway.team)}, "(.+)")'
    return _summed_by_team(rate, keep, cluster)


def _summed_by_team(rate: str, keep: tuple[str, ...], cluster: str = CLUSTER_LABEL) -> str:
    untagged = string_literal(conventions.UNTAGGED)
    rate = f'label_replace({rate}, "team", {untagged}, "team", "")'
    return f"sum {by((cluster, 'team', *keep))} ({rate})"


def _tokens_by_team(
    direction: TokenDirection, gateway: LlmGatewayConfig, cluster: str = CLUSTER_LABEL
) -> str:
    """Tokens per second of one direction by team and model, from the configured source."""
    series = token_series(TokenSource.of(gateway), direction, "rate", str(TOKEN_RATE_WINDOW))
    return _summed_by_team(series, ("model",), cluster)


def _token_price(direction: TokenDirection) -> str:
    return f"{conventions.METRIC_TOKEN_PRICE}{{direction={string_literal(direction)}}}"


def _priced_tokens(
    direction: TokenDirection, gateway: LlmGatewayConfig, cluster: str = CLUSTER_LABEL
) -> str:
    """Money per second of one direction's tokens, by team and model; `default` price fallback."""
    tokens = _tokens_by_team(direction, gateway, cluster)
    price = _token_price(direction)
    default = (
        f"{conventions.METRIC_TOKEN_PRICE}{{direction={string_literal(direction)},"
        f"model={string_literal(conventions.DEFAULT_PRICE_MODEL)}}}"
    )
    return (
        f"(\n"
        f"    {tokens}\n"
        f"  * on ({cluster}, model) group_left ()\n"
        f"    max by ({cluster}, model) ({price})\n"
        f"  or\n"
        f"    ({tokens} unless on ({cluster}, model) {price})\n"
        f"  * on ({cluster}) group_left ()\n"
        f"    max by ({cluster}) ({default})\n"
        f") / 1000"
    )


def token_cost_expr(gateway: LlmGatewayConfig, cluster: str = CLUSTER_LABEL) -> str:
    """Token spend per hour by team: priced input + output tokens, or LiteLLM's spend."""
    if gateway.cost_source == "spend_metric":
        return f"3600 * {_by_team(gateway.spend_metric, gateway, (), cluster)}"
    parts = "\nor\n".join(
        f'label_replace(\n{_priced_tokens(d, gateway, cluster)},\n"direction", "{d}", "", ""\n)'
        for d in TOKEN_DIRECTIONS
    )
    return f"3600 * sum by ({cluster}, team) (\n{parts}\n)"


def month_to_date_expr(last_hour: str = conventions.RULE_GPU_COST_LAST_HOUR) -> str:
    """Spend since the 1st of the month (UTC), through the last full hour."""
    # Step s of the subquery holds the hour (s-1h, s]; it belongs to this month when
    # s-1h does. `@ end()` pins the month to the evaluation time inside the subquery.
    this_month = "month(max_over_time(vector(time())[1m:1m] @ end()))"
    return (
        f"sum_over_time(\n"
        f"  (\n"
        f"    {last_hour}\n"
        f"    and on () (month(vector(time() - 3600)) == {this_month})\n"
        f"  )[{MONTH_WINDOW}:1h]\n"
        f")"
    )


def last_day_rate_expr(last_hour: str = conventions.RULE_GPU_COST_LAST_HOUR) -> str:
    """Mean hourly spend over the last 24 hourly buckets, hours without spend counting zero."""
    # Dividing by the heartbeat's count rather than 24 stays right whether the
    # subquery includes its first step (Prometheus 2) or not (Prometheus 3).
    return (
        f"sum_over_time({last_hour}[24h:1h])\n"
        f"/ on () group_left ()\n"
        f"count_over_time({conventions.RULE_HEARTBEAT}[24h:1h])"
    )


def render_recording_rules(
    gateway: LlmGatewayConfig | None = None, cluster: str = CLUSTER_LABEL
) -> list[dict[str, Any]]:
    """The rule groups of the shared recording rules, as Prometheus reads them;
    `cluster` is the cluster label (config `cluster.label`)."""
    gateway = gateway or LlmGatewayConfig()
    token_hour = conventions.RULE_TOKEN_COST_LAST_HOUR
    rules = [
        {"record": conventions.RULE_HEARTBEAT, "expr": "vector(1)"},
        {"record": conventions.RULE_GPU_ALLOCATION, "expr": allocation_expr(cluster)},
        {"record": conventions.RULE_GPU_COST_HOURLY, "expr": cost_expr(cluster)},
        {"record": conventions.RULE_GPU_COST_LAST_HOUR, "expr": last_hour_cost_expr()},
        {"record": conventions.RULE_TOKEN_COST_HOURLY, "expr": token_cost_expr(gateway, cluster)},
        {
            "record": token_hour,
            "expr": last_hour_cost_expr(conventions.RULE_TOKEN_COST_HOURLY),
        },
    ]
    monthly = [
        {"record": conventions.RULE_GPU_COST_MONTH_TO_DATE, "expr": month_to_date_expr()},
        {"record": conventions.RULE_GPU_COST_LAST_DAY, "expr": last_day_rate_expr()},
        {
            "record": conventions.RULE_TOKEN_COST_MONTH_TO_DATE,
            "expr": month_to_date_expr(token_hour),
        },
        {"record": conventions.RULE_TOKEN_COST_LAST_DAY, "expr": last_day_rate_expr(token_hour)},
    ]
    for rule in rules + monthly:
        check_expression(rule["expr"])
    return [
        {"name": conventions.RECORDING_RULE_GROUP, "rules": rules},
        {
            "name": conventions.RECORDING_RULE_MONTHLY_GROUP,
            "interval": str(MONTHLY_GROUP_INTERVAL),
            "rules": monthly,
        },
    ]

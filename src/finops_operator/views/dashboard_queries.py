"""The PromQL of the showback dashboards, one function per fragment.

The two dashboards read the operator's series the same way the recording rules
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
  keeps pods of the same name in two clusters apart;
- token money comes from the recorded `finops:token_cost_*` series, priced by the
  recording rules from `finops_token_price_per_1k` (the prices the operator
  exports), so no price is baked into a dashboard; token volumes are read from
  the configured gateway's series (`domain/token_sources.py`);
- GPU utilization is read as the configuration's `gpuMetrics` says, through the
  same fragment as the idle alert and the report (`domain/gpus/utilization.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from finops_operator.domain import conventions
from finops_operator.domain.config import GpuUtilization, TokenDirection
from finops_operator.domain.gpus import utilization as gpu_utilization
from finops_operator.domain.promql import string_literal
from finops_operator.domain.token_sources import TokenSource, token_series

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


def tokens_per_hour_by_model(source: TokenSource, direction: TokenDirection) -> str:
    """One direction's tokens per hour by model, from the configured gateway's own series
    (LiteLLM's counters or OpenTelemetry GenAI's histogram): every gateway replica summed."""
    series = token_series(source, direction, "rate", "$__rate_interval")
    return f"3600 * sum by (model) (\n  {series}\n)"


def pod_allocation(filters: str) -> str:
    """GPUs each pod holds now, once whatever the replicas, by cluster, namespace, pod, team."""
    return (
        f"sum by (cluster, namespace, pod, team) (\n  max {by(POD_IDS)} ({ALLOCATION}{filters})\n)"
    )


def pod_utilization(source: GpuUtilization, filters: str, window: str = "$__rate_interval") -> str:
    """Each pod's mean utilization (0-100) over its devices and the window.

    `filters` is a selector such as `{cluster=~"$cluster"}`; the fragment is the one
    the idle alert and the report use (exported_* labels renamed, MIG read apart)."""
    matchers = [part.strip() for part in filters.strip("{}").split(",") if part.strip()]
    fraction = gpu_utilization.pod_utilization(source, window, group=POD, matchers=matchers)
    return f"(100 * {fraction})"


def utilization_weighted(
    source: GpuUtilization, labels: Sequence[str], alloc_filters: str, util_filters: str
) -> str:
    """Utilization of allocated GPUs (%), weighted by the GPUs each pod holds."""
    alloc = pod_allocation(alloc_filters)
    util = pod_utilization(source, util_filters)
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


def idle_gpus(
    source: GpuUtilization, labels: Sequence[str], alloc_filters: str, util_filters: str
) -> str:
    """GPUs allocated but unused: allocation x (1 - utilization), by `labels`."""
    grouping = f"sum {by(labels)}" if labels else "sum"
    return (
        f"{grouping} (\n"
        f"{indent(pod_allocation(alloc_filters), '    ')}\n"
        f"  * {on(POD)} group_left ()\n"
        f"    (1 - clamp({pod_utilization(source, util_filters)} / 100, 0, 1))\n"
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

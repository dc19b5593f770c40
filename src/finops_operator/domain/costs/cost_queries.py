"""The PromQL of the report: usage of a period in a few aggregated queries.

Pure text builders (no HTTP): `usage_reader` runs them and hands the results to
the cost model. docs/report.md explains each query; the short version:

- **Integration without a hard-coded scrape interval.** A pod's GPU hours in a
  window are `sum_over_time(allocation[W])` (GPUs x samples) divided by the
  number of samples its exporter takes per hour. That rate is measured on the
  same target's `finops_gpu_hourly_price` series, which every operator replica
  exports at every scrape: the most samples any whole hour of the window holds
  (`max_over_time(count_over_time(price[1h - 1ms])[W:1h])`). 15 s gives 240, 5 min
  gives 12; nothing assumes either. Counting samples is also why the missing
  staleness markers of backfilled data do not matter: no instant lookback is used.
- **Replicas and target labels.** Each series is divided by the sample rate of
  its own target (`on (job, instance)`), then reduced with `max by` the labels
  that identify the subject (pod, node, GPU model), which drops target labels and
  collapses replicas. Token counters are summed (every gateway replica counts its
  own requests), never deduplicated.
- **Clusters.** Every `by`, `on` and `group_left` keeps the cluster label (config
  `cluster.label`, `cluster` by default), so series of two clusters that differ only
  by it (the same pod names behind one Thanos Query) never merge; a series without
  it (one Prometheus, read directly) has the cluster "". `QueryNames.cluster_name`
  restricts every selector to one cluster (`cluster=~"name|"`: its series, and the
  unlabelled ones its own Prometheus shows), which is what a per-cluster operator
  reading a shared Thanos uses.
- **HA pairs read without deduplication.** Two Prometheus replicas of one cluster
  give each series twice, differing by a replica label. The `max by` above already
  drops it; the token counters, summed, first take `max without` the configured
  replica labels (`cluster.replicaLabels`), so a pair never counts twice.
- **Counter resets.** Tokens come from `increase`, which handles resets.
- **Period bounds.** A window [a, b) is evaluated at `b - 1ms` with a range of
  exactly `b - a`: Prometheus 2 selects [a - 1ms, b - 1ms] and Prometheus 3
  (a - 1ms, b - 1ms], the same samples at millisecond resolution, so a sample at
  `b` belongs to the next window and one at `a` to this one. A pod crossing a
  bound counts only with its samples inside.
- **Size.** A long period is cut into equal windows (a day by default) evaluated
  by ONE range query whose step is the window length, plus at most one instant
  query for a shorter remainder. Range functions over raw series hold one
  series' window at a time, so Prometheus' `--query.max-samples` bounds a window
  of one series, never the whole cluster; the number of queries does not depend
  on the number of teams, pods or days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import GPU_OPERATOR, TOKEN_DIRECTIONS, Config, GpuUtilization
from finops_operator.domain.gpus import utilization as gpu_utilization
from finops_operator.domain.promql import (
    Duration,
    check_expression,
    own_cluster_pattern,
    string_literal,
)
from finops_operator.domain.token_sources import DEFAULT_SOURCE, TokenSource, token_series

COST_LABELS: Final = tuple(conventions.METRIC_LABEL_FOR[key] for key in conventions.COST_LABELS)
# What the GPU figures are grouped by: the cost model's GpuUsage.
GPU_USAGE_LABELS: Final = (*COST_LABELS, "gpu_model")
# What identifies one pod's allocation of one GPU resource, target labels excluded.
POD_ALLOCATION_LABELS: Final = ("namespace", "pod", "node", "resource", "gpu_model", *COST_LABELS)
# What identifies a node's offer of one GPU resource.
NODE_CAPACITY_LABELS: Final = ("node", "gpu_model", "resource")
# The target labels that tell one scrape target (one operator replica) from another.
TARGET_LABELS: Final = ("job", "instance")
TOKEN_LABELS: Final = ("team", "model", "direction")
JOB_LABELS: Final = ("namespace", "owner_name", "team", "gpu_model")

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000


@dataclass(frozen=True)
class QueryNames:
    """What the queries read (DESIGN.md, "Metrics"); defaults from conventions and config.

    `utilization` says where GPU utilization comes from (config `gpuMetrics`: metric,
    scale, the pod labels, MIG); the token source from config `llmGateway`
    (`token_sources`: LiteLLM or the OpenTelemetry GenAI metric).
    """

    allocation: str = conventions.METRIC_POD_GPU_ALLOCATION
    capacity: str = conventions.METRIC_NODE_GPU_CAPACITY
    price: str = conventions.METRIC_GPU_HOURLY_PRICE
    utilization: GpuUtilization = GPU_OPERATOR
    token_source: TokenSource = DEFAULT_SOURCE
    pod_owner: str = conventions.METRIC_POD_OWNER
    cluster_label: str = "cluster"
    # Only this cluster's series (and unlabelled ones), or every cluster when None.
    cluster_name: str | None = None
    # The cluster a series without the cluster label belongs to (config `cluster.name`):
    # one Prometheus read directly shows its own series unlabelled, and a read that
    # meets both (the label added part way through a period) adds them up as one.
    unlabelled_cluster: str = ""
    replica_labels: tuple[str, ...] = ("prometheus_replica", "replica")

    @classmethod
    def from_config(cls, config: Config) -> QueryNames:
        """The names the configuration gives, reading every cluster (see `only_cluster`)."""
        gateway = config.llm_gateway
        return cls(
            utilization=config.gpu_metrics.source(),
            token_source=TokenSource.of(gateway),
            cluster_label=config.cluster.label,
            unlabelled_cluster=config.cluster.name or "",
            replica_labels=config.cluster.replica_labels,
        )

    def only_cluster(self, name: str | None) -> QueryNames:
        """These names reading only cluster `name` (every cluster when None)."""
        return replace(self, cluster_name=name)

    def cluster_matchers(self) -> tuple[str, ...]:
        """The label matcher that keeps `cluster_name`'s series, or none."""
        if self.cluster_name is None:
            return ()
        return (f"{self.cluster_label}=~{own_cluster_pattern(self.cluster_name)}",)

    def select(self, metric: str, *more: str) -> str:
        """`metric` with the cluster matcher and `more` matchers, e.g. `m{cluster=~"a|"}`."""
        every = (*self.cluster_matchers(), *more)
        return metric + ("{" + ", ".join(every) + "}" if every else "")

    def labels(self, labels: Sequence[str]) -> tuple[str, ...]:
        """`labels` with the cluster label first: what every aggregation keeps."""
        return (self.cluster_label, *labels)

    @property
    def tokens(self) -> str:
        """The token series, as messages name them."""
        return self.token_source.described


DEFAULT_NAMES: Final = QueryNames()


def by(labels: Sequence[str]) -> str:
    return "by (" + ", ".join(labels) + ")"


def on(labels: Sequence[str]) -> str:
    return "on (" + ", ".join(labels) + ")"


def duration_ms(ms: int) -> str:
    """A range in milliseconds as Prometheus writes durations: 86400000 -> '1d'."""
    if ms <= 0:
        raise ValueError(f"a range must be positive, not {ms} ms")
    return str(Duration(Decimal(ms) / 1000))


def _checked(expr: str) -> str:
    check_expression(expr)
    return expr


# ---------------------------------------------------------------- building blocks


def samples_per_hour(window_ms: int, names: QueryNames = DEFAULT_NAMES) -> str:
    """Samples each operator target takes per hour, measured on its price series.

    The most samples any whole hour of the window holds: robust to a replica that
    starts or stops inside the window. The inner range is 1h - 1ms so that samples
    on an exact grid are not counted at both ends of the hour. The subquery is read
    1 ms later than the window (`offset -1ms`): windows are evaluated at their end
    - 1 ms, and without it the hour ending at the window's end, often the last whole
    hour, would never be counted, so a target seen only in that hour would be read
    at one sample an hour (sixty times its GPU hours at a 1-minute scrape) or not
    at all.
    """
    reach = max(window_ms, HOUR_MS)
    return (
        f"max {by(names.labels(TARGET_LABELS))} (\n"
        f"  max_over_time(count_over_time({names.select(names.price)}"
        f"[{duration_ms(HOUR_MS - 1)}])"
        f"[{duration_ms(reach)}:1h] offset -1ms)\n"
        f")"
    )


def _integrated(metric: str, window_ms: int, names: QueryNames, indent: str = "  ") -> str:
    """Each series of `metric` integrated over the window, in value x hours."""
    inner = samples_per_hour(window_ms, names).replace("\n", "\n" + indent + "  ")
    return (
        f"{indent}  sum_over_time({names.select(metric)}[{duration_ms(window_ms)}])\n"
        f"{indent}/ {on(names.labels(TARGET_LABELS))} group_left ()\n"
        f"{indent}  {inner}"
    )


def pod_gpu_hours(window_ms: int, names: QueryNames = DEFAULT_NAMES) -> str:
    """GPU hours of each pod (and GPU resource) in the window, once whatever the replicas."""
    return (
        f"max {by(names.labels(POD_ALLOCATION_LABELS))} (\n"
        f"{_integrated(names.allocation, window_ms, names)}\n)"
    )


def pod_utilization(window_ms: int, names: QueryNames = DEFAULT_NAMES) -> str:
    """Each pod's mean utilization over the window, as a fraction in [0, 1].

    The mean over the pod's devices (or MIG instance) and over its samples; the
    samples are evenly spaced, so their mean is the time average whatever the
    dcgm-exporter scrape interval. Read as configured (`gpuMetrics`): the GPU
    Operator's `exported_*` labels renamed, MIG pods from the MIG metric.
    """
    fraction = gpu_utilization.pod_utilization(
        names.utilization,
        duration_ms(window_ms),
        group=names.labels(("namespace", "pod")),
        matchers=names.cluster_matchers(),
    )
    return f"clamp(\n  {_indent(fraction, '  ')},\n  0, 1\n)"


def _indent(text: str, prefix: str) -> str:
    return text.replace("\n", "\n" + prefix)


# ---------------------------------------------------------------- the queries


def gpu_hours_query(window_ms: int, names: QueryNames = DEFAULT_NAMES) -> str:
    """Allocated GPU hours by the five cost labels and GPU model."""
    return _checked(
        f"sum {by(names.labels(GPU_USAGE_LABELS))} (\n"
        f"  {_indent(pod_gpu_hours(window_ms, names), '  ')}\n)"
    )


def idle_gpu_hours_query(window_ms: int, names: QueryNames = DEFAULT_NAMES) -> str:
    """Idle GPU hours (allocated x (1 - utilization)) by cost labels and GPU model.

    Only pods with utilization series count: a pod without them has no idle time
    (unknown is not idle). A MIG slice or time-sliced share weighs as its fraction
    of a device, times the utilization reported for the pod.
    """
    return _checked(
        f"sum {by(names.labels(GPU_USAGE_LABELS))} (\n"
        f"    {_indent(pod_gpu_hours(window_ms, names), '    ')}\n"
        f"  * {on(names.labels(('namespace', 'pod')))} group_left ()\n"
        f"    (1 - {_indent(pod_utilization(window_ms, names), '    ')})\n"
        f")"
    )


def capacity_gpu_hours_query(window_ms: int, names: QueryNames = DEFAULT_NAMES) -> str:
    """GPU hours (in devices) the nodes offered, by GPU model."""
    return _checked(
        f"sum {by(names.labels(('gpu_model',)))} (\n"
        f"  max {by(names.labels(NODE_CAPACITY_LABELS))} (\n"
        f"{_integrated(names.capacity, window_ms, names, '    ')}\n"
        f"  )\n"
        f")"
    )


def tokens_query(window_ms: int, names: QueryNames = DEFAULT_NAMES) -> str:
    """Tokens through the LLM gateway by team, model and direction (input, output).

    `increase` handles counter resets. The series, team and model labels are the
    configured source's (`token_sources`: LiteLLM or OpenTelemetry GenAI), the same
    the recording rules read.
    """
    window = duration_ms(window_ms)
    parts = [
        "label_replace("
        + token_series(
            names.token_source,
            direction,
            "increase",
            window,
            matchers=names.cluster_matchers(),
            replica_labels=names.replica_labels,
        )
        + f', "direction", "{direction}", "", "")'
        for direction in TOKEN_DIRECTIONS
    ]
    joined = "\n  or\n  ".join(parts)
    return _checked(f"sum {by(names.labels(TOKEN_LABELS))} (\n  {joined}\n)")


def job_gpu_hours_query(window_ms: int, names: QueryNames = DEFAULT_NAMES) -> str:
    """GPU hours of each Job (training run) by namespace, Job, team and GPU model.

    A pod belongs to the Job that owns it (kube-state-metrics' `kube_pod_owner`,
    any time in the window), so every attempt and retry of the Job counts.
    """
    job = string_literal("Job")
    return _checked(
        f"sum {by(names.labels(JOB_LABELS))} (\n"
        f"    {_indent(pod_gpu_hours(window_ms, names), '    ')}\n"
        f"  * {on(names.labels(('namespace', 'pod')))} group_left (owner_name)\n"
        f"    max {by(names.labels(('namespace', 'pod', 'owner_name')))} (\n"
        f"      max_over_time({names.select(names.pod_owner, f'owner_kind={job}')}"
        f"[{duration_ms(window_ms)}])\n"
        f"    )\n"
        f")"
    )


# ---------------------------------------------------------------- windows


@dataclass(frozen=True)
class Evaluation:
    """`count` equal windows of `window_ms`, the first ending at `first_end_ms`.

    One query: an instant query at `first_end_ms - 1` when `count` is 1, else a
    range query from `first_end_ms - 1` in steps of `window_ms`.
    """

    first_end_ms: int
    window_ms: int
    count: int

    @property
    def first_eval_ms(self) -> int:
        return self.first_end_ms - 1

    @property
    def last_eval_ms(self) -> int:
        return self.first_eval_ms + (self.count - 1) * self.window_ms

    @property
    def start_ms(self) -> int:
        return self.first_end_ms - self.window_ms

    @property
    def end_ms(self) -> int:
        return self.first_end_ms + (self.count - 1) * self.window_ms


def plan_windows(start_ms: int, end_ms: int, chunk_ms: int = DAY_MS) -> list[Evaluation]:
    """Cover [start, end) with at most two evaluations: whole chunks, then the rest."""
    if end_ms <= start_ms:
        raise ValueError("the period must end after it starts")
    if chunk_ms <= 0:
        raise ValueError("the chunk must be positive")
    whole = (end_ms - start_ms) // chunk_ms
    plan = []
    if whole:
        plan.append(Evaluation(start_ms + chunk_ms, chunk_ms, whole))
    rest = (end_ms - start_ms) - whole * chunk_ms
    if rest:
        plan.append(Evaluation(end_ms, rest, 1))
    return plan

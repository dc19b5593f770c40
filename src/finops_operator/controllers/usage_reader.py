"""Usage of a period, read from Prometheus, and the period's cost report.

Runs the queries of `cost_queries` through a `ports.PrometheusPort` (in the
operator and the `report` command, `adapters.prometheus_api.PrometheusClient`)
and turns their answers into the cost model's inputs (`GpuUsage`, `TokenUsage`,
`CapacityUsage`, `JobUsage`). The number of queries is fixed (five, or ten when
the period is not a whole number of days), whatever the number of teams, pods or
days. The answers are kept per window too (`Usage.days`: a day, or the rest of
one), from which `trend.daily_costs` cuts the period's cost into days
(`PeriodReport.daily`) for the trend of the showback, with no extra query.
`report_period` is what the `report` command and the CostReport reconciler call:

    client = PrometheusClient(config.prometheus)
    result = report_period(client, config.pricing, Period.month(2026, 11))
    result.costs.teams, result.costs.untagged, result.costs.cluster, result.jobs

Failures raise `PrometheusError`, never a report of zeros. An answer holding a
NaN or an infinite sample, a sample that is not a number, a negative sample
(every figure read is a usage: GPU-seconds, tokens, capacity; a negative one
would lower a team's bill), or one beyond
`MAX_SAMPLE` (1e12, far beyond any real usage in one window), raises
`UnusableAnswerError` naming the query and the series: skipping the series would
under-count a team, and reading it as 0 would show a wrong figure as fresh. An
answer with `warnings` (Thanos or Mimir answering only in part) is read, and its
warnings are kept in `PeriodReport.warnings`: the caller decides (the operator
marks the reports `Stale` and keeps the last whole figures; `report` refuses to
print them unless told `--allow-partial`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any, Final

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.cost_queries import (
    DAY_MS,
    DEFAULT_NAMES,
    GPU_USAGE_LABELS,
    JOB_LABELS,
    TOKEN_LABELS,
    Evaluation,
    QueryNames,
    capacity_gpu_hours_query,
    gpu_hours_query,
    idle_gpu_hours_query,
    job_gpu_hours_query,
    plan_windows,
    tokens_query,
)
from finops_operator.domain.costs.finance import data_from
from finops_operator.domain.costs.fleet import ClusterCost, cluster_costs
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.pricing import JobCost, training_run_costs
from finops_operator.domain.costs.showback import CostReport, compute_costs
from finops_operator.domain.costs.trend import DailyCosts, DayUsage, daily_costs
from finops_operator.domain.costs.usage import CapacityUsage, GpuUsage, JobUsage, TokenUsage
from finops_operator.domain.money import money_context
from finops_operator.errors import NoUsageDataError, PrometheusError, UnusableAnswerError
from finops_operator.ports import PrometheusPort

UNKNOWN_MODEL: Final = "unknown"
ZERO: Final = Decimal(0)
# The largest sample read as usage: GPU hours or tokens of one series in one window. A
# million GPUs for a day is 2.4e7 GPU hours, and 1e12 tokens a day is 11 million a
# second; a larger sample is a broken exporter or rule, and priced it would overflow
# every figure built on it.
MAX_SAMPLE: Final = Decimal("1e12")

Key = tuple[str, ...]


@dataclass(frozen=True)
class Usage:
    """What the cluster used in a period, as the cost model takes it."""

    gpu: Sequence[GpuUsage] = ()
    tokens: Sequence[TokenUsage] = ()
    capacity: Sequence[CapacityUsage] = ()
    jobs: Sequence[JobUsage] = ()
    # The GPU hours and tokens of each window of the reading (a day, or the rest of
    # one), together the period's: what the daily spend is cut from.
    days: Sequence[DayUsage] = ()

    @property
    def empty(self) -> bool:
        return not (self.gpu or self.tokens or self.capacity)


@dataclass(frozen=True)
class PeriodReport:
    """A period's report: `costs` for [period.start, data_through), with its inputs.

    `data_through` is the end of the period, or the time of reading for a period
    still running (then `costs.period` ends there and the monthly platform cost is
    prorated to it).
    """

    period: Period
    data_through: datetime
    costs: CostReport
    usage: Usage
    pricing: PricingConfig
    jobs: Sequence[JobCost] = ()
    queries: int = 0
    query_seconds: float = 0.0
    # The period's cost per day (`trend.daily_costs`), adding up to `costs` exactly.
    daily: DailyCosts = field(default_factory=DailyCosts)
    # The answers' `warnings`, each once: not empty when Prometheus (Thanos, Mimir)
    # answered only in part, so the figures may be too low.
    warnings: tuple[str, ...] = ()
    # Each cluster's figures (`fleet.cluster_costs`): one, named "", for a single
    # Prometheus whose series carry no cluster label.
    clusters: tuple[ClusterCost, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.warnings)


# ---------------------------------------------------------------- reading answers


class BadSampleError(ValueError):
    """A sample that is not a finite number; the message says which and why."""


def _decimal(raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise BadSampleError(f"a value that is not a number ({str(raw)[:40]!r})")
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise BadSampleError(f"a value that is not a number ({str(raw)[:40]!r})") from None
    if not value.is_finite() or not math.isfinite(float(value)):
        # Prometheus' samples are float64: beyond ±1.8e308 is +Inf/-Inf written another way.
        raise BadSampleError(f"a {raw} sample")
    if value < 0:
        raise BadSampleError(f"a negative sample ({raw}), where usage is never negative")
    if abs(value) > MAX_SAMPLE:
        raise BadSampleError(f"a sample of {raw}, beyond any real usage (more than {MAX_SAMPLE})")
    return value


def _points(series: Mapping[str, Any]) -> Iterable[tuple[Any, Any]]:
    points = series["values"] if "values" in series else [series["value"]]
    if not isinstance(points, list):
        raise BadSampleError("samples that are not a list")
    for point in points:
        if not isinstance(point, list | tuple) or len(point) != 2:
            raise BadSampleError(f"a sample that is not a [time, value] pair ({str(point)[:40]!r})")
        yield point[0], point[1]


def _at_zero(_: Any) -> int:
    return 0


def sum_by_window(
    result: Iterable[Mapping[str, Any]],
    labels: Sequence[str],
    window_of: Callable[[Any], int] = _at_zero,
) -> dict[int, dict[Key, Decimal]]:
    """Every point of every series (instant or range answer) summed by `labels`, in the
    window `window_of(point's time)` says (all in window 0 by default).

    A series without samples, or with a sample that is not a finite number (NaN, +Inf,
    -Inf), raises BadSampleError naming the series: never skipped, never read as 0.
    """
    sums: dict[int, dict[Key, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    with localcontext(money_context()):
        for series in result:
            metric = series.get("metric") if isinstance(series, Mapping) else None
            if not isinstance(metric, Mapping):
                raise BadSampleError(f"a series without labels ({str(series)[:80]!r})")
            key = tuple(str(metric.get(label, "")) for label in labels)
            if "values" not in series and "value" not in series:
                raise BadSampleError(f"a series without samples: {_labels(metric)}")
            try:
                for moment, raw in _points(series):
                    sums[window_of(moment)][key] += _decimal(raw)
            except BadSampleError as err:
                raise BadSampleError(f"{err} in the series {_labels(metric)}") from None
    return {window: dict(values) for window, values in sums.items()}


def sum_by(result: Iterable[Mapping[str, Any]], labels: Sequence[str]) -> dict[Key, Decimal]:
    """Every point of every series (instant or range answer) summed by `labels`
    (BadSampleError as `sum_by_window`)."""
    return sum_by_window(result, labels).get(0, {})


def _labels(metric: Mapping[str, Any]) -> str:
    text = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"
    return text if len(text) <= 200 else text[:197] + "...}"


def _locator(evaluation: Evaluation, first: int) -> Callable[[Any], int]:
    """The window of a point of `evaluation`'s answer: by its time on the evaluation's
    grid (`first` is the index of its first window); an instant answer is one window."""
    if evaluation.count == 1:
        return lambda _: first

    def window_of(moment: Any) -> int:
        try:
            offset = (float(moment) * 1000 - evaluation.first_eval_ms) / evaluation.window_ms
        except (TypeError, ValueError, OverflowError):
            raise BadSampleError(
                f"a sample time that is not a number ({str(moment)[:40]!r})"
            ) from None
        if not math.isfinite(offset):
            raise BadSampleError(f"a sample time that is not a number ({str(moment)[:40]!r})")
        return first + min(max(round(offset), 0), evaluation.count - 1)

    return window_of


def _run(
    client: PrometheusPort,
    build: Callable[[int, QueryNames], str],
    plan: Sequence[Evaluation],
    names: QueryNames,
    labels: Sequence[str],
) -> dict[int, dict[Key, Decimal]]:
    """One query per evaluation of the plan, summed by `labels` in each window of the
    plan (windows numbered from 0 across the evaluations, in time order); a series
    without the cluster label counts as `names.unlabelled_cluster`'s.

    Raises UnusableAnswerError when an answer holds a sample that is not a finite number.
    """
    windows: dict[int, dict[Key, Decimal]] = {}
    first = 0
    for evaluation in plan:
        expr = build(evaluation.window_ms, names)
        if evaluation.count == 1:
            result = client.evaluate(expr, evaluation.first_eval_ms / 1000)
        else:
            result = client.evaluate_range(
                expr,
                evaluation.first_eval_ms / 1000,
                evaluation.last_eval_ms / 1000,
                evaluation.window_ms / 1000,
            )
        try:
            sums = sum_by_window(result, labels, _locator(evaluation, first))
        except BadSampleError as err:
            what = getattr(build, "__name__", "query").removesuffix("_query").replace("_", " ")
            raise UnusableAnswerError(
                f"Prometheus at {client.config.url} answered the {what} query with {err}; "
                "no cost is computed from such an answer (check the exporters and the "
                "recording rules feeding it)"
            ) from None
        if names.unlabelled_cluster and tuple(labels[:1]) == (names.cluster_label,):
            sums = {w: _named(values, names.unlabelled_cluster) for w, values in sums.items()}
        windows.update(sums)
        first += evaluation.count
    return windows


def _named(sums: Mapping[Key, Decimal], cluster: str) -> dict[Key, Decimal]:
    """`sums` (keyed by cluster first) with the unlabelled cluster's keys named
    `cluster`, added to that cluster's own: one cluster, one key, every hour once."""
    named: dict[Key, Decimal] = defaultdict(Decimal)
    with localcontext(money_context()):
        for key, value in sums.items():
            named[(key[0] or cluster, *key[1:])] += value
    return dict(named)


def _total(windows: Mapping[int, Mapping[Key, Decimal]]) -> dict[Key, Decimal]:
    """The windows' sums added up, key by key (exact: the money context)."""
    total: dict[Key, Decimal] = defaultdict(Decimal)
    with localcontext(money_context()):
        for index in sorted(windows):
            for key, value in windows[index].items():
                total[key] += value
    return dict(total)


def _periods(plan: Sequence[Evaluation]) -> list[Period]:
    """The windows of the plan, in time order."""
    return [
        Period(_from_ms(start), _from_ms(start + evaluation.window_ms))
        for evaluation in plan
        for start in range(evaluation.start_ms, evaluation.end_ms, evaluation.window_ms)
    ]


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _tag(value: str) -> str:
    return value or conventions.UNTAGGED


def _whole(tokens: Decimal) -> Decimal:
    """Tokens as a whole number: `increase()` extrapolates a counter to the window's
    edges, so its sum is fractional; a token is not (rounded half-even)."""
    return tokens.to_integral_value(rounding=ROUND_HALF_EVEN)


def _to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def read_usage(
    client: PrometheusPort,
    period: Period,
    *,
    names: QueryNames = DEFAULT_NAMES,
    chunk: timedelta = timedelta(days=1),
    jobs: bool = True,
) -> Usage:
    """Usage in [period.start, period.end), in a fixed number of aggregated queries.

    The period is cut into windows of `chunk` (one range query per measure) and a
    shorter remainder (one instant query per measure). Raises PrometheusError.
    """
    plan = plan_windows(
        _to_ms(period.start), _to_ms(period.end), int(chunk.total_seconds() * 1000) or DAY_MS
    )
    gpu_labels = names.labels(GPU_USAGE_LABELS)
    hours_by_window = _run(client, gpu_hours_query, plan, names, gpu_labels)
    hours = _total(hours_by_window)
    idle = _total(_run(client, idle_gpu_hours_query, plan, names, gpu_labels))
    capacity_labels = names.labels(("gpu_model",))
    capacity_by_window = _run(client, capacity_gpu_hours_query, plan, names, capacity_labels)
    capacity = _total(capacity_by_window)
    tokens_by_window = _run(client, tokens_query, plan, names, names.labels(TOKEN_LABELS))
    tokens = _total(tokens_by_window)
    job_labels = names.labels(JOB_LABELS)
    job_hours = _total(_run(client, job_gpu_hours_query, plan, names, job_labels)) if jobs else {}

    gpu = []
    for key, allocated in sorted(hours.items()):
        cluster, team, feature, environment, workload_type, cost_center, model = key
        idle_hours = idle.get(key)
        gpu.append(
            GpuUsage(
                team=_tag(team),
                gpu_model=model or UNKNOWN_MODEL,
                gpu_hours=allocated,
                busy_gpu_hours=None if idle_hours is None else allocated - idle_hours,
                feature=_tag(feature),
                environment=_tag(environment),
                workload_type=_tag(workload_type),
                cost_center=_tag(cost_center),
                cluster=cluster,
            )
        )
    return Usage(
        gpu=gpu,
        tokens=[
            TokenUsage(
                team=_tag(team),
                model=model or UNKNOWN_MODEL,
                tokens=_whole(count),
                direction="output" if direction == "output" else "input",
                cluster=cluster,
            )
            for (cluster, team, model, direction), count in sorted(tokens.items())
        ],
        capacity=[
            CapacityUsage(gpu_model=model or UNKNOWN_MODEL, gpu_hours=offered, cluster=cluster)
            for (cluster, model), offered in sorted(capacity.items())
        ],
        jobs=[
            JobUsage(
                namespace=namespace,
                job=job,
                team=_tag(team),
                gpu_model=model or UNKNOWN_MODEL,
                gpu_hours=used,
                cluster=cluster,
            )
            for (cluster, namespace, job, team, model), used in sorted(job_hours.items())
        ],
        days=[
            DayUsage(
                window=window,
                gpu=[
                    GpuUsage(
                        team=_tag(key[1]),
                        gpu_model=key[-1] or UNKNOWN_MODEL,
                        gpu_hours=value,
                        cluster=key[0],
                    )
                    for key, value in sorted(hours_by_window.get(index, {}).items())
                ],
                tokens=[
                    TokenUsage(
                        team=_tag(team),
                        model=model or UNKNOWN_MODEL,
                        tokens=count,
                        direction="output" if direction == "output" else "input",
                        cluster=cluster,
                    )
                    for (cluster, team, model, direction), count in sorted(
                        tokens_by_window.get(index, {}).items()
                    )
                ],
                capacity=[
                    CapacityUsage(
                        gpu_model=model or UNKNOWN_MODEL, gpu_hours=offered, cluster=cluster
                    )
                    for (cluster, model), offered in sorted(
                        capacity_by_window.get(index, {}).items()
                    )
                ],
            )
            for index, window in enumerate(_periods(plan))
        ],
    )


def report_period(
    client: PrometheusPort,
    pricing: PricingConfig,
    period: Period,
    *,
    now: datetime | None = None,
    names: QueryNames = DEFAULT_NAMES,
    chunk: timedelta = timedelta(days=1),
    jobs: bool = True,
    adjust: Callable[[Usage, Period, PricingConfig], tuple[Usage, PricingConfig]] | None = None,
) -> PeriodReport:
    """The cost report of `period` (through `now` when the period is still running).

    Raises PrometheusError when Prometheus cannot be read (UnusableAnswerError when an
    answer holds NaN or Inf), and NoUsageDataError when it holds none of the operator's
    series for the period: a report of zeros would be a lie. A partial answer gives a
    report whose `warnings` say so (`partial`). `adjust` rewrites the usage (and the
    prices) read before they are priced: `serving_reader.Chargeback`.
    """
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    if period.start >= moment:
        raise ValueError(f"the period starting {period.start:%Y-%m-%d %H:%M} has not begun")
    through = min(period.end, moment)
    measured = Period(period.start, through)
    before = len(client.log)
    usage = read_usage(client, measured, names=names, chunk=chunk, jobs=jobs)
    records = client.log[before:]
    warnings = tuple(dict.fromkeys(w for record in records for w in record.warnings))
    if usage.empty and warnings:
        raise PrometheusError(
            f"Prometheus at {client.config.url} answered only in part, with none of the "
            f"operator's series: {'; '.join(warnings)}"
        )
    if usage.empty:
        check = "this is the right Prometheus (or tenant)"
        only = ""
        if names.cluster_name is not None:  # a typo in --cluster or cluster.name looks alike
            only = f" for cluster {names.cluster_name!r} (label {names.cluster_label})"
            check += f" and the series' {names.cluster_label} label names the cluster so"
        raise NoUsageDataError(
            f"Prometheus at {client.config.url} has no {names.allocation}, {names.capacity} "
            f"or {names.tokens} series{only} between {measured.start:%Y-%m-%d %H:%M} and "
            f"{measured.end:%Y-%m-%d %H:%M} UTC; check that the operator is scraped and that "
            + check
        )
    if adjust is not None:
        usage, pricing = adjust(usage, measured, pricing)
        records = client.log[before:]
        warnings = tuple(dict.fromkeys(w for record in records for w in record.warnings))
    windows = [day.window for day in usage.days]
    seen = [bool(day.gpu or day.tokens or day.capacity) for day in usage.days]
    costs = compute_costs(
        period=measured,
        pricing=pricing,
        gpu_usage=usage.gpu,
        token_usage=usage.tokens,
        capacity=usage.capacity,
        platform_from=(
            data_from(measured, windows, seen) if pricing.shared_proration == "data" else None
        ),
    )
    return PeriodReport(
        period=period,
        data_through=through,
        costs=costs,
        usage=usage,
        pricing=pricing,
        jobs=training_run_costs(usage.jobs, pricing),
        daily=daily_costs(costs, usage.tokens, usage.days, pricing),
        queries=len(records),
        query_seconds=sum(record.seconds for record in records),
        warnings=warnings,
        clusters=cluster_costs(
            period=measured,
            pricing=pricing,
            gpu_usage=usage.gpu,
            token_usage=usage.tokens,
            capacity=usage.capacity,
        ),
    )

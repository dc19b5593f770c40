"""Self-hosted inference read from Prometheus: vLLM's tokens and its pods' GPU hours.

Runs `serving_queries` over the same windows as `usage_reader` (two queries per
evaluation: a month is two range queries) and hands the records to
`costs.self_hosted`. `report` shows the result as `selfHostedModels`; with
`selfHostedModels.chargeConsumers`, `chargeback(...)` is the `adjust` step of
`usage_reader.report_period` that moves the serving GPU hours to the gateway teams
that consumed the tokens (the operator's CostReports and `report` alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from finops_operator.controllers.usage_reader import (
    UNKNOWN_MODEL,
    Usage,
    _run,
    _tag,
    _to_ms,
    _total,
    _whole,
)
from finops_operator.domain.config import Config, PricingConfig
from finops_operator.domain.costs.cost_queries import DAY_MS, QueryNames, plan_windows
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.self_hosted import (
    SelfHostedModel,
    ServingGpu,
    ServingTokens,
    charge_consumers,
    self_hosted_models,
)
from finops_operator.domain.costs.serving_queries import (
    GENERATION,
    SERVING_GPU_LABELS,
    SERVING_TOKEN_LABELS,
    ServingNames,
    serving_gpu_hours_query,
    serving_tokens_query,
)
from finops_operator.domain.costs.usage import GpuUsage
from finops_operator.ports import PrometheusPort


@dataclass(frozen=True)
class ServingUsage:
    """The serving pods' GPU hours (the period's, and each window's) and vLLM's tokens."""

    gpu: Sequence[ServingGpu] = ()
    gpu_days: Sequence[Sequence[ServingGpu]] = ()
    tokens: Sequence[ServingTokens] = ()

    def served_tokens(self) -> dict[str, Decimal]:
        """Tokens per served model, all namespaces together."""
        served: dict[str, Decimal] = {}
        for count in self.tokens:
            served[count.model] = (
                served.get(count.model, Decimal(0)) + count.prompt_tokens + count.generation_tokens
            )
        return served


def _serving_gpu(key: tuple[str, ...], hours: Decimal) -> ServingGpu:
    cluster, model, namespace, team, feature, environment, workload_type, cost_center = key[:8]
    gpu_model = key[8]
    return ServingGpu(
        model=model,
        namespace=namespace,
        usage=GpuUsage(
            team=_tag(team),
            gpu_model=gpu_model or UNKNOWN_MODEL,
            gpu_hours=hours,
            feature=_tag(feature),
            environment=_tag(environment),
            workload_type=_tag(workload_type),
            cost_center=_tag(cost_center),
            cluster=cluster,
        ),
    )


def read_serving(
    client: PrometheusPort,
    period: Period,
    *,
    names: QueryNames,
    serving: ServingNames,
    chunk: timedelta = timedelta(days=1),
) -> ServingUsage:
    """Serving GPU hours and tokens in [period.start, period.end). Raises PrometheusError."""
    plan = plan_windows(
        _to_ms(period.start), _to_ms(period.end), int(chunk.total_seconds() * 1000) or DAY_MS
    )

    def self_hosted_gpu_hours(window_ms: int, query_names: QueryNames) -> str:
        return serving_gpu_hours_query(window_ms, query_names, serving)

    def self_hosted_tokens(window_ms: int, query_names: QueryNames) -> str:
        return serving_tokens_query(window_ms, query_names, serving)

    gpu_labels = names.labels(SERVING_GPU_LABELS)
    hours_by_window = _run(client, self_hosted_gpu_hours, plan, names, gpu_labels)
    token_labels = names.labels(SERVING_TOKEN_LABELS)
    tokens = _total(_run(client, self_hosted_tokens, plan, names, token_labels))
    windows = sum(evaluation.count for evaluation in plan)
    counts: dict[tuple[str, str, str], list[Decimal]] = {}
    for (cluster, model, namespace, direction), count in sorted(tokens.items()):
        slot = counts.setdefault((cluster, model, namespace), [Decimal(0), Decimal(0)])
        slot[1 if direction == GENERATION else 0] += _whole(count)
    return ServingUsage(
        gpu=[_serving_gpu(key, hours) for key, hours in sorted(_total(hours_by_window).items())],
        gpu_days=[
            [_serving_gpu(key, hours) for key, hours in sorted(hours_by_window.get(i, {}).items())]
            for i in range(windows)
        ],
        tokens=[
            ServingTokens(
                model=model,
                namespace=namespace,
                prompt_tokens=p,
                generation_tokens=g,
                cluster=cluster,
            )
            for (cluster, model, namespace), (p, g) in sorted(counts.items())
        ],
    )


def self_hosted(
    usage: ServingUsage, pricing: PricingConfig, config: Config
) -> list[SelfHostedModel]:
    """The served models of `usage`, priced, with their comparable API models."""
    return self_hosted_models(
        usage.gpu, usage.tokens, pricing, config.self_hosted_models.comparable
    )


@dataclass
class Chargeback:
    """`report_period`'s `adjust` step for `selfHostedModels.chargeConsumers`: reads the
    serving usage of the measured period and moves it to the consuming teams; keeps
    what it read (`serving`) for the report's `selfHostedModels`."""

    client: PrometheusPort
    names: QueryNames
    serving_names: ServingNames
    serving: ServingUsage | None = None

    @classmethod
    def of(cls, client: PrometheusPort, config: Config, names: QueryNames) -> Chargeback | None:
        """The step `selfHostedModels.chargeConsumers` asks for; None when it is off."""
        serving = config.self_hosted_models
        if not serving.charge_consumers:
            return None
        return cls(client, names, ServingNames.from_config(serving))

    def __call__(
        self, usage: Usage, period: Period, pricing: PricingConfig
    ) -> tuple[Usage, PricingConfig]:
        self.serving = read_serving(
            self.client, period, names=self.names, serving=self.serving_names
        )
        moved = charge_consumers(
            usage.gpu,
            usage.tokens,
            usage.days,
            pricing,
            self.serving.gpu,
            self.serving.gpu_days,
            self.serving.served_tokens(),
        )
        return replace(usage, gpu=moved.gpu, days=moved.days), moved.pricing

"""Self-hosted models: the cost per million tokens of a model served on our own GPUs.

"Make or buy": a model served with vLLM costs the GPU hours of the pods that serve
it; divided by the tokens it processed, that is a price per token to set beside an
API's list price. `self_hosted_models` computes it per served model and namespace
(docs/cost-model.md, "Self-hosted models"):

- `gpu_cost` = the serving pods' GPU hours x the hourly price of their GPU model (the
  same dedicated cost the serving team pays in the report);
- `cost_per_1m_tokens` = gpu_cost / (prompt + generation tokens) x 1,000,000, or
  None when the model processed no token (no division by zero, no fake zero);
- with a comparable API model configured (`selfHostedModels.comparable`), what the
  same prompt and generation tokens would cost at that model's input and output
  prices (`pricing.tokensPer1k`), and that per million tokens.

`charge_consumers` is the optional chargeback: teams whose gateway tokens went to a
self-hosted model pay for them at its cost per token, by moving that share of the
serving pods' GPU hours from the serving team to them (never by adding money), and
those gateway tokens carry no API price.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig, TokenPrice
from finops_operator.domain.costs.trend import DayUsage
from finops_operator.domain.costs.usage import GpuUsage, TokenUsage
from finops_operator.domain.money import ZERO, money_context

MILLION: Final = Decimal(1_000_000)


@dataclass(frozen=True)
class ServingGpu:
    """GPU hours of the pods serving `model` in `namespace`, on one label combination."""

    model: str
    namespace: str
    usage: GpuUsage


@dataclass(frozen=True)
class ServingTokens:
    """Tokens `model` processed in `namespace` (vLLM's prompt and generation counters)."""

    model: str
    namespace: str
    prompt_tokens: Decimal
    generation_tokens: Decimal
    cluster: str = ""  # the cluster label's value, "" for none (as `GpuUsage.cluster`)


@dataclass(frozen=True)
class SelfHostedModel:
    """One served model in one namespace of one cluster over the period."""

    model: str
    namespace: str
    gpu_hours: Decimal
    gpu_cost: Decimal
    prompt_tokens: Decimal
    generation_tokens: Decimal
    comparable_model: str | None = None
    comparable_cost: Decimal | None = None
    cluster: str = ""

    @property
    def tokens(self) -> Decimal:
        return self.prompt_tokens + self.generation_tokens

    @property
    def cost_per_1m_tokens(self) -> Decimal | None:
        return _per_million(self.gpu_cost, self.tokens)

    @property
    def comparable_per_1m_tokens(self) -> Decimal | None:
        if self.comparable_cost is None:
            return None
        return _per_million(self.comparable_cost, self.tokens)


def _per_million(cost: Decimal, tokens: Decimal) -> Decimal | None:
    if tokens <= 0:
        return None
    with localcontext(money_context()):
        return cost * MILLION / tokens


def self_hosted_models(
    gpu: Sequence[ServingGpu],
    tokens: Sequence[ServingTokens],
    pricing: PricingConfig,
    comparable: Mapping[str, str] | None = None,
) -> list[SelfHostedModel]:
    """Every served model with GPU hours or tokens, by model, namespace and cluster.

    A model served in two clusters is two rows: each cluster's pods are joined with
    that cluster's vLLM tokens only (docs/multi-cluster.md).
    """
    comparable = comparable or {}
    hours: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    cost: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    prompt: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    generation: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    with localcontext(money_context()):
        for row in gpu:
            key = (row.model, row.namespace, row.usage.cluster)
            hours[key] += row.usage.gpu_hours
            cost[key] += row.usage.gpu_hours * pricing.gpu_price(row.usage.gpu_model)
        for count in tokens:
            key = (count.model, count.namespace, count.cluster)
            prompt[key] += count.prompt_tokens
            generation[key] += count.generation_tokens
        models = []
        for key in sorted(set(hours) | set(prompt) | set(generation)):
            model, namespace, cluster = key
            api = comparable.get(model)
            api_cost = None
            if api is not None:
                api_cost = (
                    prompt[key] * pricing.token_price(api, "input")
                    + generation[key] * pricing.token_price(api, "output")
                ) / 1000
            models.append(
                SelfHostedModel(
                    model=model,
                    namespace=namespace,
                    gpu_hours=hours[key],
                    gpu_cost=cost[key],
                    prompt_tokens=prompt[key],
                    generation_tokens=generation[key],
                    comparable_model=api,
                    comparable_cost=api_cost,
                    cluster=cluster,
                )
            )
    return models


@dataclass(frozen=True)
class Chargeback:
    """Usage with the serving GPU hours moved to the teams that consumed the tokens."""

    gpu: list[GpuUsage]
    days: list[DayUsage]
    pricing: PricingConfig
    shares: Mapping[str, Mapping[str, Decimal]]  # model -> consuming team -> share


def consumer_shares(
    token_usage: Sequence[TokenUsage], served: Mapping[str, Decimal]
) -> dict[str, dict[str, Decimal]]:
    """model -> team -> the part of the model's tokens that team sent through the gateway.

    `served` is each self-hosted model's tokens as vLLM counted them (all namespaces).
    A share is gateway tokens / vLLM tokens; when the gateway counted more than vLLM
    (sampling at the edges), the shares are scaled down to add up to 1 at most.
    """
    sent: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for usage in token_usage:
        if usage.model in served and usage.team != conventions.UNTAGGED:
            sent[usage.model][usage.team] += usage.tokens
    shares: dict[str, dict[str, Decimal]] = {}
    with localcontext(money_context()):
        for model, teams in sent.items():
            base = max(served[model], sum(teams.values(), ZERO))
            if base > 0:
                shares[model] = {team: count / base for team, count in sorted(teams.items())}
    return shares


def _moved(row: GpuUsage, team: str, share: Decimal) -> GpuUsage:
    busy = None if row.busy_gpu_hours is None else row.busy_gpu_hours * share
    return GpuUsage(
        team=team,
        gpu_model=row.gpu_model,
        gpu_hours=row.gpu_hours * share,
        busy_gpu_hours=busy,
        workload_type="inference",
        cluster=row.cluster,
    )


def _labels(row: GpuUsage, key: tuple[str, ...]) -> tuple[str, ...]:
    """`row`'s values of the fields named in `key`: what moved hours are matched by."""
    return tuple(getattr(row, name) for name in key)


def _move(
    rows: Sequence[GpuUsage],
    serving: Sequence[tuple[str, GpuUsage]],
    shares: Mapping[str, Mapping[str, Decimal]],
    key: tuple[str, ...],
) -> list[GpuUsage]:
    """`rows` with each serving row's shares taken off the rows of the same labels
    (those named in `key`; in order, never below zero) and added as the consumers'
    rows: GPU hours are conserved exactly."""
    taken: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    added: list[GpuUsage] = []
    with localcontext(money_context()):
        serving = _within_rows(rows, serving, key)
        for model, row in serving:
            for team, share in shares.get(model, {}).items():
                moved = _moved(row, team, share)
                added.append(moved)
                taken[_labels(row, key)] += moved.gpu_hours
        out = []
        for row in rows:
            label = _labels(row, key)
            take = min(taken.get(label, ZERO), max(row.gpu_hours, ZERO))
            if not take:
                out.append(row)
                continue
            taken[label] -= take
            busy = row.busy_gpu_hours
            if busy is not None:
                busy -= busy * take / row.gpu_hours
            out.append(replace(row, gpu_hours=row.gpu_hours - take, busy_gpu_hours=busy))
    left = {label: hours for label, hours in taken.items() if hours > 0}
    if left:
        raise ValueError(f"serving GPU hours beyond their allocation rows: {sorted(left)}")
    return out + added


# Prometheus sums the serving pods' hours and the allocation rows in different
# orders: where the serving pods are all of a row's pods, the serving figure may
# exceed the row by a float rounding (about 1e-16 of it), which is the row itself.
FLOAT_SLACK: Final = Decimal("1e-12")


def _within_rows(
    rows: Sequence[GpuUsage], serving: Sequence[tuple[str, GpuUsage]], key: tuple[str, ...]
) -> list[tuple[str, GpuUsage]]:
    """`serving` with the rows of a label set that exceed its allocation rows by no more
    than a float rounding (`FLOAT_SLACK`, relative) scaled down to them, exactly."""
    have: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for row in rows:
        have[_labels(row, key)] += max(row.gpu_hours, ZERO)
    served: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for _, row in serving:
        served[_labels(row, key)] += row.gpu_hours
    out = []
    for model, row in serving:
        label = _labels(row, key)
        over = served[label] - have[label]
        if 0 < over <= FLOAT_SLACK * have[label]:
            scale = have[label] / served[label]
            busy = None if row.busy_gpu_hours is None else row.busy_gpu_hours * scale
            row = replace(row, gpu_hours=row.gpu_hours * scale, busy_gpu_hours=busy)
        out.append((model, row))
    return out


# What a moved row is taken from: the serving rows of the same labels in the same
# cluster (the GPU hours stay where they were used; only their team changes).
GPU_KEY: Final = (
    "cluster", "team", "feature", "environment", "workload_type", "cost_center", "gpu_model",
)  # fmt: skip
DAY_KEY: Final = ("cluster", "team", "gpu_model")


def charge_consumers(
    gpu: Sequence[GpuUsage],
    tokens: Sequence[TokenUsage],
    days: Sequence[DayUsage],
    pricing: PricingConfig,
    serving: Sequence[ServingGpu],
    serving_days: Sequence[Sequence[ServingGpu]],
    served_tokens: Mapping[str, Decimal],
) -> Chargeback:
    """The usage to price when consumers pay for self-hosted tokens.

    Each consuming team gets its share (`consumer_shares`) of every serving row's GPU
    hours, day by day (`serving_days`, one list per window of `days`); the serving
    team's rows lose exactly what was moved, so GPU hours, and with them the fleet's
    GPU and capacity cost, are unchanged. The period's rows are the sum of the days'
    moves. Gateway tokens to a self-hosted model are priced 0: their GPU hours pay
    for them.
    """
    shares = consumer_shares(tokens, served_tokens)
    new_days = []
    for day, rows in zip(days, serving_days, strict=True):
        pairs = [(row.model, row.usage) for row in rows]
        new_days.append(replace(day, gpu=_move(day.gpu, pairs, shares, DAY_KEY)))
    pairs = [(row.model, row.usage) for row in serving]
    new_gpu = _move(gpu, pairs, shares, GPU_KEY)
    free = TokenPrice(input=ZERO, output=ZERO)
    prices = dict(pricing.tokens_per_1k)
    for model in served_tokens:
        prices[model] = free
    return Chargeback(
        gpu=new_gpu,
        days=new_days,
        pricing=pricing.model_copy(update={"tokens_per_1k": prices}),
        shares=shares,
    )

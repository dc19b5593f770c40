"""Prices applied to usage: GPU hours by GPU model, tokens by LLM model, training runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext

from finops_operator.domain.config import PricingConfig, TokenDirection
from finops_operator.domain.costs.usage import JobUsage
from finops_operator.domain.money import money_context


def gpu_cost(gpu_hours: Decimal, gpu_model: str, pricing: PricingConfig) -> Decimal:
    """Dedicated cost: allocated GPU hours x the hourly price of that GPU model."""
    with localcontext(money_context()):
        return gpu_hours * pricing.gpu_price(gpu_model)


def token_cost(
    tokens: Decimal, model: str, pricing: PricingConfig, direction: TokenDirection = "input"
) -> Decimal:
    """Usage-driven cost: tokens / 1000 x the price per 1,000 tokens of that model and direction."""
    with localcontext(money_context()):
        return tokens * pricing.token_price(model, direction) / 1000


@dataclass(frozen=True)
class JobCost:
    namespace: str
    job: str
    team: str
    gpu_hours: Decimal
    cost: Decimal


def training_run_cost(gpu_hours: Decimal, gpu_model: str, pricing: PricingConfig) -> Decimal:
    """What one training run cost: its Job's GPU hours x the price of its GPU model."""
    return gpu_cost(gpu_hours, gpu_model, pricing)


def training_run_costs(jobs: Iterable[JobUsage], pricing: PricingConfig) -> list[JobCost]:
    """Cost per training run, one row per (namespace, job), most expensive first.

    A Job whose pods ran on several GPU models has its hours priced per model.
    """
    hours: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cost: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    team: dict[tuple[str, str], str] = {}
    with localcontext(money_context()):
        for usage in jobs:
            key = (usage.namespace, usage.job)
            hours[key] += usage.gpu_hours
            cost[key] += training_run_cost(usage.gpu_hours, usage.gpu_model, pricing)
            team.setdefault(key, usage.team)
    rows = [
        JobCost(ns, job, team[(ns, job)], hours[(ns, job)], cost[(ns, job)]) for ns, job in hours
    ]
    return sorted(rows, key=lambda row: (-row.cost, row.namespace, row.job))

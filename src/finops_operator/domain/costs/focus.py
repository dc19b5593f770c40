"""FOCUS rows: a period's costs as the FinOps Foundation's FOCUS columns.

One row per team (and `__untagged__`) x cost component: GPU usage per GPU model,
tokens per LLM model, and the team's shared cost; plus the shared cost nobody
received. The GPU and token rows are priced per model with `pricing`'s own
functions, so that, unrounded, the rows add up to the cluster total exactly.
Money keeps `FOCUS_PLACES` decimals (docs/report.md, the formats).

Pure: rows of strings in, no file; `views.report_formats` writes them as CSV.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.money import ZERO, display_money
from finops_operator.domain.costs.period import utc_timestamp
from finops_operator.domain.costs.pricing import gpu_cost, token_cost
from finops_operator.domain.costs.showback import CostReport
from finops_operator.domain.costs.usage import GpuUsage, TokenUsage

# Money in FOCUS rows keeps 6 decimals, so that a team's rows add up to its total.
FOCUS_PLACES: Final = 6
FOCUS_COLUMNS: Final = (
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeDescription",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ResourceId",
    "ResourceName",
    "ServiceName",
    "ServiceCategory",
    "Tags",
    "x_Team",
    "x_CostComponent",
    "x_IdleGpuHours",
    "x_IdleCost",
    "x_Period",
)


def _focus_money(amount: Decimal) -> str:
    return display_money(amount, FOCUS_PLACES)


def _focus_number(amount: Decimal) -> str:
    return display_money(amount, FOCUS_PLACES)


def focus_rows(
    costs: CostReport,
    gpu_usage: Iterable[GpuUsage],
    token_usage: Iterable[TokenUsage],
    pricing: PricingConfig,
    team: str | None = None,
) -> list[dict[str, str]]:
    """FOCUS rows: per team (and `__untagged__`), GPU usage per GPU model, tokens per
    LLM model, and its shared cost; plus the shared cost nobody received. Unrounded,
    the rows add up to the cluster total exactly.

    `costs` is what `compute_costs` made of `gpu_usage` and `token_usage` with
    `pricing`; the GPU and token rows re-price that usage per model."""
    pricing_rows: list[dict[str, str]] = []
    start, end = utc_timestamp(costs.period.start), utc_timestamp(costs.period.end)
    period_label = f"{start}/{end}"
    gpu: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO] * 4)
    for usage in gpu_usage:
        cell = gpu[(usage.team, usage.gpu_model)]
        price_cost = gpu_cost(usage.gpu_hours, usage.gpu_model, pricing)
        cell[0] += usage.gpu_hours
        cell[1] += price_cost
        cell[2] += usage.idle_gpu_hours
        cell[3] += gpu_cost(usage.idle_gpu_hours, usage.gpu_model, pricing)
    tokens: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO] * 2)
    for used in token_usage:
        cell = tokens[(used.team, used.model)]
        cell[0] += used.tokens
        cell[1] += token_cost(used.tokens, used.model, pricing)

    def base(owner: str, cost: Decimal) -> dict[str, str]:
        return {
            "BilledCost": _focus_money(cost),
            "EffectiveCost": _focus_money(cost),
            "BillingCurrency": costs.currency,
            "ChargePeriodStart": start,
            "ChargePeriodEnd": end,
            "ChargeCategory": "Usage",
            "Tags": json.dumps({"team": owner}, sort_keys=True) if owner else "{}",
            "x_Team": owner,
            "x_IdleGpuHours": "",
            "x_IdleCost": "",
            "x_Period": period_label,
        }

    owners = [row.team for row in costs.team_rows(team)]
    if team is None or team == conventions.UNTAGGED:
        owners.append(conventions.UNTAGGED)
    shared = {row.team: row.shared_cost for row in [*costs.teams, costs.untagged]}
    for owner in owners:
        for (who, model), (hours, cost, idle, idle_cost) in sorted(gpu.items()):
            if who != owner:
                continue
            pricing_rows.append(
                base(owner, cost)
                | {
                    "ChargeDescription": f"{hours:.3f} GPU hours of {model} allocated to {owner}",
                    "ConsumedQuantity": _focus_number(hours),
                    "ConsumedUnit": "GPU-Hours",
                    "PricingQuantity": _focus_number(hours),
                    "PricingUnit": "GPU-Hours",
                    "ResourceId": f"{owner}/gpu/{model}",
                    "ResourceName": model,
                    "ServiceName": "GPU compute",
                    "ServiceCategory": "Compute",
                    "x_CostComponent": "gpu",
                    "x_IdleGpuHours": _focus_number(idle),
                    "x_IdleCost": _focus_money(idle_cost),
                }
            )
        for (who, model), (count, cost) in sorted(tokens.items()):
            if who != owner:
                continue
            pricing_rows.append(
                base(owner, cost)
                | {
                    "ChargeDescription": f"{count:.0f} LLM tokens of {model} sent by {owner}",
                    "ConsumedQuantity": _focus_number(count),
                    "ConsumedUnit": "Tokens",
                    "PricingQuantity": _focus_number(count / 1000),
                    "PricingUnit": "1000 Tokens",
                    "ResourceId": f"{owner}/llm/{model}",
                    "ResourceName": model,
                    "ServiceName": "LLM gateway",
                    "ServiceCategory": "AI and Machine Learning",
                    "x_CostComponent": "tokens",
                }
            )
        if shared.get(owner, ZERO):
            pricing_rows.append(
                base(owner, shared[owner])
                | {
                    "ChargeDescription": f"share of platform cost and unallocated GPU capacity "
                    f"for {owner}",
                    "ConsumedQuantity": "",
                    "ConsumedUnit": "",
                    "PricingQuantity": "",
                    "PricingUnit": "",
                    "ResourceId": f"{owner}/shared",
                    "ResourceName": "shared platform",
                    "ServiceName": "Shared platform",
                    "ServiceCategory": "Other",
                    "x_CostComponent": "shared",
                }
            )
    undistributed = costs.cluster.undistributed_cost
    if team is None and undistributed:
        pricing_rows.append(
            base("", undistributed)
            | {
                "ChargeDescription": "shared cost no team received (no usage to spread it over)",
                "ConsumedQuantity": "",
                "ConsumedUnit": "",
                "PricingQuantity": "",
                "PricingUnit": "",
                "ResourceId": "cluster/undistributed",
                "ResourceName": "undistributed shared cost",
                "ServiceName": "Shared platform",
                "ServiceCategory": "Other",
                "x_CostComponent": "undistributed",
            }
        )
    return pricing_rows

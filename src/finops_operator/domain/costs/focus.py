"""FOCUS rows: a period's costs as FinOps Foundation FOCUS 1.2 columns.

The rows are the charges of `allocation` (every cost on one combination of the
five cost labels):

- GPU usage per label combination x GPU model: ChargeCategory `Usage`, consumed
  and priced in `Hours` of a GPU (`ConsumedUnit` "GPU-Hours"), unit price = the
  model's hourly price; ResourceId names the GPU pool of that model;
- tokens per label combination x LLM model: `Usage`, ConsumedQuantity a whole
  number of tokens, priced per `1000 Tokens`; ResourceId names the model;
- shared cost (the platform's cost and GPU capacity nobody allocated) per label
  combination: `Adjustment`, a `Recurring` charge with no quantity and no resource
  (FOCUS 1.2 lets non-Usage/Purchase rows have a null PricingQuantity, and
  requires a null ConsumedQuantity for them);
- the shared cost nobody received (`undistributed`): `Adjustment` too, with no
  labels.

Every row: BilledCost = EffectiveCost in cents (`cents`: a team's rows add up to
its figures in every format), ListCost = ContractedCost the exact cost (internal
showback at the configured prices: no discounts, no commitments), ChargeClass null
(no corrections), ProviderName = PublisherName = InvoiceIssuerName (so BilledCost
may be non-zero, FOCUS 1.2 BilledCost-C-005-C), InvoiceId null (no invoice). Tags
hold the cost labels under their own keys (only the labels the workload carried);
`x_CostCenter`, `x_Team`, `x_Feature`, `x_Environment`, `x_WorkloadType` hold
them as columns to group by (`__untagged__` when missing). List cost is exact to
1e-12 (the cost model's quantum) and adds up to the exact cluster total; billed
cost adds up to the report's cluster total to the cent.
Which rules are checked, and how, is in docs/report.md.

Pure: rows of strings in, no file; `views.report_formats` writes them as CSV.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig
from finops_operator.domain.costs.allocation import (
    LABEL_KEYS,
    Allocation,
    GpuCharge,
    Labels,
    SharedCharge,
    TokenCharge,
    allocate,
)
from finops_operator.domain.costs.cents import Cents, report_cents, within
from finops_operator.domain.costs.period import Period, utc_timestamp
from finops_operator.domain.costs.showback import CostReport
from finops_operator.domain.costs.usage import GpuUsage, TokenUsage
from finops_operator.domain.money import QUANTUM

FOCUS_VERSION: Final = "1.2"
FOCUS_COLUMNS: Final = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountStatus",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "Tags",
    "x_Team",
    "x_Feature",
    "x_Environment",
    "x_WorkloadType",
    "x_CostCenter",
    "x_CostComponent",
    "x_IdleGpuHours",
    "x_IdleCost",
)
# The FOCUS 1.2 applicability criteria this export claims (focus-validator's
# --applicability-criteria): usage is measured, unit prices exist, the cost labels
# are tags, the billing account has a name, charges name the resource they are for.
APPLICABILITY_CRITERIA: Final = (
    "USAGE_MEASUREMENT_SUPPORTED",
    "UNIT_PRICING_SUPPORTED",
    "TAGGING_SUPPORTED",
    "ACCOUNT_NAMING_SUPPORTED",
    "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
    "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED",
)
_LABEL_COLUMNS: Final = ("x_Team", "x_Feature", "x_Environment", "x_WorkloadType", "x_CostCenter")
GPU_SERVICE: Final = ("GPU compute", "Compute", "Containers")
LLM_SERVICE: Final = ("LLM gateway", "AI and Machine Learning", "Generative AI")
SHARED_SERVICE: Final = ("Shared GPU platform", "Compute", "Other (Compute)")


@dataclass(frozen=True)
class FocusAccount:
    """Who bills whom: the billing account (the cluster) and the provider (the platform)."""

    account_id: str = "gpu-cluster"
    account_name: str = "GPU cluster"
    provider: str = "GPU platform (finops-operator)"


def focus_decimal(amount: Decimal) -> str:
    """A FOCUS Decimal value: plain decimal notation, exact to 1e-12, no trailing zeros
    but always a decimal point (`5.0`): a CSV reader infers a column of `5`s as integers,
    and FOCUS costs and quantities are of type Decimal."""
    value = amount.quantize(QUANTUM, rounding=ROUND_HALF_EVEN).normalize()
    text = format(value, "f").removeprefix("-") if value == 0 else format(value, "f")
    return text if "." in text else f"{text}.0"


def invoice_id(account: FocusAccount, billed: Period) -> str:
    """The chargeback statement of `billed` for the account, e.g. `gpu-cluster-2026-11`."""
    if billed == Period.month(billed.start.year, billed.start.month):
        return f"{account.account_id}-{billed.start:%Y-%m}"
    return f"{account.account_id}-{billed.start:%Y%m%dT%H%M%SZ}-{billed.end:%Y%m%dT%H%M%SZ}"


def usage_columns(
    sku: str, unit_price: Decimal, consumed: Decimal, priced: Decimal, currency: str
) -> dict[str, str]:
    """The columns of a Usage charge: its SKU and price, quantities consumed and priced."""
    price = focus_decimal(unit_price)
    return {
        "SkuId": sku,
        "SkuPriceId": f"{sku}@{price}{currency}",
        "SkuPriceDetails": "",
        "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based",
        "ConsumedQuantity": focus_decimal(consumed),
        "PricingQuantity": focus_decimal(priced),
        "ListUnitPrice": price,
        "ContractedUnitPrice": price,
    }


def _tags(labels: Labels) -> str:
    tags = {
        key: value
        for key, value in zip(LABEL_KEYS, labels, strict=True)
        if value != conventions.UNTAGGED
    }
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))


Charge = GpuCharge | TokenCharge | SharedCharge


def _as_figures(charge: Charge) -> Cents:
    """A charge's exact money as the four columns `cents.within` rounds."""
    if isinstance(charge, GpuCharge):
        return Cents(gpu_cost=charge.gpu_cost, idle_cost=charge.idle_cost)
    if isinstance(charge, TokenCharge):
        return Cents(token_cost=charge.cost)
    return Cents(shared_cost=charge.cost)


def charge_cents(costs: CostReport, allocation: Allocation) -> dict[int, Cents]:
    """Every charge's cents (by `id` of the charge): a team's charges, column by column,
    within the team's cents (`cents.within`), so a team's FOCUS rows add up to its
    row of every other format, and all rows to the cluster's total, to the cent."""
    rounded = report_cents(costs)
    mine: dict[str, list[Charge]] = {}
    every: list[Charge] = [*allocation.gpu, *allocation.tokens, *allocation.shared]
    for charge in every:
        mine.setdefault(charge.labels[0], []).append(charge)
    result: dict[int, Cents] = {}
    for team, charges in mine.items():
        rounded_charges = within([_as_figures(charge) for charge in charges], rounded.of(team))
        result |= {
            id(charge): cents for charge, cents in zip(charges, rounded_charges, strict=True)
        }
    return result


def focus_rows(
    costs: CostReport,
    gpu_usage: Iterable[GpuUsage],
    token_usage: Iterable[TokenUsage],
    pricing: PricingConfig,
    team: str | None = None,
    *,
    billing_period: Period | None = None,
    account: FocusAccount | None = None,
) -> list[dict[str, str]]:
    """FOCUS 1.2 rows of `costs` (what `compute_costs` made of this usage with
    `pricing`): see the module's docstring. `team`: only that team's rows.
    `billing_period`: the month billed (default: `costs.period`); the charge period is
    always `costs.period`, which ends at the data's end for a month still running."""
    account = account or FocusAccount()
    billed = billing_period or costs.period
    allocation = allocate(costs, gpu_usage, token_usage, pricing)
    cents = charge_cents(costs, allocation)
    common = {
        "BillingAccountId": account.account_id,
        "BillingAccountName": account.account_name,
        "BillingCurrency": costs.currency,
        "BillingPeriodStart": utc_timestamp(billed.start),
        "BillingPeriodEnd": utc_timestamp(billed.end),
        "ChargeClass": "",
        # No commitment discounts; present (null) so that the rules conditioned on it
        # ("Usage and CommitmentDiscountStatus is not Unused") can be evaluated.
        "CommitmentDiscountStatus": "",
        "ChargePeriodStart": utc_timestamp(costs.period.start),
        "ChargePeriodEnd": utc_timestamp(costs.period.end),
        "InvoiceId": invoice_id(account, billed),
        "InvoiceIssuerName": account.provider,
        "ProviderName": account.provider,
        "PublisherName": account.provider,
        "x_IdleGpuHours": "",
        "x_IdleCost": "",
    }

    def charge(
        labels: Labels | None, cost: Decimal, billed: Decimal, service: tuple[str, str, str]
    ) -> dict[str, str]:
        money, cents = focus_decimal(cost), focus_decimal(billed)
        row = common | {
            "BilledCost": cents,
            "EffectiveCost": cents,
            "ListCost": money,
            "ContractedCost": money,
            "ServiceName": service[0],
            "ServiceCategory": service[1],
            "ServiceSubcategory": service[2],
            "Tags": _tags(labels) if labels is not None else "{}",
        }
        for column, value in zip(_LABEL_COLUMNS, labels or ("",) * 5, strict=True):
            row[column] = value
        return row

    def usage(sku: str, unit_price: Decimal, consumed: Decimal, priced: Decimal) -> dict[str, str]:
        return usage_columns(sku, unit_price, consumed, priced, costs.currency)

    def mine(labels: Labels) -> bool:
        return team is None or labels[0] == team

    def who(labels: Labels) -> str:
        return f"team {labels[0]}, cost center {labels[4]}"

    rows: list[dict[str, str]] = []
    for gpu in allocation.gpu:
        if not mine(gpu.labels):
            continue
        rows.append(
            charge(gpu.labels, gpu.gpu_cost, cents[id(gpu)].gpu_cost, GPU_SERVICE)
            | usage(
                f"gpu-hour/{gpu.gpu_model}",
                pricing.gpu_price(gpu.gpu_model),
                gpu.gpu_hours,
                gpu.gpu_hours,
            )
            | {
                "SkuMeter": "GPU Hours",
                "ChargeDescription": f"{gpu.gpu_model} GPU hours allocated to {who(gpu.labels)}",
                "ConsumedUnit": "GPU-Hours",
                "PricingUnit": "GPU-Hours",
                "ResourceId": f"{account.account_id}/gpu/{gpu.gpu_model}",
                "ResourceName": f"{gpu.gpu_model} GPUs",
                "ResourceType": "GPU pool",
                "x_CostComponent": "gpu",
                "x_IdleGpuHours": focus_decimal(gpu.idle_gpu_hours),
                "x_IdleCost": focus_decimal(cents[id(gpu)].idle_cost),
            }
        )
    for used in allocation.tokens:
        if not mine(used.labels):
            continue
        rows.append(
            charge(used.labels, used.cost, cents[id(used)].token_cost, LLM_SERVICE)
            | usage(
                f"llm-tokens/{used.model}/{used.direction}",
                pricing.token_price(used.model, used.direction),
                used.tokens,
                used.tokens / 1000,
            )
            | {
                "SkuMeter": "Tokens",
                "ChargeDescription": (
                    f"{used.model} LLM {used.direction} tokens sent by {who(used.labels)}"
                ),
                "ConsumedUnit": "Tokens",
                "PricingUnit": "1000 Tokens",
                "ResourceId": f"{account.account_id}/llm/{used.model}",
                "ResourceName": f"LLM model {used.model}",
                "ResourceType": "LLM model",
                "x_CostComponent": "tokens",
            }
        )
    no_quantity = {
        "ChargeCategory": "Adjustment",
        "ChargeFrequency": "Recurring",
        "ConsumedQuantity": "",
        "ConsumedUnit": "",
        "PricingQuantity": "",
        "PricingUnit": "",
        "ListUnitPrice": "",
        "ContractedUnitPrice": "",
        "ResourceId": "",
        "ResourceName": "",
        "ResourceType": "",
        "SkuId": "",
        "SkuMeter": "",
        "SkuPriceDetails": "",
        "SkuPriceId": "",
    }
    for shared in allocation.shared:
        if not mine(shared.labels):
            continue
        rows.append(
            charge(shared.labels, shared.cost, cents[id(shared)].shared_cost, SHARED_SERVICE)
            | no_quantity
            | {
                "ChargeDescription": "share of the platform cost and of GPU capacity nobody "
                f"allocated, for {who(shared.labels)}",
                "x_CostComponent": "shared",
            }
        )
    order = {"gpu": 0, "tokens": 1, "shared": 2}
    rows.sort(
        key=lambda row: (row["x_Team"] == conventions.UNTAGGED, row["x_Team"],
                         order[row["x_CostComponent"]])
    )  # fmt: skip
    undistributed = report_cents(costs).undistributed.shared_cost
    if team is None and undistributed:
        rows.append(
            charge(None, allocation.undistributed, undistributed, SHARED_SERVICE)
            | no_quantity
            | {
                "ChargeDescription": "shared cost no team received (no usage to spread it over)",
                "x_CostComponent": "undistributed",
            }
        )
    return rows

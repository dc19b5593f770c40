"""FOCUS 1.3 rows: a period's costs per day, with the split-cost-allocation columns.

FOCUS 1.3 (ratified December 2025) adds what a Kubernetes chargeback needs: a
charge that is split among consumers by the data generator (an *origin charge*)
becomes *allocated charges* that say how (`AllocatedMethodId`,
`AllocatedMethodDetails`), to whom (`AllocatedResourceId`, `AllocatedResourceName`)
and with which of the recipient's tags (`AllocatedTags`). The rows, one per UTC
day of the period (`ChargePeriodStart/End`), are:

- `gpu`: GPU hours measured per label combination x GPU model that day. Usage,
  not allocated (the pods' own labels are its `Tags`).
- `tokens`: tokens per team x LLM model x direction that day, as the gateway
  reported them: `Tags` holds only the team, the one label the gateway knows.
  They are split over the team's label combinations in proportion to its GPU
  cost in each (whole tokens; `AllocatedMethodId` `tokens-by-gpu-cost`,
  `AllocatedTags` the combination's other labels), so cost centers carry token
  spend; a team without GPU cost keeps its tokens whole, unsplit.
- `platform`: the platform fee that day (the monthly fee prorated, `Hours` at
  the month's hourly rate), split among the teams' label combinations.
- `idle capacity`: GPU hours of one model nobody allocated that day, at the
  model's price, split the same way.

  Both are Usage (a fee and GPU hours that accrued), never `Adjustment` (which
  finance tools read as a correction). Each split row keeps the origin charge's
  dimensions (service, resource, SKU, price: the attribute
  DataGeneratorCalculatedSplitCostAllocationHandling) and its `Tags` (none),
  carries a share of its cost and quantities, `AllocatedMethodId` =
  `shared-by-gpu-cost` or `shared-evenly` (the configured `sharedSplit`),
  `AllocatedMethodDetails` = `{"Elements": [{"AllocatedRatio": share}]}`,
  `AllocatedResourceId` = the label combination, `AllocatedTags` = its labels.
  The part nobody received (no usage to split it over) is the unallocated
  portion: `AllocatedResourceId` null.

`SubAccountId`/`SubAccountName` are the team (`__untagged__` for pods without
the label; null on the unallocated portion), `SubAccountType` `Team`.
`ServiceProviderName` and `HostProviderName` are the platform. Money as in 1.2:
`BilledCost` = `EffectiveCost` in cents within each team's figures of every other
format (`cents`), `ListCost` = `ContractedCost` exact. docs/report.md has the
columns and the validator's verdict.

Pure: rows of strings in, no file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Final

from finops_operator.domain import conventions
from finops_operator.domain.config import PricingConfig, TokenDirection
from finops_operator.domain.costs.allocation import LABEL_KEYS, Labels, SharedCharge, allocate
from finops_operator.domain.costs.cents import Cents, report_cents, within
from finops_operator.domain.costs.focus import (
    FOCUS_COLUMNS as FOCUS_1_2_COLUMNS,
)
from finops_operator.domain.costs.focus import (
    GPU_SERVICE,
    LLM_SERVICE,
    SHARED_SERVICE,
    FocusAccount,
    focus_decimal,
    invoice_id,
    usage_columns,
)
from finops_operator.domain.costs.period import Period, prorated_monthly, utc_timestamp
from finops_operator.domain.costs.showback import CostReport
from finops_operator.domain.costs.trend import DayUsage
from finops_operator.domain.costs.usage import DIMENSIONS, CapacityUsage, GpuUsage, TokenUsage
from finops_operator.domain.money import ZERO, money_context, split

# `report --focus-version`: the first is the default.
FOCUS_VERSIONS: Final = ("1.3", "1.2")
_NEW_COLUMNS: Final = (
    "AllocatedMethodDetails",
    "AllocatedMethodId",
    "AllocatedResourceId",
    "AllocatedResourceName",
    "AllocatedTags",
    "HostProviderName",
    "ServiceProviderName",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
)
_FOCUS_PART: Final = tuple(
    sorted([c for c in FOCUS_1_2_COLUMNS if not c.startswith("x_")] + list(_NEW_COLUMNS))
)
FOCUS_1_3_COLUMNS: Final = (
    *_FOCUS_PART,
    *(c for c in FOCUS_1_2_COLUMNS if c.startswith("x_")),
)
_LABEL_COLUMNS: Final = ("x_Team", "x_Feature", "x_Environment", "x_WorkloadType", "x_CostCenter")
METHODS: Final = {"proportional": "shared-by-gpu-cost", "even": "shared-evenly"}
TOKEN_METHOD: Final = "tokens-by-gpu-cost"
_UNALLOCATED: Final = ("",)  # the key of the part nobody received, among label tuples


@dataclass
class _Row:
    """One charge before its cents: who (labels, team), what, and its exact money."""

    team: str  # "" for the unallocated portion
    columns: dict[str, str]
    cost: Decimal
    column: str  # which money column of the team's cents it draws on
    idle_cost: Decimal = ZERO


def _tags(pairs: Iterable[tuple[str, str]]) -> str:
    tags = {key: value for key, value in pairs if value != conventions.UNTAGGED}
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))


def _label_tags(labels: Labels) -> str:
    return _tags(zip(LABEL_KEYS, labels, strict=True))


def combination_id(labels: Labels) -> str:
    """The label combination an allocated charge goes to, as an identifier."""
    return "labels/" + "/".join(labels)


def _windows(period: Period, days: Sequence[DayUsage]) -> list[Period]:
    return [day.window for day in days] if days else [period]


def _spread(
    amount: Decimal, weights: Sequence[Decimal], fallback: Sequence[Decimal]
) -> list[Decimal]:
    """`amount` over the days by `weights`, or `fallback` when they are all zero."""
    chosen = weights if sum(weights, ZERO) > 0 else fallback
    if amount == 0 or sum(chosen, ZERO) <= 0:
        return [ZERO] * len(weights)
    keys = [f"{i:06d}" for i in range(len(chosen))]
    shares = split(amount, dict(zip(keys, chosen, strict=True)))
    return [shares[key] for key in keys]


def focus13_rows(
    costs: CostReport,
    gpu_usage: Iterable[GpuUsage],
    token_usage: Iterable[TokenUsage],
    pricing: PricingConfig,
    team: str | None = None,
    *,
    capacity: Iterable[CapacityUsage],
    days: Sequence[DayUsage] = (),
    billing_period: Period | None = None,
    account: FocusAccount | None = None,
) -> list[dict[str, str]]:
    """FOCUS 1.3 rows of `costs`, one set per day of `days` (the period's usage per
    window; without them, one window: the period). `capacity`: the period's, as
    `costs` was computed with (the idle capacity it holds is split from it). See
    the module's docstring."""
    account = account or FocusAccount()
    billed = billing_period or costs.period
    gpu_usage, token_usage = list(gpu_usage), list(token_usage)
    allocation = allocate(costs, gpu_usage, token_usage, pricing)
    windows = _windows(costs.period, days)
    hours = [Decimal(w.hours) for w in windows]
    rows: list[_Row] = []
    with localcontext(money_context()):
        per_day = [list(day.gpu) for day in days] if days else [gpu_usage]
        rows += _gpu_rows(per_day, pricing, account)
        weights: dict[str, dict[Labels, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for charge in allocation.gpu:
            if charge.gpu_cost > 0:
                weights[charge.labels[0]][charge.labels] += charge.gpu_cost
        rows += _token_rows(weights, token_usage, days, pricing, account, hours)
        rows += _shared_rows(
            costs, allocation.shared, gpu_usage, capacity, days, pricing, account, windows
        )
    return _finish(rows, costs, team, account, billed, windows)


def _gpu_rows(
    per_day: Sequence[Sequence[GpuUsage]], pricing: PricingConfig, account: FocusAccount
) -> list[_Row]:
    rows = []
    for index, usages in enumerate(per_day):
        cells: dict[tuple[Labels, str], list[Decimal]] = defaultdict(lambda: [ZERO] * 3)
        for usage in usages:
            labels = (usage.team, *(usage.label(d) for d in DIMENSIONS))
            cell = cells[(labels, usage.gpu_model)]
            cell[0] += usage.gpu_hours
            cell[1] += usage.idle_gpu_hours
        for (labels, model), (gpu_hours, idle, _) in sorted(cells.items()):
            price = pricing.gpu_price(model)
            rows.append(
                _Row(
                    labels[0],
                    _usage(
                        f"gpu-hour/{model}",
                        price,
                        gpu_hours,
                        gpu_hours,
                        "GPU-Hours",
                        "GPU-Hours",
                        pricing.currency,
                    )
                    | _resource(account, f"gpu/{model}", f"{model} GPUs", "GPU pool", GPU_SERVICE)
                    | {
                        "day": str(index),
                        "SkuMeter": "GPU Hours",
                        "ChargeDescription": f"{model} GPU hours allocated to {_who(labels)}",
                        "Tags": _label_tags(labels),
                        "x_CostComponent": "gpu",
                        "x_IdleGpuHours": focus_decimal(idle),
                    }
                    | _label_columns(labels),
                    gpu_hours * price,
                    "gpu_cost",
                    idle_cost=idle * price,
                )
            )
    return rows


def _token_rows(
    gpu_weights: Mapping[str, Mapping[Labels, Decimal]],
    token_usage: Sequence[TokenUsage],
    days: Sequence[DayUsage],
    pricing: PricingConfig,
    account: FocusAccount,
    hours: Sequence[Decimal],
) -> list[_Row]:
    whole: dict[tuple[str, str, TokenDirection], Decimal] = defaultdict(Decimal)
    for used in token_usage:
        whole[(used.team, used.model, used.direction)] += used.tokens
    measured: dict[tuple[str, str, TokenDirection], list[Decimal]] = defaultdict(
        lambda: [ZERO] * len(hours)
    )
    for index, day in enumerate(days):
        for used in day.tokens:
            measured[(used.team, used.model, used.direction)][index] += used.tokens
    rows = []
    for (team, model, direction), tokens in sorted(whole.items()):
        weights = measured.get((team, model, direction), [ZERO] * len(hours))
        keys = [f"{i:06d}" for i in range(len(hours))]
        chosen = weights if sum(weights, ZERO) > 0 else hours
        shares = split(tokens, dict(zip(keys, chosen, strict=True)), Decimal(1)) if tokens else {}
        price = pricing.token_price(model, direction)
        for index, key in enumerate(keys):
            count = shares.get(key, ZERO)
            if not count:
                continue
            origin = (
                _usage(
                    f"llm-tokens/{model}/{direction}",
                    price,
                    count,
                    count / 1000,
                    "Tokens",
                    "1000 Tokens",
                    pricing.currency,
                )
                | _resource(account, f"llm/{model}", f"LLM model {model}", "LLM model", LLM_SERVICE)
                | {
                    "day": str(index),
                    "SkuMeter": "Tokens",
                    "ChargeDescription": f"{model} LLM {direction} tokens sent by team {team}",
                    # Only what the gateway reported: the team.
                    "Tags": _tags([(LABEL_KEYS[0], team)]),
                    "x_CostComponent": "tokens",
                }
            )
            for labels, part, allocated in _token_split(team, count, gpu_weights.get(team)):
                rows.append(
                    _Row(
                        team,
                        origin
                        | allocated
                        | {
                            "ConsumedQuantity": focus_decimal(part),
                            "PricingQuantity": focus_decimal(part / 1000),
                        }
                        | _label_columns(labels),
                        part * price / 1000,
                        "token_cost",
                    )
                )
    return rows


def _token_split(
    team: str, count: Decimal, weights: Mapping[Labels, Decimal] | None
) -> list[tuple[Labels, Decimal, dict[str, str]]]:
    """A team's tokens on its label combinations, as whole tokens in proportion to the
    team's GPU cost in each (the split of docs/cost-model.md), each with the allocation
    columns; a team without GPU cost keeps them whole, not split."""
    if not weights:
        return [(_untagged_but_team(team), count, {})]
    total = sum(weights.values(), ZERO)
    result = []
    for labels, part in sorted(split(count, dict(weights), Decimal(1)).items()):
        if not part:
            continue
        ratio = weights[labels] / total
        details = {
            "Elements": [
                {
                    "AllocatedRatio": float(ratio),
                    "UsageUnit": "GPU cost",
                    "UsageQuantity": float(weights[labels]),
                }
            ]
        }
        allocated = {
            "AllocatedMethodId": TOKEN_METHOD,
            "AllocatedMethodDetails": json.dumps(details, separators=(",", ":")),
            "AllocatedResourceId": combination_id(labels),
            "AllocatedResourceName": _who(labels),
            # The recipient's labels but the team, which Tags already holds.
            "AllocatedTags": _tags(zip(LABEL_KEYS[1:], labels[1:], strict=True)),
        }
        result.append((labels, part, allocated))
    return result


def _untagged_but_team(team: str) -> Labels:
    return (team, *(conventions.UNTAGGED for _ in DIMENSIONS))


def _shared_rows(
    costs: CostReport,
    shared: Sequence[SharedCharge],
    gpu_usage: Sequence[GpuUsage],
    capacity: Iterable[CapacityUsage],
    days: Sequence[DayUsage],
    pricing: PricingConfig,
    account: FocusAccount,
    windows: Sequence[Period],
) -> list[_Row]:
    """The platform fee and the idle capacity of each day, split among the label
    combinations in the proportions the period's shared cost was split."""
    cluster = costs.cluster
    pool = cluster.platform_cost + cluster.unallocated_cost
    if pool == 0:
        return []
    weights: dict[Labels, Decimal] = defaultdict(Decimal)
    for charge in shared:
        weights[charge.labels] += charge.cost
    if cluster.undistributed_cost > 0:
        weights[_UNALLOCATED] += cluster.undistributed_cost
    hours = [Decimal(w.hours) for w in windows]
    origins: list[tuple[int, str, Decimal, Decimal, dict[str, str]]] = []
    # The platform fee accrues on every day of the period, with figures or not.
    daily_fee = [prorated_monthly(pricing.shared_monthly, w) for w in windows]
    for index, amount in enumerate(_spread(cluster.platform_cost, daily_fee, hours)):
        if amount:
            rate = pricing.shared_monthly / Decimal(_month_hours(windows[index]))
            origins.append(
                (
                    index,
                    "platform",
                    amount,
                    hours[index],
                    _platform(account, rate, pricing.currency),
                )
            )
    # Idle capacity per GPU model: the period's, spread over the days by each day's.
    for model, spare, daily in _idle(gpu_usage, capacity, days):
        price = pricing.gpu_price(model)
        for index, spare_hours in enumerate(_spread(spare, daily, hours)):
            if spare_hours:
                origins.append(
                    (
                        index,
                        "idle capacity",
                        spare_hours * price,
                        spare_hours,
                        _idle_capacity(account, model, price, pricing.currency),
                    )
                )
    method = METHODS.get(pricing.shared_split, METHODS["proportional"])
    total_weight = sum(weights.values(), ZERO)
    rows = []
    for index, kind, amount, quantity, columns in origins:
        costs_split = split(amount, weights)
        quantities = split(quantity, weights)
        for labels, part in sorted(costs_split.items()):
            if not part and not quantities[labels]:
                continue
            ratio = weights[labels] / total_weight
            allocated = labels != _UNALLOCATED
            details = {
                "Elements": [
                    {
                        "AllocatedRatio": float(ratio),
                        "UsageUnit": "Shared cost",
                        "UsageQuantity": float(weights[labels]),
                    }
                ]
            }
            rows.append(
                _Row(
                    labels[0] if allocated else "",
                    columns
                    | {
                        "day": str(index),
                        "ConsumedQuantity": focus_decimal(quantities[labels]),
                        "PricingQuantity": focus_decimal(quantities[labels]),
                        "ChargeDescription": (
                            f"{kind}: share of {_who(labels)}"
                            if allocated
                            else f"{kind}: the part no team received (no usage to split it over)"
                        ),
                        "Tags": "{}",  # the origin charge's: the platform has none
                        "AllocatedMethodId": method,
                        "AllocatedMethodDetails": json.dumps(details, separators=(",", ":")),
                        "AllocatedResourceId": combination_id(labels) if allocated else "",
                        "AllocatedResourceName": _who(labels) if allocated else "",
                        "AllocatedTags": _label_tags(labels) if allocated else "",
                        "x_CostComponent": "shared" if allocated else "undistributed",
                    }
                    | (_label_columns(labels) if allocated else dict.fromkeys(_LABEL_COLUMNS, "")),
                    part,
                    "shared_cost",
                )
            )
    return rows


def _idle(
    gpu_usage: Sequence[GpuUsage],
    capacity: Iterable[CapacityUsage],
    days: Sequence[DayUsage],
) -> list[tuple[str, Decimal, list[Decimal]]]:
    """Per GPU model: the period's unallocated GPU hours (as `compute_costs` counts
    them) and each day's, the weights that spread the period's over the days."""

    def spare(gpu: Iterable[GpuUsage], offered: Iterable[CapacityUsage]) -> dict[str, Decimal]:
        allocated: dict[str, Decimal] = defaultdict(Decimal)
        for usage in gpu:
            allocated[usage.gpu_model] += usage.gpu_hours
        total: dict[str, Decimal] = defaultdict(Decimal)
        for item in offered:
            total[item.gpu_model] += item.gpu_hours
        return {m: max(h - allocated.get(m, ZERO), ZERO) for m, h in total.items()}

    period = spare(gpu_usage, capacity)
    per_day = [spare(day.gpu, day.capacity) for day in days] if days else [period]
    return [
        (model, hours, [day.get(model, ZERO) for day in per_day])
        for model, hours in sorted(period.items())
        if hours > 0
    ]


def _month_hours(window: Period) -> int:
    month = Period.month(window.start.year, window.start.month)
    return int(month.hours)


def _usage(
    sku: str,
    price: Decimal,
    consumed: Decimal,
    priced: Decimal,
    consumed_unit: str,
    pricing_unit: str,
    currency: str,
) -> dict[str, str]:
    units = {"ConsumedUnit": consumed_unit, "PricingUnit": pricing_unit}
    return usage_columns(sku, price, consumed, priced, currency) | units


def _resource(
    account: FocusAccount, path: str, name: str, kind: str, service: tuple[str, str, str]
) -> dict[str, str]:
    return {
        "ResourceId": f"{account.account_id}/{path}",
        "ResourceName": name,
        "ResourceType": kind,
        "ServiceName": service[0],
        "ServiceCategory": service[1],
        "ServiceSubcategory": service[2],
    }


def _platform(account: FocusAccount, rate: Decimal, currency: str) -> dict[str, str]:
    return (
        _usage("platform-hour", rate, ZERO, ZERO, "Hours", "Hours", currency)
        | _resource(account, "platform", "Shared GPU platform", "Platform", SHARED_SERVICE)
        | {"SkuMeter": "Platform Hours"}
    )


def _idle_capacity(
    account: FocusAccount, model: str, price: Decimal, currency: str
) -> dict[str, str]:
    return (
        _usage(f"gpu-hour/{model}", price, ZERO, ZERO, "GPU-Hours", "GPU-Hours", currency)
        | _resource(account, f"gpu/{model}", f"{model} GPUs", "GPU pool", SHARED_SERVICE)
        | {"SkuMeter": "Unallocated GPU Hours"}
    )


def _who(labels: Labels) -> str:
    return f"team {labels[0]}, cost center {labels[4]}"


def _label_columns(labels: Labels) -> dict[str, str]:
    return dict(zip(_LABEL_COLUMNS, labels, strict=True))


def _finish(
    rows: list[_Row],
    costs: CostReport,
    team: str | None,
    account: FocusAccount,
    billed: Period,
    windows: Sequence[Period],
) -> list[dict[str, str]]:
    """The rows in cents (each team's within its cents; the unallocated portion within
    the undistributed cents), with the columns every row shares, sorted by day."""
    rounded = report_cents(costs)
    by_team: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_team[row.team].append(row)
    out = []
    for name, mine in by_team.items():
        whole = rounded.undistributed if name == "" else rounded.of(name)
        figures = [_figures(row) for row in mine]
        for row, cents in zip(mine, within(figures, whole), strict=True):
            if team is not None and name != team:
                continue
            out.append(_columns(row, cents, account, billed, windows, costs.currency))
    out.sort(
        key=lambda r: (
            r["ChargePeriodStart"],
            r["x_Team"] == "",
            r["x_Team"] == conventions.UNTAGGED,
            r["x_Team"],
        )
    )
    return out


def _figures(row: _Row) -> Cents:
    values = dict.fromkeys(("gpu_cost", "idle_cost", "token_cost", "shared_cost"), ZERO)
    values[row.column] = row.cost
    values["idle_cost"] = row.idle_cost
    return Cents(**values)


def _columns(
    row: _Row,
    cents: Cents,
    account: FocusAccount,
    billed: Period,
    windows: Sequence[Period],
    currency: str,
) -> dict[str, str]:
    window = windows[int(row.columns["day"])]
    money = getattr(cents, row.column)
    exact = focus_decimal(row.cost)
    columns = {k: v for k, v in row.columns.items() if k != "day"}
    subaccount = row.team
    out = (
        dict.fromkeys(FOCUS_1_3_COLUMNS, "")
        | columns
        | {
            "BilledCost": focus_decimal(money),
            "EffectiveCost": focus_decimal(money),
            "ListCost": exact,
            "ContractedCost": exact,
            "BillingAccountId": account.account_id,
            "BillingAccountName": account.account_name,
            "BillingCurrency": currency,
            "BillingPeriodStart": utc_timestamp(billed.start),
            "BillingPeriodEnd": utc_timestamp(billed.end),
            "ChargePeriodStart": utc_timestamp(window.start),
            "ChargePeriodEnd": utc_timestamp(window.end),
            "InvoiceId": invoice_id(account, billed),
            "InvoiceIssuerName": account.provider,
            "ProviderName": account.provider,
            "PublisherName": account.provider,
            "ServiceProviderName": account.provider,
            "HostProviderName": account.provider,
            "SubAccountId": subaccount,
            "SubAccountName": subaccount,
            "SubAccountType": "Team" if subaccount else "",
        }
    )
    if row.column == "gpu_cost":
        out["x_IdleCost"] = focus_decimal(cents.idle_cost)
    return out

"""CostReport objects from a period's report, and the `Stale` mark when Prometheus is away.

One CostReport per team per month, one for untagged spend and one for the
whole cluster, as plain dicts for the Kubernetes API. Money is written as
strings rounded to cents, hours as numbers; all arithmetic happened before,
in Decimal, in `showback`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Final

from finops_operator.domain import conventions, names
from finops_operator.domain.conditions import by_type, condition, stamp
from finops_operator.domain.costs.allocation import Allocation
from finops_operator.domain.costs.cents import Cents, less_undistributed, rows_cents, within
from finops_operator.domain.costs.finance import (
    data_from,
    forecast,
    is_partial,
    month_of,
    unit_costs,
)
from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.pricing import JobCost
from finops_operator.domain.costs.showback import ClusterRow, CostRow, idle_percent
from finops_operator.domain.costs.trend import CLUSTER, DailyCosts
from finops_operator.domain.costs.usage import DIMENSIONS
from finops_operator.domain.merge_patch import Compare, Wanted, merge_patch, says
from finops_operator.domain.money import display_hours, display_money, round_to

KIND = "CostReport"
PLURAL = "costreports"
READY = "Ready"
STALE = "Stale"
TOP_WORKLOADS = 10


@dataclass(frozen=True)
class ReportInput:
    """What a reconciliation knows: the rows of one period, and the teams' budgets."""

    period: str  # YYYY-MM
    currency: str
    teams: Sequence[CostRow]
    untagged: CostRow
    cluster: ClusterRow
    jobs: Sequence[JobCost]
    data_through: datetime.datetime
    budgets: Mapping[str, Decimal]
    # All spend on the five labels: with it, the breakdowns carry token, shared and
    # total cost too (docs/costreport.md); without it, GPU hours and cost only.
    allocation: Allocation | None = None
    # The period's cost per day (`status.daily`, the showback's trend); none when empty.
    daily: DailyCosts | None = None
    # What each team's budget counts, from its CostPolicy's `scope`: `gpu`, `tokens`
    # or `all` (GPU + tokens, the default), as the policy's budget alerts count it;
    # or `all-in` (the report's total, shared cost included: `budget.basis: all-in`).
    budget_scopes: Mapping[str, str] = field(default_factory=dict)


# Scope reports are named `<scope>-<period>`; no team report may take those names.
SCOPE_NAMES = frozenset({"cluster", "untagged"})
# What a name may spend on the team: `-YYYY-MM` (8) follows, under 63 with room to spare.
_MAX_TEAM_PART = 48


# What `status.budgetBasis` says a budget counts, in words, by its scope.
BUDGET_BASES: Final = {
    "gpu": "GPU cost",
    "tokens": "token cost",
    "all": "GPU + token cost (shared cost not included)",
    "all-in": "total cost (GPU + token + shared)",
}


def _budget_spend(row: CostRow | ClusterRow, scope: str) -> Decimal:
    """The spend a budget of `scope` counts: GPU, tokens, both, or all-in (with shared)."""
    if scope == "gpu":
        return row.gpu_cost
    if scope == "tokens":
        return row.token_cost
    if scope == "all-in":
        return row.total_cost
    return row.gpu_cost + row.token_cost


def report_name(scope: str, team: str | None, period: str) -> str:
    """A DNS-1123 name: `<team>-<period>`, `untagged-<period>`, `cluster-<period>`.

    Names never collide. A team keeps its own name when it is a DNS label of at most
    48 characters that is not a scope's name (`cluster`, `untagged`) and does not end
    like a hash (`-` and 8 hex digits). Any other team (one that came from a pod
    label that is not a name, or is literally called `cluster`) is folded to a name
    and given a hash of the original: `cluster-3f1c0b2a-2026-11`. So a kept name is
    never a folded one, folded names differ by their hash, and the period, of fixed
    length, ends every name.
    """
    if scope != "team" or team is None:
        return f"{scope}-{period}"
    if (
        len(team) <= _MAX_TEAM_PART
        and names.is_dns_label(team)
        and team not in SCOPE_NAMES
        and not names.ends_like_hash(team)
    ):
        return f"{team}-{period}"
    folded = re.sub(r"[^a-z0-9-]+", "-", team.lower()).strip("-") or "team"
    return f"{names.hashed_name(folded, team, _MAX_TEAM_PART)}-{period}"


_CAMEL = {
    "feature": "feature",
    "environment": "environment",
    "workload_type": "workloadType",
    "cost_center": "costCenter",
}


def _breakdowns(
    row: CostRow, cents: Cents, allocation: Allocation | None
) -> dict[str, list[dict[str, Any]]]:
    if allocation is not None:
        return {
            _CAMEL[dimension]: _all_spend(row, cents, allocation, dimension)
            for dimension in DIMENSIONS
        }
    return {
        _CAMEL[dimension]: [
            {
                "name": name,
                "gpuHours": display_hours(cell.gpu_hours),
                "gpuCost": display_money(cell.gpu_cost),
                "idleGpuHours": display_hours(cell.idle_gpu_hours),
                "idleCost": display_money(cell.idle_cost),
            }
            for name, cell in sorted(
                row.breakdowns.get(dimension, {}).items(), key=lambda item: -item[1].gpu_cost
            )
        ]
        for dimension in DIMENSIONS
    }


def _all_spend(
    row: CostRow, whole: Cents, allocation: Allocation, dimension: str
) -> list[dict[str, Any]]:
    """The row's spend by the values of `dimension`: GPU, token, shared and total cost,
    in cents within the row's (`whole`, less the undistributed shared cost for the
    cluster, which `cluster.undistributedCost` shows), costliest first."""
    if isinstance(row, ClusterRow):
        groups = allocation.group((dimension,))
    else:
        mine = [g for g in allocation.group(("team", dimension)) if g.key[0] == row.team]
        groups = [replace(g, key=g.key[1:]) for g in mine]
    entries = [
        {
            "name": group.key[0],
            "gpuHours": display_hours(group.gpu_hours),
            "gpuCost": str(cents.gpu_cost),
            "idleGpuHours": display_hours(group.idle_gpu_hours),
            "idleCost": str(cents.idle_cost),
            "tokenCost": str(cents.token_cost),
            "sharedCost": str(cents.shared_cost),
            "totalCost": str(cents.total_cost),
        }
        for group, cents in zip(groups, within(groups, whole), strict=True)
    ]
    return sorted(entries, key=lambda entry: (-Decimal(entry["totalCost"]), entry["name"]))


def _unit_economics(row: CostRow) -> dict[str, Any]:
    """Tokens and unit costs (`finance.unit_costs`), to 4 decimals: a cost per 1,000
    tokens is often a fraction of a cent."""
    units = unit_costs(row)
    figures: dict[str, Any] = {"tokens": int(row.tokens)}
    if units.cost_per_busy_gpu_hour is not None:
        figures["costPerBusyGpuHour"] = display_money(units.cost_per_busy_gpu_hour, 4)
    if units.cost_per_1k_tokens is not None:
        figures["costPer1kTokens"] = display_money(units.cost_per_1k_tokens, 4)
    return figures


def _period_figures(data: ReportInput, cents: Cents) -> dict[str, Any]:
    """When the data starts, whether the month is partial, and the month-end forecast."""
    month = month_of(data.period)
    windows = data.daily.windows if data.daily else ()
    measured = data.daily.measured if data.daily else ()
    period = month or (Period(windows[0].start, windows[-1].end) if windows else None)
    if period is None:
        return {}
    start = data_from(period, windows, measured)
    figures: dict[str, Any] = {
        "dataFrom": stamp(start),
        "partialPeriod": is_partial(period, start, data.data_through),
    }
    if month is not None:
        projected = forecast(cents.total_cost, month, start, data.data_through)
        if projected is not None:
            figures["forecastTotalCost"] = display_money(projected)
    return figures


def _figures(
    row: CostRow, cents: Cents, groups_whole: Cents, currency: str, allocation: Allocation | None
) -> dict[str, Any]:
    return {
        "currency": currency,
        "gpuHours": display_hours(row.gpu_hours),
        "idleGpuHours": display_hours(row.idle_gpu_hours),
        "idlePercent": float(round(idle_percent(row), 1)),
        "gpuCost": str(cents.gpu_cost),
        "idleCost": str(cents.idle_cost),
        "tokenCost": str(cents.token_cost),
        "sharedCost": str(cents.shared_cost),
        "totalCost": str(cents.total_cost),
        "breakdowns": _breakdowns(row, groups_whole, allocation),
        **_unit_economics(row),
    }


def _daily(daily: DailyCosts | None, name: str, total: Decimal) -> list[dict[str, str]]:
    """The row's total cost per day with figures, in cents adding up to its `totalCost`
    (already in cents) to the cent."""
    if daily is None or not daily.windows:
        return []
    kept = daily.measured_windows()  # a day without figures is left out, not a zero
    values = daily.of(name)
    cents = round_to([values[i] for i in kept], total)
    return [
        {"date": f"{daily.windows[i].start:%Y-%m-%d}", "totalCost": str(amount)}
        for i, amount in zip(kept, cents, strict=True)
    ]


def _top_workloads(jobs: Sequence[JobCost], team: str | None) -> list[dict[str, Any]]:
    chosen = [job for job in jobs if team is None or job.team == team]
    chosen.sort(key=lambda job: (-job.cost, job.namespace, job.job))
    return [
        {
            "kind": "Job",
            "namespace": job.namespace,
            "name": job.job,
            "gpuHours": display_hours(job.gpu_hours),
            "cost": display_money(job.cost),
        }
        for job in chosen[:TOP_WORKLOADS]
    ]


def _conditions(
    earlier: Any, ready: bool, stale: bool, reason: str, message: str, now: datetime.datetime
) -> list[dict[str, Any]]:
    before = by_type(earlier)
    return [
        condition(
            before.get(READY), READY, ready, "FiguresAvailable" if ready else reason, message, now
        ),
        condition(before.get(STALE), STALE, stale, reason if stale else "Fresh", message, now),
    ]


def desired_reports(
    data: ReportInput, now: datetime.datetime
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(object without status, status) for every report of the period."""
    rows: list[tuple[str, str | None, CostRow]] = [("team", row.team, row) for row in data.teams]
    rows.append(("untagged", conventions.UNTAGGED, data.untagged))
    rows.append(("cluster", None, data.cluster))
    through = stamp(data.data_through)
    rounded = rows_cents([*data.teams, data.untagged], data.cluster)
    result = []
    for scope, team, row in rows:
        spec: dict[str, Any] = {"scope": scope, "period": data.period}
        if team is not None:
            spec["team"] = team
        labels = {
            conventions.MANAGED_BY_LABEL: conventions.MANAGED_BY,
            "finops.resilio.tech/period": data.period,
            "finops.resilio.tech/scope": scope,
        }
        obj = {
            "apiVersion": conventions.API_GROUP_VERSION,
            "kind": KIND,
            "metadata": {"name": report_name(scope, team, data.period), "labels": labels},
            "spec": spec,
        }
        cents = rounded.cluster if scope == "cluster" else rounded.of(row.team)
        whole = less_undistributed(cents, rounded.undistributed) if scope == "cluster" else cents
        status = _figures(row, cents, whole, data.currency, data.allocation)
        status["topWorkloads"] = _top_workloads(data.jobs, team if scope == "team" else None)
        daily = _daily(data.daily, CLUSTER if scope == "cluster" else row.team, cents.total_cost)
        if daily:
            status["daily"] = daily
        budget = data.budgets.get(team or "") if scope == "team" else None
        status |= _period_figures(data, cents)
        if budget:
            scope = data.budget_scopes.get(team or "", "all")
            status["budget"] = display_money(budget)
            spent = _budget_spend(row, scope)
            status["budgetUsedPercent"] = float(round(spent * 100 / budget, 1))
            status["budgetBasis"] = BUDGET_BASES.get(scope, scope)
        if isinstance(row, ClusterRow):
            status["cluster"] = {
                "capacityGpuHours": display_hours(row.capacity_gpu_hours),
                "unallocatedGpuHours": display_hours(row.unallocated_gpu_hours),
                "unallocatedCost": display_money(row.unallocated_cost),
                "platformCost": display_money(row.platform_cost),
                "undistributedCost": str(rounded.undistributed.shared_cost),
            }
        status["dataThrough"] = through
        result.append((obj, status))
    return result


def fresh_status(
    figures: Mapping[str, Any], earlier: Mapping[str, Any] | None, now: datetime.datetime
) -> dict[str, Any]:
    """The status to write after a good read: new figures, `Ready`, not `Stale`."""
    status = dict(figures)
    message = f"figures through {figures['dataThrough']}"
    conditions = (earlier or {}).get("conditions") or []
    status["conditions"] = _conditions(conditions, True, False, "Fresh", message, now)
    status["lastUpdated"] = (earlier or {}).get("lastUpdated") or stamp(now)
    if _figures_changed(earlier, status):
        status["lastUpdated"] = stamp(now)
    return status


def _figures_changed(earlier: Mapping[str, Any] | None, status: Mapping[str, Any]) -> bool:
    ignored = {"conditions", "lastUpdated"}
    before = {k: v for k, v in (earlier or {}).items() if k not in ignored}
    after = {k: v for k, v in status.items() if k not in ignored}
    return before != after


def stale_status(
    earlier: Mapping[str, Any], reason: str, message: str, now: datetime.datetime
) -> dict[str, Any]:
    """The last good figures, kept, with `Stale=True` saying why they are not newer."""
    status = dict(earlier)
    status["conditions"] = _conditions(
        earlier.get("conditions") or [], True, True, reason, message, now
    )
    return status


def status_changed(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether the stored status differs from `desired` in anything at all."""
    return not says(current, desired, Compare.EXACT)


# The operator alone writes a CostReport's status: it is exactly what was computed.
_KEPT_STATUS: Final = (Wanted(("status",), Compare.EXACT),)


def status_patch(current: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch writing `status` on the stored report; None when it says that already."""
    return merge_patch(current, {"status": status}, _KEPT_STATUS)

"""What finance asked for: partial periods, the month-end forecast, unit economics.

A finance reader needs to know what a figure covers before using it: a month
whose data starts after the 1st (the operator was installed mid-month) or ends
before its last day (the month is still running) is *partial*, and says from
when (`data_from`) and through when. It wants the month-end figure a running
month is heading for (`forecast`), and unit costs to compare teams of different
sizes (`unit_costs`). Pure functions of the cost model's figures; the views show
them (docs/report.md, docs/costreport.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from finops_operator.domain.costs.period import Period
from finops_operator.domain.costs.showback import CostRow
from finops_operator.domain.money import money_context


def data_from(period: Period, windows: Sequence[Period], measured: Sequence[bool]) -> datetime:
    """The start of the period's data: the start of its first window with figures
    (Prometheus holds no series before the operator was installed), else the
    period's start (no windows known, or none with figures)."""
    for window, seen in zip(windows, measured, strict=False):
        if seen:
            return max(window.start, period.start)
    return period.start


def is_partial(period: Period, start: datetime, through: datetime) -> bool:
    """Whether the data covers less than the period: it starts late or ends early."""
    return start > period.start or through < period.end


def month_of(label: str) -> Period | None:
    """The calendar month a `YYYY-MM` label names; None for any other period."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", label)
    if match is None:
        return None
    return Period.month(int(match.group(1)), int(match.group(2)))


def forecast(total: Decimal, month: Period, start: datetime, through: datetime) -> Decimal | None:
    """The month-end total at the run rate of the data so far: `total` spent over
    [start, through) is extrapolated linearly to the month's end. None when the
    month is over (the total is final) or there is no data time to take a rate from.
    The budget-forecast alert uses the last 24 hours' rate instead (docs/rules.md):
    the report's figure is steadier, the alert's quicker to react."""
    if through >= month.end or through <= start:
        return None
    with localcontext(money_context()):
        elapsed = Decimal((through - start).total_seconds())
        ahead = Decimal((month.end - through).total_seconds())
        return total + total * ahead / elapsed


@dataclass(frozen=True)
class DataSpan:
    """What a report's figures cover: its data from `start` through `through`;
    `partial` when that is less than the period; `month` the calendar month
    reported (None for `--start/--end`), to forecast."""

    start: datetime
    through: datetime
    partial: bool
    month: Period | None = None

    def forecast(self, total: Decimal) -> Decimal | None:
        """`total`'s month-end forecast (`forecast`), None outside a running month."""
        if self.month is None:
            return None
        return forecast(total, self.month, self.start, self.through)


def data_span(
    period: Period,
    label: str,
    through: datetime,
    windows: Sequence[Period],
    measured: Sequence[bool],
) -> DataSpan:
    """The span of a period's data (`data_from` .. `through`) and the month it is of."""
    start = data_from(period, windows, measured)
    return DataSpan(start, through, is_partial(period, start, through), month_of(label))


@dataclass(frozen=True)
class UnitCosts:
    """Per-unit figures of a row; None where the unit count is zero."""

    busy_gpu_hours: Decimal
    cost_per_busy_gpu_hour: Decimal | None
    cost_per_1k_tokens: Decimal | None


def unit_costs(row: CostRow) -> UnitCosts:
    """Cost per busy GPU-hour (GPU cost, idle included, over the hours the GPUs
    worked: what an hour of useful GPU work cost) and token cost per 1,000 tokens."""
    with localcontext(money_context()):
        busy = row.gpu_hours - row.idle_gpu_hours
        per_hour = row.gpu_cost / busy if busy > 0 else None
        per_1k = row.token_cost * 1000 / row.tokens if row.tokens > 0 else None
    return UnitCosts(busy, per_hour, per_1k)

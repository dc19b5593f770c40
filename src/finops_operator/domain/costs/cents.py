"""Every cent once: the one rule that turns the cost model's exact figures into cents.

The cost model computes in Decimal to 1e-12 (`money.QUANTUM`); people and finance
tools read cents. Rounding each figure by itself (half-even) breaks the sums a
reader checks: a row's GPU + token + shared no longer makes its total, the teams
no longer make the cluster, a team's `--by` rows no longer make the team, and two
formats that round different sums show different cents. So every view (table,
JSON, CSV, HTML, FOCUS, CostReports) takes its cents from here, and nowhere else:

1. The cluster's total is its exact total rounded half-even: the one figure that
   is its own nearest cent.
2. Its parts (GPU, token, shared cost) are rounded by largest remainder *within
   that total* (`money.round_to`), so they add up to it. Idle cost, which is part
   of GPU cost and never added, is rounded within the GPU cost (idle + busy).
3. Each money column of the rows that make up a whole (teams, untagged and
   undistributed make the cluster; a team's `--by` groups or FOCUS rows make the
   team) is rounded by largest remainder within the whole's figure of that column.
4. A row's total is the sum of its rounded parts. It is a cent or two away from
   its exact total rounded by itself at worst, never away from its parts.

Every rounded figure is its exact figure rounded down or up (never further), and
the rule is deterministic, so the same exact input gives the same cents in every
format. docs/cost-model.md ("Every cent once") has a worked example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Final, Protocol

from finops_operator.domain.costs.showback import ClusterRow, CostReport, CostRow
from finops_operator.domain.money import ZERO, money_context, round_to

CENT: Final = Decimal("0.01")
# The parts a total is made of, and idle cost (part of GPU cost, never added).
PARTS: Final = ("gpu_cost", "token_cost", "shared_cost")
COLUMNS: Final = ("gpu_cost", "idle_cost", "token_cost", "shared_cost")


class Figures(Protocol):
    """Anything with the four exact money columns: a cost row, a group, a charge."""

    @property
    def gpu_cost(self) -> Decimal: ...
    @property
    def idle_cost(self) -> Decimal: ...
    @property
    def token_cost(self) -> Decimal: ...
    @property
    def shared_cost(self) -> Decimal: ...


@dataclass(frozen=True)
class Cents:
    """One row's money in cents; `total_cost` is the sum of the three parts."""

    gpu_cost: Decimal = ZERO
    idle_cost: Decimal = ZERO
    token_cost: Decimal = ZERO
    shared_cost: Decimal = ZERO

    @property
    def total_cost(self) -> Decimal:
        return self.gpu_cost + self.token_cost + self.shared_cost

    def as_dict(self) -> dict[str, Decimal]:
        return {name: getattr(self, name) for name in (*COLUMNS, "total_cost")}


@dataclass(frozen=True)
class ReportCents:
    """The cents of a report: per row (teams and `__untagged__`, by team name), the
    shared cost nobody received, and the cluster; the rows and `undistributed` add
    up to the cluster, column by column."""

    rows: dict[str, Cents]
    undistributed: Cents
    cluster: Cents

    def of(self, team: str) -> Cents:
        return self.rows[team]


@dataclass(frozen=True)
class _Undistributed:
    shared_cost: Decimal
    gpu_cost: Decimal = ZERO
    idle_cost: Decimal = ZERO
    token_cost: Decimal = ZERO


def half_even(amount: Decimal) -> Decimal:
    """`amount` to the cent, half-even: the rounding of a figure that is its own total."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def cluster_cents(cluster: ClusterRow) -> Cents:
    """Rules 1 and 2: the total to the nearest cent, its parts within it."""
    with localcontext(money_context()):
        total = half_even(cluster.total_cost)
        gpu, token, shared = round_to([getattr(cluster, name) for name in PARTS], total)
        idle, _busy = round_to([cluster.idle_cost, cluster.gpu_cost - cluster.idle_cost], gpu)
    return Cents(gpu, idle, token, shared)


def within(parts: Sequence[Figures], whole: Cents) -> list[Cents]:
    """Rule 3: the cents of `parts`, which together make up `whole` (already in cents),
    each column placed by largest remainder so that it adds up to `whole`'s."""
    if not parts:
        return []
    with localcontext(money_context()):
        columns = {
            name: round_to([getattr(part, name) for part in parts], getattr(whole, name))
            for name in COLUMNS
        }
    return [Cents(*(columns[name][i] for name in COLUMNS)) for i in range(len(parts))]


def report_cents(costs: CostReport) -> ReportCents:
    """The cents of every row of `costs` (rules 1 to 4)."""
    return rows_cents([*costs.teams, costs.untagged], costs.cluster)


def rows_cents(rows: Sequence[CostRow], cluster: ClusterRow) -> ReportCents:
    """The cents of `rows` (the teams and `__untagged__`) and of the cluster they make."""
    whole = cluster_cents(cluster)
    rounded = within([*rows, _Undistributed(cluster.undistributed_cost)], whole)
    return ReportCents(
        rows={row.team: cents for row, cents in zip(rows, rounded, strict=False)},
        undistributed=rounded[-1],
        cluster=whole,
    )


def less_undistributed(cluster: Cents, undistributed: Cents) -> Cents:
    """What the cluster's groups (cost centers, features, ...) add up to: the cluster
    without the shared cost nobody received."""
    return Cents(
        cluster.gpu_cost,
        cluster.idle_cost,
        cluster.token_cost,
        cluster.shared_cost - undistributed.shared_cost,
    )

"""Money in Decimal: the working precision, the quantum of divided amounts, exact splits, display.

Money is never a float. Amounts are exact sums and products of the inputs; the
only divisions (prorating the monthly platform cost, splitting the shared pool)
are carried to `QUANTUM` (1e-12 of a currency unit) and their remainders placed
by the largest-remainder method (`split`), so that shares add up to what was
split, exactly. Rounding to cents happens only in `display_money` (and hours for
people in `display_hours`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Final, TypeVar

# Internal precision of divided amounts, far below a cent.
QUANTUM: Final = Decimal("1e-12")
# Enough digits that sums and products of realistic inputs are exact.
_PRECISION: Final = 60

ZERO: Final = Decimal(0)
# The largest amount any input may hold: a price, a monthly cost, a budget. A trillion
# currency units is beyond any real figure, and far enough below the working precision
# that every sum and product of inputs stays exact and finite.
MAX_MONEY: Final = Decimal("1e12")

_K = TypeVar("_K", str, tuple[str, ...])


def money_context() -> Context:
    """The Decimal context of money arithmetic: enough digits that sums and products are exact."""
    return Context(prec=_PRECISION)


def split(
    amount: Decimal, weights: Mapping[_K, Decimal], quantum: Decimal = QUANTUM
) -> dict[_K, Decimal]:
    """`amount` split in proportion to `weights` (all >= 0, not all zero).

    Shares are carried to `quantum` (QUANTUM for money; 1 to split a count of
    tokens into whole tokens); the units left over go one each to the largest
    remainders (ties broken by key), so the shares sum to `amount` exactly.
    Whatever is left below `quantum` (when `amount` has more digits) goes to the
    largest remainder too.
    """
    total_weight = sum(weights.values(), ZERO)
    if total_weight <= 0:
        raise ValueError("cannot split by weights that are all zero")
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("weights must not be negative")
    with localcontext(money_context()):
        exact = {name: amount * weight / total_weight for name, weight in weights.items()}
        shares = {
            name: value.quantize(quantum, rounding=ROUND_DOWN) for name, value in exact.items()
        }
        left = int((amount - sum(shares.values(), ZERO)) / quantum)
        by_remainder = sorted(exact, key=lambda name: (-(exact[name] - shares[name]), name))
        for name in by_remainder[:left]:
            shares[name] += quantum
        leftover = amount - sum(shares.values(), ZERO)
        if leftover:
            shares[by_remainder[0]] += leftover
    return shares


def round_to(amounts: Sequence[Decimal], total: Decimal, places: int = 2) -> list[Decimal]:
    """`amounts` rounded to `places` decimals so that they add up to `total` (already
    rounded to `places`, and within a unit or so of their sum): each is rounded
    toward minus infinity, then units are added to the largest remainders (or taken
    from the smallest, when `total` is below the floors), one each, in turn. So a
    table's rows add up to a total printed elsewhere, to the cent."""
    unit = Decimal(1).scaleb(-places)
    if not amounts:
        return []
    with localcontext(money_context()):
        floors = [amount.quantize(unit, rounding=ROUND_FLOOR) for amount in amounts]
        left = int((total - sum(floors, ZERO)) / unit)
        order = sorted(range(len(amounts)), key=lambda i: (-(amounts[i] - floors[i]), i))
        if left < 0:
            order.reverse()
        for step in range(abs(left)):
            floors[order[step % len(order)]] += unit if left > 0 else -unit
    return floors


def display_money(amount: Decimal, places: int = 2) -> str:
    """An amount for people and files: rounded half-even to `places` decimals."""
    return str(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def display_hours(hours: Decimal, places: int = 3) -> float:
    """Hours as a JSON number, rounded half-even to `places` decimals."""
    return float(hours.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))

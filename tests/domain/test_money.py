"""Money: exact splits by largest remainder (docs/cost-model.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finops_operator.domain.money import round_to, split
from tests.domain.costs.prices import D


def test_a_split_adds_up_exactly_and_places_remainders_by_largest_remainder() -> None:
    shares = split(D(100), {"b": D(1), "a": D(1), "c": D(1)})
    assert shares == {
        "a": D("33.333333333334"),
        "b": D("33.333333333333"),
        "c": D("33.333333333333"),
    }
    assert sum(shares.values()) == D(100)
    odd = split(D("0.1234567890123456789"), {"x": D(2), "y": D(1)})
    assert sum(odd.values()) == D("0.1234567890123456789")
    with pytest.raises(ValueError, match="all zero"):
        split(D(1), {"x": D(0)})


def test_round_to_places_the_cents_so_the_parts_add_up_to_a_given_total() -> None:
    thirds = [Decimal(1) / 3] * 3
    assert round_to(thirds, D("1.00")) == [D("0.34"), D("0.33"), D("0.33")]
    assert round_to(thirds, D("0.98")) == [D("0.33"), D("0.33"), D("0.32")]
    assert sum(round_to(thirds, D("1.01"))) == D("1.01")
    assert round_to([], D(0)) == []

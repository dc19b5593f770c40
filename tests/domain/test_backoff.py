"""Exponential backoff: doubled per failure, capped, and never an overflow in a long outage."""

from __future__ import annotations

from finops_operator.domain.backoff import backoff_delay


def test_the_delay_doubles_from_the_first_and_stops_at_the_cap() -> None:
    delays = [backoff_delay(failures, 5.0, 60.0) for failures in range(1, 7)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_a_long_outage_stays_at_the_cap() -> None:
    # 2 ** 1024 is no float: an unbounded exponent raised OverflowError after ~1000 failures.
    assert backoff_delay(5000, 1.0, 30.0) == 30.0


def test_no_failure_yet_waits_the_first_delay() -> None:
    assert backoff_delay(0, 2.0, 30.0) == 2.0

"""PromQL building blocks: escaping, durations, numbers and the bracket check."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finops_operator.domain.promql import (
    Duration,
    check_expression,
    is_label_name,
    matchers,
    number,
    string_literal,
    without_replicas,
)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("search", '"search"'),
        ('a"} or vector(1) #', '"a\\"} or vector(1) #"'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines", '"two\\nlines"'),
        ("bell\x07", '"bell\\x07"'),
    ],
)
def test_a_string_literal_escapes_everything_that_could_end_it(value: str, literal: str) -> None:
    assert string_literal(value) == literal
    check_expression(f"up{{team={string_literal(value)}}}")


def test_matchers_are_empty_for_an_empty_selector_and_refuse_bad_label_names() -> None:
    assert matchers({}) == ""
    assert matchers({"team": "a", "environment": "production"}) == (
        '{team="a",environment="production"}'
    )
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        matchers({"team}": "a"})


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("15m", 900, "15m"),
        ("2h", 7200, "2h"),
        ("7d", 604800, "7d"),
        ("1w", 604800, "7d"),
        ("1h30m", 5400, "1h30m"),
        ("90m", 5400, "1h30m"),
        ("500ms", Decimal("0.5"), "500ms"),
    ],
)
def test_durations_parse_to_seconds_and_print_canonically(
    text: str, seconds: Decimal | int, canonical: str
) -> None:
    duration = Duration.parse(text)
    assert duration.seconds == seconds
    assert str(duration) == canonical


@pytest.mark.parametrize("text", ["", "15", "m", "15 minutes", "1m1h", "-5m", "1.5h"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        Duration.parse(text)


def test_durations_compare_by_length() -> None:
    assert Duration.parse("90m") > Duration.parse("1h") == Duration.of(hours=1)


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("20000"), "20000"), (Decimal("0.50"), "0.5"), (Decimal("1E+3"), "1000"), (0, "0")],
)
def test_numbers_are_written_without_exponents_or_trailing_zeros(
    value: Decimal | int, text: str
) -> None:
    assert number(value) == text


@pytest.mark.parametrize("expr", ["sum(up", "up)", "rate(up[5m)", 'up{a="b}', "sum(up])"])
def test_the_expression_check_catches_broken_brackets_and_strings(expr: str) -> None:
    with pytest.raises(ValueError):
        check_expression(expr)


def test_the_expression_check_ignores_brackets_inside_strings() -> None:
    check_expression('label_replace(up, "a", "$1", "b", "(.+)")')


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("team", True),
        ("_x9", True),
        ("gen_ai_token_type", True),
        ("9lives", False),
        ("a-b", False),
        ("a.b", False),
        ("", False),
        ("a:b", False),
        ("tëam", False),
        ("team\n", False),
    ],
)
def test_one_rule_says_what_a_label_name_is(name: str, valid: bool) -> None:
    assert is_label_name(name) is valid


def test_an_ha_pair_counts_once_through_max_without_its_replica_labels() -> None:
    assert without_replicas("up", ()) == "up"
    assert without_replicas("up", ("prometheus_replica", "replica")) == (
        "max without (prometheus_replica, replica) (up)"
    )

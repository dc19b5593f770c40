"""Kubernetes' name syntax, hashed names and currency codes, checked in one place."""

from __future__ import annotations

import pytest

from finops_operator.domain import names


@pytest.mark.parametrize(
    ("name", "label", "subdomain"),
    [
        ("team-a", True, True),
        ("a" * 63, True, True),
        ("a" * 64, False, True),
        ("a.b", False, True),
        ("a..b", False, False),
        ("-a", False, False),
        ("A", False, False),
        ("", False, False),
        (".".join(["a" * 63] * 4), False, False),  # 255 characters: over 253
    ],
)
def test_dns_label_and_subdomain(name: str, label: bool, subdomain: bool) -> None:
    assert names.is_dns_label(name) is label
    assert names.is_dns_subdomain(name) is subdomain


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("a_B.c-1", True), ("-a", False), ("a" * 63, True), ("a" * 64, False)],
)
def test_label_value(value: str, ok: bool) -> None:
    assert names.is_label_value(value) is ok


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("team", None),
        ("resilio.tech/team", None),
        ("/team", "the prefix must be a DNS subdomain"),
        ("a..b/team", "the prefix must be a DNS subdomain"),
        ("resilio.tech/", "the name must be 1-63"),
        ("x/" + "a" * 64, "the name must be 1-63"),
    ],
)
def test_label_key_problem(key: str, problem: str | None) -> None:
    found = names.label_key_problem(key)
    assert found is None if problem is None else problem in (found or "")


def test_hashed_names_fit_and_differ_by_what_they_stand_for() -> None:
    long = "x" * 100
    first = names.hashed_name(long, long, 63)
    second = names.hashed_name(long, long + "y", 63)
    assert len(first) == len(second) == 63
    assert first != second
    assert names.ends_like_hash(first) and names.ends_like_hash(second)
    assert not names.ends_like_hash("team-2026")
    # the cut never leaves a `-` or `.` before the hash
    assert names.hashed_name("ab-" + "c" * 60, "q", 12) == "ab" + names.hashed_name("", "q", 9)


def test_currency_codes() -> None:
    assert names.currency_code("EUR") == "EUR"
    for bad in ("eur", "EURO", "US", ""):
        with pytest.raises(ValueError, match="ISO 4217"):
            names.currency_code(bad)

"""The one desired-vs-stored diff every reconciler uses: contains, exact, prune, absent fields."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.domain.merge_patch import Compare, Wanted, differing, merge_patch, says

LABELS_CONTAINED = Wanted(("metadata", "labels"), Compare.CONTAINS)
LABELS_EXACT = Wanted(("metadata", "labels"), Compare.EXACT, prune=True)
SPEC_CONTAINED = Wanted(("spec",), Compare.CONTAINS)
SPEC_EXACT = Wanted(("spec",), Compare.EXACT)


@pytest.mark.parametrize(
    ("current", "desired", "contains", "exact"),
    [
        ({"a": 1, "default": True}, {"a": 1}, True, False),
        ({"a": 1}, {"a": 1, "b": 2}, False, False),
        ({"a": [{"x": 1, "added": 0}]}, {"a": [{"x": 1}]}, True, False),
        ({"a": [1, 2]}, {"a": [1]}, False, False),  # a list says what it says, no more
        ({"a": {"b": 1}}, {"a": {"b": 1}}, True, True),
        (None, {}, False, True),  # missing counts as empty only when exact
        (None, [], False, True),
        ("1", 1, False, False),
        (None, None, True, True),
    ],
)
def test_says_contains_and_exact(current: Any, desired: Any, contains: bool, exact: bool) -> None:
    assert says(current, desired, Compare.CONTAINS) is contains
    assert says(current, desired, Compare.EXACT) is exact


def test_contained_fields_leave_server_defaults_alone() -> None:
    current = {
        "metadata": {"labels": {"app": "x", "added-by-someone": "y"}},
        "spec": {"matchPolicy": "Equivalent", "rules": [1]},
    }
    desired = {"metadata": {"labels": {"app": "x"}}, "spec": {"rules": [1]}}
    assert merge_patch(current, desired, (LABELS_CONTAINED, SPEC_CONTAINED)) is None


def test_a_differing_field_is_sent_whole() -> None:
    current = {"metadata": {"labels": {"app": "x"}}, "spec": {"rules": [1], "keep": 1}}
    desired = {"metadata": {"labels": {"app": "x"}}, "spec": {"rules": [2]}}
    assert merge_patch(current, desired, (LABELS_CONTAINED, SPEC_CONTAINED)) == {
        "spec": {"rules": [2]}
    }


def test_exact_fields_prune_keys_not_wanted() -> None:
    current = {"metadata": {"labels": {"app": "x", "stray": "y"}}, "spec": {"a": 1}}
    desired = {"metadata": {"labels": {"app": "x", "new": "z"}}, "spec": {"a": 1}}
    assert merge_patch(current, desired, (LABELS_EXACT, SPEC_EXACT)) == {
        "metadata": {"labels": {"stray": None, "app": "x", "new": "z"}}
    }


def test_exact_without_prune_sends_only_what_is_wanted() -> None:
    current = {"spec": {"a": 1, "stray": 2}}
    assert merge_patch(current, {"spec": {"a": 1}}, (SPEC_EXACT,)) == {"spec": {"a": 1}}


def test_a_field_the_desired_object_lacks_is_not_kept() -> None:
    owners = Wanted(("metadata", "ownerReferences"), Compare.EXACT)
    current = {"metadata": {"ownerReferences": [{"name": "someone"}]}}
    assert merge_patch(current, {"metadata": {}}, (owners,)) is None
    assert merge_patch(current, {}, (owners,)) is None
    desired = {"metadata": {"ownerReferences": [{"name": "me"}]}}
    assert merge_patch(current, desired, (owners,)) == desired


def test_a_stored_object_without_the_field_differs() -> None:
    desired = {"metadata": {"labels": {"app": "x"}}, "spec": {"a": 1}}
    assert merge_patch({}, desired, (LABELS_CONTAINED, SPEC_EXACT)) == desired
    assert merge_patch({"metadata": None}, desired, (LABELS_EXACT,)) == {
        "metadata": {"labels": {"app": "x"}}
    }


def test_differing_names_the_fields_in_the_order_given() -> None:
    current = {"metadata": {"labels": {}}, "spec": {"a": 1}}
    desired = {"metadata": {"labels": {"app": "x"}}, "spec": {"a": 2}}
    assert differing(current, desired, (SPEC_EXACT, LABELS_CONTAINED)) == [
        SPEC_EXACT,
        LABELS_CONTAINED,
    ]

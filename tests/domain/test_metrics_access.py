"""The reviews behind a secure `/metrics`, as data: what is asked and how answers read."""

from __future__ import annotations

import pytest

from finops_operator.domain.metrics_access import (
    User,
    Verdict,
    VerdictCache,
    access_allowed,
    access_review,
    bearer_token,
    reviewed_user,
    token_review,
)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer  abc ", "abc"),
        (None, None),
        ("", None),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer", None),
        ("Bearer a b", None),
    ],
)
def test_the_bearer_token_of_a_header(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_a_token_review_names_the_user_only_when_authenticated() -> None:
    review = token_review("t")
    assert review["kind"] == "TokenReview" and review["spec"] == {"token": "t"}
    answered = {
        **review,
        "status": {
            "authenticated": True,
            "user": {
                "username": "system:serviceaccount:monitoring:prometheus",
                "uid": "42",
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
            },
        },
    }
    user = reviewed_user(answered)
    assert user == User(
        "system:serviceaccount:monitoring:prometheus",
        "42",
        ("system:serviceaccounts", "system:authenticated"),
        (("authentication.kubernetes.io/pod-name", ("prometheus-0",)),),
    )
    assert reviewed_user({"status": {"authenticated": False}}) is None
    assert reviewed_user({}) is None
    assert reviewed_user({"status": {"authenticated": True, "user": {}}}) is None


def test_the_access_review_asks_for_get_on_the_metrics_url_as_that_user() -> None:
    user = User("u", "7", ("g",), (("k", ("v",)),))
    review = access_review(user)
    assert review["kind"] == "SubjectAccessReview"
    assert review["spec"] == {
        "user": "u",
        "uid": "7",
        "groups": ["g"],
        "extra": {"k": ["v"]},
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
    }
    assert access_allowed({"status": {"allowed": True}})
    assert not access_allowed({"status": {"allowed": False}})
    assert not access_allowed({"status": {"allowed": True, "denied": True}})
    assert not access_allowed({})


def test_the_cache_holds_each_verdict_for_its_time_and_drops_the_oldest() -> None:
    cache = VerdictCache(entries=2, allowed_seconds=60, refused_seconds=10)
    cache.put("a", Verdict.ALLOWED, 0)
    cache.put("b", Verdict.FORBIDDEN, 0)
    assert cache.get("a", 59) is Verdict.ALLOWED
    assert cache.get("b", 10) is None  # expired, and gone
    assert len(cache) == 1
    cache.put("c", Verdict.UNAUTHENTICATED, 0)
    cache.put("d", Verdict.ALLOWED, 0)  # "a" is the oldest: dropped
    assert cache.get("a", 1) is None
    assert cache.get("c", 1) is Verdict.UNAUTHENTICATED
    with pytest.raises(ValueError):
        VerdictCache(entries=0)

"""Who may read `/metrics`: the API server's own answer, asked as kube-rbac-proxy asks it.

`/metrics` names every GPU pod, team, feature and cost center of the cluster. With
`metrics.secure`, a scrape must carry a bearer token; the API server says whose it
is (a TokenReview) and whether that user may `get` the non-resource URL `/metrics`
(a SubjectAccessReview), the check kube-rbac-proxy and controller-runtime's
metrics filter make. This module holds the requests and the reading of the
answers, as plain data, and the bounded cache of verdicts that keeps scrapes off
the API server (`adapters.metrics_auth` sends the reviews and answers HTTP).

Pure: the clock comes in as a number.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

METRICS_PATH: Final = "/metrics"
TOKEN_REVIEW_PATH: Final = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEW_PATH: Final = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
# How long a verdict holds: an allowed scraper is asked again every minute (a
# revoked binding takes effect within it), a refused one every ten seconds.
ALLOWED_SECONDS: Final = 60.0
REFUSED_SECONDS: Final = 10.0
# Distinct tokens remembered; the oldest goes first (a flood of made-up tokens
# costs reviews, never memory).
CACHE_ENTRIES: Final = 1024


class Verdict(StrEnum):
    ALLOWED = "allowed"
    UNAUTHENTICATED = "unauthenticated"  # no token, or one the API server does not accept
    FORBIDDEN = "forbidden"  # a known user without `get` on /metrics


@dataclass(frozen=True)
class User:
    """The user a TokenReview found, as a SubjectAccessReview names it."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def token_review(token: str) -> dict[str, Any]:
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }


def reviewed_user(review: Mapping[str, Any]) -> User | None:
    """The user of an answered TokenReview, or None when the token is not accepted."""
    status = review.get("status") or {}
    if status.get("authenticated") is not True:
        return None
    user = status.get("user") or {}
    name = user.get("username")
    if not isinstance(name, str) or not name:
        return None
    extra = user.get("extra") or {}
    return User(
        name=name,
        uid=str(user.get("uid") or ""),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        extra=tuple(
            sorted((str(k), tuple(str(v) for v in values or ())) for k, values in extra.items())
        ),
    )


def access_review(user: User, path: str = METRICS_PATH, verb: str = "get") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "user": user.name,
        "groups": list(user.groups),
        "nonResourceAttributes": {"path": path, "verb": verb},
    }
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {key: list(values) for key, values in user.extra}
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    }


def access_allowed(review: Mapping[str, Any]) -> bool:
    status = review.get("status") or {}
    return status.get("allowed") is True and status.get("denied") is not True


def token_key(token: str) -> str:
    """What the cache keeps of a token: its SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class VerdictCache:
    """Verdicts by token, each for its time to live, at most `entries` of them."""

    def __init__(
        self,
        entries: int = CACHE_ENTRIES,
        allowed_seconds: float = ALLOWED_SECONDS,
        refused_seconds: float = REFUSED_SECONDS,
    ) -> None:
        if entries < 1:
            raise ValueError("the cache needs room for one entry")
        self.entries = entries
        self.allowed_seconds = allowed_seconds
        self.refused_seconds = refused_seconds
        self._verdicts: OrderedDict[str, tuple[Verdict, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._verdicts)

    def get(self, token: str, now: float) -> Verdict | None:
        key = token_key(token)
        found = self._verdicts.get(key)
        if found is None:
            return None
        verdict, until = found
        if now >= until:
            del self._verdicts[key]
            return None
        self._verdicts.move_to_end(key)
        return verdict

    def put(self, token: str, verdict: Verdict, now: float) -> None:
        ttl = self.allowed_seconds if verdict is Verdict.ALLOWED else self.refused_seconds
        key = token_key(token)
        self._verdicts[key] = (verdict, now + ttl)
        self._verdicts.move_to_end(key)
        while len(self._verdicts) > self.entries:
            self._verdicts.popitem(last=False)

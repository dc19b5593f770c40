"""`/metrics` behind the kube-rbac-proxy check: the answers a scraper gets.

The API server is `FakeKube`, whose TokenReview and SubjectAccessReview paths
answer by a table of tokens and users; tests/e2e/test_metrics_auth.py makes the
same checks against a real API server.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from finops_operator.adapters.metrics import OperatorMetrics
from finops_operator.adapters.metrics_auth import MetricsGuard
from finops_operator.adapters.webhook_server import metrics_app
from finops_operator.domain.metrics_access import (
    ACCESS_REVIEW_PATH,
    TOKEN_REVIEW_PATH,
    VerdictCache,
)
from tests.support.fakes import FakeKube

USERS = {
    "scraper-token": "system:serviceaccount:monitoring:prometheus",
    "nobody-token": "system:serviceaccount:team-a:dev",
}
MAY_GET_METRICS = {"system:serviceaccount:monitoring:prometheus"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def api_server() -> FakeKube:
    kube = FakeKube()

    def token_review(body: dict[str, Any]) -> dict[str, Any]:
        user = USERS.get(body["spec"]["token"])
        if user is None:
            return {**body, "status": {"authenticated": False, "error": "invalid token"}}
        found = {"username": user, "uid": "u-1", "groups": ["system:serviceaccounts"]}
        return {**body, "status": {"authenticated": True, "user": found}}

    def access_review(body: dict[str, Any]) -> dict[str, Any]:
        spec = body["spec"]
        allowed = spec["user"] in MAY_GET_METRICS and spec["nonResourceAttributes"] == {
            "path": "/metrics",
            "verb": "get",
        }
        return {**body, "status": {"allowed": allowed}}

    kube.by_path[TOKEN_REVIEW_PATH] = token_review
    kube.by_path[ACCESS_REVIEW_PATH] = access_review
    return kube


def reviews(kube: FakeKube) -> list[str]:
    return [c.resource for c in kube.calls]


async def scrape(guard: MetricsGuard, path: str = "/metrics", token: str | None = None) -> Any:
    metrics = OperatorMetrics()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with TestClient(TestServer(metrics_app(metrics, guard=guard))) as client:
        resp = await client.get(path, headers=headers)
        return resp.status, await resp.text(), dict(resp.headers)


async def test_without_a_token_the_answer_is_401_and_the_api_is_not_asked() -> None:
    kube = api_server()
    status, text, headers = await scrape(MetricsGuard(kube))
    assert status == 401, text
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert "finops_" not in text
    assert kube.calls == []


async def test_a_token_the_api_server_does_not_accept_gets_401() -> None:
    kube = api_server()
    status, text, _ = await scrape(MetricsGuard(kube), token="made-up")
    assert status == 401, text
    assert reviews(kube) == [TOKEN_REVIEW_PATH]  # no SubjectAccessReview for nobody


async def test_a_user_without_get_on_metrics_gets_403() -> None:
    kube = api_server()
    status, text, _ = await scrape(MetricsGuard(kube), token="nobody-token")
    assert status == 403, text
    assert "finops_" not in text
    assert reviews(kube) == [TOKEN_REVIEW_PATH, ACCESS_REVIEW_PATH]
    [access] = [c.body for c in kube.calls if c.resource == ACCESS_REVIEW_PATH]
    assert access["spec"]["user"] == USERS["nobody-token"]
    assert access["spec"]["groups"] == ["system:serviceaccounts"]


async def test_an_allowed_user_gets_the_metrics() -> None:
    kube = api_server()
    status, text, _ = await scrape(MetricsGuard(kube), token="scraper-token")
    assert status == 200, text
    assert "finops_leader" in text


async def test_an_api_outage_is_503_not_500_and_is_not_cached() -> None:
    kube = api_server()
    guard = MetricsGuard(kube)
    kube.outage = True
    status, text, headers = await scrape(guard, token="scraper-token")
    assert status == 503, text
    assert headers["Retry-After"] == "5"
    assert "finops_" not in text
    # The SubjectAccessReview failing alone is an outage too.
    kube.outage = False
    kube.fail_next(500, on="raw POST", times=1)
    kube.fail_next(0, on="raw POST", times=1)
    assert (await scrape(guard, token="scraper-token"))[0] == 503
    assert (await scrape(guard, token="scraper-token"))[0] == 503
    # Back: the next scrape is reviewed again and served.
    assert (await scrape(guard, token="scraper-token"))[0] == 200


async def test_probes_need_no_token() -> None:
    kube = api_server()
    guard = MetricsGuard(kube)
    for path in ("/healthz", "/readyz"):
        status, _, _ = await scrape(guard, path)
        assert status == 200, path
    assert kube.calls == []


async def test_verdicts_are_cached_for_their_time_and_then_asked_again() -> None:
    kube = api_server()
    clock = Clock()
    guard = MetricsGuard(
        kube, cache=VerdictCache(allowed_seconds=60, refused_seconds=10), clock=clock
    )
    for _ in range(5):
        assert (await scrape(guard, token="scraper-token"))[0] == 200
        assert (await scrape(guard, token="nobody-token"))[0] == 403
    assert len(kube.calls) == 4  # one TokenReview and one SubjectAccessReview each
    clock.now += 11  # the refusal expired, the grant holds
    assert (await scrape(guard, token="scraper-token"))[0] == 200
    assert (await scrape(guard, token="nobody-token"))[0] == 403
    assert len(kube.calls) == 6
    clock.now += 50
    assert (await scrape(guard, token="scraper-token"))[0] == 200
    assert len(kube.calls) == 8


async def test_the_cache_is_bounded_and_keeps_no_token() -> None:
    kube = api_server()
    cache = VerdictCache(entries=3)
    guard = MetricsGuard(kube, cache=cache, clock=Clock())
    for i in range(50):
        assert (await scrape(guard, token=f"made-up-{i}"))[0] == 401
    assert len(cache) == 3
    assert "made-up-49" not in repr(vars(cache))
    # The newest stay: asking again for one of them sends no review.
    before = len(kube.calls)
    assert (await scrape(guard, token="made-up-49"))[0] == 401
    assert len(kube.calls) == before
    assert (await scrape(guard, token="made-up-0"))[0] == 401
    assert len(kube.calls) == before + 1

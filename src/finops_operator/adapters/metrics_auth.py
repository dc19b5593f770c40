"""`/metrics` only for those the API server allows: the kube-rbac-proxy check in-process.

With `metrics.secure`, the metrics server speaks HTTPS (the webhook's serving
certificate) and this guard stands before `/metrics`: the bearer token of the
scrape goes to a TokenReview, the user it names to a SubjectAccessReview for
`get` on the non-resource URL `/metrics`, as kube-rbac-proxy and
controller-runtime's `WithAuthenticationAndAuthorization` filter do. A scraper
needs a ClusterRole with `nonResourceURLs: ["/metrics"]`, `verbs: ["get"]`
(kube-prometheus-stack's Prometheus has one).

Answers: 401 without a token or with one the API server does not accept, 403 for
a user without the grant, 503 when the API server cannot answer (never 500, and
never the metrics). Verdicts are cached by the token's hash
(`domain.metrics_access.VerdictCache`: bounded, a minute when allowed, ten
seconds when refused), so a scrape every 30 s costs two reviews a minute at most;
an outage is not cached. `/healthz` and `/readyz` stay open: the kubelet's probes
carry no token, and they tell nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from finops_operator.domain.metrics_access import (
    ACCESS_REVIEW_PATH,
    METRICS_PATH,
    TOKEN_REVIEW_PATH,
    Verdict,
    VerdictCache,
    access_allowed,
    access_review,
    bearer_token,
    reviewed_user,
    token_review,
)
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MetricsGuard:
    """Decides each scrape of `/metrics` by the API server's reviews, cached."""

    def __init__(
        self,
        kube: KubePort,
        registry: CollectorRegistry | None = None,
        cache: VerdictCache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.cache = cache if cache is not None else VerdictCache()
        self.clock = clock
        self.reviews = Counter(
            "finops_metrics_access_reviews",
            "TokenReviews and SubjectAccessReviews sent for scrapes of /metrics, by kind "
            "and result (allowed, unauthenticated, forbidden, error).",
            ("review", "result"),
            registry=registry,
        )

    async def verdict(self, authorization: str | None) -> Verdict:
        """The verdict on a scrape's Authorization header; KubeError when the API fails."""
        token = bearer_token(authorization)
        if token is None:
            return Verdict.UNAUTHENTICATED
        cached = self.cache.get(token, self.clock())
        if cached is not None:
            return cached
        verdict = await self._review(token)
        self.cache.put(token, verdict, self.clock())
        return verdict

    async def _review(self, token: str) -> Verdict:
        try:
            answer = await self.kube.raw("POST", TOKEN_REVIEW_PATH, token_review(token))
        except KubeError:
            self.reviews.labels("token", "error").inc()
            raise
        user = reviewed_user(answer)
        if user is None:
            self.reviews.labels("token", Verdict.UNAUTHENTICATED).inc()
            return Verdict.UNAUTHENTICATED
        self.reviews.labels("token", Verdict.ALLOWED).inc()
        try:
            answer = await self.kube.raw("POST", ACCESS_REVIEW_PATH, access_review(user))
        except KubeError:
            self.reviews.labels("access", "error").inc()
            raise
        verdict = Verdict.ALLOWED if access_allowed(answer) else Verdict.FORBIDDEN
        self.reviews.labels("access", verdict).inc()
        if verdict is Verdict.FORBIDDEN:
            logger.info("Refused a scrape of /metrics by %s: no get on /metrics", user.name)
        return verdict

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != METRICS_PATH:
            return await handler(request)
        try:
            verdict = await self.verdict(request.headers.get("Authorization"))
        except KubeError as err:
            logger.warning("Cannot check a scrape of /metrics: %s", err)
            return web.Response(
                status=503,
                text="the API server cannot review the token now; try again\n",
                headers={"Retry-After": "5"},
            )
        if verdict is Verdict.UNAUTHENTICATED:
            return web.Response(
                status=401,
                text="a bearer token the API server accepts is needed for /metrics\n",
                headers={"WWW-Authenticate": 'Bearer realm="finops-operator"'},
            )
        if verdict is Verdict.FORBIDDEN:
            return web.Response(
                status=403, text='forbidden: this user may not "get" the URL /metrics\n'
            )
        return await handler(request)

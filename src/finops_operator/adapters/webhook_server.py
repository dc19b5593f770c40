"""The HTTPS server the API server calls for admission, and the metrics server.

Moves bytes only: it parses the AdmissionReview, asks `admission` for the
decision, answers, and counts. A body that is not an AdmissionReview gets a
clear answer and never takes the server down.

Limits (docs/admission.md, "Limits"): a body over `MAX_BODY_BYTES` gets 413,
JSON nested deeper than `MAX_NESTING` gets 400, and any exception while judging
is logged with its traceback and answered as a 400 refusal naming it. The
webhook never answers 5xx but for one case: until the namespace index is loaded
it cannot know a namespace's mode (an enforce namespace would look like the
cluster default), so it answers 503 naming why, and the webhook's failurePolicy
decides: `Fail` refuses, as an outage would (docs/admission.md, "Fail closed at
start"). It never answers `allowed: true` to a request it could not judge.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from finops_operator.adapters.metrics import GZIP_LEVEL, InventoryExposition, OperatorMetrics
from finops_operator.adapters.metrics_auth import MetricsGuard
from finops_operator.domain import conventions
from finops_operator.domain.policies import admission
from finops_operator.domain.policies.label_check import LabelPolicy
from finops_operator.domain.workloads import WorkloadKind
from finops_operator.errors import MalformedReviewError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's own request size limit
# Workload objects nest about 12 levels deep; the API server itself allows far more.
MAX_NESTING = 100
# Why the process cannot serve yet, or None once it can (`/readyz`).
NotReady = Callable[[], str | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Decide = Callable[[admission.Request, LabelPolicy, admission.NamespaceLabels], admission.Decision]


class AdmissionApp:
    """The aiohttp application answering /validate and /mutate."""

    def __init__(
        self,
        policy: LabelPolicy,
        namespaces: admission.NamespaceLabels,
        metrics: OperatorMetrics,
        not_ready: NotReady = lambda: None,
    ) -> None:
        self.policy = policy
        self.namespaces = namespaces
        self.metrics = metrics
        # Why a request cannot be judged yet (the namespace index is loading), or None.
        self.not_ready = not_ready
        self.deciders: dict[str, Decide] = {
            "validate": admission.validate,
            "mutate": admission.mutate,
        }

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(conventions.VALIDATE_PATH, self._handler("validate"))
        app.router.add_post(conventions.MUTATE_PATH, self._handler("mutate"))
        app.router.add_get("/healthz", _healthz)
        return app

    def _handler(self, webhook: str) -> Callable[[web.Request], Any]:
        duration = self.metrics.admission_duration.labels(webhook)
        decide = self.deciders[webhook]

        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            if (reason := self.not_ready()) is not None:
                self.metrics.admission_requests.labels(
                    webhook, "", admission.Outcome.UNAVAILABLE
                ).inc()
                return _not_ready_response(reason)
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                problem = MalformedReviewError(
                    f"the body is larger than {MAX_BODY_BYTES} bytes, the API server's limit"
                )
                answer = admission.malformed_review(problem)
                answer["response"]["status"]["code"] = 413
                self.metrics.admission_requests.labels(webhook, "", "malformed").inc()
                return _json_response(answer, 413)
            answer, kind, outcome = self.answer(raw, decide)
            duration.observe(time.perf_counter() - started)
            self.metrics.admission_requests.labels(webhook, kind, outcome).inc()
            malformed = outcome is admission.Outcome.MALFORMED
            return _json_response(
                answer, 400 if malformed and not answer["response"]["uid"] else 200
            )

        return handle

    def answer(self, raw: bytes, decide: Decide) -> tuple[dict[str, Any], str, admission.Outcome]:
        """The response review, the workload kind and the outcome, for one request body.

        Never raises: an exception while judging is logged with its traceback and
        answered as a malformed request naming it.
        """
        try:
            body = json.loads(raw)
        except RecursionError:
            return _malformed(MalformedReviewError(_too_deep()))
        except (ValueError, UnicodeDecodeError) as err:
            return _malformed(MalformedReviewError(f"the body is not JSON ({err})"))
        try:
            request = admission.parse_review(body)
        except MalformedReviewError as err:
            logger.warning("Refused a malformed AdmissionReview: %s", err)
            return _malformed(err)
        if _nested_deeper_than(body, MAX_NESTING):
            return _malformed(MalformedReviewError(_too_deep(), request.uid))
        try:
            return self._decide(request, decide)
        except Exception as err:  # the last resort: a 400 naming it, never a 500
            logger.exception("Cannot judge %s %s", request.operation, request.ref)
            problem = MalformedReviewError(
                f"cannot judge it ({type(err).__name__}: {_clip(str(err))})", request.uid
            )
            kind = request.kind if WorkloadKind.of(request.kind) is not None else "other"
            return admission.malformed_review(problem), kind, admission.Outcome.MALFORMED

    def _decide(
        self, request: admission.Request, decide: Decide
    ) -> tuple[dict[str, Any], str, admission.Outcome]:
        decision = decide(request, self.policy, self.namespaces)
        if decision.outcome is admission.Outcome.DENIED:
            logger.info("Denied %s %s: %s", request.operation, request.ref, decision.message)
        kind = request.kind if WorkloadKind.of(request.kind) is not None else "other"
        return admission.response_review(request.uid, decision), kind, decision.outcome


def _malformed(err: MalformedReviewError) -> tuple[dict[str, Any], str, admission.Outcome]:
    return admission.malformed_review(err), "", admission.Outcome.MALFORMED


def _json_response(answer: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=json.dumps(answer), status=status, content_type="application/json")


def _not_ready_response(reason: str) -> web.Response:
    """503 with a Status the API server quotes in its refusal (failurePolicy Fail)."""
    status = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": 503,
        "reason": "ServiceUnavailable",
        "message": f"finops-operator is starting and cannot judge this request yet: {reason}",
    }
    return web.Response(
        body=json.dumps(status),
        status=503,
        content_type="application/json",
        headers={"Retry-After": "1"},
    )


def _too_deep() -> str:
    return f"the JSON is nested deeper than {MAX_NESTING} levels"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON `value` has containers nested more than `limit` deep (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _always_ready() -> str | None:
    return None


def metrics_app(
    metrics: OperatorMetrics,
    not_ready: NotReady = _always_ready,
    inventory: InventoryExposition | None = None,
    guard: MetricsGuard | None = None,
) -> web.Application:
    """`/metrics` in the Prometheus text format, `/healthz` (liveness) and `/readyz`.

    `/readyz` answers 503 naming the reason while `not_ready()` gives one, 200 after.
    A scrape is rendered in a thread of its own, off the event loop that answers
    admission: the registry's few series at each scrape, the inventory's (one per
    GPU pod) from `InventoryExposition`'s copy, rebuilt only when it changed.
    With `Accept-Encoding: gzip` the answer is two gzip members, the registry's
    then the inventory's cached one (RFC 1952 allows several; Prometheus reads
    them as one stream). With a `guard` (`metrics.secure`), each scrape of `/metrics`
    is first authenticated and authorized by the API server (`adapters.metrics_auth`).
    """
    scraping = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")

    def render(gzipped: bool) -> tuple[bytes, bool]:
        own = generate_latest(metrics.registry)
        if inventory is None:
            return (gzip.compress(own, compresslevel=GZIP_LEVEL) if gzipped else own), gzipped
        text, packed = inventory.render()
        if gzipped:
            return gzip.compress(own, compresslevel=GZIP_LEVEL, mtime=0) + packed, True
        return own + text, False

    async def serve_metrics(request: web.Request) -> web.Response:
        wants_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        loop = asyncio.get_running_loop()
        payload, gzipped = await loop.run_in_executor(scraping, render, wants_gzip)
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=payload, headers=headers)

    async def readyz(_: web.Request) -> web.Response:
        reason = not_ready()
        if reason is None:
            return web.Response(text="ok\n")
        return web.Response(text=f"not ready: {reason}\n", status=503)

    async def stop_scraping(_: web.Application) -> None:
        scraping.shutdown(wait=False, cancel_futures=True)

    app = web.Application(middlewares=[guard.middleware] if guard is not None else [])
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", readyz)
    app.on_cleanup.append(stop_scraping)
    return app


class Draining:
    """Whether a server is draining: once it is, every response closes its connection.

    The API server pools HTTP/1.1 connections to a webhook under the Service's host
    name and resolves the endpoint only when it dials, so it keeps writing reviews on
    the connections it holds to a replica that is stopping. Closing those connections
    at once fails the review written in that moment with EOF (a POST is not retried).
    While draining, the server keeps answering, each answer with `Connection: close`,
    so each pooled connection is closed by the server right after an answer the
    client has read, and the client dials again (a replica still serving).
    """

    def __init__(self) -> None:
        self.draining = False

    def begin(self) -> None:
        self.draining = True

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Before the response is prepared: its Connection header is written then.
        try:
            response = await handler(request)
        except web.HTTPException as answer:  # a 404, a 405: a response raised
            if self.draining:
                answer.force_close()
            raise
        if self.draining:
            response.force_close()
        return response


DRAINING = web.AppKey("draining", Draining)


async def start_site(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Serve `app` until `stop_site`; it answers with `Connection: close` once draining."""
    app[DRAINING] = draining = Draining()
    app.middlewares.insert(0, draining.middleware)  # the outermost: every answer passes it
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    return runner


async def stop_site(runner: web.AppRunner, drain_seconds: float) -> None:
    """Drain for `drain_seconds` (answering, each answer closing its connection), then
    close the listener and the connections left, all idle but for answers in progress."""
    if drain_seconds > 0:
        runner.app[DRAINING].begin()
        await asyncio.sleep(drain_seconds)
    await runner.cleanup()


class Servers:
    """The process's servers (admission, metrics), drained together then closed by `stop`.

    The operator has kopf call `stop` as a cleanup handler, when it stops: after that,
    kopf cancels every task started while it ran, each connection's among them, which
    leaves the connection open with nobody to answer (a review written on it hangs
    until the API server's timeout) until the server is closed. Stopped before that,
    the connections end cleanly.
    """

    def __init__(self, drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds
        self.runners: list[web.AppRunner] = []

    async def start(
        self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.runners.append(await start_site(app, host, port, ssl_context))

    async def stop(self, **_: Any) -> None:
        """Drain and close every server; again, a no-op (`**_`: kopf's arguments)."""
        runners, self.runners = self.runners, []
        await asyncio.gather(*(stop_site(runner, self.drain_seconds) for runner in runners))

"""The Prometheus adapter honours a path prefix, a bearer token, extra headers and a CA,
and turns every answer it cannot use into a PrometheusError naming the URL and the cause.

The bad answers come from `tests.support.scripted_prometheus` (no Prometheus needed).
A small HTTPS reverse proxy (aiohttp, on 127.0.0.1, a self-signed certificate from
finops_operator.adapters.certificates) stands in for Mimir or Thanos behind a gateway: it
serves Prometheus' API under `/prometheus`, and refuses requests without the
bearer token or the `X-Scope-OrgID` header.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from finops_devtools.simulator.generation import ScenarioParams, generate_scenario
from finops_devtools.simulator.openmetrics import ExportOptions
from finops_operator.adapters.certificates import self_signed
from finops_operator.adapters.prometheus_api import PrometheusClient
from finops_operator.controllers.usage_reader import report_period
from finops_operator.domain.config import PrometheusConfig
from finops_operator.domain.costs.period import Period
from finops_operator.errors import PrometheusError
from tests.support.prometheus_server import (
    PrometheusServer,
    backfilled_prometheus,
    free_port,
    recent_days,
)
from tests.support.scripted_prometheus import (
    NAN,
    POS_INF,
    Answer,
    ScriptedPrometheus,
    error,
    healthy,
    html,
    success,
)
from tests.support.tools import require_tool

TOKEN = "s3cret-token"
TENANT = "team-finops"
PREFIX = "/prometheus"
START, END = recent_days(1, ago=3)


class GatewayProxy:
    """HTTPS on 127.0.0.1: `/prometheus/<path>` -> `<upstream>/<path>`; token and tenant needed."""

    def __init__(self, upstream: str, workdir: Path) -> None:
        self.upstream = upstream
        self.port = free_port()
        cert, key = self_signed(("127.0.0.1", "localhost"))
        self.cert_path = workdir / "proxy.crt"
        self.key_path = workdir / "proxy.key"
        self.cert_path.write_bytes(cert)
        self.key_path.write_bytes(key)
        self.token = TOKEN
        self.seen: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{PREFIX}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            {"path": request.path, "headers": dict(request.headers), "method": request.method}
        )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="unauthorized: bad or missing bearer token")
        if request.headers.get("X-Scope-OrgID") != TENANT:
            return web.Response(status=401, text="no org id")
        tail = request.match_info["tail"]
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                f"{self.upstream}/{tail}",
                params=request.query,
                data=body,
                headers={k: v for k, v in headers.items() if v},
            ) as upstream,
        ):
            payload = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=payload,
                content_type=upstream.content_type,
            )

    async def _start(self) -> None:
        import ssl

        app = web.Application()
        app.router.add_route("*", PREFIX + "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start()

    def start(self) -> GatewayProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_tool("prometheus", "promtool")
    scenario = generate_scenario(
        ScenarioParams(start=START - timedelta(hours=2), end=END + timedelta(hours=2), teams=3)
    )
    options = ExportOptions(scrape_interval=300, operator_replicas=2)
    with backfilled_prometheus(tmp_path_factory.mktemp("prom"), scenario, options) as server:
        server.scenario = scenario  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def proxy(prometheus: PrometheusServer, tmp_path: Path) -> Iterator[GatewayProxy]:
    gateway = GatewayProxy(prometheus.url, tmp_path).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def gateway_config(proxy: GatewayProxy, tmp_path: Path, **changes: Any) -> PrometheusConfig:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    settings: dict[str, Any] = {
        "url": proxy.url,
        "headers": {"X-Scope-OrgID": TENANT},
        "bearerTokenFile": str(token_file),
        "caFile": str(proxy.cert_path),
    }
    settings.update(changes)
    return PrometheusConfig.model_validate(settings)


def test_queries_go_under_the_path_prefix_with_the_token_and_the_tenant_header(
    proxy: GatewayProxy, tmp_path: Path
) -> None:
    client = PrometheusClient(gateway_config(proxy, tmp_path))
    result = client.evaluate("vector(42)", START)
    assert float(result[0]["value"][1]) == 42
    (request,) = proxy.seen
    assert request["path"] == f"{PREFIX}/api/v1/query"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["X-Scope-OrgID"] == TENANT
    ranged = client.evaluate_range("vector(1)", START, START + timedelta(hours=1), 600)
    assert len(ranged[0]["values"]) == 7
    assert proxy.seen[-1]["path"] == f"{PREFIX}/api/v1/query_range"


def test_a_whole_report_reads_through_the_gateway(
    proxy: GatewayProxy, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    client = PrometheusClient(gateway_config(proxy, tmp_path))
    pricing = prometheus.scenario.pricing  # type: ignore[attr-defined]
    through_gateway = report_period(client, pricing, Period(START, END))
    direct = report_period(
        PrometheusClient(PrometheusConfig(url=prometheus.url)), pricing, Period(START, END)
    )
    assert through_gateway.costs == direct.costs
    assert len(proxy.seen) == through_gateway.queries == 5


def test_the_command_line_reads_the_gateway_settings_from_the_config(
    proxy: GatewayProxy, tmp_path: Path
) -> None:
    settings = gateway_config(proxy, tmp_path).model_dump(by_alias=True)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"prometheus": settings}))
    result = subprocess.run(
        [sys.executable, "-m", "finops_operator.cli", "report", "--config", str(config),
         "--start", START.isoformat(), "--end", END.isoformat(), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cluster"]["gpuHours"] > 0


def test_a_rotated_token_is_read_again_at_the_next_query(
    proxy: GatewayProxy, tmp_path: Path
) -> None:
    config = gateway_config(proxy, tmp_path)
    client = PrometheusClient(config)
    client.evaluate("vector(1)", START)
    proxy.token = "rotated"
    assert config.bearer_token_file is not None
    Path(config.bearer_token_file).write_text("rotated")
    client.evaluate("vector(1)", START)
    assert proxy.seen[-1]["headers"]["Authorization"] == "Bearer rotated"


def test_a_wrong_token_is_refused_with_the_url_and_the_status(
    proxy: GatewayProxy, tmp_path: Path
) -> None:
    config = gateway_config(proxy, tmp_path)
    assert config.bearer_token_file is not None
    Path(config.bearer_token_file).write_text("wrong")
    with pytest.raises(PrometheusError) as caught:
        PrometheusClient(config).evaluate("vector(1)", START)
    assert proxy.url in str(caught.value) and "HTTP 401" in str(caught.value)
    assert "bearer token" in str(caught.value)


def test_a_missing_tenant_header_is_refused(proxy: GatewayProxy, tmp_path: Path) -> None:
    with pytest.raises(PrometheusError, match="no org id"):
        PrometheusClient(gateway_config(proxy, tmp_path, headers={})).evaluate("vector(1)", START)


def test_a_server_certificate_not_signed_by_the_ca_file_fails_as_tls(
    proxy: GatewayProxy, tmp_path: Path
) -> None:
    other, _ = self_signed(("127.0.0.1",))
    wrong_ca = tmp_path / "other-ca.crt"
    wrong_ca.write_bytes(other)
    client = PrometheusClient(gateway_config(proxy, tmp_path, caFile=str(wrong_ca)))
    with pytest.raises(PrometheusError, match=r"TLS to .* failed .*check prometheus.caFile"):
        client.evaluate("vector(1)", START)
    assert proxy.seen == []


def test_an_unreadable_token_file_is_named(proxy: GatewayProxy, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "token"
    client = PrometheusClient(gateway_config(proxy, tmp_path, bearerTokenFile=str(missing)))
    with pytest.raises(PrometheusError, match=r"cannot read prometheus\.bearerTokenFile"):
        client.evaluate("vector(1)", START)


def test_a_query_prometheus_rejects_names_the_reason(prometheus: PrometheusServer) -> None:
    client = PrometheusClient(PrometheusConfig(url=prometheus.url))
    with pytest.raises(PrometheusError) as caught:
        client.evaluate("sum by (team) (", START)
    message = str(caught.value)
    assert prometheus.url in message and "HTTP 400" in message and "parse error" in message


def test_each_query_is_logged_with_its_time_and_prometheus_own_statistics(
    prometheus: PrometheusServer,
) -> None:
    client = PrometheusClient(PrometheusConfig(url=prometheus.url))
    client.request_stats = True
    client.evaluate("count(finops_node_gpu_capacity)", START + timedelta(hours=1))
    (record,) = client.log
    assert record.kind == "instant" and record.seconds > 0
    assert "evalTotalTime" in record.stats["timings"]
    assert record.stats["samples"]["totalQueryableSamples"] > 0


def test_a_client_that_queries_for_ever_keeps_only_its_last_queries(
    prometheus: PrometheusServer,
) -> None:
    client = PrometheusClient(PrometheusConfig(url=prometheus.url), keep_log=2)
    for hours in (1, 2, 3):
        client.evaluate(f"vector({hours})", START + timedelta(hours=hours))
    assert [record.expr for record in client.log] == ["vector(2)", "vector(3)"]
    assert client.queries == 3


# --- answers that cannot be used ------------------------------------------------------

BAD_ANSWERS = {
    "data null": (Answer(body={"status": "success", "data": None}), "data is null"),
    "data missing": (Answer(body={"status": "success"}), "data is null"),
    "result not a list": (success("vector", {"a": 1}), 'result is {"a": 1}, not a list'),
    "result null": (success("vector", None), "result is null"),
    "wrong resultType": (success("string", [0, "x"]), 'resultType is "string"'),
    "a series that is not an object": (success("vector", ["x"]), "series 0 is not an object"),
    "a sample that is not a pair": (
        success("vector", [{"metric": {}, "value": ["1"]}]),
        "not a [time, value] pair",
    ),
    "a sample that is not a number": (
        success("vector", [{"metric": {}, "value": [1, "lots"]}]),
        "is not a number",
    ),
    "labels that are not strings": (
        success("vector", [{"metric": {"team": 1}, "value": [1, "1"]}]),
        "labels that are not strings",
    ),
    "no samples": (success("vector", [{"metric": {}}]), "has no 'value'"),
    "native histograms": (
        success("vector", [{"metric": {}, "histogram": [1, {"count": "1"}]}]),
        "native histograms",
    ),
    "not JSON": (Answer(body="this is not JSON", content_type="text/plain"), "not JSON"),
    "a JSON list": (Answer(body=[1, 2]), "JSON list, not an object"),
    "an HTML page with 200": (html(200, "Sign in"), "not JSON (<html><head><title>Sign in"),
    "an unknown status": (Answer(body={"status": "maybe"}), 'the status is "maybe"'),
}
REFUSALS = {
    "HTTP 500": (error(500, "internal", "query panicked"), "HTTP 500 Internal Server Error: "),
    "HTTP 502 HTML page": (html(502, "502 Bad Gateway"), "HTTP 502 Bad Gateway (<html>"),
    "HTTP 503": (error(503, "unavailable", "no store"), "HTTP 503 Service Unavailable"),
    "HTTP 429": (
        Answer(429, "slow down", {"Retry-After": "7"}, content_type="text/plain"),
        "HTTP 429 Too Many Requests (slow down) (retry after 7 s)",
    ),
    "status error with 200": (
        Answer(body={"status": "error", "errorType": "bad_data", "error": "nope"}),
        "bad_data: nope",
    ),
}


@pytest.fixture
def scripted() -> Iterator[ScriptedPrometheus]:
    with ScriptedPrometheus() as server:
        yield server


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_an_answer_that_is_not_prometheus_json_is_a_prometheus_error_naming_it(
    scripted: ScriptedPrometheus, case: str
) -> None:
    answer, cause = BAD_ANSWERS[case]
    scripted.fault = answer
    client = PrometheusClient(PrometheusConfig(url=scripted.url), timeout=5)
    with pytest.raises(PrometheusError) as caught:
        client.evaluate("up", START)
    message = str(caught.value)
    assert scripted.url in message and "unusable answer to the instant query" in message
    assert cause in message, message
    assert client.log == []


RANGE_BAD_ANSWERS = {
    "data null": (Answer(body={"status": "success", "data": None}), "data is null"),
    "a vector": (success("vector", []), 'resultType is "vector", not matrix'),
    "values not a list": (success("matrix", [{"metric": {}, "values": 3}]), "is not a list"),
    "no values": (success("matrix", [{"metric": {}, "value": [1, "1"]}]), "has no 'values'"),
    "a bad sample": (
        success("matrix", [{"metric": {}, "values": [[1, "1"], [2]]}]),
        "series 0, sample 1 is not a [time, value] pair",
    ),
}


@pytest.mark.parametrize("case", sorted(RANGE_BAD_ANSWERS))
def test_a_range_answer_that_is_not_a_matrix_is_a_prometheus_error_naming_it(
    scripted: ScriptedPrometheus, case: str
) -> None:
    answer, cause = RANGE_BAD_ANSWERS[case]
    scripted.fault = answer
    client = PrometheusClient(PrometheusConfig(url=scripted.url), timeout=5)
    with pytest.raises(PrometheusError) as caught:
        client.evaluate_range("up", START, START + timedelta(hours=1), 600)
    message = str(caught.value)
    assert scripted.url in message and "unusable answer to the range query" in message
    assert cause in message, message


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_an_http_error_is_a_prometheus_error_with_the_status_and_the_cause(
    scripted: ScriptedPrometheus, case: str
) -> None:
    answer, cause = REFUSALS[case]
    scripted.fault = answer
    client = PrometheusClient(PrometheusConfig(url=scripted.url), timeout=5)
    with pytest.raises(PrometheusError) as caught:
        client.evaluate("up", START)
    message = str(caught.value)
    assert scripted.url in message and "refused the instant query" in message
    assert cause in message, message


def test_502_503_and_504_are_tried_three_times_then_named(scripted: ScriptedPrometheus) -> None:
    scripted.fault = error(503, "unavailable", "no store")
    with pytest.raises(PrometheusError, match="HTTP 503"):
        PrometheusClient(PrometheusConfig(url=scripted.url), timeout=5).evaluate("up", START)
    assert len(scripted.requests) == 3


def test_a_retry_after_is_named_not_slept_on(scripted: ScriptedPrometheus) -> None:
    scripted.fault = Answer(429, "slow down", {"Retry-After": "120"}, content_type="text/plain")
    began = time.monotonic()
    with pytest.raises(PrometheusError, match=r"HTTP 429 .*retry after 120 s"):
        PrometheusClient(PrometheusConfig(url=scripted.url), timeout=5).evaluate("up", START)
    assert time.monotonic() - began < 10 and len(scripted.requests) == 1


def test_a_503_that_passes_is_not_seen(scripted: ScriptedPrometheus) -> None:
    answers = iter([error(503, "unavailable", "restarting")])
    scripted.fault = lambda request: next(answers, None) or healthy(request)
    result = PrometheusClient(PrometheusConfig(url=scripted.url), timeout=5).evaluate("up", START)
    assert result[0]["value"][1] == "10" and len(scripted.requests) == 2


def test_a_slow_answer_is_a_timeout_naming_the_url_and_the_limit(
    scripted: ScriptedPrometheus,
) -> None:
    scripted.fault = Answer(delay=3, body={})
    client = PrometheusClient(PrometheusConfig(url=scripted.url), timeout=0.5)
    with pytest.raises(PrometheusError) as caught:
        client.evaluate("up", START)
    message = str(caught.value)
    assert scripted.url in message and "did not answer the instant query within 0.5 s" in message
    assert len(scripted.requests) == 1  # a timed-out query is not sent again


def test_nan_and_inf_are_passed_on_as_prometheus_wrote_them(scripted: ScriptedPrometheus) -> None:
    scripted.fault = success("vector", [{"metric": {}, "value": [1, NAN]}, {"value": [1, POS_INF]}])
    result = PrometheusClient(PrometheusConfig(url=scripted.url)).evaluate("up", START)
    assert [series["value"][1] for series in result] == [NAN, POS_INF]


def test_the_warnings_of_an_answer_are_kept_in_the_log(scripted: ScriptedPrometheus) -> None:
    warning = "partial response: store gateway 10.0.0.7:10901 unreachable"
    scripted.fault = lambda request: healthy(request, warnings=[warning])
    client = PrometheusClient(PrometheusConfig(url=scripted.url))
    assert client.evaluate("up", START)[0]["value"][1] == "10"
    client.evaluate_range("up", START, START + timedelta(hours=1), 600)
    assert [record.warnings for record in client.log] == [(warning,), (warning,)]


def test_the_query_helpers_check_the_answer_too(scripted: ScriptedPrometheus) -> None:
    scripted.fault = Answer(body={"status": "success", "data": None})
    client = PrometheusClient(PrometheusConfig(url=scripted.url))
    with pytest.raises(PrometheusError, match="data is null"):
        client.query("up", START)
    with pytest.raises(PrometheusError, match="data is null"):
        client.query_range("up", START, START + timedelta(hours=1), timedelta(minutes=10))

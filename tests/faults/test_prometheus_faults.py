"""Prometheus faults: what the CostReports and `finops-operator report` do with bad answers.

A scripted Prometheus HTTP API on 127.0.0.1 (`tests.support.scripted_prometheus`)
answers 500, 502 pages, 503, 429, `data: null`, bodies that are not JSON, NaN,
+Inf, -Inf, warnings (a partial answer), or too slowly; then it recovers. The
real `PrometheusClient` reads it, for `ReportController` over the in-memory
FakeKube, for the `report` command, and for the operator process.

What must hold, for every fault:
- while Prometheus is not trustworthy, every CostReport keeps its last good
  figures with `Stale=True` and a reason and message naming the URL and the cause;
- never a figure shown as fresh that is not (no write of other figures with
  `Stale=False` during the fault);
- the first good answer brings the reports back to fresh, within one refresh
  interval of the recovery;
- `report` exits 2 naming the URL and the cause, with nothing on stdout.

The last part fuzzes the answers (hypothesis, a fixed derandomized budget):
whatever JSON comes back, the reader gives a PrometheusError or a report of
finite figures that renders, never another exception.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import requests
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finops_operator.adapters.prometheus_api import MAX_ANSWER_BYTES, PrometheusClient
from finops_operator.cli import main
from finops_operator.cli.report import render
from finops_operator.controllers import report_controller
from finops_operator.controllers.report_controller import REPORTS, ReportController
from finops_operator.controllers.usage_reader import report_period
from finops_operator.domain.config import Config, PricingConfig, PrometheusConfig
from finops_operator.domain.costs.period import Period
from finops_operator.errors import PrometheusError
from tests.support.fakes import FakeKube, FakeMetrics
from tests.support.scripted_prometheus import (
    NAN,
    NEG_INF,
    POS_INF,
    Answer,
    Request,
    Script,
    ScriptedPrometheus,
    error,
    healthy,
    html,
    success,
)

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(minutes=10)
RECOVERED = LATER + datetime.timedelta(minutes=10)
TIMEOUT = 0.5  # the client's, for the slow answer
HUGE = b'{"status": "success", "pad": "' + b"x" * MAX_ANSWER_BYTES + b'"}'
WARNING = "partial response: store gateway 10.0.0.7:10901 unreachable"
NAMES = {f"{s}-{p}" for s in ("ml", "untagged", "cluster") for p in ("2026-11", "2026-10")}


def with_value(value: str) -> Callable[[Request], Answer]:
    return lambda request: healthy(request, value)


# name: (what Prometheus answers, the Stale reason, what the message must name)
FAULTS: dict[str, tuple[Script, str, str]] = {
    "HTTP 500": (error(500, "internal", "query panicked"), "PrometheusUnavailable", "HTTP 500"),
    "HTTP 502 page": (html(502, "502 Bad Gateway"), "PrometheusUnavailable", "502 Bad Gateway"),
    "HTTP 503": (error(503, "unavailable", "no store"), "PrometheusUnavailable", "HTTP 503"),
    "HTTP 429": (
        Answer(429, "rate limited", {"Retry-After": "30"}, content_type="text/plain"),
        "PrometheusUnavailable",
        "HTTP 429",
    ),
    "data null": (
        Answer(body={"status": "success", "data": None}),
        "UnusableAnswer",
        "data is null",
    ),
    "not JSON": (html(200, "Please sign in"), "UnusableAnswer", "not JSON"),
    "result not a list": (success("matrix", {"oops": 1}), "UnusableAnswer", "not a list"),
    "NaN": (with_value(NAN), "UnusableAnswer", "a NaN sample"),
    "+Inf": (with_value(POS_INF), "UnusableAnswer", "a +Inf sample"),
    "-Inf": (with_value(NEG_INF), "UnusableAnswer", "a -Inf sample"),
    "warnings": (
        lambda request: healthy(request, "4", warnings=[WARNING]),
        "PartialAnswer",
        WARNING,
    ),
    "slow": (Answer(delay=TIMEOUT * 4, body={}), "PrometheusUnavailable", "did not answer"),
    # Each byte within the per-read timeout, the whole far past it: once, `report` hung.
    "dripping": (
        lambda request: replace(healthy(request), drip=TIMEOUT / 5),
        "PrometheusUnavailable",
        "did not answer",
    ),
    # Once read as a discount: `report` printed gpuCost -96.00 with exit 0.
    "negative": (with_value("-96"), "UnusableAnswer", "a negative sample"),
    # Once 1.1 GB of memory for a 105 MB answer; the Deployment's limit is 512 MiB.
    "huge": (Answer(body=HUGE), "UnusableAnswer", "over the limit"),
    "huge, no length": (Answer(body=HUGE, length_header=False), "UnusableAnswer", "over the limit"),
}


@pytest.fixture
def scripted() -> Iterator[ScriptedPrometheus]:
    with ScriptedPrometheus() as server:
        yield server


class World:
    """A ReportController reading the scripted Prometheus and writing to a FakeKube."""

    def __init__(self, prometheus: ScriptedPrometheus, interval: int = 600) -> None:
        self.kube = FakeKube()
        self.metrics = FakeMetrics()
        client = PrometheusClient(PrometheusConfig(url=prometheus.url), timeout=TIMEOUT)
        self.controller = ReportController(
            config=Config(reports={"intervalSeconds": interval}),
            kube=self.kube,
            prometheus=client,
            policies={},
            metrics=self.metrics,
        )

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {name: self.status(name) for name in NAMES}

    def status(self, name: str) -> dict[str, Any]:
        stored = self.kube.stored(REPORTS, None, name)
        assert stored is not None, name
        return dict(stored["status"])

    def stale(self, name: str) -> dict[str, Any]:
        return next(c for c in self.status(name)["conditions"] if c["type"] == "Stale")


def figures(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k not in ("conditions", "lastUpdated")}


def fresh_writes_with_other_figures(world: World, good: dict[str, dict[str, Any]]) -> list[str]:
    """Reports written with Stale=False and figures other than the last good ones."""
    wrong = []
    for call in world.kube.writes:
        status = (call.body or {}).get("status") or {}
        stale = [c for c in status.get("conditions") or [] if c.get("type") == "Stale"]
        fresh = bool(stale) and stale[0]["status"] == "False"
        if fresh and call.name in good and figures(status) != figures(good[call.name]):
            wrong.append(str(call.name))
    return wrong


# --- the controller, fault by fault ------------------------------------------------------


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_each_fault_keeps_the_figures_marks_them_stale_and_recovery_clears_it(
    scripted: ScriptedPrometheus, fault: str
) -> None:
    answer, reason, cause = FAULTS[fault]
    world = World(scripted)
    assert await world.controller.refresh(NOW)
    good = world.statuses()
    assert all(world.stale(name)["status"] == "False" for name in NAMES)

    scripted.fault = answer
    world.kube.calls.clear()
    assert not await world.controller.refresh(LATER)
    for name in NAMES:
        status = world.status(name)
        assert figures(status) == figures(good[name]), name
        assert status["lastUpdated"] == good[name]["lastUpdated"]
        stale = world.stale(name)
        assert (stale["status"], stale["reason"]) == ("True", reason), name
        assert scripted.url in stale["message"] and cause in stale["message"], stale["message"]
    assert fresh_writes_with_other_figures(world, good) == []
    assert world.metrics.report_failures == {"prometheus": 2}

    scripted.recover()
    scripted.value = "12"  # the figures after the recovery differ from the last good ones
    assert await world.controller.refresh(RECOVERED)
    for name in NAMES:
        assert world.stale(name)["status"] == "False", name
    assert world.status("ml-2026-11")["gpuHours"] != good["ml-2026-11"]["gpuHours"]


async def test_a_fault_that_lasts_is_written_once_and_changing_faults_update_the_reason(
    scripted: ScriptedPrometheus,
) -> None:
    world = World(scripted)
    await world.controller.refresh(NOW)
    scripted.fault = FAULTS["NaN"][0]
    await world.controller.refresh(LATER)
    writes = len(world.kube.writes)
    await world.controller.refresh(LATER + datetime.timedelta(minutes=1))
    assert len(world.kube.writes) == writes
    scripted.fault = FAULTS["warnings"][0]
    await world.controller.refresh(LATER + datetime.timedelta(minutes=2))
    assert world.stale("cluster-2026-11")["reason"] == "PartialAnswer"
    scripted.fault = FAULTS["HTTP 503"][0]
    await world.controller.refresh(LATER + datetime.timedelta(minutes=3))
    assert world.stale("cluster-2026-11")["reason"] == "PrometheusUnavailable"


async def test_reports_are_fresh_again_within_one_interval_of_the_recovery(
    scripted: ScriptedPrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 5
    monkeypatch.setattr(report_controller, "FIRST_RETRY_SECONDS", 0.1)
    world = World(scripted, interval=interval)
    task = asyncio.create_task(world.controller.run_forever())
    try:

        async def until(check: Callable[[], bool], timeout: float) -> float:
            began = time.monotonic()
            while not check():
                assert time.monotonic() - began < timeout, "timed out"
                await asyncio.sleep(0.05)
            return time.monotonic() - began

        def stale_is(value: str) -> Callable[[], bool]:
            def check() -> bool:
                stored = world.kube.stored(REPORTS, None, "cluster-2026-11")
                if not stored:
                    return False
                return any(
                    c["type"] == "Stale" and c["status"] == value
                    for c in stored["status"]["conditions"]
                )

            return check

        await until(stale_is("False"), 30)
        good = figures(world.status("cluster-2026-11"))
        scripted.fault = FAULTS["NaN"][0]
        await until(stale_is("True"), interval + 10)
        assert figures(world.status("cluster-2026-11")) == good
        await asyncio.sleep(1)  # a few failed retries
        scripted.recover()
        assert await until(stale_is("False"), interval + 5) <= interval + 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- the report command ------------------------------------------------------------------


def run_report(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(
        ["report", "--prometheus-url", url, "--start", "2026-11-01", "--end", "2026-11-03",
         "--timeout", str(TIMEOUT), *extra]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINOPS_CONFIG", raising=False)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_report_exits_2_naming_the_url_and_the_cause(
    scripted: ScriptedPrometheus, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    answer, _, cause = FAULTS[fault]
    scripted.fault = answer
    code, out, err = run_report(scripted.url, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: no report for 2026-11-01T00:00:00Z/2026-11-03T00:00:00Z: ")
    assert scripted.url in err and cause in err, err
    assert "Traceback" not in err


def test_report_prints_a_partial_answer_only_when_allowed_and_marks_it(
    scripted: ScriptedPrometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.fault = FAULTS["warnings"][0]
    code, out, err = run_report(scripted.url, capsys)
    assert (code, out) == (2, "")
    assert "answered only in part" in err and WARNING in err and "--allow-partial" in err

    code, out, err = run_report(scripted.url, capsys, "--allow-partial")
    assert code == 0
    assert out.startswith("PARTIAL: figures may be too low") and WARNING in out
    assert err.startswith("warning: PARTIAL report") and WARNING in err

    code, out, err = run_report(scripted.url, capsys, "--allow-partial", "--format", "json")
    assert code == 0 and json.loads(out)["teams"] and "PARTIAL" in err


def test_report_reads_a_recovered_prometheus(
    scripted: ScriptedPrometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted.fault = FAULTS["data null"][0]
    assert run_report(scripted.url, capsys)[0] == 2
    scripted.recover()
    code, out, err = run_report(scripted.url, capsys, "--format", "json")
    assert code == 0 and err == ""
    assert json.loads(out)["cluster"]["gpuHours"] > 0


# --- fuzzing the answers -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
numbers = st.one_of(
    st.sampled_from(["NaN", "+Inf", "-Inf", "1e999", "-0", "0", "1.5", "10", "abc", "", " 7"]),
    st.floats().map(repr),
    st.integers().map(str),
    st.floats(),
    st.integers(),
    json_values,
)
samples = st.one_of(st.tuples(st.integers(0, 2**33) | json_values, numbers).map(list), json_values)
labels = st.dictionaries(
    st.sampled_from(["team", "gpu_model", "model", "namespace", "owner_name", "feature", "x"]),
    st.text(max_size=6) | json_values,
    max_size=4,
)
series = st.fixed_dictionaries(
    {"metric": labels | json_values},
    optional={
        "value": samples,
        "values": st.lists(samples, max_size=4) | json_values,
        "histogram": json_values,
    },
)
data = st.one_of(
    st.fixed_dictionaries(
        {
            "resultType": st.sampled_from(["vector", "matrix", "scalar", "string"]) | json_values,
            "result": st.lists(series, max_size=3) | json_values,
        },
        optional={"stats": json_values},
    ),
    json_values,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"status": st.sampled_from(["success", "success", "error"]) | json_values},
        optional={
            "data": data,
            "warnings": st.lists(st.text(max_size=12), max_size=2) | json_values,
            "error": json_values,
            "errorType": json_values,
        },
    ),
    json_values,
)
# Answers of the right shape, whose numbers and labels vary: most reach the cost model.
label_sets = st.dictionaries(
    st.sampled_from(["team", "gpu_model", "model", "namespace", "owner_name", "feature"]),
    st.text(max_size=6),
    max_size=4,
)
usage = st.one_of(
    st.floats(0, 1e6).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**30), 10**30).map(str),
)
pairs = st.tuples(st.integers(0, 2**33), usage | usage | numbers).map(list)
well_formed = st.one_of(
    st.fixed_dictionaries(
        {
            "status": st.just("success"),
            "data": st.fixed_dictionaries(
                {
                    "resultType": st.just("vector"),
                    "result": st.lists(
                        st.fixed_dictionaries({"metric": label_sets, "value": pairs}), max_size=3
                    ),
                }
            ),
        },
        optional={"warnings": st.lists(st.text(max_size=12), max_size=2)},
    ),
    st.fixed_dictionaries(
        {
            "status": st.just("success"),
            "data": st.fixed_dictionaries(
                {
                    "resultType": st.just("matrix"),
                    "result": st.lists(
                        st.fixed_dictionaries(
                            {"metric": label_sets, "values": st.lists(pairs, max_size=3)}
                        ),
                        max_size=3,
                    ),
                }
            ),
        },
        optional={"warnings": st.lists(st.text(max_size=12), max_size=2)},
    ),
)
answers = st.one_of(
    st.tuples(st.just(200), well_formed.map(json.dumps)),
    st.tuples(
        st.sampled_from([200, 200, 200, 200, 400, 422, 429, 500, 503]),
        st.one_of(bodies.map(json.dumps), st.text(max_size=40)),
    ),
)
PERIODS = {
    "three days (range queries)": Period(
        NOW - datetime.timedelta(days=5), NOW - datetime.timedelta(days=2)
    ),
    "three hours (instant queries)": Period(NOW - datetime.timedelta(hours=3), NOW),
}


def fuzzed_client(status: int, text: str) -> PrometheusClient:
    client = PrometheusClient(PrometheusConfig(url="http://prometheus.fuzz:9090"))

    def request(**_: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.reason = "Fuzzed"
        body = text.encode("utf-8", "surrogatepass")
        response.raw = urllib3.HTTPResponse(io.BytesIO(body), preload_content=False)
        response.encoding = "utf-8"
        return response

    client._session.request = request  # type: ignore[method-assign,assignment]
    return client


def finite(value: Any) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite()
    if isinstance(value, float):
        return math.isfinite(value)
    return True


@pytest.mark.parametrize("period", sorted(PERIODS))
@settings(
    max_examples=250,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(answer=answers)
def test_any_answer_is_a_prometheus_error_or_finite_figures_that_render(
    period: str, answer: tuple[int, str]
) -> None:
    status, text = answer
    try:
        report = report_period(
            fuzzed_client(status, text), PricingConfig(), PERIODS[period], now=NOW
        )
    except PrometheusError as err:
        assert "http://prometheus.fuzz:9090" in str(err)
        return
    rows = [*report.costs.teams, report.costs.untagged, report.costs.cluster]
    for row in rows:
        assert all(finite(v) for v in vars(row).values() if not isinstance(v, list | tuple))
    for fmt in ("table", "json", "csv", "focus", "html"):
        assert render(report, fmt, "fuzz")

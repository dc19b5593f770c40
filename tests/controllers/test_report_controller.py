"""ReportController against an in-memory API and Prometheus: writes, staleness, retries."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from finops_operator.controllers import report_controller
from finops_operator.controllers.report_controller import REPORTS, ReportController
from finops_operator.domain.config import Config, parse_config
from tests.support.fakes import ClockStopped, FakeClock, FakeKube, FakeMetrics, FakePrometheus

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(hours=1)
# The same answer to every query: one team's GPU, capacity, tokens and a job.
EVERYTHING = [
    {
        "metric": {
            "team": "ml",
            "gpu_model": "a100",
            "model": "llama",
            "namespace": "ml",
            "owner_name": "train",
        },
        "value": [1_700_000_000, "10"],
    }
]
NAMES = {
    f"{scope}-{period}"
    for scope in ("ml", "untagged", "cluster")
    for period in ("2026-11", "2026-10")
}


class World:
    def __init__(self, leading: bool = True, config: Config | None = None) -> None:
        self.kube = FakeKube()
        self.prometheus = FakePrometheus(default=EVERYTHING)
        self.metrics = FakeMetrics()
        self.leading = leading
        self.clock = FakeClock()
        self.controller = ReportController(
            config=config or Config(),
            kube=self.kube,
            prometheus=self.prometheus,
            policies={},
            metrics=self.metrics,
            leading=lambda: self.leading,
            clock=self.clock,
        )

    def report(self, name: str) -> dict[str, Any]:
        stored = self.kube.stored(REPORTS, None, name)
        assert stored is not None, name
        return stored

    def conditions(self, name: str) -> dict[str, tuple[str, str]]:
        return {
            c["type"]: (c["status"], c["reason"]) for c in self.report(name)["status"]["conditions"]
        }


def figures(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k not in ("conditions", "lastUpdated")}


async def test_a_first_refresh_creates_each_report_and_writes_its_status() -> None:
    world = World()
    assert await world.controller.refresh(NOW)
    creates = [c.name for c in world.kube.writes if c.verb == "create"]
    patches = [c.name for c in world.kube.writes if c.verb == "patch_status"]
    assert set(creates) == NAMES and sorted(patches) == sorted(creates)
    assert world.conditions("ml-2026-11") == {
        "Ready": ("True", "FiguresAvailable"),
        "Stale": ("False", "Fresh"),
    }
    assert world.report("ml-2026-11")["spec"] == {
        "scope": "team",
        "period": "2026-11",
        "team": "ml",
    }
    assert world.metrics.refreshed == {"2026-11": NOW.timestamp(), "2026-10": NOW.timestamp()}
    assert world.controller.reports["ml-2026-11"]["status"] == world.report("ml-2026-11")["status"]


async def test_the_same_figures_at_the_same_time_write_nothing_and_read_nothing() -> None:
    world = World()
    await world.controller.refresh(NOW)
    calls = len(world.kube.calls)
    assert await world.controller.refresh(NOW)
    assert len(world.kube.calls) == calls  # the reports the controller knows spare the reads


async def test_a_report_seen_by_the_watch_is_patched_without_a_read() -> None:
    world = World()
    await world.controller.refresh(NOW)
    known = world.report("ml-2026-11")
    fresh = World()
    fresh.kube.put(REPORTS, known)
    fresh.controller.observe("ADDED", fresh.kube.stored(REPORTS, None, "ml-2026-11") or {})
    await fresh.controller.refresh(LATER)
    ml = [c.verb for c in fresh.kube.calls if c.name == "ml-2026-11"]
    assert ml == ["patch_status"]


async def test_a_deleted_report_is_forgotten_and_created_again() -> None:
    world = World()
    await world.controller.refresh(NOW)
    world.controller.observe("DELETED", world.report("ml-2026-11"))
    world.kube.objects.pop((*REPORTS, None, "ml-2026-11"))
    world.kube.calls.clear()
    await world.controller.refresh(NOW)
    assert [c.verb for c in world.kube.calls if c.name == "ml-2026-11"] == [
        "get",
        "create",
        "patch_status",
    ]


async def test_a_report_created_meanwhile_is_read_and_its_status_patched() -> None:
    world = World()
    world.kube.put(
        REPORTS,
        {
            "apiVersion": "finops.resilio.tech/v1alpha1",
            "kind": "CostReport",
            "metadata": {"name": "ml-2026-11"},
            "spec": {},
        },
    )
    original_get = world.kube.get

    async def stale_read(*args: Any) -> dict[str, Any] | None:
        found = await original_get(*args)
        return None if args[-1] == "ml-2026-11" and world.kube.verbs().count("get") == 1 else found

    world.kube.get = stale_read  # type: ignore[method-assign]
    assert await world.controller.refresh(NOW)
    ml = [(c.verb, c.error) for c in world.kube.calls if c.name == "ml-2026-11"]
    assert ml == [("get", None), ("create", 409), ("get", None), ("patch_status", None)]
    assert world.conditions("ml-2026-11")["Ready"] == ("True", "FiguresAvailable")


# --- Prometheus outages ------------------------------------------------------------------


async def test_an_outage_keeps_the_last_good_figures_and_marks_them_stale() -> None:
    world = World()
    await world.controller.refresh(NOW)
    good = {name: world.report(name)["status"] for name in NAMES}
    world.prometheus.outage = True
    world.kube.calls.clear()
    assert not await world.controller.refresh(LATER)
    assert {c.verb for c in world.kube.writes} == {"patch_status"}
    assert {c.name for c in world.kube.writes} == NAMES
    for name in NAMES:
        status = world.report(name)["status"]
        assert figures(status) == figures(good[name])
        assert status["lastUpdated"] == good[name]["lastUpdated"]
    ready, stale = world.report("ml-2026-11")["status"]["conditions"]
    assert (ready["status"], stale["status"], stale["reason"]) == (
        "True",
        "True",
        "PrometheusUnavailable",
    )
    assert "cannot reach Prometheus" in stale["message"]
    assert world.metrics.report_failures == {"prometheus": 2}
    assert world.metrics.refreshed == {"2026-11": NOW.timestamp(), "2026-10": NOW.timestamp()}


async def test_a_lasting_outage_is_written_once() -> None:
    world = World()
    await world.controller.refresh(NOW)
    world.prometheus.outage = True
    await world.controller.refresh(LATER)
    writes = len(world.kube.writes)
    await world.controller.refresh(LATER + datetime.timedelta(minutes=5))
    assert len(world.kube.writes) == writes
    assert world.metrics.report_failures == {"prometheus": 4}


async def test_the_first_good_read_after_an_outage_clears_stale() -> None:
    world = World()
    await world.controller.refresh(NOW)
    world.prometheus.outage = True
    await world.controller.refresh(LATER)
    world.prometheus.outage = False
    assert await world.controller.refresh(LATER + datetime.timedelta(minutes=5))
    assert world.conditions("ml-2026-11")["Stale"] == ("False", "Fresh")


async def test_an_outage_before_any_report_exists_writes_nothing() -> None:
    world = World()
    world.prometheus.outage = True
    assert not await world.controller.refresh(NOW)
    assert world.kube.calls == []
    assert world.metrics.refreshed == {}


async def test_a_prometheus_without_the_operators_series_is_not_a_failure() -> None:
    world = World()
    world.prometheus.default = []
    assert await world.controller.refresh(NOW)
    assert world.kube.calls == []
    assert world.metrics.refreshed == {} and world.metrics.report_failures == {}


# --- answers that cannot be trusted --------------------------------------------------


async def test_a_nan_sample_keeps_the_last_good_figures_and_marks_them_unusable() -> None:
    world = World()
    await world.controller.refresh(NOW)
    good = {name: world.report(name)["status"] for name in NAMES}
    world.prometheus.default = [{**EVERYTHING[0], "value": [1_700_000_000, "NaN"]}]
    assert not await world.controller.refresh(LATER)
    for name in NAMES:
        assert figures(world.report(name)["status"]) == figures(good[name])
        assert world.conditions(name)["Stale"] == ("True", "UnusableAnswer")
    stale = world.report("ml-2026-11")["status"]["conditions"][1]
    assert "NaN sample" in stale["message"] and "http://prometheus.test:9090" in stale["message"]
    assert world.metrics.report_failures == {"prometheus": 2}


async def test_a_partial_answer_keeps_the_last_whole_figures_and_says_why() -> None:
    world = World()
    await world.controller.refresh(NOW)
    good = {name: world.report(name)["status"] for name in NAMES}
    world.prometheus.default = [{**EVERYTHING[0], "value": [1_700_000_000, "4"]}]
    world.prometheus.warnings = ("partial response: store gateway 10.0.0.7 unreachable",)
    assert not await world.controller.refresh(LATER)
    for name in NAMES:
        assert figures(world.report(name)["status"]) == figures(good[name])
        assert world.conditions(name)["Stale"] == ("True", "PartialAnswer")
    stale = world.report("ml-2026-11")["status"]["conditions"][1]
    assert "store gateway 10.0.0.7 unreachable" in stale["message"]
    world.prometheus.warnings = ()
    assert await world.controller.refresh(LATER)
    assert world.conditions("ml-2026-11")["Stale"] == ("False", "Fresh")
    assert figures(world.report("ml-2026-11")["status"]) != figures(good["ml-2026-11"])


async def test_a_partial_answer_before_any_report_exists_writes_nothing() -> None:
    world = World()
    world.prometheus.warnings = ("partial response",)
    assert not await world.controller.refresh(NOW)
    assert world.kube.calls == [] and world.metrics.refreshed == {}


async def test_a_long_cause_is_cut_to_a_readable_message() -> None:
    world = World()
    await world.controller.refresh(NOW)
    world.prometheus.warnings = tuple(f"store {i} unreachable: {'x' * 400}" for i in range(10))
    await world.controller.refresh(LATER)
    stale = world.report("ml-2026-11")["status"]["conditions"][1]
    assert len(stale["message"]) == report_controller.MESSAGE_LIMIT
    assert stale["message"].endswith("...")


# --- API failures ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [0, 403, 500])
async def test_a_report_that_cannot_be_written_fails_its_month_and_is_retried(status: int) -> None:
    world = World()
    world.kube.fail_next(status, on="create")
    assert not await world.controller.refresh(NOW)
    assert world.metrics.report_failures == {"kubernetes": 1}
    assert list(world.metrics.refreshed) == ["2026-10"]  # the month whose writes all went in
    assert await world.controller.refresh(NOW)
    assert {c.name for c in world.kube.writes if c.verb == "create"} == NAMES


async def test_an_api_outage_fails_both_months_and_remembers_nothing() -> None:
    world = World()
    world.kube.outage = True
    assert not await world.controller.refresh(NOW)
    assert world.metrics.report_failures == {"kubernetes": 2}
    assert world.controller.reports == {}


async def test_a_stale_mark_that_cannot_be_written_is_logged_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    await world.controller.refresh(NOW)
    world.prometheus.outage = True
    world.kube.fail_next(500, on="patch_status")
    await world.controller.refresh(LATER)
    assert "Cannot mark CostReport" in caplog.text
    [failed] = [c.name for c in world.kube.calls if c.error == 500]
    assert world.conditions(failed)["Stale"] == ("False", "Fresh")
    await world.controller.refresh(LATER)
    assert world.conditions(failed)["Stale"] == ("True", "PrometheusUnavailable")


# --- the loop ----------------------------------------------------------------------------


async def run_rounds(world: World, rounds: int) -> list[float]:
    """The loop's waits: the first `rounds` return, the next one ends the loop."""
    world.clock.waits = rounds
    with pytest.raises(ClockStopped):
        await world.controller.run_forever()
    return world.clock.slept


async def test_failures_back_off_up_to_the_interval() -> None:
    world = World(config=Config(reports={"intervalSeconds": 30}))
    world.prometheus.outage = True
    delays = await run_rounds(world, 5)
    assert delays == [0.0, 5.0, 10.0, 20.0, 30.0, 30.0]


async def test_a_healthy_refresh_waits_the_whole_interval() -> None:
    world = World()
    interval = float(world.controller.config.reports.interval_seconds)
    assert await run_rounds(world, 2) == [0.0, interval, interval]


async def test_a_replica_that_does_not_lead_only_waits() -> None:
    world = World(leading=False)
    assert await run_rounds(world, 3) == [0.0, 1.0, 1.0, 1.0]
    assert world.prometheus.log == [] and world.kube.calls == []


async def test_the_loop_reports_the_months_of_its_clock() -> None:
    world = World()
    world.clock.start = datetime.datetime(2027, 1, 3, 8, tzinfo=datetime.UTC)
    await run_rounds(world, 1)
    written = {c.name for c in world.kube.calls if c.verb == "create"}
    assert "ml-2027-01" in written and "ml-2026-12" in written
    assert not any(name.endswith("2026-11") for name in written)


async def test_an_unexpected_error_does_not_end_the_refreshes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    world = World()

    async def broken(now: datetime.datetime) -> bool:
        raise KeyError("bug")

    monkeypatch.setattr(world.controller, "refresh", broken)
    delays = await run_rounds(world, 2)
    assert delays == [0.0, 5.0, 10.0]
    assert "CostReport refresh failed unexpectedly" in caplog.text


# --- the API lost its state (issue 13, item 10) -------------------------------------------


async def test_reports_the_api_lost_are_created_again_on_the_next_refresh() -> None:
    """Restarted empty, and no DELETED from the watch: the cache must not mean 404 forever."""
    world = World()
    assert await world.controller.refresh(NOW)
    world.kube.objects.clear()
    assert await world.controller.refresh(LATER)
    for name in NAMES:
        assert world.conditions(name)["Ready"] == ("True", "FiguresAvailable")
    assert await world.controller.refresh(LATER + datetime.timedelta(hours=1))


async def test_a_stale_mark_on_a_lost_report_forgets_it() -> None:
    world = World()
    await world.controller.refresh(NOW)
    world.kube.objects.clear()
    world.prometheus.outage = True
    await world.controller.refresh(LATER)
    assert world.controller.reports == {}
    world.prometheus.outage = False
    assert await world.controller.refresh(LATER)
    assert world.kube.stored(REPORTS, None, "ml-2026-11") is not None


async def test_after_a_catch_up_every_report_is_read_again() -> None:
    """Figures that did not change are never patched, so no 404 tells of their loss: the
    catch-up (an election, a recreated Lease) makes the next refresh read them all."""
    world = World()
    await world.controller.refresh(NOW)
    world.kube.objects.clear()
    await world.controller.catch_up()
    assert await world.controller.refresh(NOW)
    assert {name for (*_, name) in world.kube.objects} == NAMES


async def test_cost_reports_read_tokens_from_the_configured_gateway_preset() -> None:
    world = World(config=parse_config({"llmGateway": {"preset": "otel-genai"}}))
    assert await world.controller.refresh(NOW)
    queries = " ".join(query.expr for query in world.prometheus.log)
    assert 'gen_ai_client_token_usage_sum{gen_ai_token_type="output"}' in queries
    assert "litellm" not in queries and "vllm:" not in queries


async def test_charging_consumers_makes_the_cost_reports_read_the_serving_pods() -> None:
    config = parse_config({"selfHostedModels": {"chargeConsumers": True}})
    world = World(config=config)
    assert await world.controller.refresh(NOW)
    queries = [query.expr for query in world.prometheus.log]
    assert any("vllm:prompt_tokens_total" in q and "present_over_time" in q for q in queries)
    assert any("vllm:generation_tokens_total" in q for q in queries)
    plain = World()
    assert await plain.controller.refresh(NOW)
    assert not any("vllm:" in query.expr for query in plain.prometheus.log)


async def test_an_operator_of_a_named_cluster_reads_only_its_own_clusters_series() -> None:
    """A shared Thanos holds every cluster: the CostReports are this cluster's (issue 22)."""
    named = World(config=Config.model_validate({"cluster": {"name": "eu-1"}}))
    assert await named.controller.refresh(NOW)
    assert named.prometheus.log
    for query in named.prometheus.log:
        assert 'cluster=~"eu-1|"' in query.expr, query.expr
    fleet = World()
    assert await fleet.controller.refresh(NOW)
    assert not any("cluster=~" in query.expr for query in fleet.prometheus.log)

"""PolicyReportWriter against the in-memory API: batching, only changes, leadership, no CRD."""

from __future__ import annotations

import logging

import pytest

from finops_operator.controllers import policy_report_writer
from finops_operator.controllers.policy_report_writer import CRD_RETRY_SECONDS, PolicyReportWriter
from finops_operator.domain.config import ReportApi
from finops_operator.domain.policies.policy_reports import ResultValue, WorkloadResult
from tests.support.fakes import FakeKube, FakeMetrics

WG = ReportApi.WGPOLICY.resource


def result(namespace: str, name: str, value: ResultValue = ResultValue.FAIL) -> WorkloadResult:
    props = (("missing", "resilio.tech/team"),) if value is ResultValue.FAIL else ()
    message = "missing resilio.tech/team" if value is ResultValue.FAIL else "ok"
    return WorkloadResult("batch/v1", "Job", namespace, name, f"uid-{name}", value, message, props)


class World:
    def __init__(self, api: ReportApi = ReportApi.WGPOLICY, **kwargs: object) -> None:
        self.kube = FakeKube()
        self.metrics = FakeMetrics()
        self.now = 1000.0
        self.leading = True
        self.ready = True
        self.namespaces = {"team-a", "team-b"}
        self.writer = PolicyReportWriter(
            self.kube,
            api,
            self.metrics,
            leading=lambda: self.leading,
            ready=lambda: self.ready,
            namespace_exists=lambda ns: ns in self.namespaces,
            debounce=2.0,
            clock=lambda: self.now,
            wall_clock=lambda: 1_700_000_000.0,
            **kwargs,  # type: ignore[arg-type]
        )

    async def settle(self) -> None:
        """Let the debounce pass, then flush."""
        self.now += 2.5
        await self.writer.flush()

    def writes(self, verb: str | None = None) -> list[str]:
        return [
            f"{c.verb} {c.namespace}/{c.name}"
            for c in self.kube.writes
            if verb is None or c.verb == verb
        ]

    def report(self, namespace: str, name: str = "finops-labels") -> dict[str, object] | None:
        return self.kube.stored(WG, namespace, name)


async def test_a_burst_of_thousands_of_workloads_makes_one_write_per_namespace() -> None:
    w = World()
    for i in range(3000):
        ns = "team-a" if i % 2 else "team-b"
        value = ResultValue.FAIL if i % 3 == 0 else ResultValue.PASS
        w.writer.record(("Job", ns, f"job-{i}"), result(ns, f"job-{i}", value))
        if i % 500 == 0:
            w.now += 0.5  # the burst takes a while, never quiet for the debounce
            await w.writer.flush()
    assert w.writes() == []
    await w.settle()
    assert sorted(w.writes()) == ["create team-a/finops-labels", "create team-b/finops-labels"]
    report = w.report("team-a")
    assert report is not None
    assert report["summary"] == {"pass": 1000, "fail": 500, "warn": 0, "error": 0, "skip": 0}
    assert w.metrics.policy_reports_available is True


async def test_a_namespace_changing_all_the_time_is_written_at_the_latest_delay() -> None:
    w = World()
    for i in range(40):
        w.writer.record(("Job", "team-a", f"job-{i}"), result("team-a", f"job-{i}"))
        w.now += 1.0
        await w.writer.flush()
    assert w.writes() == ["create team-a/finops-labels"]  # after 30 s (15 x 2 s), not never


async def test_nothing_is_written_before_the_informers_synced_or_by_a_standby() -> None:
    w = World()
    w.ready = False
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    await w.settle()
    w.ready, w.leading = True, False
    await w.settle()
    assert w.kube.calls == []
    w.leading = True
    await w.settle()
    assert w.writes() == ["create team-a/finops-labels"]


async def test_an_unchanged_namespace_is_never_written_again() -> None:
    w = World()
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    await w.settle()
    created = w.report("team-a")
    assert created is not None
    w.writer.observe("ADDED", created)  # the watch event of our own write
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))  # a resync, same result
    await w.settle()
    assert w.writes() == ["create team-a/finops-labels"]
    assert [c.verb for c in w.kube.calls] == ["get", "create"]


async def test_a_changed_result_patches_and_keeps_the_other_results_timestamps() -> None:
    w = World()
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    w.writer.record(("Job", "team-a", "b"), result("team-a", "b"))
    await w.settle()
    w.writer.wall_clock = lambda: 1_800_000_000.0
    w.writer.record(("Job", "team-a", "b"), result("team-a", "b", ResultValue.PASS))
    await w.settle()
    assert w.writes() == ["create team-a/finops-labels", "patch team-a/finops-labels"]
    report = w.report("team-a")
    assert report is not None
    results = report["results"]
    assert isinstance(results, list)
    assert [r["result"] for r in results] == ["fail", "pass"]
    assert [r["timestamp"]["seconds"] for r in results] == [1_700_000_000, 1_800_000_000]


async def test_a_deleted_workload_loses_its_result_and_the_last_one_the_report() -> None:
    w = World()
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    w.writer.record(("Job", "team-a", "b"), result("team-a", "b"))
    await w.settle()
    w.writer.forget(("Job", "team-a", "a"))
    await w.settle()
    report = w.report("team-a")
    assert report is not None
    results = report["results"]
    assert isinstance(results, list)
    assert [r["resources"][0]["name"] for r in results] == ["b"]
    w.writer.forget(("Job", "team-a", "b"))
    await w.settle()
    assert w.report("team-a") is None
    assert w.writes()[-1] == "delete team-a/finops-labels"
    assert w.kube.verbs().count("delete") == 1  # not once more blindly


async def test_an_emptied_namespace_whose_report_the_watch_never_showed_is_deleted() -> None:
    w = World()
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    await w.settle()
    w.writer.stored.clear()  # as if the watch had not delivered our report yet
    w.writer.forget(("Job", "team-a", "a"))
    await w.settle()
    assert w.report("team-a") is None


async def test_a_report_left_from_before_a_restart_is_deleted_once_synced() -> None:
    w = World()
    stale = {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "finops-labels", "namespace": "team-b", "labels": {}},
        "results": [],
    }
    w.kube.put(WG, stale)
    w.writer.observe("ADDED", w.kube.stored(WG, "team-b", "finops-labels") or {})
    await w.settle()
    assert w.writes() == ["delete team-b/finops-labels"]


async def test_someone_elses_report_is_left_alone() -> None:
    w = World()
    w.writer.observe("ADDED", {"metadata": {"name": "kyverno-pol-xyz", "namespace": "team-a"}})
    await w.settle()
    assert w.kube.calls == []


async def test_a_new_leader_writes_nothing_when_the_old_one_left_everything_right() -> None:
    old, new = World(), World()
    new.kube = old.kube
    new.writer.kube = old.kube
    new.leading = False
    for w in (old, new):
        w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    await old.settle()
    await new.settle()
    assert old.writes() == ["create team-a/finops-labels"]
    new.writer.observe("ADDED", old.report("team-a") or {})  # the standby's watch
    new.leading = True
    await new.writer.catch_up()
    await new.writer.flush()
    assert old.writes() == ["create team-a/finops-labels"]  # still one write in all


async def test_a_new_leader_that_missed_the_watch_reads_before_writing() -> None:
    old, new = World(), World()
    new.kube = new.writer.kube = old.kube
    old.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    await old.settle()
    new.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    await new.writer.catch_up()
    await new.writer.flush()
    assert old.writes() == ["create team-a/finops-labels"]
    assert [c.verb for c in old.kube.calls] == ["get", "create", "get"]


async def test_a_missing_crd_is_logged_once_and_retried_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = World()
    caplog.set_level(logging.WARNING, policy_report_writer.__name__)
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    w.kube.fail_next(404, on="create", times=2)
    await w.settle()
    assert w.metrics.policy_reports_available is False
    assert "does not serve wgpolicyk8s.io/v1alpha2" in caplog.text
    calls = len(w.kube.calls)
    w.now += CRD_RETRY_SECONDS / 2
    await w.writer.flush()
    assert len(w.kube.calls) == calls  # not before the retry time
    w.now += CRD_RETRY_SECONDS
    await w.writer.flush()
    assert w.metrics.policy_reports_available is False
    assert caplog.text.count("does not serve") == 1
    w.now += CRD_RETRY_SECONDS + 1
    await w.writer.flush()
    assert w.metrics.policy_reports_available is True
    assert w.writes() == ["create team-a/finops-labels"]


async def test_an_api_error_is_retried_with_a_backoff_and_counted() -> None:
    w = World()
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    w.kube.fail_next(500, on="create")
    await w.settle()
    assert w.metrics.policy_report_failures["500"] == 1
    assert w.writes() == []
    w.now += 1.1
    await w.writer.flush()
    assert w.writes() == ["create team-a/finops-labels"]


async def test_a_namespace_being_deleted_is_dropped_not_retried() -> None:
    w = World()
    w.writer.record(("Job", "team-c", "a"), result("team-c", "a"))
    await w.settle()
    assert w.kube.calls == []


async def test_a_namespace_too_big_for_one_object_is_split_and_a_stale_part_deleted() -> None:
    w = World(max_report_bytes=1000)
    for i in range(10):
        w.writer.record(("Job", "team-a", f"job-{i}"), result("team-a", f"job-{i}"))
    await w.settle()
    parts = [c.name for c in w.kube.writes if c.verb == "create"]
    assert parts[0] == "finops-labels" and len(parts) >= 3
    for i in range(10):
        if i:
            w.writer.forget(("Job", "team-a", f"job-{i}"))
    await w.settle()
    assert w.report("team-a") is not None
    assert all(w.report("team-a", name) is None for name in parts[1:])


async def test_openreports_writes_reports_with_a_source() -> None:
    w = World(api=ReportApi.OPENREPORTS)
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    await w.settle()
    stored = w.kube.stored(ReportApi.OPENREPORTS.resource, "team-a", "finops-labels")
    assert stored is not None
    assert stored["apiVersion"] == "openreports.io/v1alpha1" and stored["kind"] == "Report"
    assert stored["source"] == "finops-operator"


async def test_a_namespace_the_api_refuses_does_not_hold_up_the_others() -> None:
    w = World()
    w.writer.record(("Job", "team-a", "a"), result("team-a", "a"))
    w.writer.record(("Job", "team-b", "b"), result("team-b", "b"))
    w.kube.fail_next(422, on="create")  # team-a comes first
    await w.settle()
    assert w.writes() == ["create team-b/finops-labels"]
    assert w.metrics.policy_report_failures["422"] == 1
    await w.settle()
    assert w.writes() == ["create team-b/finops-labels"]  # not retried in a tight loop
    w.now += policy_report_writer.MAX_RETRY_SECONDS
    await w.writer.flush()
    assert w.writes() == ["create team-b/finops-labels", "create team-a/finops-labels"]

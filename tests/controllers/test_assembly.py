"""The controllers wired together: the leadership's callbacks are the same in both modes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from finops_devtools.devcluster import eventually_async
from finops_devtools.devcluster.reviews import workload
from finops_operator.controllers.assembly import Controllers, OperatorState, assemble, elect
from finops_operator.controllers.leadership import AlwaysLeader, Leadership
from finops_operator.domain import conventions
from finops_operator.domain.config import Config, parse_config
from tests.support.fakes import FakeKube, FakeMetrics, FakePrometheus


async def no_event(body: Any, type: str, reason: str, message: str) -> None:
    pass


def controllers(
    leader_election: bool, config: Config | None = None
) -> tuple[Controllers, FakeKube]:
    config = config or Config()
    kube = FakeKube()
    leadership = elect(leader_election, kube, "replica-1", "finops-system", lease_seconds=3)
    state = OperatorState(config, "finops-system")
    state.namespaces["team-a"] = {}
    built = assemble(
        state,
        leadership=leadership,
        kube=kube,
        post_event=no_event,
        metrics=FakeMetrics(),
        prometheus=FakePrometheus(),
        heartbeat=FakePrometheus(),
    )
    return built, kube


@pytest.mark.parametrize("leader_election", [True, False], ids=["lease", "no leader election"])
def test_both_modes_catch_up_on_election_and_flush_at_every_round(leader_election: bool) -> None:
    built, _ = controllers(leader_election)
    kind = Leadership if leader_election else AlwaysLeader
    assert type(built.leadership) is kind
    assert built.leadership.renew_every == 1.0 and built.leadership.duration == 3
    assert built.audit.exemptions is not None
    assert built.leadership.while_leading == [built.writer.flush, built.audit.exemptions.flush]
    assert built.published is not None  # on by default
    assert built.leadership.on_elected == [
        built.policies.catch_up,
        built.reports.catch_up,
        built.admission_policies.ensure,
        built.published.catch_up,
    ]


def test_without_policy_reports_no_writer_is_wired() -> None:
    built, _ = controllers(False, parse_config({"policyReports": {"api": "off"}}))
    assert built.published is None and built.audit.published is None
    loops = built.background()
    assert set(loops) == {"cost-reports", "rules-evaluating"}
    for loop in loops.values():
        loop.close()


def test_the_policy_report_writer_is_wired_when_its_api_is_on() -> None:
    built, _ = controllers(False)
    assert built.published is not None and built.audit.published is built.published
    loops = built.background()
    assert set(loops) == {"cost-reports", "rules-evaluating", "policy-reports"}
    for loop in loops.values():
        loop.close()


async def test_without_leader_election_a_failed_audit_write_is_retried_by_the_rounds() -> None:
    """Issue 20: `--no-leader-election` never flushed, so a failed write stayed unwritten."""
    built, kube = controllers(False)
    built.leadership.renew_every = 0.01
    body = workload("Deployment", name="trainer")
    body["metadata"]["uid"] = "uid-trainer"
    kube.put_workload("Deployment", "team-a", "trainer", body)
    kube.fail_next(500, on="patch_workload")
    await built.audit.audit("Deployment", "ADDED", body)
    assert built.writer.pending  # the patch failed: nothing else will come about this object
    rounds = asyncio.create_task(built.leadership.run_forever())
    try:
        await eventually_async(lambda: not built.writer.pending)
    finally:
        rounds.cancel()
    meta = kube.workloads[("Deployment", "team-a", "trainer")]["metadata"]
    assert conventions.VIOLATIONS_ANNOTATION in meta["annotations"]
    assert len(kube.events) == 1


def test_the_namespace_index_follows_the_watch_and_readiness_sees_it() -> None:
    state = OperatorState(Config(), "finops-system")
    body = {"metadata": {"name": "team-a", "uid": "u-a", "labels": {"team": "a"}}}
    state.index_namespace("ADDED", body)
    assert state.namespaces == {"team-a": {"team": "a"}}
    state.index_namespace("DELETED", body)
    assert state.namespaces == {}
    assert "Namespace" in state.sync.watched and set(state.sync.watched) == {"Namespace"}


async def test_the_workload_watches_wait_until_every_listed_namespace_is_indexed() -> None:
    state = OperatorState(Config(), "finops-system")
    waiting = asyncio.create_task(state.namespaces_indexed(check_seconds=0.001))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # nothing listed yet
    state.sync.synced = True
    await asyncio.wait_for(waiting, 1)

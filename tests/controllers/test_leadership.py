"""The Lease rule (who leads, when a Lease is renewed and when it is taken over), and
Leadership running it against the in-memory API."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from typing import Any

import pytest

from finops_operator.controllers.leadership import LEASES, AlwaysLeader, Leadership
from finops_operator.domain.lease import LEASE_NAME, lease_decision
from tests.support.fakes import FakeKube

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.UTC)


def lease(holder: str, renewed: datetime.datetime, transitions: int = 0) -> dict[str, object]:
    return {
        "metadata": {
            "name": "finops-operator",
            "namespace": "finops-system",
            "resourceVersion": "7",
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-11-27T11:00:00.000000Z",
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "leaseTransitions": transitions,
        },
    }


def decide(current: dict[str, object] | None, me: str = "b"):  # type: ignore[no-untyped-def]
    return lease_decision(current, identity=me, namespace="finops-system", now=NOW, duration=15)


def test_the_first_replica_creates_the_lease_and_leads() -> None:
    decision = decide(None)
    assert decision.leader and decision.patch is None and decision.create is not None
    assert decision.create["spec"]["holderIdentity"] == "b"
    assert decision.create["metadata"] == {"name": "finops-operator", "namespace": "finops-system"}


def test_the_holder_renews_its_lease_guarded_by_its_resource_version() -> None:
    decision = decide(lease("b", NOW - datetime.timedelta(seconds=5)))
    assert decision.leader
    assert decision.patch == {
        "metadata": {"resourceVersion": "7"},
        "spec": {"renewTime": "2026-11-27T12:00:00.000000Z"},
    }


def test_another_replica_waits_while_the_lease_holds() -> None:
    decision = decide(lease("a", NOW - datetime.timedelta(seconds=14)))
    assert not decision.leader and decision.patch is None and decision.create is None


def test_an_expired_lease_is_taken_over_and_counted() -> None:
    decision = decide(lease("a", NOW - datetime.timedelta(seconds=16), transitions=2))
    assert decision.leader and decision.patch is not None
    assert decision.patch["metadata"] == {"resourceVersion": "7"}
    assert decision.patch["spec"]["holderIdentity"] == "b"
    assert decision.patch["spec"]["leaseTransitions"] == 3


def test_a_lease_without_times_is_taken_over() -> None:
    broken = lease("a", NOW)
    broken["spec"] = {"holderIdentity": "a"}
    assert decide(broken).leader


# --- Leadership against the in-memory API ------------------------------------------------


def stored_lease(kube: FakeKube) -> dict[str, Any]:
    found = kube.stored(LEASES, "finops-system", LEASE_NAME)
    assert found is not None
    return found


def replica(kube: FakeKube, identity: str = "b", **kwargs: Any) -> Leadership:
    return Leadership(kube, identity, "finops-system", duration=15, renew_every=0, **kwargs)


async def test_the_first_replica_creates_the_lease_in_the_api() -> None:
    kube = FakeKube()
    assert await replica(kube).attempt(NOW)
    assert kube.verbs() == ["get", "create"]
    assert stored_lease(kube)["spec"]["holderIdentity"] == "b"


async def test_the_holder_renews_with_a_guarded_patch() -> None:
    kube = FakeKube()
    kube.put(LEASES, lease("b", NOW - datetime.timedelta(seconds=5)))
    assert await replica(kube).attempt(NOW)
    [write] = kube.writes
    assert write.verb == "patch"
    assert write.body["metadata"]["resourceVersion"] == "1"
    assert stored_lease(kube)["spec"]["renewTime"] == "2026-11-27T12:00:00.000000Z"


async def test_a_standby_writes_nothing_while_the_lease_holds() -> None:
    kube = FakeKube()
    kube.put(LEASES, lease("a", NOW - datetime.timedelta(seconds=3)))
    assert not await replica(kube).attempt(NOW)
    assert kube.writes == []


async def test_an_expired_lease_is_taken_over_in_the_api() -> None:
    kube = FakeKube()
    kube.put(LEASES, lease("a", NOW - datetime.timedelta(seconds=20), transitions=4))
    assert await replica(kube).attempt(NOW)
    spec = stored_lease(kube)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 5)


async def test_two_replicas_racing_for_an_expired_lease_elect_one() -> None:
    kube = FakeKube()
    kube.put(LEASES, lease("a", NOW - datetime.timedelta(seconds=20)))
    original_get = kube.get
    seen: list[dict[str, Any] | None] = []

    async def both_read_before_either_writes(*args: Any) -> dict[str, Any] | None:
        if not seen:
            seen.append(await original_get(*args))
        return seen[0]

    kube.get = both_read_before_either_writes  # type: ignore[method-assign]
    first, second = replica(kube, "b"), replica(kube, "c")
    assert await first.attempt(NOW)
    assert not await second.attempt(NOW)  # its patch carries the old resourceVersion: 409
    assert kube.calls[-1].error == 409
    assert stored_lease(kube)["spec"]["holderIdentity"] == "b"


async def test_two_replicas_racing_to_create_the_lease_elect_one() -> None:
    kube = FakeKube()
    original_get = kube.get

    async def nothing_yet(*args: Any) -> dict[str, Any] | None:
        await original_get(*args)
        return None

    kube.get = nothing_yet  # type: ignore[method-assign]
    assert await replica(kube, "b").attempt(NOW)
    assert not await replica(kube, "c").attempt(NOW)
    assert stored_lease(kube)["spec"]["holderIdentity"] == "b"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("status", [0, 429, 500])
async def test_an_api_error_keeps_the_leader_only_while_its_last_renewal_holds(
    status: int,
) -> None:
    kube, clock = FakeKube(), Clock()
    leadership = replica(kube, clock=clock)  # duration 15, margin 3: writes for 12 s
    assert await leadership.attempt(NOW)
    kube.fail_next(status, times=2)
    clock.now += 11.9
    assert await leadership.attempt(NOW + datetime.timedelta(seconds=11.9))
    clock.now += 0.1
    assert not await leadership.attempt(NOW + datetime.timedelta(seconds=12))
    assert not leadership.is_leader


async def test_a_conflict_on_the_lease_ends_the_leadership_at_once() -> None:
    kube = FakeKube()
    leadership = replica(kube)
    assert await leadership.attempt(NOW)
    kube.fail_next(409, on="patch")
    assert not await leadership.attempt(NOW + datetime.timedelta(seconds=1))
    assert not leadership.is_leader


async def test_a_leader_whose_renewal_hangs_stops_writing_before_its_lease_expires() -> None:
    """Partition of the leader alone: the renewal call hangs; `is_leader` must turn False
    at renewal start + duration - margin, while the call is still in flight, before
    another replica may take the Lease over (at renewTime + duration)."""
    kube, clock = FakeKube(), Clock()
    leadership = replica(kube, clock=clock, safety_margin=2)
    assert await leadership.attempt(NOW)
    released = asyncio.Event()
    original_get = kube.get

    async def hang(*args: Any) -> dict[str, Any] | None:
        await released.wait()
        return await original_get(*args)

    kube.get = hang  # type: ignore[method-assign]
    renewal = asyncio.create_task(leadership.attempt(NOW + datetime.timedelta(seconds=5)))
    await asyncio.sleep(0)
    clock.now += 12.9
    assert leadership.is_leader
    clock.now += 0.1  # 13 s after the last successful renewal started: 15 - 2
    assert not leadership.is_leader
    released.set()
    await renewal


async def test_a_standby_that_recreates_a_vanished_lease_waits_one_duration() -> None:
    """The API lost its state: the last holder may still believe it leads until its own
    deadline, so the replica that recreates the Lease waits before writing."""
    kube, clock = FakeKube(), Clock()
    kube.put(LEASES, lease("a", NOW - datetime.timedelta(seconds=1)))
    standby = replica(kube, clock=clock)
    assert not await standby.attempt(NOW)
    kube.objects.clear()  # restarted empty
    clock.now += 1
    assert not await standby.attempt(NOW + datetime.timedelta(seconds=1))
    assert stored_lease(kube)["spec"]["holderIdentity"] == "b"
    clock.now += 14.9
    assert not await standby.attempt(NOW + datetime.timedelta(seconds=15.9))
    clock.now += 0.1
    assert await standby.attempt(NOW + datetime.timedelta(seconds=16))


async def test_the_leader_recreates_a_vanished_lease_and_leads_on() -> None:
    kube = FakeKube()
    leadership = replica(kube)
    assert await leadership.attempt(NOW)
    kube.objects.clear()
    assert await leadership.attempt(NOW + datetime.timedelta(seconds=5))
    assert stored_lease(kube)["spec"]["holderIdentity"] == "b"


async def test_the_old_leader_losing_the_race_to_recreate_the_lease_steps_down() -> None:
    kube = FakeKube()
    old, other = replica(kube, "b"), replica(kube, "c")
    assert await old.attempt(NOW)
    kube.objects.clear()
    original_get = kube.get

    async def nothing_yet(*args: Any) -> dict[str, Any] | None:
        await original_get(*args)
        return None

    assert await other.attempt(NOW + datetime.timedelta(seconds=1))  # c recreates it first
    kube.get = nothing_yet  # type: ignore[method-assign]
    assert not await old.attempt(NOW + datetime.timedelta(seconds=1))  # 409 on its create
    assert not old.is_leader


async def test_an_api_error_never_makes_a_standby_the_leader() -> None:
    kube = FakeKube(outage=True)
    assert not await replica(kube).attempt(NOW)


class Stop(BaseException):
    """Ends run_forever after a given number of rounds."""


async def test_running_calls_on_elected_once_and_while_leading_every_round() -> None:
    kube = FakeKube()
    calls: list[str] = []
    changes: list[int] = []

    async def elected() -> None:
        calls.append("elected")

    async def leading() -> None:
        calls.append("leading")

    def on_change(value: int) -> None:
        changes.append(value)
        if len(changes) == 3:
            raise Stop

    leadership = replica(kube, on_elected=[elected], while_leading=[leading], on_change=on_change)
    with pytest.raises(Stop):
        await leadership.run_forever()
    assert changes == [1, 1, 1]
    assert calls == ["elected", "leading", "leading"]  # the third round stopped before its own


async def test_a_leader_that_loses_the_lease_stops_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube()
    changes: list[int] = []
    calls: list[str] = []

    async def leading() -> None:
        calls.append("leading")

    def on_change(value: int) -> None:
        changes.append(value)
        if len(changes) == 1:  # another replica takes the Lease over
            taken = stored_lease(kube)
            taken["spec"]["holderIdentity"] = "a"
            taken["spec"]["renewTime"] = datetime.datetime.now(datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            )
            kube.put(LEASES, taken)
        if len(changes) == 2:
            raise Stop

    leadership = replica(kube, while_leading=[leading], on_change=on_change)
    with pytest.raises(Stop):
        await leadership.run_forever()
    assert changes == [1, 0] and not leadership.is_leader
    assert calls == ["leading"]
    assert "b lost the leadership" in caplog.text


async def test_one_failing_callback_does_not_stop_the_others() -> None:
    kube = FakeKube()
    calls: list[str] = []

    async def broken() -> None:
        raise RuntimeError("catch-up failed")

    async def flush() -> None:
        calls.append("flush")

    def stop(_: int) -> None:
        if calls:
            raise Stop

    leadership = replica(kube, on_elected=[broken], while_leading=[flush], on_change=stop)
    with pytest.raises(Stop):
        await leadership.run_forever()
    assert calls == ["flush"]


class UnreachableError(Exception):
    """Not a KubeError: what urllib3's MaxRetryError was before kube_api mapped it."""


async def test_the_loop_survives_any_exception_and_leads_once_the_api_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """API down at start, with an error that is not a KubeError: the loop goes on."""
    kube = FakeKube()
    original_get = kube.get
    down = {"rounds": 3}
    changes: list[int] = []

    async def flaky(*args: Any) -> dict[str, Any] | None:
        if down["rounds"]:
            down["rounds"] -= 1
            raise UnreachableError("Max retries exceeded")
        return await original_get(*args)

    def on_change(value: int) -> None:
        changes.append(value)
        if value:
            raise Stop

    kube.get = flaky  # type: ignore[method-assign]
    errors: list[int] = []
    leadership = replica(kube, on_change=on_change, on_error=lambda: errors.append(1))
    with pytest.raises(Stop):
        await asyncio.wait_for(leadership.run_forever(), timeout=5)
    assert changes[-1] == 1 and leadership.is_leader
    assert leadership.errors == 3 and len(errors) == 3
    assert "Leader election round failed" in caplog.text


async def test_a_slow_callback_never_delays_the_renewals() -> None:
    kube = FakeKube()
    rounds: list[int] = []
    started: list[str] = []
    release = asyncio.Event()

    async def slow_flush() -> None:
        started.append("flush")
        await release.wait()

    def on_change(value: int) -> None:
        rounds.append(value)
        if len(rounds) == 5:
            raise Stop

    leadership = replica(kube, while_leading=[slow_flush], on_change=on_change)
    with pytest.raises(Stop):
        await asyncio.wait_for(leadership.run_forever(), timeout=5)
    assert rounds == [1, 1, 1, 1, 1]  # five renewals while the first flush still runs
    assert started == ["flush"]  # and never a second flush on top of it
    release.set()


async def test_recreating_the_lease_runs_the_catch_up_again() -> None:
    """API restarted empty: what it lost (the recording rules) is written again."""
    kube = FakeKube()
    elected: list[str] = []
    rounds: list[int] = []

    async def catch_up() -> None:
        elected.append("catch-up")

    def on_change(value: int) -> None:
        rounds.append(value)
        if len(rounds) == 2:
            kube.objects.clear()
        if len(rounds) == 4:
            raise Stop

    leadership = replica(kube, on_elected=[catch_up], on_change=on_change)
    with pytest.raises(Stop):
        await asyncio.wait_for(leadership.run_forever(), timeout=5)
    assert rounds == [1, 1, 1, 1]
    assert elected == ["catch-up", "catch-up"]


async def test_in_its_own_thread_the_lease_is_renewed_while_the_main_loop_is_blocked() -> None:
    """Issue 14: the renewals starved for 67 s behind the audit's backlog on the main loop."""
    kube = FakeKube()
    callback_threads: list[str] = []
    leader_while_blocked: list[bool] = []

    async def flush() -> None:
        callback_threads.append(threading.current_thread().name)

    leadership = Leadership(
        kube, "a", "finops-system", duration=1, renew_every=0.1, while_leading=[flush]
    )
    stop = leadership.start_in_thread(asyncio.get_running_loop())
    try:
        for _ in range(100):
            if leadership.is_leader:
                break
            await asyncio.sleep(0.05)
        renewals_before = kube.verbs().count("patch")
        for _ in range(15):  # the main loop busy for 1.5 s: longer than the Lease lasts
            time.sleep(0.1)
            leader_while_blocked.append(leadership.is_leader)
        renewals_during = kube.verbs().count("patch") - renewals_before
        await asyncio.sleep(0.3)  # the callbacks the rounds started get the loop back
    finally:
        await asyncio.to_thread(stop)
    assert all(leader_while_blocked), leader_while_blocked
    assert renewals_during >= 5
    assert callback_threads and set(callback_threads) == {threading.main_thread().name}


async def test_always_leader_leads_from_the_start_and_never_touches_a_lease() -> None:
    kube = FakeKube()
    leadership = AlwaysLeader(kube, "a", "finops-system", duration=1)
    assert leadership.is_leader
    assert await leadership.attempt(NOW)
    assert leadership.is_leader and kube.calls == []


async def test_always_leader_catches_up_once_and_retries_every_round() -> None:
    """`--no-leader-election`: the flush retries failed writes there too (issue 20)."""
    kube = FakeKube()
    calls: list[str] = []
    changes: list[int] = []

    async def elected() -> None:
        calls.append("elected")

    async def flush() -> None:
        calls.append("flush")

    def on_change(value: int) -> None:
        changes.append(value)
        if len(changes) == 3:
            raise Stop

    leadership = AlwaysLeader(
        kube,
        "a",
        "finops-system",
        renew_every=0.01,
        on_elected=[elected],
        while_leading=[flush],
        on_change=on_change,
    )
    with pytest.raises(Stop):
        await leadership.run_forever()
    assert changes == [1, 1, 1]
    assert calls == ["elected", "flush", "flush"]
    assert kube.calls == []

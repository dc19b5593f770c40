"""The Lease rule: who leads, when a Lease is renewed and when it is taken over."""

from __future__ import annotations

import datetime

from finops_operator.domain.lease import lease_decision

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

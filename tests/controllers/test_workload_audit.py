"""WorkloadAudit, the decider of one watch event, against the in-memory API and metrics."""

from __future__ import annotations

from typing import Any

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.controllers.audit_writer import AuditWriter
from finops_operator.controllers.workload_audit import Violations, WorkloadAudit
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.policies.label_check import LabelPolicy
from tests.support.fakes import FakeKube, FakeMetrics


class World:
    def __init__(self, leading: bool = True) -> None:
        self.kube = FakeKube()
        self.metrics = FakeMetrics()
        self.leading = leading
        self.writer = AuditWriter(self.kube, lambda: self.leading, reporter="replica-1")
        self.seen: list[tuple[str, str | None]] = []
        config = Config()
        self.audit = WorkloadAudit(
            config,
            LabelPolicy(config),
            {"team-a": {}},
            self.writer,
            Violations(self.metrics),
            observe=lambda kind, uid: self.seen.append((kind, uid)),
        )

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["uid"] = f"uid-{obj['metadata']['name']}"
        self.kube.put_workload(obj["kind"], "team-a", obj["metadata"]["name"], obj)
        return obj

    def annotation(self, kind: str, name: str) -> Any:
        meta = self.kube.workloads[(kind, "team-a", name)]["metadata"]
        return (meta.get("annotations") or {}).get(conventions.VIOLATIONS_ANNOTATION)


async def test_an_untagged_gpu_workload_makes_a_write_due_and_counts_as_violating() -> None:
    world = World()
    body = world.put(workload("Deployment", name="trainer"))
    assert world.audit.decide("Deployment", "ADDED", body) is True
    assert world.metrics.violations == {("team-a", "Deployment"): 1}
    assert world.seen == [("Deployment", "uid-trainer")]  # readiness saw it
    await world.writer.write(("Deployment", "team-a", "trainer"))
    assert "resilio.tech/team" in world.annotation("Deployment", "trainer")
    assert len(world.kube.events) == 1


async def test_the_same_state_again_needs_no_write_and_is_not_counted_twice() -> None:
    world = World()
    body = world.put(workload("Deployment", name="trainer"))
    await world.audit.audit("Deployment", "ADDED", body)
    assert world.audit.decide("Deployment", "MODIFIED", body) is False
    assert world.metrics.violations == {("team-a", "Deployment"): 1}
    assert len(world.kube.writes) == 2  # one annotation, one Event


def test_a_compliant_workload_needs_no_write_and_is_not_counted() -> None:
    world = World()
    body = world.put(workload("Job", name="tagged", labels=dict(COMPLETE_LABELS)))
    assert world.audit.decide("Job", "ADDED", body) is False
    assert world.metrics.violations.total() == 0
    assert world.kube.calls == []


def test_a_standby_decides_without_writing_and_keeps_the_decision_pending() -> None:
    world = World(leading=False)
    body = world.put(workload("StatefulSet", name="db"))
    assert world.audit.decide("StatefulSet", "ADDED", body) is False
    assert list(world.writer.pending) == [("StatefulSet", "team-a", "db")]
    assert world.metrics.violations == {("team-a", "StatefulSet"): 1}


def test_a_deleted_workload_is_uncounted_and_forgotten() -> None:
    world = World(leading=False)
    body = world.put(workload("Pod", name="p"))
    world.audit.decide("Pod", "ADDED", body)
    assert world.audit.decide("Pod", "DELETED", body) is False
    assert world.metrics.violations == {("team-a", "Pod"): 0}
    assert world.writer.pending == {} and world.audit.violations.keys == set()


def test_after_a_relist_the_violators_it_no_longer_holds_are_forgotten() -> None:
    world = World(leading=False)
    for name in ("kept", "deleted-unseen"):
        world.audit.decide("Job", "ADDED", world.put(workload("Job", name=name)))
    world.audit.decide("Pod", "ADDED", world.put(workload("Pod", name="deleted-unseen")))
    world.audit.forget_unlisted("Job", {("team-a", "kept")})
    assert world.audit.violations.keys == {
        ("Job", "team-a", "kept"),
        ("Pod", "team-a", "deleted-unseen"),  # another kind's list says nothing about pods
    }
    assert world.metrics.violations == {("team-a", "Job"): 1, ("team-a", "Pod"): 1}
    assert set(world.writer.pending) == {
        ("Job", "team-a", "kept"),
        ("Pod", "team-a", "deleted-unseen"),
    }

"""AuditWriter against the in-memory API: who writes, what stays pending, what is retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from finops_operator.controllers.audit_writer import AuditWriter, ObjectKey
from finops_operator.domain import conventions
from finops_operator.domain.events import ObjectRef
from finops_operator.domain.policies.audit import AuditOutcome
from finops_operator.domain.policies.label_check import Violations
from finops_operator.errors import KubeError, NotSentError
from tests.support.fakes import FakeKube

KEY: ObjectKey = ("Deployment", "team-a", "trainer")
REF = ObjectRef("apps/v1", "Deployment", "team-a", "trainer", "uid-7")
MISSING = Violations(missing=("resilio.tech/team",))
ANNOTATION = MISSING.annotation()


def violating(current: str | None = None) -> AuditOutcome:
    return AuditOutcome(violations=MISSING, desired=ANNOTATION, current=current)


def fixed(current: str | None = ANNOTATION) -> AuditOutcome:
    return AuditOutcome(violations=Violations(), desired=None, current=current)


class World:
    def __init__(self, leading: bool = True) -> None:
        self.kube = FakeKube()
        self.kube.put_workload(*KEY, {"metadata": {"name": "trainer", "annotations": {}}})
        self.leading = leading
        self.writer = AuditWriter(self.kube, lambda: self.leading, reporter="replica-1")

    def annotation(self) -> Any:
        annotations = self.kube.workloads[KEY]["metadata"].get("annotations") or {}
        return annotations.get(conventions.VIOLATIONS_ANNOTATION)

    def reasons(self) -> list[tuple[str, str]]:
        return [(e["type"], e["reason"]) for e in self.kube.events]


async def test_the_leader_writes_the_annotation_and_one_warning_event() -> None:
    world = World()
    await world.writer.record(KEY, REF, violating(), "missing resilio.tech/team")
    assert world.annotation() == ANNOTATION
    assert world.reasons() == [("Warning", conventions.EVENT_REASON_VIOLATION)]
    [event] = world.kube.events
    assert event["message"] == "missing resilio.tech/team"
    assert event["involvedObject"]["uid"] == "uid-7"
    assert world.writer.pending == {}


async def test_a_fixed_workload_loses_the_annotation_with_a_normal_event() -> None:
    world = World()
    world.kube.put_workload(
        *KEY, {"metadata": {"annotations": {conventions.VIOLATIONS_ANNOTATION: ANNOTATION}}}
    )
    await world.writer.record(KEY, REF, fixed(), "compliant")
    assert world.annotation() is None
    assert world.reasons() == [("Normal", conventions.EVENT_REASON_FIXED)]
    [patch] = [c.body for c in world.kube.writes if c.verb == "patch_workload"]
    assert patch == {"metadata": {"annotations": {conventions.VIOLATIONS_ANNOTATION: None}}}


async def leader_of_the_time(world: World, state: str = "", event: bool = True) -> None:
    """Another replica writes the decision; its Event is lost when `event` is False."""
    leader = AuditWriter(world.kube, lambda: True, reporter="replica-0")
    if not event:
        world.kube.fail_next(500, on="create_event")
    await leader.record(KEY, REF, violating(), "missing", state)
    world.kube.calls.clear()


async def test_an_unchanged_decision_only_checks_that_its_event_was_posted() -> None:
    world = World(leading=False)
    await world.writer.record(KEY, REF, violating(), "missing")
    await leader_of_the_time(world)
    await world.writer.record(KEY, REF, violating(current=ANNOTATION), "missing")
    world.leading = True
    await world.writer.flush()
    assert world.kube.verbs() == ["create_event"]  # answered 409: posted by the leader
    assert len(world.kube.events) == 1 and world.writer.pending == {}
    await world.writer.record(KEY, REF, violating(current=ANNOTATION), "missing")
    assert world.kube.verbs() == ["create_event"]  # once per state, not at every event


async def test_a_compliant_unchanged_object_is_never_written() -> None:
    world = World()
    await world.writer.record(KEY, REF, fixed(current=None), "compliant")
    assert world.kube.calls == [] and world.writer.pending == {}


async def test_a_standby_writes_nothing_and_keeps_only_the_latest_decision() -> None:
    world = World(leading=False)
    await world.writer.record(KEY, REF, violating(), "first")
    await world.writer.record(KEY, REF, fixed(current="older"), "latest")
    assert world.kube.calls == []
    assert list(world.writer.pending) == [KEY]
    assert world.writer.pending[KEY].message == "latest"


async def test_on_election_the_pending_decision_is_written_once() -> None:
    world = World(leading=False)
    await world.writer.record(KEY, REF, violating(), "missing")
    world.leading = True
    await world.writer.flush()
    assert world.annotation() == ANNOTATION
    # Recorded while standing by: read first, in case the leader of the time wrote it.
    assert world.kube.verbs() == ["get_workload", "patch_workload", "create_event"]
    await world.writer.flush()
    assert world.kube.verbs() == ["get_workload", "patch_workload", "create_event"]


@pytest.mark.parametrize("status", [0, 409, 500])
async def test_a_failed_write_stays_pending_and_the_next_flush_retries_it(status: int) -> None:
    world = World()
    world.kube.fail_next(status, on="patch_workload")
    await world.writer.record(KEY, REF, violating(), "missing")
    assert world.annotation() is None and world.kube.events == []
    assert KEY in world.writer.pending
    await world.writer.flush()
    assert world.annotation() == ANNOTATION
    assert world.reasons() == [("Warning", conventions.EVENT_REASON_VIOLATION)]
    assert world.writer.pending == {}


async def test_an_event_that_cannot_be_posted_keeps_the_write_pending() -> None:
    world = World()
    world.kube.fail_next(500, on="create_event")
    await world.writer.record(KEY, REF, violating(), "missing")
    assert world.annotation() == ANNOTATION and world.kube.events == []
    assert KEY in world.writer.pending
    await world.writer.flush()
    assert world.kube.verbs() == ["patch_workload", "create_event", "create_event"]
    assert len(world.kube.events) == 1 and world.writer.pending == {}


async def test_an_outage_keeps_everything_pending_until_the_api_is_back() -> None:
    world = World()
    world.kube.outage = True
    await world.writer.record(KEY, REF, violating(), "missing")
    await world.writer.flush()
    assert world.kube.writes == [] and KEY in world.writer.pending
    world.kube.outage = False
    await world.writer.flush()
    assert world.annotation() == ANNOTATION and world.writer.pending == {}


async def test_a_workload_that_is_gone_is_dropped_from_pending() -> None:
    world = World()
    del world.kube.workloads[KEY]
    await world.writer.record(KEY, REF, violating(), "missing")
    assert world.writer.pending == {}
    assert world.kube.events == []
    await world.writer.flush()
    assert world.kube.verbs() == ["patch_workload"]  # not retried


async def test_flushing_stops_when_the_leadership_is_lost() -> None:
    world = World(leading=False)
    other: ObjectKey = ("Job", "team-b", "batch")
    world.kube.put_workload(*other, {"metadata": {}})
    await world.writer.record(KEY, REF, violating(), "missing")
    await world.writer.record(other, ObjectRef("batch/v1", *other), violating(), "missing")
    world.leading = True
    original = world.kube.create_event

    async def lose_leadership_after(namespace: str, event: dict[str, Any]) -> None:
        await original(namespace, event)
        world.leading = False

    world.kube.create_event = lose_leadership_after  # type: ignore[method-assign]
    await world.writer.flush()
    assert [c.resource for c in world.kube.writes if c.verb == "patch_workload"] == ["Deployment"]
    assert list(world.writer.pending) == [other]


async def test_a_deleted_workload_is_forgotten() -> None:
    world = World(leading=False)
    await world.writer.record(KEY, REF, violating(), "missing")
    world.writer.forget(KEY)
    world.leading = True
    await world.writer.flush()
    assert world.kube.calls == []


# --- Exactly once (issue 13, item 7) ------------------------------------------------------


def seen(world: World) -> AuditOutcome:
    """The watch event our own annotation patch causes: the annotation now as desired."""
    return violating(current=world.annotation())


async def test_a_failed_event_survives_the_watch_event_of_its_own_annotation() -> None:
    """Lost 6 times out of 6 before: the patch's watch event said "unchanged" and dropped
    the pending write, Event included."""
    world = World()
    world.kube.fail_next(500, on="create_event")
    await world.writer.record(KEY, REF, violating(), "missing")
    await world.writer.record(KEY, REF, seen(world), "missing")
    await world.writer.flush()
    assert world.reasons() == [("Warning", conventions.EVENT_REASON_VIOLATION)]
    assert world.kube.verbs().count("patch_workload") == 1
    assert world.writer.pending == {}


async def test_a_standby_does_not_double_a_decision_the_leader_wrote() -> None:
    world = World(leading=False)
    await world.writer.record(KEY, REF, violating(), "missing")
    await leader_of_the_time(world)
    await world.writer.record(KEY, REF, seen(world), "missing")
    world.leading = True
    await world.writer.flush()
    assert world.kube.verbs() == ["create_event"]  # 409: the leader posted it; no second one
    assert len(world.kube.events) == 1


async def test_an_event_lost_with_its_leader_is_posted_by_the_next_leader() -> None:
    """Issue 19: the leader died between its patch and its Event (299 Events, 300 pods)."""
    world = World(leading=False)
    await leader_of_the_time(world, event=False)
    assert world.annotation() == ANNOTATION and world.kube.events == []
    await world.writer.record(KEY, REF, seen(world), "missing")  # the new leader's list
    world.leading = True
    await world.writer.flush()
    assert world.reasons() == [("Warning", conventions.EVENT_REASON_VIOLATION)]
    assert world.kube.verbs() == ["create_event"]  # no second patch
    await world.writer.flush()
    await world.writer.record(KEY, REF, seen(world), "missing")
    assert len(world.kube.events) == 1


class Gate:
    """Holds every call of one verb until opened."""

    def __init__(self, world: World, verb: str) -> None:
        self.open = asyncio.Event()
        original = getattr(world.kube, verb)

        async def held(*args: Any) -> Any:
            await self.open.wait()
            return await original(*args)

        setattr(world.kube, verb, held)


async def test_record_and_flush_at_once_write_the_decision_once() -> None:
    world = World()
    gate = Gate(world, "patch_workload")
    recording = asyncio.create_task(world.writer.record(KEY, REF, violating(), "missing"))
    await asyncio.sleep(0)
    flushing = asyncio.create_task(world.writer.flush())
    await asyncio.sleep(0)
    gate.open.set()
    await asyncio.gather(recording, flushing)
    assert world.kube.verbs() == ["patch_workload", "create_event"]
    assert len(world.kube.events) == 1


async def test_an_older_event_during_the_write_does_not_repeat_it() -> None:
    world = World()
    gate = Gate(world, "patch_workload")
    first = asyncio.create_task(world.writer.record(KEY, REF, violating(), "missing"))
    await asyncio.sleep(0)
    # A resync delivers the object as it was before the patch: the same decision again.
    older = asyncio.create_task(world.writer.record(KEY, REF, violating(), "missing"))
    await asyncio.sleep(0)
    gate.open.set()
    await asyncio.gather(first, older)
    await world.writer.record(KEY, REF, seen(world), "missing")
    await world.writer.flush()
    assert world.kube.verbs() == ["patch_workload", "create_event"]
    assert len(world.kube.events) == 1


async def test_an_event_whose_answer_was_lost_is_not_posted_twice() -> None:
    world = World()
    original = world.kube.create_event
    lost = {"answers": 1}

    async def lands_then_fails(namespace: str, event: dict[str, Any]) -> None:
        await original(namespace, event)
        if lost["answers"]:
            lost["answers"] -= 1
            raise KubeError(0, "connection reset after the request was sent")

    world.kube.create_event = lands_then_fails  # type: ignore[method-assign]
    await world.writer.record(KEY, REF, violating(), "missing")
    assert KEY in world.writer.pending
    await world.writer.flush()
    assert len(world.kube.events) == 1 and world.writer.pending == {}


async def test_a_later_decision_gets_an_event_of_its_own() -> None:
    world = World()
    await world.writer.record(KEY, REF, violating(), "missing")
    await world.writer.record(KEY, REF, seen(world), "missing")
    await world.writer.record(KEY, REF, fixed(), "compliant")
    assert world.reasons() == [
        ("Warning", conventions.EVENT_REASON_VIOLATION),
        ("Normal", conventions.EVENT_REASON_FIXED),
    ]
    names = [e["metadata"]["name"] for e in world.kube.events]
    assert len(set(names)) == 2


# --- One write per change (issue 14, item 3) ----------------------------------------------

BEFORE = "labels-v1"  # judged_state of the object as first seen
AFTER = "labels-v2"  # ... once its labels changed


async def test_a_replayed_event_older_than_the_patch_writes_nothing_again() -> None:
    """A watch replay or resync after the patch was confirmed: the same state, no annotation."""
    world = World()
    await world.writer.record(KEY, REF, violating(), "missing", BEFORE)
    await world.writer.record(KEY, REF, seen(world), "missing", BEFORE)
    for _ in range(3):
        await world.writer.record(KEY, REF, violating(current=None), "missing", BEFORE)
        await world.writer.flush()
    assert world.kube.verbs() == ["patch_workload", "create_event"]
    assert world.writer.pending == {}


async def test_a_stale_event_from_before_a_fix_does_not_bring_the_violation_back() -> None:
    world = World()
    await world.writer.record(KEY, REF, violating(), "missing", BEFORE)
    await world.writer.record(KEY, REF, seen(world), "missing", BEFORE)
    await world.writer.record(KEY, REF, fixed(), "compliant", AFTER)
    await world.writer.record(KEY, REF, fixed(current=None), "compliant", AFTER)
    # A late event of the object as it was first seen: old labels, no annotation yet.
    await world.writer.record(KEY, REF, violating(current=None), "missing", BEFORE)
    await world.writer.flush()
    assert world.annotation() is None
    assert world.reasons() == [
        ("Warning", conventions.EVENT_REASON_VIOLATION),
        ("Normal", conventions.EVENT_REASON_FIXED),
    ]


async def test_the_same_state_asking_again_is_written_again_once_its_labels_changed() -> None:
    world = World()
    await world.writer.record(KEY, REF, violating(), "missing", BEFORE)
    await world.writer.record(KEY, REF, seen(world), "missing", BEFORE)
    await world.writer.record(KEY, REF, fixed(), "compliant", AFTER)
    # The labels are broken again (a third state): a new change, a new write.
    await world.writer.record(KEY, REF, violating(current=None), "missing", "labels-v3")
    assert world.annotation() == ANNOTATION
    assert [reason for _, reason in world.reasons()] == [
        conventions.EVENT_REASON_VIOLATION,
        conventions.EVENT_REASON_FIXED,
        conventions.EVENT_REASON_VIOLATION,
    ]


async def test_a_workload_created_again_under_the_same_name_is_written_again() -> None:
    world = World()
    await world.writer.record(KEY, REF, violating(), "missing", BEFORE)
    await world.writer.record(KEY, REF, seen(world), "missing", BEFORE)
    world.kube.put_workload(*KEY, {"metadata": {"name": "trainer", "uid": "uid-8"}})
    again = ObjectRef("apps/v1", "Deployment", "team-a", "trainer", "uid-8")
    await world.writer.record(KEY, again, violating(), "missing", BEFORE)
    assert world.kube.verbs().count("patch_workload") == 2
    assert [e["involvedObject"]["uid"] for e in world.kube.events] == ["uid-7", "uid-8"]


async def test_a_patch_that_landed_but_timed_out_is_read_not_sent_again() -> None:
    """The Job re-patched every flush at 50k: each PATCH landed after the client gave up."""
    world = World()
    original = world.kube.patch_workload
    lost = {"answers": 1}

    async def lands_then_times_out(*args: Any) -> None:
        await original(*args)
        if lost["answers"]:
            lost["answers"] -= 1
            raise KubeError(0, "read timed out")

    world.kube.patch_workload = lands_then_times_out  # type: ignore[method-assign]
    await world.writer.record(KEY, REF, violating(), "missing", BEFORE)
    assert world.kube.events == [] and KEY in world.writer.pending
    await world.writer.flush()
    await world.writer.flush()
    assert world.kube.verbs() == ["patch_workload", "get_workload", "create_event"]
    assert len(world.kube.events) == 1 and world.writer.pending == {}


@pytest.mark.parametrize("posted", [True, False])
async def test_a_standby_decision_the_old_leader_already_patched_gets_one_event(
    posted: bool,
) -> None:
    world = World(leading=False)
    await world.writer.record(KEY, REF, violating(), "missing", BEFORE)
    # The leader of the time patched it (and posted its Event, or died first); this
    # replica's watch has not shown it yet.
    await leader_of_the_time(world, BEFORE, event=posted)
    world.leading = True
    await world.writer.flush()
    assert world.kube.verbs() == ["get_workload", "create_event"]  # read, then no patch
    assert len(world.kube.events) == 1 and world.writer.pending == {}
    # Its late events of that state stay quiet too.
    await world.writer.record(KEY, REF, violating(current=None), "missing", BEFORE)
    assert world.kube.verbs() == ["get_workload", "create_event"]


async def test_a_write_held_back_after_the_lease_is_lost_stays_pending_and_is_checked() -> None:
    world = World()
    original = world.kube.patch_workload

    async def held_back(*args: Any) -> None:
        world.kube.patch_workload = original  # type: ignore[method-assign]
        world.leading = False
        raise NotSentError(
            "patch Deployment team-a/trainer: not sent, this replica no longer leads"
        )

    world.kube.patch_workload = held_back  # type: ignore[method-assign]
    await world.writer.record(KEY, REF, violating(), "missing", BEFORE)
    assert world.kube.calls == [] and KEY in world.writer.pending
    assert world.writer.written[KEY].decisions == {}  # not sent: nothing to remember
    world.leading = True
    await world.writer.flush()
    assert world.kube.verbs() == ["get_workload", "patch_workload", "create_event"]
    assert world.annotation() == ANNOTATION


async def test_a_standby_decision_whose_first_patch_timed_out_but_landed_still_gets_its_event() -> (
    None
):
    """Lost 2 Events of 60 under load: the GET saw our own patch and took it for another's."""
    world = World(leading=False)
    await world.writer.record(KEY, REF, violating(), "missing", BEFORE)
    original = world.kube.patch_workload
    lost = {"answers": 1}

    async def lands_then_times_out(*args: Any) -> None:
        await original(*args)
        if lost["answers"]:
            lost["answers"] -= 1
            raise KubeError(0, "read timed out")

    world.kube.patch_workload = lands_then_times_out  # type: ignore[method-assign]
    world.leading = True
    await world.writer.flush()
    await world.writer.flush()
    assert world.kube.verbs() == ["get_workload", "patch_workload", "get_workload", "create_event"]
    assert len(world.kube.events) == 1 and world.writer.pending == {}

"""ExemptionRecorder against the in-memory API: one Event per exemption, the gauge, who posts."""

from __future__ import annotations

import copy
from typing import Any

from finops_devtools.devcluster.reviews import EXEMPT, EXEMPT_REASON, workload
from finops_operator.controllers.exemption_recorder import ExemptionRecorder, ObjectKey
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.policies.label_check import find_exemption
from tests.support.fakes import FakeKube, FakeMetrics

KEY: ObjectKey = ("Pod", "team-a", "llm")


def exempt_pod(reason: str = "vendor-paid benchmark (FIN-2211)") -> dict[str, Any]:
    pod = workload("Pod", gpus=8, annotations={EXEMPT: "true", EXEMPT_REASON: reason})
    pod["metadata"]["uid"] = "uid-8"
    return pod


class World:
    def __init__(self, leading: bool = True) -> None:
        self.kube = FakeKube()
        self.metrics = FakeMetrics()
        self.leading = leading
        self.recorder = ExemptionRecorder(
            self.kube, self.metrics, lambda: self.leading, reporter="replica-1"
        )

    async def see(self, obj: dict[str, Any]) -> None:
        exemption = find_exemption(obj, "team-a", Config())
        if self.recorder.observe(KEY, obj, exemption):
            await self.recorder.post(KEY)


async def test_an_exempt_workload_gets_one_normal_event_with_its_reason_and_is_counted() -> None:
    world = World()
    for _ in range(3):  # the watch event, a resync, a status update
        await world.see(exempt_pod())
    [event] = world.kube.events
    assert (event["type"], event["reason"]) == ("Normal", conventions.EVENT_REASON_EXEMPTED)
    assert event["message"] == (
        "Pod team-a/llm asks for a GPU and is exempt from the cost label check by "
        "finops.resilio.tech/exempt: vendor-paid benchmark (FIN-2211)"
    )
    assert event["involvedObject"]["uid"] == "uid-8"
    assert world.metrics.exemptions[("team-a", "Pod")] == 1


async def test_a_new_reason_is_a_new_event_and_losing_the_exemption_uncounts_it() -> None:
    world = World()
    await world.see(exempt_pod())
    await world.see(exempt_pod("another reason"))
    assert len(world.kube.events) == 2
    assert world.metrics.exemptions[("team-a", "Pod")] == 1
    plain = copy.deepcopy(exempt_pod())
    del plain["metadata"]["annotations"][EXEMPT]
    await world.see(plain)
    assert world.metrics.exemptions[("team-a", "Pod")] == 0
    assert world.recorder.current == {}


async def test_a_restarted_operator_posts_no_second_event_for_the_same_exemption() -> None:
    world = World()
    await world.see(exempt_pod())
    restarted = ExemptionRecorder(world.kube, FakeMetrics(), lambda: True, reporter="replica-2")
    obj = exempt_pod()
    assert restarted.observe(KEY, obj, find_exemption(obj, "team-a", Config()))
    await restarted.post(KEY)  # 409: the same Event name
    assert len(world.kube.events) == 1
    assert restarted.pending == {}


async def test_a_standby_posts_nothing_until_it_leads_and_a_failed_post_is_retried() -> None:
    world = World(leading=False)
    await world.see(exempt_pod())
    assert world.kube.events == []
    assert world.metrics.exemptions[("team-a", "Pod")] == 1  # every replica counts
    world.leading = True
    world.kube.fail_next(500, on="create_event")
    await world.recorder.flush()
    assert world.kube.events == []
    await world.recorder.flush()
    assert len(world.kube.events) == 1


async def test_a_namespace_exemption_is_not_recorded() -> None:
    world = World()
    obj = workload("Pod", namespace="kube-system", gpus=8)
    assert not world.recorder.observe(KEY, obj, find_exemption(obj, "kube-system", Config()))
    assert world.metrics.exemptions == {}

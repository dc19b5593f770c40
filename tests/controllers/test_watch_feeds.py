"""The feeds of the list-and-watch: the audit's order per object, the inventory, relists."""

from __future__ import annotations

import asyncio
from typing import Any

from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.controllers.audit_writer import AuditWriter
from finops_operator.controllers.watch_feeds import DraFeed, NodeFeed, WorkloadFeed
from finops_operator.controllers.workload_audit import Violations, WorkloadAudit
from finops_operator.domain import conventions
from finops_operator.domain.config import Config
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.policies.label_check import LabelPolicy
from tests.support.dra import allocated_claim, gpu_device, resource_slice
from tests.support.fakes import FakeKube, FakeMetrics


class GatedKube(FakeKube):
    """Annotation patches wait for `gate`: a write under way for as long as a test wants."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def patch_workload(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        await self.gate.wait()
        await super().patch_workload(kind, namespace, name, patch)


def feed_of(
    kind: str, inventory: Inventory | None = None
) -> tuple[WorkloadFeed, GatedKube, FakeMetrics]:
    kube, metrics, config = GatedKube(), FakeMetrics(), Config()
    writer = AuditWriter(kube, lambda: True, reporter="replica-1")
    audit = WorkloadAudit(config, LabelPolicy(config), {}, writer, Violations(metrics))
    return WorkloadFeed(kind, audit, inventory), kube, metrics


def stored(kube: FakeKube, obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["uid"] = "uid-" + obj["metadata"]["name"]
    kube.put_workload(obj["kind"], "team-a", obj["metadata"]["name"], obj)
    return obj


async def test_an_event_of_an_object_with_a_write_under_way_is_decided_in_its_turn() -> None:
    feed, kube, metrics = feed_of("Deployment")
    untagged = stored(kube, workload("Deployment", name="x"))
    fixed = workload("Deployment", name="x", labels=dict(COMPLETE_LABELS))
    fixed["metadata"]["uid"] = "uid-x"
    kube.gate.clear()
    await feed.on_event("ADDED", untagged)
    await feed.on_event("MODIFIED", fixed)
    await asyncio.sleep(0.01)
    assert metrics.violations == {("team-a", "Deployment"): 1}  # the fix waits its turn
    assert feed.order.busy(("team-a", "x"))
    kube.gate.set()
    await feed.order.idle()
    assert metrics.violations == {("team-a", "Deployment"): 0}
    # The fix's body predates the patch (no annotation yet): nothing is left to write.
    assert [e["reason"] for e in kube.events] == [conventions.EVENT_REASON_VIOLATION]
    assert feed.order.turns == {}


async def test_events_that_need_no_write_get_no_task() -> None:
    feed, kube, _ = feed_of("Job")
    await feed.on_event(
        "ADDED", stored(kube, workload("Job", name="ok", labels=dict(COMPLETE_LABELS)))
    )
    await feed.on_event("ADDED", stored(kube, workload("Job", name="cpu", gpus=None)))
    assert not feed.order.running and feed.order.turns == {}
    assert kube.calls == []


async def test_writes_of_many_objects_never_exceed_the_in_flight_limit() -> None:
    kube, metrics, config = GatedKube(), FakeMetrics(), Config()
    writer = AuditWriter(kube, lambda: True, reporter="replica-1")
    audit = WorkloadAudit(config, LabelPolicy(config), {}, writer, Violations(metrics))
    feed = WorkloadFeed("Pod", audit, limit=3)
    kube.gate.clear()
    pods = [stored(kube, workload("Pod", name=f"p{i}")) for i in range(5)]
    for pod in pods[:3]:
        await feed.on_event("ADDED", pod)
    fourth = asyncio.create_task(feed.on_event("ADDED", pods[3]))
    await asyncio.sleep(0.01)
    assert len(feed.order.running) == 3 and not fourth.done()
    kube.gate.set()
    await fourth
    await feed.on_event("ADDED", pods[4])
    await feed.order.idle()
    assert len(kube.events) == 5


async def test_a_relist_after_410_forgets_the_pods_and_violators_deleted_unseen() -> None:
    config = Config()
    inventory = Inventory(LabelPolicy(config).is_gpu)
    feed, kube, metrics = feed_of("Pod", inventory)
    for name in ("kept", "gone"):
        pod = stored(kube, workload("Pod", name=name))
        pod["spec"]["nodeName"] = "node-1"
        pod["status"] = {"phase": "Running"}
        await feed.on_event("ADDED", pod)
    await feed.order.idle()
    assert set(inventory.pods) == {("team-a", "kept"), ("team-a", "gone")}
    await feed.on_relisted({("team-a", "kept")})
    assert set(inventory.pods) == {("team-a", "kept")}
    assert metrics.violations == {("team-a", "Pod"): 1}
    assert feed.audit.violations.keys == {("Pod", "team-a", "kept")}


async def test_a_node_relist_forgets_the_nodes_deleted_unseen() -> None:
    inventory = Inventory(LabelPolicy(Config()).is_gpu)
    feed = NodeFeed(inventory)
    for name in ("a", "b"):
        node = {
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": "NVIDIA-H100"}},
            "status": {"capacity": {"nvidia.com/gpu": "8"}},
        }
        await feed.on_event("ADDED", node)
    assert set(inventory.nodes) == {"a", "b"}
    await feed.on_relisted({("", "a")})
    assert set(inventory.nodes) == {"a"}


async def test_dra_claims_and_slices_feed_the_inventory_and_relists_forget_the_deleted() -> None:
    inventory = Inventory(LabelPolicy(Config()).is_gpu)
    claims, slices = DraFeed("ResourceClaim", inventory), DraFeed("ResourceSlice", inventory)
    for node in ("a", "b"):
        await slices.on_event("ADDED", resource_slice(node, [gpu_device("gpu-0")]))
        claim = allocated_claim("ml", f"claim-{node}", [(node, "gpu-0")], [f"pod-{node}"])
        await claims.on_event("ADDED", claim)
    assert set(inventory.claims) == {("ml", "claim-a"), ("ml", "claim-b")}
    assert len(inventory.devices) == 2
    await claims.on_relisted({("ml", "claim-a")})
    await slices.on_relisted({("", "a-gpu.nvidia.com")})
    assert set(inventory.claims) == {("ml", "claim-a")}
    assert set(inventory.slices) == {"a-gpu.nvidia.com"} and len(inventory.devices) == 1

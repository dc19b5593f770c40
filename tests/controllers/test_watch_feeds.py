"""The feeds of the list-and-watch: the audit's order per object, the inventory, relists."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from finops_devtools.devcluster import eventually_async
from finops_devtools.devcluster.reviews import COMPLETE_LABELS, workload
from finops_operator.controllers.audit_writer import AuditWriter
from finops_operator.controllers.informer_sync import InformerSync
from finops_operator.controllers.watch_feeds import (
    LIST_WATCHED,
    DraFeed,
    NodeFeed,
    WorkloadFeed,
    after_owners,
    watch_lean_kinds,
)
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


# --- owner claims: vouched for by the owner in the cache, or judged on their own (issue 19)


def feeds_of(
    *kinds: str, grace: float = 5.0
) -> tuple[dict[str, WorkloadFeed], GatedKube, FakeMetrics]:
    """One feed per kind over one audit, as the operator wires them."""
    kube, metrics, config = GatedKube(), FakeMetrics(), Config()
    writer = AuditWriter(kube, lambda: True, reporter="replica-1")
    audit = WorkloadAudit(config, LabelPolicy(config), {}, writer, Violations(metrics))
    return {kind: WorkloadFeed(kind, audit, owner_grace=grace) for kind in kinds}, kube, metrics


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    obj["metadata"]["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
        }
    ]
    return obj


async def settled(*feeds: WorkloadFeed) -> None:
    for feed in feeds:
        await feed.order.idle()


async def test_a_gpu_job_claiming_its_users_suspended_non_gpu_cronjob_is_reported() -> None:
    feeds, kube, metrics = feeds_of("CronJob", "Job")
    cronjob = stored(kube, workload("CronJob", name="nightly", gpus=None))
    cronjob["spec"]["suspend"] = True
    job = stored(kube, owned_by(workload("Job", name="stealth", gpus=8), cronjob))
    await feeds["CronJob"].on_event("ADDED", cronjob)
    await feeds["Job"].on_event("ADDED", job)
    await settled(*feeds.values())
    assert metrics.violations == {("team-a", "Job"): 1}
    assert [(e["reason"], e["involvedObject"]["name"]) for e in kube.events] == [
        (conventions.EVENT_REASON_VIOLATION, "stealth")
    ]
    annotations = kube.workloads[("Job", "team-a", "stealth")]["metadata"]["annotations"]
    assert "resilio.tech/team" in annotations[conventions.VIOLATIONS_ANNOTATION]


async def test_a_pod_its_gpu_replicaset_vouches_for_is_left_to_the_replicaset() -> None:
    feeds, kube, metrics = feeds_of("ReplicaSet", "Pod")
    replicaset = stored(kube, workload("ReplicaSet", name="web-7f9c"))
    pod = stored(kube, owned_by(workload("Pod", name="web-7f9c-abcde"), replicaset))
    await feeds["ReplicaSet"].on_event("ADDED", replicaset)
    await feeds["Pod"].on_event("ADDED", pod)
    await settled(*feeds.values())
    assert metrics.violations == {("team-a", "ReplicaSet"): 1}  # reported once, at the owner
    assert [e["involvedObject"]["name"] for e in kube.events] == ["web-7f9c"]


async def test_an_adopted_pod_is_judged_again_and_stays_reported() -> None:
    # A bare untagged GPU Pod, then adopted by a ReplicaSet whose template asks for no GPU.
    feeds, kube, metrics = feeds_of("ReplicaSet", "Pod")
    replicaset = stored(kube, workload("ReplicaSet", name="idle", gpus=None))
    await feeds["ReplicaSet"].on_event("ADDED", replicaset)
    pod = stored(kube, workload("Pod", name="squatter", gpus=8))
    await feeds["Pod"].on_event("ADDED", pod)
    await settled(*feeds.values())
    assert metrics.violations == {("team-a", "Pod"): 1}
    adopted = owned_by(kube.workloads[("Pod", "team-a", "squatter")], replicaset)
    await feeds["Pod"].on_event("MODIFIED", adopted)
    await settled(*feeds.values())
    assert metrics.violations == {("team-a", "Pod"): 1}
    assert feeds["Pod"].audit.deferred == {}
    assert len(kube.events) == 1  # one Event: its state did not change


async def test_an_owner_not_yet_in_the_cache_is_waited_for() -> None:
    feeds, kube, metrics = feeds_of("ReplicaSet", "Pod", grace=0.05)
    replicaset = stored(kube, workload("ReplicaSet", name="new"))
    pod = stored(kube, owned_by(workload("Pod", name="new-x"), replicaset))
    await feeds["Pod"].on_event("ADDED", pod)  # the ReplicaSet's event is not in yet
    assert feeds["Pod"].audit.deferred and metrics.violations == {}
    await feeds["ReplicaSet"].on_event("ADDED", replicaset)
    await eventually_async(lambda: not feeds["Pod"].audit.deferred and not feeds["Pod"].rechecks)
    await settled(*feeds.values())
    assert metrics.violations == {("team-a", "ReplicaSet"): 1}


async def test_an_owner_that_never_shows_leaves_the_object_judged_on_its_own() -> None:
    feeds, kube, metrics = feeds_of("Pod", grace=0.05)
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "g", "uid": "u"}}
    pod = stored(kube, owned_by(workload("Pod", name="forged"), ghost))
    await feeds["Pod"].on_event("ADDED", pod)
    assert metrics.violations == {}
    await eventually_async(lambda: metrics.violations == {("team-a", "Pod"): 1})
    await settled(*feeds.values())
    assert [e["involvedObject"]["name"] for e in kube.events] == ["forged"]


async def test_a_deferred_object_deleted_meanwhile_is_forgotten() -> None:
    feeds, kube, metrics = feeds_of("Pod", grace=0.05)
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "g", "uid": "u"}}
    pod = stored(kube, owned_by(workload("Pod", name="brief"), ghost))
    await feeds["Pod"].on_event("ADDED", pod)
    await feeds["Pod"].on_event("DELETED", pod)
    await asyncio.sleep(0.1)  # past the grace: room for a judgement, if one wrongly came
    await settled(*feeds.values())
    assert metrics.violations == {} and kube.events == []


async def test_a_relist_forgets_the_owners_deleted_meanwhile() -> None:
    feeds, kube, _ = feeds_of("ReplicaSet")
    replicaset = stored(kube, workload("ReplicaSet", name="old"))
    await feeds["ReplicaSet"].on_event("ADDED", replicaset)
    owners = feeds["ReplicaSet"].audit.owners
    assert owners.lookup("ReplicaSet", "team-a", "old") is not None
    await feeds["ReplicaSet"].on_relisted(set())
    assert owners.lookup("ReplicaSet", "team-a", "old") is None


async def test_a_kinds_watch_starts_after_its_owners_have_listed() -> None:
    listed = {"ReplicaSet": False, "StatefulSet": True, "DaemonSet": True, "Job": True}
    started: list[str] = []

    async def run() -> None:
        started.append("Pod")

    task = asyncio.create_task(
        after_owners("Pod", {k: functools.partial(listed.get, k) for k in listed}, run, 0.01)
    )
    await asyncio.sleep(0.05)
    assert started == []
    listed["ReplicaSet"] = True
    await asyncio.wait_for(task, 1)
    assert started == ["Pod"]


# --- the watches themselves ---------------------------------------------------------------


class RecordedWatch:
    def __init__(self, path: str, field_selector: str | None, ran: list[str]) -> None:
        self.path, self.field_selector, self.ran = path, field_selector, ran

    def is_synced(self) -> bool:
        return self.path in self.ran  # listed as soon as it runs

    async def run(self) -> None:
        self.ran.append(self.path)


async def test_one_watch_per_kind_each_in_readiness_run_once_the_namespaces_are_in() -> None:
    opened: list[RecordedWatch] = []
    ran: list[str] = []

    def open_watch(
        path: str, on_event: Any, on_relisted: Any, *, field_selector: Any = None
    ) -> Any:
        opened.append(RecordedWatch(path, field_selector, ran))
        return opened[-1]

    indexed = asyncio.Event()

    async def namespaces_indexed() -> None:
        await indexed.wait()

    feed, _, _ = feed_of("Pod")
    sync = InformerSync(relist_seconds=5, check_seconds=0.01)
    task = asyncio.create_task(
        watch_lean_kinds(
            open_watch,
            feed.audit,
            Inventory(LabelPolicy(Config()).is_gpu),
            sync,
            namespaces_indexed,
        )
    )
    await asyncio.sleep(0)
    assert len(opened) == len(LIST_WATCHED) and ran == []  # opened, not run before the index
    assert {w.path for w in opened} >= {"/api/v1/pods", "/api/v1/nodes", "/apis/batch/v1/jobs"}
    [pods] = [w for w in opened if w.path == "/api/v1/pods"]
    assert pods.field_selector == "status.phase!=Succeeded,status.phase!=Failed"
    assert all(w.field_selector is None for w in opened if w is not pods)
    indexed.set()
    await asyncio.wait_for(task, 1)
    assert sorted(ran) == sorted(w.path for w in opened)
    # owners first: Deployments, then their ReplicaSets, then the Pods (issue 19)
    order = [ran.index(p) for p in ("/apis/apps/v1/deployments", "/apis/apps/v1/replicasets")]
    assert order[0] < order[1] < ran.index("/api/v1/pods")


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


async def test_the_dra_kinds_discovery_names_are_watched_too() -> None:
    opened: list[str] = []

    def open_watch(path: str, on_event: Any, on_relisted: Any, **_: Any) -> Any:
        opened.append(path)
        return RecordedWatch(path, None, [])

    async def namespaces_indexed() -> None:
        return None

    async def both() -> list[str]:
        return ["ResourceClaim", "ResourceSlice"]

    feed, _, _ = feed_of("Pod")
    sync = InformerSync(relist_seconds=5, check_seconds=0.01)
    inventory = Inventory(LabelPolicy(Config()).is_gpu)
    await watch_lean_kinds(open_watch, feed.audit, inventory, sync, namespaces_indexed, both)
    assert opened[-2:] == [
        "/apis/resource.k8s.io/v1/resourceclaims",
        "/apis/resource.k8s.io/v1/resourceslices",
    ]
    assert len(opened) == len(LIST_WATCHED) + 2

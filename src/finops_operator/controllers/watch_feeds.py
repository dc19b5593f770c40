"""What the operator's own list-and-watch feeds: the audit and the GPU inventory.

The workloads (Pods and the six controller kinds) and Nodes are read by
`adapters/list_watch.ListWatch`, not kopf: a GPU fleet has them by the ten
thousand, and kopf's per-object state and queues cost more memory than
everything else (docs/benchmarks.md, Fleet scale). Each watch hands its events
to a feed here:

- `WorkloadFeed`, one per workload kind: for Pods the GPU inventory first, then
  the audit (`workload_audit.WorkloadAudit`). An event is decided at once when
  nothing of its object is under way, and only a write due gets a task
  (`in_order.InOrder`: in order per object, at most `AUDITS_IN_FLIGHT` at once).
  An object with a step under way queues its next events behind it, each decided
  in its turn. An object the audit defers (its claimed owner not in the owner
  cache yet) is decided again `owner_grace` seconds later, in its turn.
- `NodeFeed`: a GPU node's model and capacity for the inventory.
- `DraFeed`: ResourceClaims and ResourceSlices (`resource.k8s.io/v1`), the GPUs
  a pod holds through Dynamic Resource Allocation. Watched only where the API
  server serves that version (`DRA_WATCHED`; `operator._watch_lean` asks
  discovery first).

`watch_lean_kinds` opens one watch per kind of `LIST_WATCHED`, each with its feed,
adds each to readiness, and runs them once every Namespace is indexed, each kind
once its owner kinds have listed (`OWNERS_FIRST`).

After 410 Gone the watch lists again and calls `on_relisted` with every
(namespace, name) of the new list: the feeds forget what was deleted while
nobody watched.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from finops_operator.controllers.in_order import InOrder
from finops_operator.controllers.informer_sync import InformerSync, collection_path
from finops_operator.controllers.workload_audit import OWNER_GRACE_SECONDS, WorkloadAudit
from finops_operator.domain.backoff import backoff_delay
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.workloads import CONTROLLER_OWNERS, WORKLOAD_KINDS
from finops_operator.errors import KubeError
from finops_operator.ports import KubePort, OpenWatch

logger = logging.getLogger(__name__)

AUDITS_IN_FLIGHT: Final = 64  # audit steps of one kind queued or running at once (each may write)
# The kinds read by our own list-and-watch instead of kopf: every workload kind (the
# audit needs each body for a moment only), with the server-side filter of each: a pod
# that has ended holds no GPU and is no longer judged.
LEAN_KINDS: Final[Mapping[str, str]] = {
    kind: "status.phase!=Succeeded,status.phase!=Failed" if kind == "Pod" else ""
    for kind in WORKLOAD_KINDS
}
# Everything read through our own list-and-watch: kind -> (API group, plural). Nodes too:
# a fleet has them by the thousand, and the GPU inventory keeps only a GPU node's row.
LIST_WATCHED: Final[Mapping[str, tuple[str, str]]] = {
    "Node": ("", "nodes"),
    **{kind: (group, plural) for kind, (group, plural, _) in WORKLOAD_KINDS.items()},
}

# kind -> the kinds whose first list its watch waits for: owners are indexed before the
# objects that claim them, so a start does not defer every Pod until its ReplicaSet is in.
OWNERS_FIRST: Final[Mapping[str, frozenset[str]]] = {
    child.value: frozenset(owner.value for owner in owners)
    for child, owners in CONTROLLER_OWNERS.items()
}


async def after_owners(
    kind: str,
    synced: Mapping[str, Callable[[], bool]],
    run: Callable[[], Awaitable[None]],
    check_seconds: float = 0.05,
) -> None:
    """`run` the watch of `kind` once the watches of its owner kinds have listed."""
    while not all(synced[owner]() for owner in OWNERS_FIRST.get(kind, ()) if owner in synced):
        await asyncio.sleep(check_seconds)
    await run()


# Dynamic Resource Allocation, GA in Kubernetes 1.34: kind -> (API group, plural), all v1.
DRA_WATCHED: Final[Mapping[str, tuple[str, str]]] = {
    "ResourceClaim": ("resource.k8s.io", "resourceclaims"),
    "ResourceSlice": ("resource.k8s.io", "resourceslices"),
}


class WorkloadFeed:
    """The watch events of one workload kind: the inventory (Pods), the audit, its writes."""

    def __init__(
        self,
        kind: str,
        audit: WorkloadAudit,
        inventory: Inventory | None = None,
        limit: int = AUDITS_IN_FLIGHT,
        owner_grace: float = OWNER_GRACE_SECONDS,
    ) -> None:
        self.kind = kind
        self.audit = audit
        self.inventory = inventory  # the GPU inventory, for Pods: their allocations
        self.order = InOrder(limit, what=f"Audit of {kind}")
        self.owner_grace = owner_grace
        self.rechecks: dict[tuple[str, str], asyncio.Task[None]] = {}  # deferred, by key

    async def on_event(self, type: str, body: Mapping[str, Any]) -> None:
        if self.inventory is not None:
            self.inventory.observe_pod(type, body)
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        step: Callable[[], Awaitable[None]]
        if self.order.busy(key):
            step = functools.partial(self._in_turn, key, type, body)
        else:
            try:
                due = self.audit.decide(self.kind, type, body)
            except Exception:
                logger.exception("Audit of %s %s/%s failed", self.kind, *key)
                return
            self._recheck_if_deferred(key)
            if not due:
                return
            step = functools.partial(self.audit.send, (self.kind, *key))
        await self.order.submit(key, step)

    async def _in_turn(self, key: tuple[str, str], type: str, body: Mapping[str, Any]) -> None:
        await self.audit.audit(self.kind, type, body)
        self._recheck_if_deferred(key)

    def _recheck_if_deferred(self, key: tuple[str, str]) -> None:
        if (self.kind, *key) in self.audit.deferred and key not in self.rechecks:
            self.rechecks[key] = asyncio.create_task(self._recheck(key))

    async def _recheck(self, key: tuple[str, str]) -> None:
        await asyncio.sleep(self.owner_grace)
        del self.rechecks[key]
        await self.order.submit(key, functools.partial(self.audit.recheck, (self.kind, *key)))

    async def on_relisted(self, listed: set[tuple[str, str]]) -> None:
        """A new list after 410 Gone: forget the objects deleted while nobody watched."""
        if self.inventory is not None:
            for namespace, name in [key for key in self.inventory.pods if key not in listed]:
                gone = {"metadata": {"namespace": namespace, "name": name}}
                self.inventory.observe_pod("DELETED", gone)
        self.audit.forget_unlisted(self.kind, listed)


class NodeFeed:
    """Nodes for the GPU inventory: a GPU node's model and capacity, nothing for the others."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    async def on_event(self, type: str, body: Mapping[str, Any]) -> None:
        self.inventory.observe_node(type, body)

    async def on_relisted(self, listed: set[tuple[str, str]]) -> None:
        for name in [name for name in self.inventory.nodes if ("", name) not in listed]:
            self.inventory.observe_node("DELETED", {"metadata": {"name": name}})


async def no_dra() -> Sequence[str]:
    return ()


async def served_dra_kinds(
    kube: KubePort, drivers: Sequence[str], retry_seconds: float = 1.0
) -> Sequence[str]:
    """The DRA kinds to watch: none without GPU drivers, or where the API does not serve them.

    Asked once at start, by discovery (as the admission policies are): a cluster
    upgraded to serve `resource.k8s.io/v1` is seen at the operator's next start. An API
    that cannot answer is asked again (backing off to 30 s) until it does: a watch of
    kinds it may not serve would keep the replica unready for ever.
    """
    if not drivers:
        return []
    failures = 0
    while True:
        try:
            served = await kube.served_resources("resource.k8s.io", "v1") or frozenset()
            break
        except KubeError as err:
            failures += 1
            if failures == 1:
                logger.warning("Discovery of resource.k8s.io/v1 failed (%s): asking again", err)
            await asyncio.sleep(backoff_delay(failures, retry_seconds, 30.0))
    kinds = [kind for kind, (_, plural) in DRA_WATCHED.items() if plural in served]
    if len(kinds) < len(DRA_WATCHED):
        logger.warning(
            "The API server does not serve resource.k8s.io/v1 ResourceClaims and "
            "ResourceSlices (Kubernetes before 1.34?): GPUs through Dynamic Resource "
            "Allocation are not counted; extended resources (nvidia.com/gpu) still are"
        )
        return []
    return kinds


async def watch_lean_kinds(
    open_watch: OpenWatch,
    audit: WorkloadAudit,
    inventory: Inventory,
    sync: InformerSync,
    namespaces_indexed: Callable[[], Awaitable[None]],
    dra_kinds: Callable[[], Awaitable[Sequence[str]]] = no_dra,
) -> None:
    """The workloads and Nodes through our own list-and-watch, once the namespaces are in:
    a workload is judged with its namespace's labels. Also the DRA kinds `dra_kinds()`
    names (`served_dra_kinds`), for the GPUs pods hold through ResourceClaims."""
    watches = {}
    for kind, (group, plural) in LIST_WATCHED.items():
        pods = inventory if kind == "Pod" else None
        feed = NodeFeed(inventory) if kind == "Node" else WorkloadFeed(kind, audit, pods)
        path, selector = collection_path(group, plural), LEAN_KINDS.get(kind) or None
        watch = open_watch(path, feed.on_event, feed.on_relisted, field_selector=selector)
        sync.add_stream(kind, watch.is_synced)
        watches[kind] = watch
    for kind in await dra_kinds():
        claims = DraFeed(kind, inventory)
        path = collection_path(*DRA_WATCHED[kind])
        watches[kind] = open_watch(path, claims.on_event, claims.on_relisted)
        sync.add_stream(kind, watches[kind].is_synced)
    await namespaces_indexed()
    synced = {kind: watch.is_synced for kind, watch in watches.items()}
    await asyncio.gather(*(after_owners(kind, synced, w.run) for kind, w in watches.items()))


class DraFeed:
    """ResourceClaims or ResourceSlices for the inventory: what pods hold through DRA."""

    def __init__(self, kind: str, inventory: Inventory) -> None:
        self.kind = kind
        self.inventory = inventory

    async def on_event(self, type: str, body: Mapping[str, Any]) -> None:
        if self.kind == "ResourceClaim":
            self.inventory.observe_claim(type, body)
        else:
            self.inventory.observe_slice(type, body)

    async def on_relisted(self, listed: set[tuple[str, str]]) -> None:
        if self.kind == "ResourceClaim":
            for namespace, name in [key for key in self.inventory.claims if key not in listed]:
                gone = {"metadata": {"namespace": namespace, "name": name}}
                self.inventory.observe_claim("DELETED", gone)
        else:
            for name in [name for name in self.inventory.slices if ("", name) not in listed]:
                self.inventory.observe_slice("DELETED", {"metadata": {"name": name}})

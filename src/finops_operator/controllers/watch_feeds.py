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
  in its turn.
- `NodeFeed`: a GPU node's model and capacity for the inventory.
- `DraFeed`: ResourceClaims and ResourceSlices (`resource.k8s.io/v1`), the GPUs
  a pod holds through Dynamic Resource Allocation. Watched only where the API
  server serves that version (`DRA_WATCHED`; `operator._watch_lean` asks
  discovery first).

After 410 Gone the watch lists again and calls `on_relisted` with every
(namespace, name) of the new list: the feeds forget what was deleted while
nobody watched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from finops_operator.controllers.in_order import InOrder
from finops_operator.controllers.workload_audit import WorkloadAudit
from finops_operator.domain.gpus.inventory import Inventory
from finops_operator.domain.workloads import WORKLOAD_KINDS

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
    ) -> None:
        self.kind = kind
        self.audit = audit
        self.inventory = inventory  # the GPU inventory, for Pods: their allocations
        self.order = InOrder(limit, what=f"Audit of {kind}")

    async def on_event(self, type: str, body: Mapping[str, Any]) -> None:
        if self.inventory is not None:
            self.inventory.observe_pod(type, body)
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        step: Callable[[], Awaitable[None]]
        if self.order.busy(key):
            step = functools.partial(self.audit.audit, self.kind, type, body)  # in its turn
        else:
            try:
                if not self.audit.decide(self.kind, type, body):
                    return
            except Exception:
                logger.exception("Audit of %s %s/%s failed", self.kind, *key)
                return
            step = functools.partial(self.audit.send, (self.kind, *key))
        await self.order.submit(key, step)

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

"""The operator's in-memory inventory of GPU pods and GPU nodes, fed by watch events.

Only running GPU pods and GPU nodes are kept, as small frozen records, so the
inventory of a 10,000-pod cluster stays small. Nothing here writes anywhere.

`version` moves only when a record changes (a pod's status update that leaves
its GPUs, node and labels alone keeps the record, and the version): `/metrics`
renders the inventory once per version, not once per scrape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from finops_operator.domain.gpus.allocation import NodeGpus, PodGpus, node_gpus, pod_gpus
from finops_operator.domain.workloads import GpuMatcher


@dataclass
class Inventory:
    is_gpu: GpuMatcher
    pods: dict[tuple[str, str], PodGpus] = field(default_factory=dict)
    nodes: dict[str, NodeGpus] = field(default_factory=dict)
    version: int = 0  # moves whenever a pod's or a node's record changes

    def observe_pod(self, event_type: str | None, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        held = None if event_type == "DELETED" else pod_gpus(pod, self.is_gpu)
        if held is None:
            if self.pods.pop(key, None) is not None:
                self.version += 1
        elif self.pods.get(key) != held:
            self.pods[key] = held
            self.version += 1

    def observe_node(self, event_type: str | None, node: Mapping[str, Any]) -> None:
        name = str((node.get("metadata") or {}).get("name", ""))
        gpus = None if event_type == "DELETED" else node_gpus(node, self.is_gpu)
        if gpus is None:
            if self.nodes.pop(name, None) is not None:
                self.version += 1
        elif self.nodes.get(name) != gpus:
            self.nodes[name] = gpus
            self.version += 1

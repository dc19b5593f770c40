"""The operator's in-memory inventory of GPU pods and GPU nodes, fed by watch events.

Only running GPU pods and GPU nodes are kept, as small frozen records, so the
inventory of a 10,000-pod cluster stays small. Nothing here writes anywhere.
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

    def observe_pod(self, event_type: str | None, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        held = None if event_type == "DELETED" else pod_gpus(pod, self.is_gpu)
        if held is None:
            self.pods.pop(key, None)
        else:
            self.pods[key] = held

    def observe_node(self, event_type: str | None, node: Mapping[str, Any]) -> None:
        name = str((node.get("metadata") or {}).get("name", ""))
        gpus = None if event_type == "DELETED" else node_gpus(node, self.is_gpu)
        if gpus is None:
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = gpus
